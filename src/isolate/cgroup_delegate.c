/* Delegation on pure v2 hosts and removing leaves. See isolate/cgroup_delegate.h. */
#include "isolate/cgroup_delegate.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include "isolate/cgroup_host.h"
#include "util/fd.h"
#include "util/fileio.h"
#include "util/log.h"

/* pid is a cellos-supervisor (its comm, cut to 15 bytes by the kernel). */
static bool is_supervisor(long pid)
{
	char path[64], comm[32];
	snprintf(path, sizeof path, "/proc/%ld/comm", pid);
	return file_read_at(AT_FDCWD, path, comm, sizeof comm) > 0 && strncmp(comm, "cellos-supervis", 15) == 0;
}

/* The v2 no-internal-process rule: a non-root cgroup with processes of its own
 * cannot hand controllers down. When the only processes in the parent are
 * supervisors (ours and concurrent ones), move ourselves into the sibling leaf
 * `cellos-supervisor` (shared by all of them, so it is made once and never
 * multiplies). Anything else living there is not ours to move. */
static int move_self_aside(const char *parent)
{
	char path[PATH_MAX + 64];
	snprintf(path, sizeof path, "%s/cgroup.procs", parent);
	cleanup_free char *procs = file_read_all(path);
	if (!procs)
		return -1;
	bool self_here = false;
	for (char *p = procs; *p;) {
		char *end;
		long pid = strtol(p, &end, 10);
		if (end == p)
			break;
		if (pid == (long)getpid())
			self_here = true;
		else if (!is_supervisor(pid)) {
			errno = EBUSY;
			return -1;
		}
		p = end + strspn(end, "\n");
	}
	if (!self_here) {
		errno = EBUSY; /* someone else's processes, or a race: nothing of ours to move */
		return -1;
	}
	snprintf(path, sizeof path, "%s/cellos-supervisor", parent);
	if (mkdir(path, 0755) < 0 && errno != EEXIST)
		return -1;
	snprintf(path, sizeof path, "%s/cellos-supervisor/cgroup.procs", parent);
	if (file_write_at(AT_FDCWD, path, "0") < 0)
		return -1;
	log_debug("cgroup: moved the supervisor into %s/cellos-supervisor (no-internal-process rule)", parent);
	return 0;
}

int cgroup_v2_enable(const char *parent, unsigned ctrls)
{
	char text[64] = "", path[PATH_MAX + 32];
	for (int i = 0; i < CG_NCTRL; i++)
		if (ctrls & (1u << i))
			snprintf(text + strlen(text), sizeof text - strlen(text), "%s+%s", text[0] ? " " : "",
				 cgroup_ctrl_names[i]);
	snprintf(path, sizeof path, "%s/cgroup.subtree_control", parent);
	if (file_write_at(AT_FDCWD, path, text) == 0)
		return 0;
	if (errno != EBUSY || move_self_aside(parent) < 0)
		return -1;
	/* Concurrent supervisors in the same parent move aside too; give them a
	 * moment rather than fail the limits on a race. */
	for (int i = 0; i < 50; i++) {
		if (file_write_at(AT_FDCWD, path, text) == 0)
			return 0;
		if (errno != EBUSY)
			return -1;
		nanosleep(&(struct timespec){0, 1000000}, NULL);
	}
	return -1;
}

/* Signal every process listed in dirfd's cgroup.procs but `except`; returns how many. */
int cgroup_signal_listed(int dirfd, int sig, pid_t except)
{
	int fd = openat(dirfd, "cgroup.procs", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	cleanup_file FILE *f = fdopen(fd, "r");
	if (!f) {
		close(fd);
		return 0;
	}
	int n = 0;
	long pid;
	while (fscanf(f, "%ld", &pid) == 1)
		if ((pid_t)pid != except && (pid_t)pid != getpid()) { /* never ourselves */
			kill((pid_t)pid, sig);
			n++;
		}
	return n;
}

/* rmdir, retrying while the kernel finishes tearing the last processes down.
 * The wait usually takes tens of microseconds, so the back-off starts small
 * (50 us, doubling to 1 ms) instead of costing every cell a whole millisecond;
 * about 2 s in all. */
int cgroup_leaf_remove(const char *path, int dirfd)
{
	long ns = 50000;
	for (int i = 0; i < 2010; i++) {
		if (rmdir(path) == 0 || errno == ENOENT)
			return 0;
		if (errno != EBUSY)
			return -1;
		if (dirfd >= 0 && !(i % 10))
			cgroup_signal_listed(dirfd, SIGKILL, 0);
		nanosleep(&(struct timespec){0, ns}, NULL);
		if (ns < 1000000)
			ns *= 2;
	}
	return -1;
}

int cgroup_remove_stale(const char *path, struct err *e)
{
	const char *base = strrchr(path, '/');
	struct statfs sf;
	if (path[0] != '/' || strstr(path, "/..") || !base || strncmp(base + 1, "cellos-", 7) != 0)
		return err_set(e, "stale cgroup leaf %s: not a cellos leaf path; left alone", path);
	if (statfs(path, &sf) < 0)
		return errno == ENOENT ? 0 : err_sys(e, errno, "stale cgroup leaf %s", path);
	if (sf.f_type != CGROUP2_SUPER_MAGIC && sf.f_type != CGROUP_SUPER_MAGIC)
		return err_set(e, "stale cgroup leaf %s: not on a cgroup filesystem; left alone", path);
	cleanup_close int dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0)
		return errno == ENOENT ? 0 : err_sys(e, errno, "stale cgroup leaf %s", path);
	if (file_write_at(dirfd, "cgroup.kill", "1") < 0)
		cgroup_signal_listed(dirfd, SIGKILL, 0);
	return cgroup_leaf_remove(path, dirfd) < 0 ? err_sys(e, errno, "stale cgroup leaf %s: cannot remove", path) : 0;
}
