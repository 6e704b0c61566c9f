#include "isolate/cellinit.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <grp.h>
#include <linux/keyctl.h>
#include <poll.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "isolate/argv0.h"
#include "isolate/caps.h"
#include "isolate/mount.h"
#include "isolate/ns.h"
#include "isolate/seccomp.h"
#include "util/ids.h"
#include "util/cowcopy.h"
#include "util/log.h"
#include "util/path.h"
#include "util/stdio_relay.h"

static void send_msg(int fd, char tag, const void *body, size_t len)
{
	char buf[PATH_MAX + 64];
	if (len > sizeof buf - 1)
		len = sizeof buf - 1;
	buf[0] = tag;
	memcpy(buf + 1, body, len);
	ssize_t n = send(fd, buf, len + 1, MSG_NOSIGNAL);
	(void)n;
}

static _Noreturn void setup_failed(int fd, const char *what)
{
	int errnum = errno;
	char buf[300];
	memcpy(buf, &errnum, sizeof errnum);
	size_t n = (size_t)snprintf(buf + sizeof errnum, sizeof buf - sizeof errnum, "%s", what);
	send_msg(fd, 'S', buf, sizeof errnum + n);
	_exit(125);
}

/* A setup step that reports through struct err: the message is complete. */
static _Noreturn void setup_failed_err(int fd, const struct err *e)
{
	char buf[sizeof(int) + ERR_MSG_MAX];
	int none = 0;
	memcpy(buf, &none, sizeof none);
	size_t n = strnlen(e->msg, ERR_MSG_MAX - 1);
	memcpy(buf + sizeof none, e->msg, n);
	send_msg(fd, 'S', buf, sizeof none + n);
	_exit(125);
}

/* Close every fd except those in keep[] (which need not be sorted). */
static void close_fds_except(const int *keep, int n)
{
	int sorted[8];
	for (int i = 0; i < n; i++)
		sorted[i] = keep[i];
	for (int i = 1; i < n; i++)
		for (int j = i; j > 0 && sorted[j - 1] > sorted[j]; j--) {
			int t = sorted[j];
			sorted[j] = sorted[j - 1];
			sorted[j - 1] = t;
		}
	unsigned lo = 3;
	for (int i = 0; i < n; i++) {
		if (sorted[i] < 3)
			continue;
		if ((unsigned)sorted[i] > lo)
			close_range(lo, (unsigned)sorted[i] - 1, 0);
		lo = (unsigned)sorted[i] + 1;
	}
	close_range(lo, ~0U, 0);
}

/* argv[0] as resolved once, in the cell's final root and working directory
 * (setup), and the very file the workload's process executes (exec_workload
 * runs in a vfork of ours, so it reads this memory). */
static struct {
	char path[PATH_MAX];      /* absolute */
	int fd;                   /* O_PATH of `path`, or -1 */
	int errnum;               /* why there is none: ENOENT -> 127, else 126 */
	int chdir_errno;          /* run.workingDirectory could not be entered */
	bool script;              /* a #! script */
} exe = {.fd = -1};

/* The signals ignored in the init (SIGPIPE, and whatever the supervisor
 * inherited as ignored): the workload's process resets these to default. */
static sigset_t ignored_signals;

/* Which signals are ignored, for exec_workload; real-time signals never are
 * here. Done while the supervisor writes our uid map, off the workload's path:
 * one read of the kernel's SigIgn mask rather than a sigaction() per signal. */
static void find_ignored_signals(void)
{
	sigemptyset(&ignored_signals);
	char buf[4096];
	int fd = open("/proc/thread-self/status", O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof buf - 1);
	if (fd >= 0)
		close(fd);
	const char *p = NULL;
	if (n > 0) {
		buf[n] = '\0';
		p = strstr(buf, "\nSigIgn:\t");
	}
	unsigned long long mask = 0;
	if (p && sscanf(p, "\nSigIgn:\t%llx", &mask) == 1) {
		for (int s = 1; s < SIGRTMIN && s <= 64; s++)
			if (mask & (1ULL << (s - 1)))
				sigaddset(&ignored_signals, s);
		return;
	}
	/* No /proc (or an unexpected one): ask per signal. */
	for (int s = 1; s < SIGRTMIN; s++) {
		struct sigaction sa;
		if (sigaction(s, NULL, &sa) == 0 && sa.sa_handler == SIG_IGN)
			sigaddset(&ignored_signals, s);
	}
}

static void resolve_argv0(const struct cellinit_args *a);
static void check_argv0(const struct cellinit_args *a);

/* In-cell setup that must happen inside the new namespaces. */
/* /etc/resolv.conf of a gateway cell, filled from the address the supervisor
 * sends ('N' + 4 bytes) and read by the root builder after before_sys. */
static char resolv_conf[128];

static void set_resolv(const unsigned char addr[4])
{
	if (!addr[0] && !addr[1] && !addr[2] && !addr[3])
		return;
	snprintf(resolv_conf, sizeof resolv_conf, "# cellos: the cell's DNS proxy (CELLOS_NETWORK=gateway)\nnameserver %u.%u.%u.%u\n",
		 addr[0], addr[1], addr[2], addr[3]);
}

/* Receive the cell's network namespace from the supervisor ('N' + fd) and join
 * it. The supervisor makes it while we build the cell's root: creating a network
 * namespace is the most expensive single step of a cell (docs/DESIGN.md,
 * "Measured costs behind the code"), and doing it in clone3() would put it
 * before everything else. */
static int join_netns(void *arg, struct err *e)
{
	const struct cellinit_args *a = arg;
	char tag = 0;
	unsigned char addr[4] = {0};
	union {
		struct cmsghdr h;
		char space[CMSG_SPACE(sizeof(int))];
	} cm;
	struct iovec iov[2] = {{&tag, 1}, {addr, sizeof addr}};
	struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2, .msg_control = &cm, .msg_controllen = sizeof cm};
	ssize_t n;
	do
		n = recvmsg(a->ctl, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	struct cmsghdr *h = n == 5 && tag == 'N' ? CMSG_FIRSTHDR(&mh) : NULL;
	if (!h || h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS || h->cmsg_len != CMSG_LEN(sizeof(int))) {
		/* EOF: the supervisor gave up on the cell; nothing to report to. */
		if (n <= 0)
			_exit(125);
		return err_set(e, "cell setup: expected the cell's network namespace from the supervisor");
	}
	int fd;
	memcpy(&fd, CMSG_DATA(h), sizeof fd);
	int rc = setns(fd, CLONE_NEWNET) < 0 ? err_sys(e, errno, "cell setup: join the cell's network namespace") : 0;
	close(fd);
	if (a->gw_resolv)
		set_resolv(addr);
	return rc;
}

/* A PR_SET_PDEATHSIG the kernel cleared when our credentials changed (it does
 * on any change of euid/egid), armed again; a supervisor that died meanwhile
 * has hung up our control socket. */
static void rearm_death_signal(const struct cellinit_args *a)
{
	prctl(PR_SET_PDEATHSIG, getpid() == 1 ? SIGKILL : SIGUSR2, 0, 0, 0);
	struct pollfd p = {.fd = a->ctl, .events = POLLRDHUP};
	if (poll(&p, 1, 0) > 0 && (p.revents & (POLLHUP | POLLRDHUP)))
		_exit(125);
}

/* No user namespace may be made inside the cell's (SPEC §6.1): it is the door to
 * most kernel attack surface, and would let the cell's processes regain
 * capabilities over new namespaces. The limit is per user namespace and needs
 * CAP_SYS_RESOURCE in it, which only we, its root, still have. */
static void forbid_nested_userns(const struct cellinit_args *a)
{
	int fd = open("/proc/sys/user/max_user_namespaces", O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, "0", 1) != 1)
		setup_failed(a->ctl, "set max_user_namespaces to 0 in the cell's user namespace");
	close(fd);
}

/* Without a user namespace: become the run's own host uid/gid (SPEC §3: the
 * workload is never host root), with no supplementary groups. Capabilities go
 * with the uid (SECBIT_KEEP_CAPS is locked off by caps_drop_bounding). */
static void become_run_uid(const struct cellinit_args *a)
{
	if (setgroups(0, NULL) < 0 || setresgid(a->gid, a->gid, a->gid) < 0 || setresuid(a->uid, a->uid, a->uid) < 0)
		setup_failed(a->ctl, "become the run's uid");
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	rearm_death_signal(a);
}

/* Before the cell's root: our identity in the cell's user namespace. */
static void setup_identity(const struct cellinit_args *a)
{
	/* Our memory is a copy of the supervisor's (secrets included): no process of
	 * the cell, though it has our uid, may read it through /proc/1/mem or ptrace. */
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	/* In a user namespace the supervisor has just mapped the cell's root to the
	 * run's uid: become it (our ids are still the supervisor's, unmapped here),
	 * and shed the supervisor's supplementary groups, which would otherwise keep
	 * granting e.g. host group 0's access. setgroups is denied (EPERM) only when
	 * the supervisor is unprivileged, and then those groups are its own. */
	if (a->ns & NS_USER) {
		if ((setgroups(0, NULL) < 0 && errno != EPERM) || setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0)
			setup_failed(a->ctl, "become root of the cell's user namespace");
		forbid_nested_userns(a);
	}
}

/* Files we make for the workload belong to it: the user namespace's root, or
 * the run's uid without one. */
static struct cellfs_opts fs_opts(const struct cellinit_args *a)
{
	bool own = !(a->ns & NS_USER);
	return (struct cellfs_opts){.workdir = a->workdir, .hide = a->hide, .secrets = a->secrets,
				    .mounts = a->mounts, .n_mounts = a->n_mounts,
				    .owner_uid = own ? a->uid : 0, .owner_gid = own ? a->gid : 0,
				    .add_user = own, .home = a->home,
				    .before_sys = (a->ns & NS_NET) ? join_netns : NULL,
				    .arg = (void *)a, .resolv_conf = resolv_conf};
}

static void setup_rest(const struct cellinit_args *a);

static void setup(const struct cellinit_args *a)
{
	struct err e = {0};
	int64_t t = mono_us();
	setup_identity(a);
	struct cellfs_opts fs = fs_opts(a);
	if ((a->ns & NS_MNT) && cellfs_build(&fs, &e) < 0)
		setup_failed_err(a->ctl, &e);
	if (!(a->ns & NS_MNT) && (a->ns & NS_NET) && join_netns((void *)a, &e) < 0)
		setup_failed_err(a->ctl, &e);
	log_step(&t, "cell.fs");
	setup_rest(a);
}

/* After the cell's root: the rest of the in-cell setup. */
static void setup_rest(const struct cellinit_args *a)
{
	struct err e = {0};
	int64_t t = mono_us();
	bool own = !(a->ns & NS_USER);
	if (a->ns & NS_UTS) {
		size_t len = strlen(a->hostname);
		if (sethostname(a->hostname, len > 64 ? 64 : len) < 0)
			setup_failed(a->ctl, "sethostname");
	}
	if (own)
		become_run_uid(a);
	/* A session keyring of the cell's own: the one we inherited is the
	 * supervisor's (host root's), whose keys the cell must neither read nor
	 * add to. Kernels without keys (ENOSYS) have nothing to share. */
	if (syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, NULL) < 0 && errno != ENOSYS)
		setup_failed(a->ctl, "join a new session keyring");
	/* We need no privilege any more (signals go to processes of our own uid,
	 * cgroup.kill was opened by the supervisor), and the workload inherits
	 * none: no capability now or after any execve, even for uid 0, and
	 * NO_NEW_PRIVS (SPEC §6.1). Done here, and the bounding set before 'A',
	 * rather than in the workload's process: that is fifty system calls the
	 * cell's start need not wait for. */
	if (caps_drop_all(&e) < 0)
		setup_failed_err(a->ctl, &e);
	log_step(&t, "cell.caps");
	/* Unprivileged now, in the cell's final root: the working directory, and
	 * argv[0] as the workload's own lookup would find it, once. A working
	 * directory that cannot be entered is the spawn's failure (126). */
	if (a->workdir && chdir(a->workdir) < 0)
		exe.chdir_errno = errno;
	else if (a->argv && a->argv[0])
		resolve_argv0(a);
	check_argv0(a);
}

/* Open `path` for execution later, or remember why not; and whether it is a
 * #! script (readable, starting with "#!"). */
static void take_prog(const char *path)
{
	snprintf(exe.path, sizeof exe.path, "%s", path);
	exe.fd = open(exe.path, O_PATH | O_CLOEXEC);
	exe.errnum = exe.fd < 0 ? errno : 0;
	char magic[2], self[64];
	snprintf(self, sizeof self, "/proc/self/fd/%d", exe.fd);
	int rd = exe.fd < 0 ? -1 : open(self, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	exe.script = rd >= 0 && pread(rd, magic, 2, 0) == 2 && magic[0] == '#' && magic[1] == '!';
	if (rd >= 0)
		close(rd);
}

/* argv[0] the way execvp would find it, in the cell's PATH (not ours), to an
 * absolute path: a name with a '/' relative to the working directory, a bare
 * name through the absolute PATH entries only (a relative or empty entry means
 * "relative to the cwd", which the workload controls: skipped, SPEC §6.1). */
static void resolve_argv0(const struct cellinit_args *a)
{
	const char *file = a->argv[0];
	if (strchr(file, '/')) {
		char cwd[PATH_MAX] = "", abs[PATH_MAX];
		if (file[0] != '/' && !getcwd(cwd, sizeof cwd)) {
			exe.errnum = errno;
			return;
		}
		snprintf(abs, sizeof abs, "%s%s%s", cwd, file[0] == '/' || strcmp(cwd, "/") == 0 ? "" : "/", file);
		take_prog(abs);
		return;
	}
	int err = ENOENT;
	char cand[PATH_MAX];
	for (const char *it = a->path; path_search_next(&it, file, true, cand, sizeof cand);) {
		struct stat st;
		if (stat(cand, &st) == 0 && S_ISREG(st.st_mode)) {
			if (access(cand, X_OK) == 0) {
				take_prog(cand);
				return;
			}
			err = EACCES;
		}
	}
	exe.errnum = err;
}

/* CELLOS_RUN_ARGV0_ALLOW_PREFIXES, checked before the cell is reported created so
 * that a refusal is a create failure (lifecycle.v1.failed, 125) and nothing of the
 * workload ever runs. A bare name that is not found is left to the spawn (127). */
static void check_argv0(const struct cellinit_args *a)
{
	/* A path given with a '/' is checked whether or not it exists (refused
	 * rather than "not found"); a bare name only once found. */
	if (!a->argv0_prefixes || !exe.path[0])
		return;
	if (argv0_allowed(exe.path, a->argv0_prefixes))
		return;
	char msg[1024];
	size_t n = (size_t)snprintf(msg, sizeof msg, "run.argv[0]: %s is not under CELLOS_RUN_ARGV0_ALLOW_PREFIXES (", exe.path);
	for (char *const *p = a->argv0_prefixes; *p && n < sizeof msg; p++)
		n += (size_t)snprintf(msg + n, sizeof msg - n, "%s%s", p == a->argv0_prefixes ? "" : ",", *p);
	if (n < sizeof msg)
		n += (size_t)snprintf(msg + n, sizeof msg - n, ")");
	send_msg(a->ctl, 'D', msg, n < sizeof msg ? n : sizeof msg - 1);
	_exit(125);
}

static _Noreturn void spawn_failed(int ctl, int errnum, int status)
{
	send_msg(ctl, 'E', &errnum, sizeof errnum);
	_exit(status);
}

static _Noreturn void exec_workload(const struct cellinit_args *a, const struct sock_fprog *filter)
{
	sigset_t none;
	sigemptyset(&none);
	/* execve resets caught signals but keeps ignored ones: only those (found
	 * by the init while it waited for 'A') are reset here, where every system
	 * call delays the workload's start. */
	for (int s = 1; s < SIGRTMIN; s++)
		if (sigismember(&ignored_signals, s) == 1)
			signal(s, SIG_DFL);
	sigprocmask(SIG_SETMASK, &none, NULL);
	prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);

	int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (null < 0 || dup2(null, STDIN_FILENO) < 0) {
		int errnum = errno;
		send_msg(a->ctl, 'E', &errnum, sizeof errnum);
		_exit(126);
	}
	int keep[] = {a->ctl, exe.fd};
	close_fds_except(keep, exe.fd >= 0 ? 2 : 1);
	if (exe.chdir_errno)
		spawn_failed(a->ctl, exe.chdir_errno, 126);
	if (exe.fd < 0)
		spawn_failed(a->ctl, exe.errnum, exe.errnum == ENOENT ? 127 : 126);

	struct err e = {0};
	/* Last: from here on the filter applies, to us too (send, execve). */
	if (filter->filter && seccomp_install(filter, &e) < 0)
		spawn_failed(a->ctl, errno ? errno : EINVAL, 126);
	/* The supervisor has SO_PASSCRED: this message carries our pid as it sees it. */
	send_msg(a->ctl, 'P', exe.path, strlen(exe.path));
	/* Exactly the file that was resolved and checked: through its descriptor
	 * (the magic link resolves to that very file, and the filter sees a plain
	 * execve, which allow-list filter files know). A #! script cannot go that
	 * way: its interpreter would be handed /proc/self/fd/N, closed by then; it
	 * goes by its absolute path, which only the host could change, never the
	 * workload (it does not exist yet). */
	char via_fd[64];
	snprintf(via_fd, sizeof via_fd, "/proc/self/fd/%d", exe.fd);
	execve(exe.script ? exe.path : via_fd, a->argv, a->envp);
	int errnum = errno;
	/* ENOENT from an existing file means its interpreter (#! line or ELF loader)
	 * is missing: argv[0] exists but cannot be executed, which is 126 (SPEC §1). */
	struct stat st;
	if (errnum == ENOENT && stat(exe.path, &st) == 0)
		errnum = ENOEXEC;
	send_msg(a->ctl, 'E', &errnum, sizeof errnum);
	_exit(errnum == ENOENT ? 127 : 126);
}

/* The workload's process, the way posix_spawn makes one: vfork (CLONE_VM |
 * CLONE_VFORK). fork() would copy our address space (a copy of the supervisor's)
 * only for execve to tear it down again, which was most of the time to start a
 * workload. We are suspended until the child has exec'd or exited, and it never
 * returns from here; it writes only below our stack pointer and this thread's
 * errno. vfork rather than clone() on a stack of our own: the sanitizers know
 * vfork, and would take a foreign stack for a corrupted one. */
static pid_t spawn_workload(const struct cellinit_args *a, const struct sock_fprog *filter)
{
	pid_t pid = vfork();
	if (pid == 0)
		exec_workload(a, filter);
	return pid;
}

/* ---- a warm cell (SPEC §11, docs/DESIGN.md "Warm cells") ----
 * 'W': what does not depend on the document (our identity, the base of the
 * root with /sys in the cell's netns); 'A' + cellinit_pack()'s record: the
 * document's part (the rest of the root, read-only, hostname, uid, privileges,
 * argv[0]). Each answered with 'R' (or 'S'/'D' and exit, as in setup()). */
static void recv_or_exit(int ctl, void *buf, size_t size, char want, size_t *len)
{
	ssize_t n;
	do
		n = recv(ctl, buf, size, MSG_TRUNC);
	while (n < 0 && errno == EINTR);
	if (n < 1)
		_exit(125); /* the supervisor is gone or gave up on the warm cell */
	if ((size_t)n > size || ((char *)buf)[0] != want) {
		errno = EPROTO;
		setup_failed(ctl, want == 'W' ? "warm cell: expected 'W'" : "warm cell: bad claim record");
	}
	*len = (size_t)n;
}

static const struct cellinit_args *warm_cell(const struct cellinit_args *a, int early_rc, const struct err *early,
					     struct cellinit_args *claimed)
{
	char w;
	size_t len;
	recv_or_exit(a->ctl, &w, 1, 'W', &len);
	if (early_rc < 0)
		setup_failed_err(a->ctl, early);
	struct err e = {0};
	int64_t t = mono_us();
	setup_identity(a);
	struct cellfs_opts fs = fs_opts(a);
	if (cellfs_build_begin(&fs, &e) < 0)
		setup_failed_err(a->ctl, &e);
	log_step(&t, "cell.fs.warm");
	send_msg(a->ctl, 'R', "", 0);

	/* Ready: from here on we wait for a job (or the supervisor's end: EOF).
	 * Meanwhile the pages we still share with the supervisor (we are a fork
	 * of it) are copied, so that the claim's writes do not fault. */
	char *rec = malloc(CELLINIT_PACK_MAX);
	if (!rec)
		_exit(125);
	cowcopy_now();
	recv_or_exit(a->ctl, rec, CELLINIT_PACK_MAX, 'A', &len);
	*claimed = *a;
	if (cellinit_unpack(rec + 1, len - 1, claimed) < 0) {
		errno = EPROTO;
		setup_failed(a->ctl, "warm cell: bad claim record");
	}
	t = mono_us();
	fs = fs_opts(claimed);
	if (cellfs_build_end(&fs, &e) < 0)
		setup_failed_err(a->ctl, &e);
	log_step(&t, "cell.fs.claim");
	setup_rest(claimed);
	send_msg(a->ctl, 'R', "", 0);
	return claimed; /* rec stays: claimed points into it */
}

_Noreturn void cellinit_main(const struct cellinit_args *a)
{
	bool pid1 = getpid() == 1;
	sigset_t set;
	sigemptyset(&set);
	int sigs[] = {SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};
	for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
		sigaddset(&set, sigs[i]);
	sigprocmask(SIG_BLOCK, &set, NULL);

	/* With a PID namespace the kernel kills the whole cell when we die; without
	 * one we need a chance to kill it ourselves when the supervisor dies. */
	prctl(PR_SET_PDEATHSIG, pid1 ? SIGKILL : SIGUSR2, 0, 0, 0);
	if (!pid1 && getppid() != a->supervisor)
		_exit(125);
	if (!pid1)
		prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);

	/* SPEC §6.1: the cell never holds the operator's terminal, not even its init;
	 * where ours is one, its stdout/stderr are the supervisor's relay pipes. */
	if (stdio_relay_install(a->stdio) < 0)
		_exit(125);
	int keep[] = {a->ctl, a->report, a->cgroup_kill};
	close_fds_except(keep, a->cgroup_kill >= 0 ? 3 : 2);
	/* A session of our own: the cell loses the operator's controlling terminal,
	 * so it cannot push input into it (TIOCSTI) through an inherited stdout,
	 * and terminal signals reach the supervisor, which stops the cell. */
	setsid();
	/* While we wait for 'A': the part of dropping privilege that leaves us able
	 * to build the cell (caps.h); the rest comes at the end of the setup. */
	struct err early = {0};
	int early_rc = caps_drop_bounding(&early);
	find_ignored_signals();
	struct cellinit_args claimed;
	if (a->warm)
		a = warm_cell(a, early_rc, &early, &claimed);

	/* 'B' carries the seccomp filter, if any: one whole SEQPACKET record, read
	 * into an aligned buffer behind the tag byte. */
	char tag;
	struct sock_filter *prog = malloc(BPF_MAXINSNS * sizeof *prog);
	if (!prog)
		_exit(125);
	struct iovec iov[2] = {{&tag, 1}, {prog, BPF_MAXINSNS * sizeof *prog}};
	struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2};
	ssize_t got;
	for (;;) {
		/* EOF: the supervisor is gone or gave up on the cell. */
		if ((got = recvmsg(a->ctl, &mh, 0)) < 1)
			_exit(125);
		if (tag == 'A' && !a->warm) {
			if (early_rc < 0)
				setup_failed_err(a->ctl, &early);
			setup(a);
			send_msg(a->ctl, 'R', "", 0);
		} else if (tag == 'B') {
			break;
		}
	}
	struct sock_fprog filter = {0};
	if (got > 1 && (size_t)(got - 1) % sizeof *prog == 0) {
		filter.filter = prog;
		filter.len = (unsigned short)((size_t)(got - 1) / sizeof *prog);
	}

	pid_t child = spawn_workload(a, &filter);
	if (child < 0) {
		int errnum = errno;
		send_msg(a->ctl, 'E', &errnum, sizeof errnum);
		_exit(125);
	}
	close(a->ctl);

	for (;;) {
		siginfo_t si;
		int sig = sigwaitinfo(&set, &si);
		if (sig == SIGCHLD) {
			int st;
			struct rusage ru;
			pid_t p;
			while ((p = wait4(-1, &st, WNOHANG, &ru)) > 0) {
				if (p != child)
					continue;
				struct cellinit_report r = {.wstatus = st, .ru = ru};
				ssize_t n = write(a->report, &r, sizeof r);
				(void)n;
				/* PID 1 exiting makes the kernel kill the rest of the cell;
				 * otherwise the supervisor kills the cgroup leaf. */
				_exit(0);
			}
		} else if (sig == SIGUSR2 && !pid1) {
			/* The supervisor died: take the whole cell down with us. */
			if (a->cgroup_kill >= 0) {
				ssize_t n = write(a->cgroup_kill, "1", 1);
				(void)n;
			}
			kill(child, SIGKILL);
			_exit(137);
		} else if (sig > 0 && sig != SIGCHLD) {
			kill(child, sig);
			if (pid1)
				kill(-1, sig); /* every other process of the cell's PID namespace */
		}
	}
}
