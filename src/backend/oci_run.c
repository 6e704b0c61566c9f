#include "backend/oci_run.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/sched.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend/oci_bundle.h"
#include "hostmount/hostmount.h"
#include "isolate/argv0.h"
#include "isolate/cgroup.h"
#include "isolate/runreg.h"
#include "util/ids.h"
#include "util/log.h"
#include "util/scrub.h"
#include "util/path.h"
#include "util/stdio_relay.h"

#define TOOL_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
/* Bounds of the runtime's own commands (kill, delete) and of a graceful exit. */
#define CMD_TIMEOUT_MS 5000
#define EXIT_WAIT_MS 2000
/* The fd the runtime logs to (a memfd of ours). */
#define LOG_FD 3

/* Directories of the cell root that the runtime mounts afresh: never taken from
 * the host root (its /run would show other cells' runtime state, its /tmp the
 * host's temp files). */
static const char *const private_dirs[] = {"proc", "sys", "dev", "tmp", "run"};

struct ocirt {
	const struct cell *cell;
	struct oci_runtime rt;
	char global[OCI_RUN_MAX_GLOBAL][128]; /* rt.global points here (the caller's may not outlive create) */
	char base[PATH_MAX];     /* /run/cellos/<kind>: a private tmpfs in the runtime's mount ns */
	char dir[PATH_MAX];      /* base/<name> */
	pid_t pid;               /* the runtime's `run` process */
	int pidfd;
	int mntns;               /* its mount namespace (holds bundle, state, rootfs) */
	int ev, go;              /* FIFOs: hooks -> us, us -> prestart hook */
	int statefd;             /* the runtime's state directory (empty once it cleaned up) */
	int logfd;               /* memfd the runtime logs to */
	int sigfd;               /* SIGTERM/SIGINT, polled but never read (the supervisor reads) */
	bool gate_open, exited;
	int wstatus;
	struct rusage ru;
	pid_t sandbox_pid;
	char evbuf[4096];
	size_t evlen;
	int64_t deadline;        /* create/start bound: the cell's TTL */
	struct cgroup_cell cg;
	struct runreg reg;
	char program[PATH_MAX];  /* argv[0] resolved in the cell's root */
	int resolve_errno;       /* 0, ENOENT or EACCES */
	bool fix_stdio[3];       /* regular-file stdout/stderr we gave the runtime in append mode */
	/* run.mounts: the opened sources (until the child has them) and the binds
	 * config.json names: <dir>/mounts/<i>, where the child attaches them. */
	struct hostmounts hm;
	struct oci_bind *binds;
	size_t n_binds;
};

static struct ocirt *priv(struct cell *c) { return c->priv; }

static void wipe_freep(char **p)
{
	if (*p) {
		explicit_bzero(*p, strlen(*p));
		free(*p);
	}
}

/* ---- small helpers ---- */

static int mkdir_p(const char *path, mode_t mode)
{
	char buf[PATH_MAX];
	snprintf(buf, sizeof buf, "%s", path);
	for (char *p = buf + 1; *p; p++)
		if (*p == '/') {
			*p = '\0';
			if (mkdir(buf, mode) < 0 && errno != EEXIST)
				return -1;
			*p = '/';
		}
	return mkdir(buf, mode) < 0 && errno != EEXIST ? -1 : 0;
}

static int rmtree_at(int at, const char *name)
{
	int fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return unlinkat(at, name, 0) < 0 && errno != ENOENT ? -1 : 0;
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -1;
	}
	struct dirent *de;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			rmtree_at(dirfd(d), de->d_name);
	closedir(d);
	return unlinkat(at, name, AT_REMOVEDIR) < 0 && errno != ENOENT ? -1 : 0;
}

int oci_run_rmtree(const char *path) { return rmtree_at(AT_FDCWD, path); }

static bool dir_empty(int fd)
{
	int dup = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dup < 0)
		return true;
	DIR *d = fdopendir(dup);
	if (!d) {
		close(dup);
		return true;
	}
	bool empty = true;
	struct dirent *de;
	while (empty && (de = readdir(d)))
		empty = !strcmp(de->d_name, ".") || !strcmp(de->d_name, "..");
	closedir(d);
	return empty;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* The secret values of the cell's environment, into `vals` (room for one per
 * secretRef); returns how many. With file delivery there are none: the runtime
 * never sees those. */
static size_t secret_values(const struct cell *c, const char **vals)
{
	size_t n = 0;
	for (size_t i = 0; i < c->spec->n_secret_refs; i++) {
		size_t klen = strlen(c->spec->secret_refs[i]);
		for (char *const *ep = c->envp; *ep; ep++)
			if (strncmp(*ep, c->spec->secret_refs[i], klen) == 0 && (*ep)[klen] == '=') {
				vals[n++] = *ep + klen + 1;
				break;
			}
	}
	return n;
}

/* What the runtime logged (JSON objects, one after another, from runsc and the
 * processes it starts): its last error, with the first one when that differs
 * (the cause; the last is often "cannot create sandbox"). Plain text: the last
 * line.
 *
 * Runtimes quote the spec back in some errors (runsc prints the whole process,
 * environment included): no secret value may reach an event or a log. Each
 * message is masked while it is cut to size, so a secret at the cut cannot
 * leave its first bytes behind. The joined result is not scanned again: a
 * secret that is part of the mask would match inside it. */
static void runtime_error(struct ocirt *o, char *out, size_t size)
{
	out[0] = '\0';
	if (o->logfd < 0)
		return;
	const struct cell *c = o->cell;
	cleanup_free const char **secrets = calloc(c->spec->n_secret_refs + 1, sizeof *secrets);
	if (!secrets)
		return; /* nothing said rather than a secret */
	size_t n_secrets = secret_values(c, secrets);
	struct stat st;
	if (fstat(o->logfd, &st) < 0 || st.st_size <= 0)
		return;
	size_t len = (size_t)st.st_size > (1 << 20) ? (1 << 20) : (size_t)st.st_size;
	cleanup_free char *buf = malloc(len + 1);
	if (!buf)
		return;
	ssize_t n = pread(o->logfd, buf, len, (off_t)st.st_size - (off_t)len);
	if (n <= 0)
		return;
	buf[n] = '\0';
	char first[ERR_MSG_MAX / 2] = "", last[ERR_MSG_MAX / 2] = "";
	for (size_t off = 0; off < (size_t)n;) {
		while (off < (size_t)n && (buf[off] == '\n' || buf[off] == ' '))
			off++;
		if (off >= (size_t)n)
			break;
		json_error_t je;
		json_t *j = json_loadb(buf + off, (size_t)n - off, JSON_DISABLE_EOF_CHECK, &je);
		if (!j) {
			char *line = buf + off, *nl;
			while ((nl = strchr(line, '\n')) && nl[1])
				line = nl + 1;
			scrub_copy(last, sizeof last, line, strcspn(line, "\n"), secrets, n_secrets);
			break;
		}
		const char *lvl = json_string_value(json_object_get(j, "level"));
		const char *msg = json_string_value(json_object_get(j, "msg"));
		if (msg && lvl && (strcmp(lvl, "error") == 0 || strcmp(lvl, "fatal") == 0)) {
			if (!first[0])
				scrub_copy(first, sizeof first, msg, strlen(msg), secrets, n_secrets);
			scrub_copy(last, sizeof last, msg, strlen(msg), secrets, n_secrets);
		}
		json_decref(j);
		off += je.position > 0 ? (size_t)je.position : (size_t)n;
	}
	if (first[0] && strcmp(first, last) != 0 && !strstr(last, first))
		snprintf(out, size, "%s (%s)", last, first);
	else
		snprintf(out, size, "%s", last);
}

/* ---- the runtime's own commands (kill, delete), inside its mount namespace ---- */

/* Reap `pid`: its exit status, 128+N for signal N, or -1 when its status cannot
 * be known (someone else reaped it): never a made-up "exited 0". */
static int reap_status(pid_t pid)
{
	int ws;
	pid_t w;
	while ((w = waitpid(pid, &ws, 0)) < 0 && errno == EINTR)
		;
	if (w < 0)
		return -1;
	return WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
}

static int wait_child(pid_t pid, int pidfd, int timeout_ms)
{
	struct pollfd p = {.fd = pidfd, .events = POLLIN};
	int64_t end = mono_ms() + timeout_ms;
	for (;;) {
		int64_t left = end - mono_ms();
		if (left <= 0) {
			kill(pid, SIGKILL);
			break;
		}
		int n = poll(&p, 1, (int)left);
		if (n > 0 || (n < 0 && errno != EINTR))
			break;
	}
	return reap_status(pid);
}

/* fork + exec with a memfd for output; `mntns` >= 0: run in that mount namespace. */
static int tool_in(int mntns, const char *path, const char *const *argv, const char *const *env, int timeout_ms,
		   char *msg, size_t size)
{
	if (msg && size)
		msg[0] = '\0';
	int out = memfd_create("cellos-tool", MFD_CLOEXEC);
	if (out < 0)
		return -1;
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0) {
		close(out);
		return -1;
	}
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		if (mntns >= 0 && (setns(mntns, CLONE_NEWNS) < 0 || chdir("/") < 0))
			_exit(126);
		int null = open("/dev/null", O_RDONLY);
		if (null < 0 || dup2(null, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
			_exit(126);
		close_range(3, ~0U, 0);
		static const char *const deflt[] = {TOOL_PATH, NULL};
		execve(path, (char *const *)argv, (char *const *)(env ? env : deflt));
		_exit(127);
	}
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	int rc = -1;
	if (pidfd >= 0) {
		rc = wait_child(pid, pidfd, timeout_ms);
		close(pidfd);
	} else {
		rc = reap_status(pid);
	}
	if (msg && size) {
		ssize_t n = pread(out, msg, size - 1, 0);
		msg[n > 0 ? n : 0] = '\0';
	}
	close(out);
	return rc;
}

/* One line for messages: the last non-empty one. */
static void last_line(char *msg)
{
	if (!msg)
		return;
	size_t len = strlen(msg);
	while (len && (msg[len - 1] == '\n' || msg[len - 1] == ' '))
		msg[--len] = '\0';
	char *nl = strrchr(msg, '\n');
	if (nl)
		memmove(msg, nl + 1, strlen(nl + 1) + 1);
}

int oci_run_tool(const char *path, const char *const *args, const char *const *env, int timeout_ms, char *msg,
		 size_t size)
{
	int rc = tool_in(-1, path, args, env, timeout_ms, msg, size);
	if (size)
		last_line(msg);
	return rc;
}

/* ---- facts about a runtime binary, cached ---- */

static bool binary_key(const char *binary, char *key, size_t size)
{
	struct stat st;
	if (stat(binary, &st) < 0)
		return false;
	snprintf(key, size, "%llu %llu %lld %lld.%09ld", (unsigned long long)st.st_dev, (unsigned long long)st.st_ino,
		 (long long)st.st_size, (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
	return true;
}

bool oci_run_cache_get(const char *cache, const char *binary, char *value, size_t size)
{
	char key[128], buf[256];
	if (!binary_key(binary, key, sizeof key))
		return false;
	int fd = open(cache, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return false;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	size_t klen = strlen(key);
	if (strncmp(buf, key, klen) != 0 || buf[klen] != ' ')
		return false;
	snprintf(value, size, "%.*s", (int)strcspn(buf + klen + 1, "\n"), buf + klen + 1);
	return value[0] != '\0';
}

void oci_run_cache_put(const char *cache, const char *binary, const char *value)
{
	char key[128], tmp[PATH_MAX], line[256];
	if (!binary_key(binary, key, sizeof key))
		return;
	snprintf(tmp, sizeof tmp, "%s.%d", cache, (int)getpid());
	int n = snprintf(line, sizeof line, "%s %s\n", key, value);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	bool ok = write(fd, line, (size_t)n) == n;
	close(fd);
	/* rename: a concurrent reader sees the old line or the new one, never half. */
	if (!ok || rename(tmp, cache) < 0)
		unlink(tmp);
}

/* ---- the workload's system-call filter ---- */

int oci_run_seccomp(struct cell *c, struct oci_runtime *rt, const char *const *probe, const char *want, struct err *e)
{
	rt->seccomp = c->cfg->seccomp_policy;
	if (!rt->seccomp)
		return 0;
	char base[PATH_MAX], cache[PATH_MAX + 16], answer[8];
	snprintf(base, sizeof base, "/run/cellos/%s", rt->kind);
	snprintf(cache, sizeof cache, "%s/.seccomp", base);
	if (mkdir_p(base, 0700) < 0)
		return err_sys(e, errno, "%s", base);
	if (!oci_run_cache_get(cache, rt->path, answer, sizeof answer)) {
		char out[1024];
		int rc = tool_in(-1, rt->path, probe, NULL, CMD_TIMEOUT_MS, out, sizeof out);
		/* A probe that could not run or did not end tells nothing: the runtime
		 * gets the filter and speaks for itself; the next cell asks again. */
		if (rc < 0 || rc > 128)
			return 0;
		snprintf(answer, sizeof answer, "%s", rc == 0 && (!want || strstr(out, want)) ? "yes" : "no");
		oci_run_cache_put(cache, rt->path, answer);
	}
	if (strcmp(answer, "yes") == 0)
		return 0;
	const char *why = rt->seccomp_dialect == OCI_SECCOMP_RUNSC ? "no --oci-seccomp" : "built without libseccomp";
	/* The hardened profile requires a filter (SPEC §7). */
	if (c->cfg->seccomp_explicit || c->cfg->hardened)
		return err_set(e, "CELLOS_SECCOMP: %s cannot install a system-call filter (%s): set CELLOS_SECCOMP=off, "
				  "or use a runtime that can",
			       rt->path, why);
	/* Otherwise the default never refuses a cell (SPEC §3): it runs unfiltered, and says so. */
	log_warn("%s cannot install a system-call filter (%s): the cell runs without one (CELLOS_SECCOMP unset)",
		 rt->path, why);
	rt->seccomp = NULL;
	c->seccomp = "off";
	return 0;
}

/* `<runtime> <global> --root <state> <args...>` in the runtime's mount namespace. */
static int runtime_cmd(struct ocirt *o, const char *const *args, char *msg, size_t size)
{
	if (o->mntns < 0)
		return -1;
	const char *argv[32];
	size_t n = 0;
	char root[PATH_MAX + 8];
	snprintf(root, sizeof root, "--root=%s/state", o->dir);
	argv[n++] = o->rt.path;
	for (size_t i = 0; o->rt.global[i] && n < 20; i++)
		argv[n++] = o->rt.global[i];
	argv[n++] = root;
	for (size_t i = 0; args[i] && n < 31; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	int rc = tool_in(o->mntns, o->rt.path, argv, NULL, CMD_TIMEOUT_MS, msg, size);
	if (size)
		last_line(msg);
	return rc;
}

/* ---- the runtime's `run` process ---- */

/* Reap the runtime if it has ended (or within `timeout_ms`). True when reaped. */
static bool reap(struct ocirt *o, int timeout_ms)
{
	if (o->exited)
		return true;
	if (o->pid <= 0)
		return true;
	struct pollfd p = {.fd = o->pidfd, .events = POLLIN};
	int64_t end = mono_ms() + timeout_ms;
	for (;;) {
		int64_t left = end - mono_ms();
		int n = poll(&p, 1, left > 0 ? (int)left : 0);
		if (n > 0)
			break;
		if (n < 0 && errno == EINTR)
			continue;
		if (left <= 0 || n < 0)
			return false;
	}
	pid_t w;
	while ((w = wait4(o->pid, &o->wstatus, 0, &o->ru)) < 0 && errno == EINTR)
		;
	if (w < 0) {
		/* The status is lost (reaped by someone else): a supervisor failure,
		 * never the "exited 0" of a zeroed o->wstatus. */
		log_error("%s: cannot collect its exit status: %s", o->rt.name, strerror(errno));
		o->wstatus = W_EXITCODE(125, 0);
	}
	o->exited = true;
	/* The runtime wrote to the files behind our stdout/stderr in append mode;
	 * ours would still write where it stood and overwrite that output. */
	for (int fd = 1; fd <= 2; fd++)
		if (o->fix_stdio[fd])
			lseek(fd, 0, SEEK_END);
	return true;
}

/* End the runtime: gracefully (the gate refused, or `kill --all KILL`), then by
 * force; its sandbox and gofer die with it (death signal), and the cgroup
 * catches anything else. */
static void end_runtime(struct ocirt *o)
{
	if (o->exited || o->pid <= 0)
		return;
	if (!o->gate_open && o->go >= 0) {
		/* Still held at the prestart hook: let the runtime undo its container. */
		ssize_t n = write(o->go, "no\n", 3);
		(void)n;
	} else {
		char sig[8];
		snprintf(sig, sizeof sig, "%d", SIGKILL);
		const char *args[] = {"kill", "--all", o->dir + strlen(o->base) + 1, sig, NULL};
		runtime_cmd(o, args, NULL, 0);
	}
	if (reap(o, EXIT_WAIT_MS))
		return;
	log_warn("%s did not end within %d ms; killing it", o->rt.name, EXIT_WAIT_MS);
	kill(o->pid, SIGKILL);
	cgroup_cell_signal(&o->cg, SIGKILL, 0);
	reap(o, 10000);
}

struct child_args {
	const struct ocirt *o;
	const char *root_src;          /* the cell's root on the host */
	const char *workdir;           /* run.workingDirectory or NULL */
	const char *config;            /* config.json text */
	const char *const *argv;       /* the runtime's command line */
	int sync;                      /* our end of the socketpair */
	int logfd;
};

static _Noreturn void child_fail(int sync, int errnum, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static _Noreturn void child_fail(int sync, int errnum, const char *fmt, ...)
{
	char msg[ERR_MSG_MAX];
	msg[0] = 'E';
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(msg + 1, sizeof msg - 1, fmt, ap);
	va_end(ap);
	if (errnum && n > 0 && (size_t)n + 1 < sizeof msg)
		snprintf(msg + 1 + n, sizeof msg - 1 - (size_t)n, ": %s", strerror(errnum));
	ssize_t w = send(sync, msg, strlen(msg), MSG_NOSIGNAL);
	(void)w;
	_exit(125);
}

static bool is_private_top(const char *name, size_t len)
{
	for (size_t i = 0; i < sizeof private_dirs / sizeof private_dirs[0]; i++)
		if (strlen(private_dirs[i]) == len && strncmp(private_dirs[i], name, len) == 0)
			return true;
	return false;
}

/* The mount point of `path` (the workspace, or a run.mounts target) in the
 * scaffold `dst`: inside a host directory it must already exist (creating it
 * there would create it on the host); inside another mount it is there
 * (hostmounts_check_nested); inside the workspace runc makes it in that tmpfs,
 * while runsc's gofer needs it in the scaffold beneath (bind_points_in_root);
 * otherwise it is made in the scaffold, a directory or (`dir` false) an empty
 * file. */
static void mount_point(const struct child_args *a, const char *dst, const char *path, bool dir, const char *field)
{
	int sync = a->sync;
	char clean[PATH_MAX], to[PATH_MAX], host_top[PATH_MAX];
	bool in_ws;
	if (path_clean(path, clean, sizeof clean) < 0 || !clean[0])
		return;
	long outer = hostmounts_enclosing(a->o->cell->spec, clean, &in_ws);
	if (outer >= 0 || (in_ws && !a->o->rt.bind_points_in_root))
		return;
	size_t top = strcspn(clean + 1, "/");
	snprintf(host_top, sizeof host_top, "%s/%.*s", strcmp(a->root_src, "/") ? a->root_src : "", (int)top, clean + 1);
	struct stat st;
	bool from_host = !is_private_top(clean + 1, top) && lstat(host_top, &st) == 0;
	snprintf(to, sizeof to, "%s%s", dst, clean);
	if (from_host) {
		if (stat(to, &st) < 0 || dir != S_ISDIR(st.st_mode))
			child_fail(sync, 0,
				   "%s: %s does not exist in the cell's root as a %s and cannot be created inside the host "
				   "directory %s%s",
				   field, path, dir ? "directory" : "file", host_top,
				   in_ws ? " (under gVisor a mount inside the workspace needs its mount point there: choose "
					   "a run.workingDirectory outside the host's directories)"
					 : "");
		return;
	}
	char *slash = strrchr(to, '/');
	*slash = '\0';
	int rc = mkdir_p(to, 0755);
	*slash = '/';
	if (rc == 0 && (dir ? mkdir(to, 0755) : mknod(to, S_IFREG | 0644, 0)) < 0 && errno != EEXIST)
		rc = -1;
	if (rc < 0)
		child_fail(sync, errno, "%s: mkdir %s in the cell root scaffold", field, path);
}

/* run.mounts: the trees the supervisor opened (inherited), attached at
 * <dir>/mounts/<i> on our private tmpfs, where config.json binds them from. */
static void attach_mounts(const struct ocirt *o, bool traverse, int sync)
{
	char p[PATH_MAX + 32];
	snprintf(p, sizeof p, "%s/mounts", o->dir);
	if (mkdir(p, traverse ? 0711 : 0700) < 0)
		child_fail(sync, errno, "mkdir %s", p);
	for (size_t i = 0; i < o->hm.n; i++) {
		snprintf(p, sizeof p, "%s/mounts/%zu", o->dir, i);
		int rc = o->hm.dir[i] ? mkdir(p, 0700) : mknod(p, S_IFREG | 0600, 0);
		if (rc < 0 || move_mount(o->hm.tree[i], "", AT_FDCWD, p, MOVE_MOUNT_F_EMPTY_PATH) < 0)
			child_fail(sync, errno, "spec.run.mounts[%zu]: attach the opened source at %s", i, p);
	}
}

/* The cell's root: a tmpfs scaffold with the host root's top-level entries
 * bind-mounted in (recursively), the runtime's own mount points, the workspace's
 * parents created in the scaffold, never on the host, then the whole tree made
 * read-only. All of it in the child's private mount namespace. */
static void build_root(const struct child_args *a, const char *dst)
{
	int sync = a->sync;
	if (mount("tmpfs", dst, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m") < 0)
		child_fail(sync, errno, "cell root: tmpfs on %s", dst);
	DIR *d = opendir(a->root_src);
	if (!d)
		child_fail(sync, errno, "cell root: %s", a->root_src);
	struct dirent *de;
	char from[PATH_MAX], to[PATH_MAX];
	while ((de = readdir(d))) {
		const char *n = de->d_name;
		if (!strcmp(n, ".") || !strcmp(n, "..") || is_private_top(n, strlen(n)))
			continue;
		struct stat st;
		if (fstatat(dirfd(d), n, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		snprintf(from, sizeof from, "%s/%s", strcmp(a->root_src, "/") ? a->root_src : "", n);
		snprintf(to, sizeof to, "%s/%s", dst, n);
		if (S_ISLNK(st.st_mode)) {
			char target[PATH_MAX];
			ssize_t len = readlinkat(dirfd(d), n, target, sizeof target - 1);
			if (len < 0)
				continue;
			target[len] = '\0';
			if (symlink(target, to) < 0)
				child_fail(sync, errno, "cell root: symlink %s", to);
		} else if (S_ISDIR(st.st_mode) || S_ISREG(st.st_mode)) {
			int rc = S_ISDIR(st.st_mode) ? mkdir(to, 0755) : mknod(to, S_IFREG | 0644, 0);
			if (rc < 0 || mount(from, to, NULL, MS_BIND | MS_REC, NULL) < 0)
				child_fail(sync, errno, "cell root: bind %s", from);
		}
	}
	closedir(d);
	for (size_t i = 0; i < sizeof private_dirs / sizeof private_dirs[0]; i++) {
		snprintf(to, sizeof to, "%s/%s", dst, private_dirs[i]);
		if (mkdir(to, 0755) < 0 && errno != EEXIST)
			child_fail(sync, errno, "cell root: mkdir %s", to);
	}
	/* The mount points of the workspace and of run.mounts. */
	const struct spec *spec = a->o->cell->spec;
	const char *wd = a->workdir;
	if (wd && strcmp(wd, "/") != 0)
		mount_point(a, dst, wd, true, "run.workingDirectory");
	for (size_t i = 0; i < a->o->hm.n; i++) {
		char field[64];
		snprintf(field, sizeof field, "spec.run.mounts[%zu].target", i);
		mount_point(a, dst, spec->mounts[i].target, a->o->hm.dir[i], field);
	}
	struct mount_attr attr = {.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV};
	if (mount_setattr(AT_FDCWD, dst, AT_RECURSIVE, &attr, sizeof attr) < 0)
		child_fail(sync, errno, "cell root: make %s read-only", dst);
}

/* Regular files lose output under gVisor unless opened for append (it writes
 * at its own offset, from 0): give the runtime an O_APPEND description. */
static void append_stdio(void)
{
	for (int fd = 1; fd <= 2; fd++) {
		struct stat st;
		int fl = fcntl(fd, F_GETFL);
		if (fl < 0 || (fl & O_APPEND) || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
			continue;
		char p[32];
		snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
		int nfd = open(p, O_WRONLY | O_APPEND | O_CLOEXEC);
		if (nfd >= 0) {
			dup2(nfd, fd);
			close(nfd);
		}
	}
}

static _Noreturn void child_main(const struct child_args *a, pid_t parent)
{
	const struct ocirt *o = a->o;
	int sync = a->sync;
	/* The runtime dies with the supervisor; its sandbox and gofer die with it. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(125);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	/* SPEC §6.1: the runtime (runsc forwards terminal ioctls to the host fd) never
	 * gets the operator's terminal; where ours is one, it gets the relay pipes. */
	if (stdio_relay_install(o->cell->stdio) < 0)
		child_fail(sync, errno, "the workload's stdout/stderr");

	if (unshare(CLONE_NEWNS) < 0)
		child_fail(sync, errno, "unshare(CLONE_NEWNS)");
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		child_fail(sync, errno, "make / private");
	/* With a user namespace the runtime mounts the cell's root as the run's uid:
	 * it needs to traverse (never list) the directories on the way there. */
	bool traverse = o->rt.map_user;
	if (traverse && chmod("/run/cellos", 0711) < 0)
		child_fail(sync, errno, "chmod /run/cellos");
	if (mount("tmpfs", o->base, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
		  traverse ? "mode=0711,size=16m" : "mode=0700,size=16m") < 0)
		child_fail(sync, errno, "tmpfs on %s", o->base);
	char p[PATH_MAX + 16];
	static const char *const sub[] = {"", "/bundle", "/state", "/rootfs"};
	for (size_t i = 0; i < sizeof sub / sizeof sub[0]; i++) {
		snprintf(p, sizeof p, "%s%s", o->dir, sub[i]);
		bool on_path = i == 0 || i == 3;
		if (mkdir(p, traverse && on_path ? 0711 : 0700) < 0)
			child_fail(sync, errno, "mkdir %s", p);
	}
	static const char *const fifos[] = {"/ev", "/go"};
	for (size_t i = 0; i < 2; i++) {
		snprintf(p, sizeof p, "%s%s", o->dir, fifos[i]);
		if (mkfifo(p, 0600) < 0)
			child_fail(sync, errno, "mkfifo %s", p);
	}
	if (o->hm.n)
		attach_mounts(o, traverse, sync);
	snprintf(p, sizeof p, "%s/bundle/config.json", o->dir);
	int cfd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	size_t len = strlen(a->config);
	if (cfd < 0 || write(cfd, a->config, len) != (ssize_t)len)
		child_fail(sync, errno, "write %s", p);
	close(cfd);
	snprintf(p, sizeof p, "%s/rootfs", o->dir);
	build_root(a, p);

	int null = open("/dev/null", O_RDONLY);
	if (null < 0 || dup2(null, 0) < 0)
		child_fail(sync, errno, "/dev/null");
	append_stdio();
	/* Everything is in place: the parent opens the FIFOs and namespace, then
	 * tells us to go on ("X"), or closes the socket. */
	if (send(sync, "R", 1, MSG_NOSIGNAL) != 1)
		_exit(125);
	char x;
	if (recv(sync, &x, 1, 0) != 1 || x != 'X')
		_exit(125);
	int s2 = fcntl(sync, F_DUPFD_CLOEXEC, 10);
	if (s2 < 0 || dup2(a->logfd, LOG_FD) != LOG_FD || fcntl(LOG_FD, F_SETFD, 0) < 0)
		child_fail(sync, errno, "log fd");
	sync = s2;
	close_range(LOG_FD + 1, (unsigned)s2 - 1, 0);
	close_range((unsigned)s2 + 1, ~0U, 0);
	static const char *const env[] = {TOOL_PATH, NULL};
	execve(o->rt.path, (char *const *)a->argv, (char *const *)env);
	child_fail(sync, errno, "exec %s", o->rt.path);
}

/* ---- FIFO events from the hooks ---- */

/* Wait for a line starting with `want` on ev. 1: got it (line in `line`); 0: the
 * runtime ended; -1: deadline or SIGTERM/SIGINT (e set). */
static int wait_event(struct ocirt *o, char want, char *line, size_t size, bool stop_on_signal, struct err *e)
{
	for (;;) {
		char *nl;
		while ((nl = memchr(o->evbuf, '\n', o->evlen))) {
			size_t l = (size_t)(nl - o->evbuf);
			bool hit = l > 0 && o->evbuf[0] == want;
			if (hit)
				snprintf(line, size, "%.*s", (int)l, o->evbuf);
			memmove(o->evbuf, nl + 1, o->evlen - l - 1);
			o->evlen -= l + 1;
			if (hit)
				return 1;
		}
		if (o->exited)
			return 0;
		int64_t left = o->deadline - mono_ms();
		if (left <= 0)
			return err_set(e, "%s: no %s within lifetime.ttlSeconds", o->rt.name,
				       want == 'C' ? "container" : "workload start");
		struct pollfd p[3] = {{.fd = o->ev, .events = POLLIN},
				      {.fd = o->pidfd, .events = POLLIN},
				      {.fd = stop_on_signal ? o->sigfd : -1, .events = POLLIN}};
		int n = poll(p, 3, left > 60000 ? 60000 : (int)left);
		if (n < 0 && errno != EINTR)
			return err_sys(e, errno, "poll");
		if (n <= 0)
			continue;
		if (p[2].revents)
			return err_set(e, "interrupted by a signal while %s created the container", o->rt.name);
		if (p[0].revents & POLLIN) {
			ssize_t r = read(o->ev, o->evbuf + o->evlen, sizeof o->evbuf - 1 - o->evlen);
			if (r > 0)
				o->evlen += (size_t)r;
			if (o->evlen >= sizeof o->evbuf - 1)
				o->evlen = 0; /* never from our hooks; drop garbage */
			continue;
		}
		if (p[1].revents)
			reap(o, 0);
	}
}

/* ---- argv[0] in the cell's root ---- */

static bool in_private_dir(const char *path)
{
	return path[0] == '/' && is_private_top(path + 1, strcspn(path + 1, "/"));
}

/* execvp's lookup, done on the host in the cell's root (the runtime does the
 * same inside): the program as the cell sees it, or ENOENT / EACCES. */
static int resolve_program(struct ocirt *o, const struct cell *c, const char *cwd)
{
	const char *root = o->rt.rootfs ? o->rt.rootfs : "";
	const char *a0 = c->spec->argv[0];
	char cand[PATH_MAX], host[PATH_MAX];
	bool denied = false;
	const char *pathv = strchr(a0, '/') ? "" : c->path;
	for (const char *p = pathv;;) {
		size_t len = strcspn(p, ":");
		if (strchr(a0, '/'))
			snprintf(cand, sizeof cand, "%s%s%s", a0[0] == '/' ? "" : cwd,
				 a0[0] == '/' || !strcmp(cwd, "/") ? "" : "/", a0);
		else
			snprintf(cand, sizeof cand, "%.*s/%s", (int)(len ? len : 1), len ? p : ".", a0);
		snprintf(host, sizeof host, "%s%s", root, cand);
		struct stat st;
		/* Directories the runtime mounts afresh hold nothing of the host's. */
		if (cand[0] == '/' && !in_private_dir(cand) && stat(host, &st) == 0) {
			if (S_ISREG(st.st_mode) && access(host, X_OK) == 0) {
				snprintf(o->program, sizeof o->program, "%s", cand);
				return 0;
			}
			denied = true;
		}
		if (strchr(a0, '/') || !p[len])
			break;
		p += len + 1;
	}
	snprintf(o->program, sizeof o->program, "%s", a0);
	return denied ? EACCES : ENOENT;
}

/* The workload's working directory: the workspace, else ours when the cell sees
 * it (the stub backend's rule), else "/". */
static void choose_cwd(const struct cell *c, const struct oci_runtime *rt, char *out, size_t size)
{
	const char *wd = c->spec->working_directory;
	if (wd) {
		snprintf(out, size, "%s", wd);
		return;
	}
	char here[PATH_MAX];
	struct stat st;
	if (!rt->rootfs && getcwd(here, sizeof here) && !in_private_dir(here) && stat(here, &st) == 0) {
		snprintf(out, size, "%s", here);
		return;
	}
	snprintf(out, size, "/");
}

/* config.json's binds for run.mounts, outermost first. */
static int plan_binds(struct ocirt *o, const struct cell *c, struct err *e)
{
	if (!o->hm.n)
		return 0;
	if (!(o->binds = calloc(o->hm.n, sizeof *o->binds)))
		return err_set(e, "out of memory");
	for (size_t j = 0; j < o->hm.n; j++) {
		size_t i = o->hm.order[j];
		char clean[PATH_MAX], *src = NULL;
		if (path_clean(c->spec->mounts[i].target, clean, sizeof clean) < 0 ||
		    asprintf(&src, "%s/mounts/%zu", o->dir, i) < 0)
			return err_set(e, "spec.run.mounts[%zu]: out of memory", i);
		o->binds[o->n_binds++] = (struct oci_bind){.source = src, .destination = strdup(clean),
							   .read_only = c->spec->mounts[i].read_only};
		if (!o->binds[j].destination)
			return err_set(e, "out of memory");
	}
	return 0;
}

/* ---- the backend operations ---- */

int oci_run_create(struct cell *c, const struct oci_runtime *rt, struct err *e)
{
	/* Holds the secrets (process.env): wiped and freed on every path. */
	__attribute__((cleanup(wipe_freep))) char *config = NULL;
	struct ocirt *o = calloc(1, sizeof *o);
	if (!o)
		return err_set(e, "out of memory");
	o->cell = c;
	o->rt = *rt;
	for (size_t i = 0; i < OCI_RUN_MAX_GLOBAL && rt->global[i]; i++) {
		snprintf(o->global[i], sizeof o->global[i], "%s", rt->global[i]);
		o->rt.global[i] = o->global[i];
	}
	o->pid = -1;
	o->pidfd = o->mntns = o->ev = o->go = o->statefd = o->logfd = o->sigfd = -1;
	o->reg.fd = -1;
	cgroup_cell_init(&o->cg);
	c->priv = o;
	o->deadline = mono_ms() + c->spec->ttl_seconds * 1000;
	int64_t t = mono_us();
	/* Whatever a SIGKILLed supervisor left: its cgroup leaves and their processes. */

	snprintf(o->base, sizeof o->base, "/run/cellos/%s", rt->kind);
	if (snprintf(o->dir, sizeof o->dir, "%s/%s", o->base, c->name) >= (int)sizeof o->dir - 64) {
		err_set(e, "%s: cell name too long", rt->name);
		goto fail;
	}
	if (mkdir_p(o->base, 0700) < 0) {
		err_sys(e, errno, "%s", o->base);
		goto fail;
	}

	char cwd[PATH_MAX];
	choose_cwd(c, rt, cwd, sizeof cwd);
	o->resolve_errno = resolve_program(o, c, cwd);
	/* CELLOS_RUN_ARGV0_ALLOW_PREFIXES: refused before anything of the cell exists. */
	if (!o->resolve_errno && !argv0_allowed(o->program, c->cfg->argv0_prefixes)) {
		c->fail_reason = "policy_denied";
		err_set(e, "run.argv[0]: %s is not under CELLOS_RUN_ARGV0_ALLOW_PREFIXES", o->program);
		goto fail;
	}

	/* run.mounts: every source opened now, once (hostmount/hostmount.h); the
	 * runtime binds the copies our child attaches in its private namespace,
	 * never a host path. */
	if (hostmounts_open(c->cfg, c->spec, &o->hm, e) < 0 || hostmounts_check_nested(c->spec, &o->hm, e) < 0 ||
	    plan_binds(o, c, e) < 0)
		goto fail;

	/* The hooks: the prestart one reports the container and holds it until
	 * start() (a refusal makes the runtime undo it); the poststart one reports
	 * the workload's process. `1<>` opens the FIFO without blocking. */
	char ev[PATH_MAX + 8], go[PATH_MAX + 8], root[PATH_MAX + 8];
	snprintf(ev, sizeof ev, "%s/ev", o->dir);
	snprintf(go, sizeof go, "%s/go", o->dir);
	snprintf(root, sizeof root, "%s/rootfs", o->dir);
	static const char *const hook_env[] = {TOOL_PATH, NULL};
	const char *gate_argv[] = {"/bin/sh", "-c",
				   "IFS= read -r s; printf 'C%s\\n' \"$s\" 1<>\"$1\" && IFS= read -r x <\"$2\" && "
				   "[ \"$x\" = go ]",
				   "cellos-gate", ev, go, NULL};
	const char *started_argv[] = {"/bin/sh", "-c", "printf 'S\\n' 1<>\"$1\"", "cellos-started", ev, NULL};
	struct oci_hook gate = {gate_argv, hook_env}, started = {started_argv, hook_env};

	/* The cgroup holds the runtime and everything it starts; the limits are
	 * ours to enforce on it (the runtime gets no cgroupsPath). */
	struct cgroup_limits lim = c->limits;
	if (rt->pids_as_rlimit)
		lim.pids_max = 0;
	if (rt->runtime_limits)
		memset(&lim, 0, sizeof lim);
	struct oci_bundle_args ba = {.cell = c, .root = root, .cwd = cwd, .prestart = &gate, .poststart = &started,
				     .pids_rlimit = rt->pids_as_rlimit ? c->limits.pids_max : 0,
				     .map_user = rt->map_user,
				     .seccomp = rt->seccomp, .seccomp_dialect = rt->seccomp_dialect,
				     .binds = o->binds, .n_binds = o->n_binds};

	config = oci_bundle_text(&ba, e);
	if (!config)
		goto fail;
	log_step(&t, "create.bundle");

	if (backend_cgroup_setup(c, &o->cg, &lim, &o->reg, e) < 0)
		goto fail;
	log_step(&t, "create.cgroup");

	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	/* How create notices SIGTERM/SIGINT while the runtime works (they are
	 * blocked): without it a stop request would wait for the container. */
	o->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (o->sigfd < 0) {
		err_sys(e, errno, "%s: signalfd for SIGTERM/SIGINT", rt->name);
		goto fail;
	}
	o->logfd = memfd_create("cellos-runtime-log", MFD_CLOEXEC);
	int sv[2];
	if (o->logfd < 0 || socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		err_sys(e, errno, "%s: memfd/socketpair", rt->name);
		goto fail;
	}
	for (int fd = 1; fd <= 2; fd++) {
		struct stat st;
		int fl = fcntl(fd, F_GETFL);
		o->fix_stdio[fd] = fl >= 0 && !(fl & O_APPEND) && fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
	}

	char state[PATH_MAX + 16], bundle[PATH_MAX + 16], logopt[64];
	snprintf(state, sizeof state, "--root=%s/state", o->dir);
	snprintf(bundle, sizeof bundle, "%s/bundle", o->dir);
	snprintf(logopt, sizeof logopt, "%s", rt->log_opt);
	const char *argv[32];
	size_t n = 0;
	argv[n++] = rt->path;
	for (size_t i = 0; rt->global[i] && n < 20; i++)
		argv[n++] = rt->global[i];
	argv[n++] = state;
	argv[n++] = logopt;
	if (rt->log_format_json)
		argv[n++] = "--log-format=json";
	argv[n++] = "run";
	argv[n++] = "--bundle";
	argv[n++] = bundle;
	argv[n++] = c->name;
	argv[n] = NULL;

	struct child_args ca = {.o = o, .root_src = rt->rootfs ? rt->rootfs : "/",
				.workdir = c->spec->working_directory, .config = config, .argv = argv,
				.sync = sv[1], .logfd = o->logfd};
	pid_t parent = getpid();
	int pidfd = -1;
	struct clone_args cl = {.flags = CLONE_PIDFD, .pidfd = (uint64_t)(uintptr_t)&pidfd, .exit_signal = SIGCHLD};
	if (o->cg.v2.fd >= 0) {
		cl.flags |= CLONE_INTO_CGROUP;
		cl.cgroup = (uint64_t)o->cg.v2.fd;
	}
	cgroup_cell_enter(&o->cg);
	long pid = syscall(SYS_clone3, &cl, sizeof cl);
	if (pid == 0) {
		close(sv[0]);
		child_main(&ca, parent);
	}
	int clone_errno = errno;
	struct err le = {0};
	int left = cgroup_cell_leave(&o->cg, &le);
	close(sv[1]);
	hostmounts_close(&o->hm); /* the child has them */
	if (pid < 0) {
		close(sv[0]);
		err_sys(e, clone_errno, "clone3 of %s", rt->name);
		goto fail;
	}
	o->pid = (pid_t)pid;
	o->pidfd = pidfd;
	if (left < 0) {
		close(sv[0]);
		*e = le;
		goto fail;
	}
	/* Nothing of the cell runs before its limits are in force. */
	if (cgroup_cell_apply(&o->cg, &lim, e) < 0) {
		close(sv[0]);
		goto fail;
	}
	/* A runtime that applies them itself fails the container when it cannot. */
	c->limits_applied = rt->runtime_limits || (o->cg.applied & o->cg.want) == o->cg.want;
	snprintf(c->limits_error, sizeof c->limits_error, "%s", c->limits_applied ? "" : o->cg.error);
	if (!c->limits_applied) {
		if (c->cfg->hardened) {
			close(sv[0]);
			err_set(e, "CELLOS_DEPLOYMENT_PROFILE=hardened: run.limits cannot be enforced: %s", o->cg.error);
			goto fail;
		}
		log_warn("run.limits not enforced: %s", o->cg.error);
	}

	/* The child's setup: "R" (ready), or "E<message>". */
	char msg[ERR_MSG_MAX];
	ssize_t got = recv(sv[0], msg, sizeof msg - 1, 0);
	if (got < 1 || msg[0] != 'R') {
		close(sv[0]);
		msg[got > 1 ? got : 1] = '\0';
		if (got > 1 && (strncmp(msg + 1, "run.workingDirectory", 20) == 0 ||
				strncmp(msg + 1, "spec.run.mounts", 15) == 0))
			err_set(e, "%s", msg + 1);
		else
			err_set(e, "%s: preparing the cell: %s", rt->name, got > 1 ? msg + 1 : "the child ended");
		goto fail;
	}
	char pp[PATH_MAX + 64];
	snprintf(pp, sizeof pp, "/proc/%d/ns/mnt", (int)o->pid);
	o->mntns = open(pp, O_RDONLY | O_CLOEXEC);
	snprintf(pp, sizeof pp, "/proc/%d/root%s/ev", (int)o->pid, o->dir);
	o->ev = open(pp, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	snprintf(pp, sizeof pp, "/proc/%d/root%s/go", (int)o->pid, o->dir);
	o->go = open(pp, O_RDWR | O_CLOEXEC);
	snprintf(pp, sizeof pp, "/proc/%d/root%s/state", (int)o->pid, o->dir);
	o->statefd = open(pp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (o->mntns < 0 || o->ev < 0 || o->go < 0 || o->statefd < 0) {
		err_sys(e, errno, "%s: open the cell's runtime directory %s", rt->name, pp);
		close(sv[0]);
		goto fail;
	}
	if (send(sv[0], "X", 1, MSG_NOSIGNAL) != 1) {
		err_sys(e, errno, "%s: start", rt->name);
		close(sv[0]);
		goto fail;
	}
	/* EOF: exec happened (the socket is close-on-exec). */
	got = recv(sv[0], msg, sizeof msg - 1, 0);
	close(sv[0]);
	if (got > 1 && msg[0] == 'E') {
		msg[got] = '\0';
		err_set(e, "%s: %s (CELLOS_GVISOR_RUNSC / CELLOS_OCI_RUNTIME)", rt->name, msg + 1);
		goto fail;
	}
	log_step(&t, "create.spawn");

	/* The container exists when the prestart hook speaks. */
	char line[sizeof o->evbuf];
	int w = wait_event(o, 'C', line, sizeof line, true, e);
	if (w <= 0) {
		if (w == 0) {
			char why[ERR_MSG_MAX - 64];
			runtime_error(o, why, sizeof why);
			err_set(e, "%s: %s", rt->name, why[0] ? why : "ended before creating the container");
		}
		goto fail;
	}
	json_t *state_doc = json_loads(line + 1, 0, NULL);
	o->sandbox_pid = (pid_t)json_integer_value(json_object_get(state_doc, "pid"));
	json_decref(state_doc);
	log_step(&t, "create.container");
	return 0;
fail:
	oci_run_destroy(c);
	return -1;
}

int oci_run_start(struct cell *c, struct spawn_result *r, struct err *e)
{
	struct ocirt *o = priv(c);
	memset(r, 0, sizeof *r);
	snprintf(r->program, sizeof r->program, "%s", o->program);
	if (o->resolve_errno) {
		/* Not in the cell's root: nothing runs; the runtime undoes the container. */
		r->spawn_errno = o->resolve_errno;
		end_runtime(o);
		return 0;
	}
	o->gate_open = true;
	if (write(o->go, "go\n", 3) != 3)
		return err_sys(e, errno, "%s: start the workload", o->rt.name);
	char line[64];
	struct err we = {0};
	int w = wait_event(o, 'S', line, sizeof line, false, &we);
	if (w == 1) {
		r->spawned = true;
		r->pid = o->sandbox_pid > 0 ? o->sandbox_pid : o->pid;
		return 0;
	}
	char why[ERR_MSG_MAX - 64];
	runtime_error(o, why, sizeof why);
	if (w == 0 && strstr(why, "creating process")) {
		/* The runtime could not exec what we found: it exists, so 126. */
		log_error("%s: %s", o->rt.name, why);
		r->spawn_errno = strstr(why, "permission denied") ? EACCES : ENOEXEC;
		return 0;
	}
	if (w < 0)
		return err_set(e, "%s", we.msg);
	return err_set(e, "%s: %s", o->rt.name, why[0] ? why : "ended before the workload started");
}

int oci_run_wait_fd(struct cell *c) { return priv(c)->pidfd; }

void oci_run_collect(struct cell *c, struct run_status *st)
{
	struct ocirt *o = priv(c);
	memset(st, 0, sizeof *st);
	if (!reap(o, 0))
		end_runtime(o);
	if (o->exited && o->gate_open && o->statefd >= 0) {
		st->ru = o->ru;
		if (WIFSIGNALED(o->wstatus)) {
			/* The runtime itself was killed (by us, on a stop): no report. */
			st->have_status = false;
		} else {
			int code = WEXITSTATUS(o->wstatus);
			char why[ERR_MSG_MAX - 64];
			runtime_error(o, why, sizeof why);
			st->have_status = true;
			if (code == 128 && why[0]) {
				/* The runtime failed, not the workload. */
				log_error("%s: %s", o->rt.name, why);
				st->wstatus = W_EXITCODE(125, 0);
			} else if (code > 128 && code <= 128 + 64) {
				/* A runtime reports death by signal N as 128+N, like a shell. */
				st->wstatus = code - 128;
			} else {
				st->wstatus = W_EXITCODE(code, 0);
			}
		}
	}
	/* The main process is gone: nothing else of the cell may keep running. */
	cgroup_cell_signal(&o->cg, SIGKILL, 0);
	backend_cgroup_usage(&o->cg, st);
}

void oci_run_signal(struct cell *c, int sig)
{
	struct ocirt *o = priv(c);
	if (!o || reap(o, 0))
		return;
	char num[8];
	snprintf(num, sizeof num, "%d", sig);
	const char *args[] = {"kill", "--all", c->name, num, NULL};
	char msg[256];
	int rc = runtime_cmd(o, args, msg, sizeof msg);
	if (rc != 0)
		log_debug("%s kill --all %s %d: status %d: %s", o->rt.name, c->name, sig, rc, msg);
	if (sig == SIGKILL && !reap(o, EXIT_WAIT_MS)) {
		kill(o->pid, SIGKILL);
		cgroup_cell_signal(&o->cg, SIGKILL, 0);
	}
}

int oci_run_read_counters(struct cell *c, struct nft_counter **out, size_t *n, struct err *e)
{
	*out = NULL;
	*n = 0;
	return err_set(e, "%s: the cell has no nftables ruleset of ours", priv(c)->rt.name);
}

void oci_run_destroy(struct cell *c)
{
	struct ocirt *o = priv(c);
	if (!o)
		return;
	end_runtime(o);
	/* A runtime that was killed leaves its state: its own delete cleans up. */
	if (o->statefd >= 0 && !dir_empty(o->statefd)) {
		const char *args[] = {"delete", "--force", c->name, NULL};
		char msg[256];
		int rc = runtime_cmd(o, args, msg, sizeof msg);
		if (rc != 0)
			log_warn("%s delete --force %s: status %d: %s", o->rt.name, c->name, rc, msg);
	}
	struct err e = {0};
	if (cgroup_cell_leave(&o->cg, &e) < 0 || cgroup_cell_destroy(&o->cg, &e) < 0)
		log_error("%s", e.msg);
	else
		runreg_release(&o->reg);
	if (o->reg.fd >= 0)
		close(o->reg.fd);
	/* The mount namespace goes last: with it the tmpfs holding the bundle, the
	 * state and the cell's root scaffold. */
	int *fds[] = {&o->ev, &o->go, &o->statefd, &o->logfd, &o->sigfd, &o->pidfd, &o->mntns};
	for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
		close_fd(fds[i]);
	hostmounts_close(&o->hm);
	for (size_t i = 0; i < o->n_binds; i++) {
		free((char *)o->binds[i].source);
		free((char *)o->binds[i].destination);
	}
	free(o->binds);
	free(o);
	c->priv = NULL;
}
