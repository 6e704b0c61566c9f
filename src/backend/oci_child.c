/* The process that becomes the OCI runtime: its private mount namespace with a
 * tmpfs on /run/cellos/<kind> holding <name>/{bundle,state,rootfs,mounts,ev,go}
 * (config.json, with the secrets, and the runtime's state never touch a host
 * filesystem), the cell's root, then exec of `<runtime> ... run`. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend/oci_cell.h"
#include "backend/oci_tool.h"
#include "util/child.h"
#include "util/stdio_relay.h"

/* The fd the runtime logs to (a memfd of ours). */
#define LOG_FD 3

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

_Noreturn void oci_child_main(void *arg)
{
	const struct oci_child_args *a = arg;
	const struct ocirt *o = a->o;
	int sync = a->sync;
	close(a->peer);
	/* The runtime dies with the supervisor; its sandbox and gofer die with it. */
	if (child_tie(a->parent) < 0)
		_exit(125);
	/* SPEC §6.1: the runtime (runsc forwards terminal ioctls to the host fd) never
	 * gets the operator's terminal; where ours is one, it gets the relay pipes. */
	if (stdio_relay_install(o->cell->stdio) < 0)
		child_fail(sync, errno, "the workload's stdout/stderr");

	if (unshare(CLONE_NEWNS) < 0)
		child_fail(sync, errno, "unshare(CLONE_NEWNS)");
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		child_fail(sync, errno, "make / private");
	if (o->rt.cover && mount("tmpfs", o->rt.cover, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k") < 0)
		child_fail(sync, errno, "tmpfs on %s", o->rt.cover);
	/* With a user namespace the runtime mounts the cell's root as the run's uid:
	 * it needs to traverse (never list) the directories on the way there. */
	bool traverse = o->rt.map_user; /* /run/cellos itself is 0711 (oci_run.c) */
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
	if (oci_hooks_make(o->dir, p, sizeof p) < 0)
		child_fail(sync, errno, "mkfifo %s", p);
	if (o->hm.n)
		attach_mounts(o, traverse, sync);
	if (o->cell->facts.gw) {
		char text[96], ip[INET_ADDRSTRLEN];
		inet_ntop(AF_INET, &o->cell->facts.gw->host_addr, ip, sizeof ip);
		int n = snprintf(text, sizeof text, "# cellos: the cell's DNS proxy (CELLOS_NETWORK=gateway)\nnameserver %s\n", ip);
		snprintf(p, sizeof p, "%s/resolv.conf", o->dir);
		int rfd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (rfd < 0 || write(rfd, text, (size_t)n) != n)
			child_fail(sync, errno, "write %s", p);
		close(rfd);
	}
	snprintf(p, sizeof p, "%s/bundle/config.json", o->dir);
	int cfd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	size_t len = strlen(a->config);
	if (cfd < 0 || write(cfd, a->config, len) != (ssize_t)len)
		child_fail(sync, errno, "write %s", p);
	close(cfd);
	snprintf(p, sizeof p, "%s/rootfs", o->dir);
	struct err e = {0};
	if (oci_root_build(a, p, &e) < 0)
		child_fail(sync, 0, "%s", e.msg);

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
	static const char *const env[] = {OCI_TOOL_PATH, NULL};
	execve(o->rt.path, (char *const *)a->argv, (char *const *)env);
	child_fail(sync, errno, "exec %s", o->rt.path);
}
