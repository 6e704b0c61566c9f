#include "isolate/artifact.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/capability.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "isolate/secretfs.h"
#include "util/fd.h"
#include "util/filekind.h"
#include "util/path.h"

/* The helper does a handful of system calls; anything slower is stuck. */
#define HELPER_TIMEOUT_MS 10000

static int openat2_(int dirfd, const char *rel, int flags, unsigned long long resolve)
{
	return fd_openat2(dirfd, rel, (uint64_t)(flags | O_CLOEXEC | O_NOFOLLOW), 0, resolve);
}

static const char *why_open(int errnum)
{
	switch (errnum) {
	case ELOOP:
		return "a symbolic link is on the path (not followed)";
	case EXDEV:
		return "the path leaves the workspace";
	case ENOENT:
		return "does not exist in the cell";
	case ENOTDIR:
		return "a component of the path is not a directory";
	case EACCES:
	case EPERM:
		return "permission denied (read with the cell's unprivileged identity)";
	default:
		return strerror(errnum);
	}
}

static _Noreturn void reply_error(int sock, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static _Noreturn void reply_error(int sock, const char *fmt, ...)
{
	char msg[ERR_MSG_MAX];
	msg[0] = 'X';
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(msg + 1, sizeof msg - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n > sizeof msg - 2)
		n = (int)sizeof msg - 2;
	ssize_t w = send(sock, msg, (size_t)n + 1, MSG_NOSIGNAL);
	(void)w;
	_exit(1);
}

/* Take the workload's identity with no capability at all, or the workload could
 * point us (a hardlink, a mode-000 file, a masked path, a host file) at
 * something it could not read itself: the cell's root in its user namespace
 * (an unprivileged uid on the host), else the run's own host uid/gid. Never the
 * supervisor's. */
static void become_workload(int sock, const struct artifact_view *v)
{
	uid_t uid = 0;
	gid_t gid = 0;
	if (v->userns < 0) {
		if (v->uid == 0 || v->gid == 0)
			reply_error(sock, "no unprivileged identity to read with (the run's uid/gid is 0)");
		uid = v->uid;
		gid = v->gid;
	}
	/* The supplementary groups go first (that needs the privilege we are about
	 * to drop). Only a user namespace whose setgroups is denied (an unprivileged
	 * supervisor's) may refuse: it has no groups to drop. */
	if (setgroups(0, NULL) < 0 && !(v->userns >= 0 && errno == EPERM))
		reply_error(sock, "drop the supplementary groups: %s", strerror(errno));
	if (setresgid(gid, gid, gid) < 0 || setresuid(uid, uid, uid) < 0)
		reply_error(sock, "take the identity %u:%u: %s", (unsigned)uid, (unsigned)gid, strerror(errno));
	struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct none[2] = {{0}};
	if (syscall(SYS_capset, &hdr, none) < 0)
		reply_error(sock, "drop capabilities: %s", strerror(errno));
	/* Nothing gives privileges back; and another process of that uid (another
	 * cell's workload) may not ptrace us or reach our descriptors in /proc. */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		reply_error(sock, "no_new_privs, not dumpable: %s", strerror(errno));
}

static _Noreturn void helper(int sock, const struct artifact_view *v, const char *path)
{
	/* Never outlive the supervisor. */
	prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
	/* User namespace first: its root owns the mount namespace, and we take its
	 * identity (the workload's: root of the cell, nobody on the host) below. */
	if (v->userns >= 0 && setns(v->userns, CLONE_NEWUSER) < 0)
		reply_error(sock, "join the cell's user namespace: %s", strerror(errno));
	/* Our root and cwd become the cell's "/". */
	if (v->mntns >= 0 && setns(v->mntns, CLONE_NEWNS) < 0)
		reply_error(sock, "join the cell's mount namespace: %s", strerror(errno));
	become_workload(sock, v);

	char norm[PATH_MAX], ws[PATH_MAX];
	if (path_clean(path, norm, sizeof norm) < 0 || !norm[0])
		reply_error(sock, "not a clean absolute path");
	/* Secrets reach the cell to be used there, never to leave it by export
	 * (without symlinks and "..", this is the only way to name them). */
	size_t sl = strlen(SECRETFS_DIR);
	if (v->mntns >= 0 && strncmp(norm, SECRETFS_DIR, sl) == 0 && (!norm[sl] || norm[sl] == '/'))
		reply_error(sock, "in the cell's secrets directory %s (secrets are never exported)", SECRETFS_DIR);
	/* Without a mount namespace this is the host's filesystem: only where the
	 * operator allows it (admission refused the rest; this guards the read). */
	if (v->mntns < 0 && !path_within_any(norm, v->host_allow))
		reply_error(sock, "a host path not under CELLOS_EXPORT_HOST_PATHS_ALLOW");
	int base;
	const char *rel;
	unsigned long long resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
	if (v->workspace) {
		if (path_clean(v->workspace, ws, sizeof ws) < 0)
			reply_error(sock, "run.workingDirectory: not a clean absolute path");
		size_t wl = strlen(ws);
		if (strncmp(norm, ws, wl) != 0 || norm[wl] != '/' || !norm[wl + 1])
			reply_error(sock, "not inside the workspace %s (run.workingDirectory)", v->workspace);
		/* The workspace itself was made by the cell's init in the read-only
		 * scaffold; it is resolved the way the init resolved it. What lies
		 * inside it is the workload's, and is resolved strictly. */
		const uint64_t flags = O_PATH | O_DIRECTORY | O_CLOEXEC, how = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
		base = fd_openat2(AT_FDCWD, "/", flags, 0, how);
		int wsfd = base < 0 ? -1 : fd_openat2(base, ws + 1, flags, 0, how);
		if (wsfd < 0)
			reply_error(sock, "open the workspace %s: %s", v->workspace, strerror(errno));
		close(base);
		base = wsfd;
		rel = norm + wl + 1;
		resolve |= RESOLVE_NO_XDEV; /* the workload cannot mount; nothing there is another fs */
	} else {
		base = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (base < 0)
			reply_error(sock, "open /: %s", strerror(errno));
		rel = norm + 1;
	}

	/* O_PATH: looked at, not opened. A FIFO would block an open for reading and
	 * a device's open runs its driver. */
	int pfd = openat2_(base, rel, O_PATH, resolve);
	if (pfd < 0)
		reply_error(sock, "%s", why_open(errno));
	struct stat st, st2;
	if (fstat(pfd, &st) < 0)
		reply_error(sock, "stat: %s", strerror(errno));
	if (!S_ISREG(st.st_mode))
		reply_error(sock, "%s, not a regular file", file_kind(st.st_mode));
	if (st.st_size > v->max_bytes)
		reply_error(sock, "%lld bytes, more than CELLOS_EXPORT_MAX_BYTES (%lld)", (long long)st.st_size,
			    v->max_bytes);
	/* The same resolution again, for reading; O_NONBLOCK in case it is no
	 * longer what we looked at, which the inode comparison then tells. */
	int fd = openat2_(base, rel, O_RDONLY | O_NOCTTY | O_NONBLOCK, resolve);
	if (fd < 0)
		reply_error(sock, "%s", why_open(errno));
	if (fstat(fd, &st2) < 0 || st2.st_dev != st.st_dev || st2.st_ino != st.st_ino || !S_ISREG(st2.st_mode))
		reply_error(sock, "replaced while being opened");

	char tag = 'F';
	struct iovec iov = {&tag, 1};
	union {
		struct cmsghdr h;
		char space[CMSG_SPACE(sizeof(int))];
	} cm = {0};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = &cm, .msg_controllen = sizeof cm};
	struct cmsghdr *h = CMSG_FIRSTHDR(&mh);
	h->cmsg_level = SOL_SOCKET;
	h->cmsg_type = SCM_RIGHTS;
	h->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(h), &fd, sizeof fd);
	_exit(sendmsg(sock, &mh, MSG_NOSIGNAL) == 1 ? 0 : 1);
}

int artifact_open(const struct artifact_view *v, const char *path, int *fd, struct err *e)
{
	*fd = -1;
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return err_sys(e, errno, "socketpair");
	pid_t pid = fork();
	if (pid < 0) {
		int errnum = errno;
		close(sv[0]);
		close(sv[1]);
		return err_sys(e, errnum, "fork the artifact reader");
	}
	if (pid == 0) {
		close(sv[0]);
		helper(sv[1], v, path);
	}
	close(sv[1]);

	int rc = -1;
	struct pollfd p = {.fd = sv[0], .events = POLLIN};
	int n;
	while ((n = poll(&p, 1, HELPER_TIMEOUT_MS)) < 0 && errno == EINTR)
		;
	if (n <= 0) {
		kill(pid, SIGKILL);
		err_set(e, "the artifact reader did not answer within %d ms", HELPER_TIMEOUT_MS);
		goto out;
	}
	char buf[ERR_MSG_MAX + 1];
	union {
		struct cmsghdr h;
		char space[CMSG_SPACE(sizeof(int))];
	} cm;
	struct iovec iov = {buf, sizeof buf - 1};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = &cm, .msg_controllen = sizeof cm};
	ssize_t got = recvmsg(sv[0], &mh, MSG_CMSG_CLOEXEC);
	int passed = -1;
	for (struct cmsghdr *h = got > 0 ? CMSG_FIRSTHDR(&mh) : NULL; h; h = CMSG_NXTHDR(&mh, h))
		if (h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_RIGHTS && h->cmsg_len == CMSG_LEN(sizeof(int)))
			memcpy(&passed, CMSG_DATA(h), sizeof passed);
	if (got == 1 && buf[0] == 'F' && passed >= 0) {
		*fd = passed;
		rc = 0;
	} else {
		if (passed >= 0)
			close(passed);
		if (got > 1 && buf[0] == 'X') {
			buf[got] = '\0';
			err_set(e, "%s", buf + 1);
		} else {
			err_set(e, "the artifact reader ended without an answer");
		}
	}
out:
	close(sv[0]);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	return rc;
}
