#include "util/lockfile.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/dirs.h"

bool lockfile_is_named(int fd, int dirfd, const char *name)
{
	struct stat held, named;
	if (fstat(fd, &held) < 0 || held.st_nlink == 0)
		return false;
	if (fstatat(dirfd, name, &named, AT_SYMLINK_NOFOLLOW) < 0)
		return false;
	return held.st_dev == named.st_dev && held.st_ino == named.st_ino;
}

int lockfile_mkdirs(const char *dir)
{
	char parent[PATH_MAX];
	if (snprintf(parent, sizeof parent, "%s", dir) >= (int)sizeof parent) {
		errno = ENAMETOOLONG;
		return -1;
	}
	char *slash = strrchr(parent, '/');
	if (slash && slash != parent) {
		*slash = '\0';
		/* /run/cellos is made traversable: the VMMs and OCI runtimes
		 * reach their directories beneath it as the run's uid (util/dirs.h). */
		if (!strcmp(parent, DIRS_RUN_BASE) ? dirs_run_base() < 0 : mkdir(parent, 0700) < 0 && errno != EEXIST)
			return -1;
	}
	return mkdir(dir, 0700) < 0 && errno != EEXIST ? -1 : 0;
}

int lockfile_take(int dirfd, const char *name, int *fd)
{
	*fd = -1;
	int f = openat(dirfd, name, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (f < 0)
		return -1;
	if (flock(f, LOCK_EX | LOCK_NB) < 0) {
		int errnum = errno;
		close(f);
		errno = errnum;
		return errnum == EWOULDBLOCK ? 0 : -1;
	}
	/* Its holder may have released it (unlink, close) between our open and our
	 * flock, and another may have made a new file under the name and hold
	 * that: the lock on a file no longer so named proves nothing. */
	if (!lockfile_is_named(f, dirfd, name)) {
		close(f);
		return 0;
	}
	*fd = f;
	return 1;
}

void lockfile_release(const char *path, int *fd)
{
	if (*fd < 0)
		return;
	unlink(path);
	close(*fd);
	*fd = -1;
}

void lockfile_sweep(const char *dir, bool (*dead)(int fd, int dirfd, const char *name, void *arg), void *arg)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d))) {
		size_t len = strlen(de->d_name);
		if (len < 6 || strcmp(de->d_name + len - 5, ".lock") != 0)
			continue;
		int fd = openat(dirfd(d), de->d_name, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			continue;
		/* A lock we get on a file that still has its name: its owner is gone,
		 * and nobody can take the slot while we hold the lock and unlink. */
		if (flock(fd, LOCK_EX | LOCK_NB) == 0 && lockfile_is_named(fd, dirfd(d), de->d_name) &&
		    dead(fd, dirfd(d), de->d_name, arg))
			unlinkat(dirfd(d), de->d_name, 0);
		close(fd);
	}
	closedir(d);
}
