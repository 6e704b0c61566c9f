#include "util/lockfile.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

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
		if (mkdir(parent, 0700) < 0 && errno != EEXIST)
			return -1;
	}
	return mkdir(dir, 0700) < 0 && errno != EEXIST ? -1 : 0;
}
