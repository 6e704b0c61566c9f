#include "isolate/runreg.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util/log.h"

static int mkdirs(void)
{
	if (mkdir("/run/cellos", 0700) < 0 && errno != EEXIST)
		return -1;
	if (mkdir(RUNREG_DIR, 0700) < 0 && errno != EEXIST)
		return -1;
	return 0;
}

int runreg_register(struct runreg *r, const char *name, const char *cgroup_leaf, struct err *e)
{
	r->fd = -1;
	r->path[0] = '\0';
	if (mkdirs() < 0)
		return err_sys(e, errno, "run registry %s", RUNREG_DIR);
	/* Written under a dot-name and renamed into place already locked, so a
	 * sweeper never sees an unlocked, half-written registration. */
	char tmp[512];
	snprintf(tmp, sizeof tmp, RUNREG_DIR "/.%s.tmp", name);
	snprintf(r->path, sizeof r->path, RUNREG_DIR "/%s.lock", name);
	int fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return err_sys(e, errno, "run registry %s", tmp);
	if (flock(fd, LOCK_EX) < 0 || write(fd, cgroup_leaf, strlen(cgroup_leaf)) < 0 || rename(tmp, r->path) < 0) {
		int errnum = errno;
		unlink(tmp);
		close(fd);
		return err_sys(e, errnum, "run registry %s", r->path);
	}
	r->fd = fd;
	return 0;
}

void runreg_release(struct runreg *r)
{
	if (r->fd < 0)
		return;
	unlink(r->path);
	close(r->fd);
	r->fd = -1;
}

/* Kill whatever is left in a dead run's leaf and remove it. */
static void remove_leaf(const char *leaf)
{
	if (!leaf[0] || strncmp(leaf, "/sys/fs/cgroup/", 15) != 0 || strstr(leaf, "/.."))
		return;
	char f[4200];
	snprintf(f, sizeof f, "%s/cgroup.kill", leaf);
	int fd = open(f, O_WRONLY | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t n = write(fd, "1", 1);
		(void)n;
		close(fd);
	}
	for (int i = 0; i < 1000; i++) {
		if (rmdir(leaf) == 0 || errno == ENOENT)
			return;
		if (errno != EBUSY)
			break;
		nanosleep(&(struct timespec){0, 1000000}, NULL);
	}
	log_warn("stale cgroup leaf %s: cannot remove: %s", leaf, strerror(errno));
}

void runreg_sweep(void)
{
	DIR *d = opendir(RUNREG_DIR);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d))) {
		size_t len = strlen(de->d_name);
		if (de->d_name[0] == '.' || len < 6 || strcmp(de->d_name + len - 5, ".lock") != 0)
			continue;
		int fd = openat(dirfd(d), de->d_name, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			continue;
		if (flock(fd, LOCK_EX | LOCK_NB) < 0) { /* its supervisor is alive */
			close(fd);
			continue;
		}
		char leaf[4096];
		ssize_t n = read(fd, leaf, sizeof leaf - 1);
		leaf[n > 0 ? n : 0] = '\0';
		log_info("cleaning up after dead run %.*s", (int)(len - 5), de->d_name);
		remove_leaf(leaf);
		unlinkat(dirfd(d), de->d_name, 0);
		close(fd);
	}
	closedir(d);
}
