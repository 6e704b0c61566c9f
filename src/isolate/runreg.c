#include "isolate/runreg.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "isolate/cgroup.h"
#include "util/log.h"

/* The registration's text (the leaf paths), NUL-terminated, or NULL. */
static char *read_fd(int fd)
{
	char *buf = malloc(16384);
	if (!buf)
		return NULL;
	size_t len = 0;
	ssize_t n;
	while (len < 16383 && (n = read(fd, buf + len, 16383 - len)) > 0)
		len += (size_t)n;
	buf[len] = '\0';
	return buf;
}

static int mkdirs(void)
{
	if (mkdir("/run/cellos", 0700) < 0 && errno != EEXIST)
		return -1;
	if (mkdir(RUNREG_DIR, 0700) < 0 && errno != EEXIST)
		return -1;
	return 0;
}

int runreg_register(struct runreg *r, const char *name, const char *const *leaves, size_t n, struct err *e)
{
	r->fd = -1;
	r->path[0] = '\0';
	if (mkdirs() < 0)
		return err_sys(e, errno, "run registry %s", RUNREG_DIR);
	/* One buffer, one write: the content is complete or absent. */
	size_t len = 0;
	for (size_t i = 0; i < n; i++)
		len += strlen(leaves[i]) + 1;
	cleanup_free char *text = malloc(len + 1);
	if (!text)
		return err_set(e, "run registry: out of memory");
	text[0] = '\0';
	for (size_t i = 0, off = 0; i < n; i++)
		off += (size_t)sprintf(text + off, "%s\n", leaves[i]);
	/* Written under a dot-name and renamed into place already locked, so a
	 * sweeper never sees an unlocked, half-written registration. */
	char tmp[512];
	snprintf(tmp, sizeof tmp, RUNREG_DIR "/.%s.tmp", name);
	snprintf(r->path, sizeof r->path, RUNREG_DIR "/%s.lock", name);
	int fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return err_sys(e, errno, "run registry %s", tmp);
	if (flock(fd, LOCK_EX) < 0 || write(fd, text, len) < 0 || rename(tmp, r->path) < 0) {
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
		cleanup_free char *leaves = read_fd(fd);
		log_info("cleaning up after dead run %.*s", (int)(len - 5), de->d_name);
		/* The v2 leaf comes first: its cgroup.kill empties the v1 ones too. */
		bool all_gone = true;
		for (char *line = leaves, *next; line && *line; line = next) {
			next = strchr(line, '\n');
			if (next)
				*next++ = '\0';
			struct err e = {0};
			if (line[0] && cgroup_remove_stale(line, &e) < 0) {
				log_warn("%s", e.msg);
				all_gone = false;
			}
		}
		/* A leaf we could not remove keeps its registration: the next sweep retries. */
		if (!all_gone) {
			close(fd);
			continue;
		}
		unlinkat(dirfd(d), de->d_name, 0);
		close(fd);
	}
	closedir(d);
}
