#include "isolate/cgroup.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include "util/log.h"

/* Where the v2 hierarchy is mounted: "/sys/fs/cgroup" on pure v2 hosts,
 * "/sys/fs/cgroup/unified" on hybrid ones. */
static const char *v2_mount(void)
{
	static const char *const candidates[] = {"/sys/fs/cgroup", "/sys/fs/cgroup/unified"};
	for (size_t i = 0; i < 2; i++) {
		struct statfs sf;
		if (statfs(candidates[i], &sf) == 0 && sf.f_type == CGROUP2_SUPER_MAGIC)
			return candidates[i];
	}
	return NULL;
}

/* The supervisor's own v2 cgroup, from the "0::" line of /proc/self/cgroup. */
static int own_v2_cgroup(char *buf, size_t size)
{
	FILE *f = fopen("/proc/self/cgroup", "re");
	if (!f)
		return -1;
	char line[PATH_MAX + 32];
	int rc = -1;
	while (fgets(line, sizeof line, f)) {
		if (strncmp(line, "0::", 3) == 0) {
			line[strcspn(line, "\n")] = '\0';
			snprintf(buf, size, "%s", line + 3);
			rc = 0;
			break;
		}
	}
	fclose(f);
	return rc;
}

int cgroup_leaf_create(struct cgroup_leaf *leaf, const char *parent, const char *name, struct err *e)
{
	leaf->path[0] = '\0';
	leaf->dirfd = -1;
	leaf->has_kill = false;

	char base[PATH_MAX];
	if (parent) {
		snprintf(base, sizeof base, "%s", parent);
	} else {
		const char *mnt = v2_mount();
		char own[PATH_MAX];
		if (!mnt || own_v2_cgroup(own, sizeof own) < 0)
			return err_set(e, "no cgroup v2 hierarchy found");
		/* A supervisor in the root cgroup (own == "/") gets "<mnt>/<name>". */
		snprintf(base, sizeof base, "%s%s", mnt, strcmp(own, "/") == 0 ? "" : own);
	}
	if (snprintf(leaf->path, sizeof leaf->path, "%s/%s", base, name) >= (int)sizeof leaf->path) {
		leaf->path[0] = '\0';
		return err_set(e, "cgroup path too long");
	}
	if (mkdir(leaf->path, 0755) < 0) {
		int errnum = errno;
		char path[PATH_MAX];
		snprintf(path, sizeof path, "%s", leaf->path);
		leaf->path[0] = '\0';
		return err_sys(e, errnum, "cgroup leaf %s", path);
	}
	leaf->dirfd = open(leaf->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (leaf->dirfd < 0) {
		int errnum = errno;
		rmdir(leaf->path);
		leaf->path[0] = '\0';
		return err_sys(e, errnum, "cgroup leaf open");
	}
	leaf->has_kill = faccessat(leaf->dirfd, "cgroup.kill", W_OK, 0) == 0;
	return 0;
}

static int write_file_at(int dirfd, const char *file, const char *s)
{
	int fd = openat(dirfd, file, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = write(fd, s, strlen(s));
	int saved = errno;
	close(fd);
	errno = saved;
	return n < 0 ? -1 : 0;
}

void cgroup_leaf_signal(struct cgroup_leaf *leaf, int sig, pid_t except)
{
	if (leaf->dirfd < 0)
		return;
	if (sig == SIGKILL && except == 0 && leaf->has_kill && write_file_at(leaf->dirfd, "cgroup.kill", "1") == 0)
		return;
	int fd = openat(leaf->dirfd, "cgroup.procs", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	FILE *f = fdopen(fd, "r");
	if (!f) {
		close(fd);
		return;
	}
	long pid;
	while (fscanf(f, "%ld", &pid) == 1)
		if ((pid_t)pid != except)
			kill((pid_t)pid, sig);
	fclose(f);
}

bool cgroup_leaf_populated(struct cgroup_leaf *leaf)
{
	if (leaf->dirfd < 0)
		return false;
	int fd = openat(leaf->dirfd, "cgroup.events", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	char buf[256];
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	return strstr(buf, "populated 1") != NULL;
}

int cgroup_leaf_destroy(struct cgroup_leaf *leaf, struct err *e)
{
	if (leaf->dirfd < 0)
		return 0;
	/* Killed processes leave the cgroup once the kernel has torn them down,
	 * which is asynchronous: retry for up to ~5 s before giving up. */
	int rc = -1;
	for (int i = 0; i < 5000; i++) {
		if (cgroup_leaf_populated(leaf))
			cgroup_leaf_signal(leaf, SIGKILL, 0);
		else if (rmdir(leaf->path) == 0 || errno == ENOENT) {
			rc = 0;
			break;
		} else if (errno != EBUSY) {
			break;
		}
		nanosleep(&(struct timespec){0, 1000000}, NULL);
	}
	if (rc < 0)
		err_sys(e, errno, "cgroup leaf %s: cannot remove", leaf->path);
	close(leaf->dirfd);
	leaf->dirfd = -1;
	return rc;
}
