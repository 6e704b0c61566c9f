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

#include "isolate/cgroup_delegate.h"
#include "util/fd.h"
#include "util/lockfile.h"
#include "util/log.h"

/* How long registering waits for another supervisor's sweep of the name. */
#define RUNREG_SWEEP_WAIT_MS 2000

static char reg_dir[256] = RUNREG_DIR;

void runreg_set_dir(const char *dir)
{
	snprintf(reg_dir, sizeof reg_dir, "%s", dir);
}

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

enum sweep {
	SWEEP_NONE, /* no dead run's registration there (any more) */
	SWEEP_LIVE, /* locked: its supervisor is alive */
	SWEEP_KEPT, /* a dead run's, kept: a leaf could not be removed */
	SWEEP_DONE, /* a dead run's, cleaned up and removed */
};

/* Take the exclusive lock of `fd`, waiting up to `wait_ms` for it. */
static bool lock_within(int fd, int wait_ms)
{
	for (int waited = 0;; waited += 10) {
		if (flock(fd, LOCK_EX | LOCK_NB) == 0)
			return true;
		if (errno != EWOULDBLOCK || waited >= wait_ms)
			return false;
		nanosleep(&(struct timespec){0, 10 * 1000000}, NULL);
	}
}

/* Clean up after the run registered as `entry` of directory `dir` if its
 * supervisor is dead. A lock held for `wait_ms` is a live run's. */
static enum sweep sweep_one(int dir, const char *entry, int wait_ms)
{
	int fd = openat(dir, entry, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return SWEEP_NONE;
	if (!lock_within(fd, wait_ms)) {
		close(fd);
		return SWEEP_LIVE;
	}
	/* A free lock says only that this file's owner is gone: it may have
	 * finished normally (unlink, close) after our open, and a new run may have
	 * registered the same name since (util/lockfile.h). Only a file still
	 * under that name is a dead run's registration. */
	if (!lockfile_is_named(fd, dir, entry)) {
		close(fd);
		return SWEEP_NONE;
	}
	cleanup_free char *leaves = read_fd(fd);
	size_t len = strlen(entry);
	log_info("cleaning up after dead run %.*s", (int)(len - 5), entry);
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
		return SWEEP_KEPT;
	}
	/* Still ours to remove: while we hold the lock of a linked registration no
	 * one else unlinks it, and registering never replaces a name. */
	unlinkat(dir, entry, 0);
	close(fd);
	return SWEEP_DONE;
}

/* Give the locked, written `tmp` the registration's name `entry`; never in
 * place of another registration. A registration already under that name is a
 * live run's (the same cell id and run id: refused) or a dead one's (cleaned up
 * after, then the name is ours). */
static int publish(const char *tmp, const char *entry, const char *path, struct err *e)
{
	if (renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EEXIST)
		return err_sys(e, errno, "run registry %s", path);
	int dir = open(reg_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir < 0)
		return err_sys(e, errno, "run registry %s", reg_dir);
	/* The lock of a dead run's registration is also held, for a moment, by
	 * whichever supervisor is sweeping it (removing its leaves: milliseconds,
	 * seconds at worst): wait that out before calling the name a live run's.
	 * Only a run id really in use pays the wait, before its refusal. */
	enum sweep s = sweep_one(dir, entry, RUNREG_SWEEP_WAIT_MS);
	close(dir);
	if (s == SWEEP_LIVE)
		goto live;
	if (renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE) == 0)
		return 0;
	if (s == SWEEP_KEPT)
		return err_set(e, "run registry %s: a dead run's registration by this name stays: its cgroup leaves "
				  "could not be removed", path);
	if (errno != EEXIST)
		return err_sys(e, errno, "run registry %s", path);
	/* Taken again since: by a run that is alive now. */
live:
	err_set(e, "run registry %s: a live run holds this name", path);
	return RUNREG_LIVE;
}

int runreg_register(struct runreg *r, const char *name, const char *const *leaves, size_t n, struct err *e)
{
	r->fd = -1;
	r->path[0] = '\0';
	if (lockfile_mkdirs(reg_dir) < 0)
		return err_sys(e, errno, "run registry %s", reg_dir);
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
	 * sweeper never sees an unlocked, half-written registration. The pid keeps
	 * two supervisors that want the same name off each other's file. */
	char tmp[512], entry[256];
	snprintf(tmp, sizeof tmp, "%s/.%s.%ld.tmp", reg_dir, name, (long)getpid());
	snprintf(entry, sizeof entry, "%s.lock", name);
	snprintf(r->path, sizeof r->path, "%s/%s", reg_dir, entry);
	int fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return err_sys(e, errno, "run registry %s", tmp);
	int rc = 0;
	if (flock(fd, LOCK_EX) < 0 || write(fd, text, len) != (ssize_t)len)
		rc = err_sys(e, errno, "run registry %s", tmp);
	else
		rc = publish(tmp, entry, r->path, e);
	if (rc < 0) {
		unlink(tmp);
		close(fd);
		return rc;
	}
	r->fd = fd;
	return 0;
}

void runreg_release(struct runreg *r)
{
	if (r->fd < 0)
		return;
	/* Unlink first: whoever takes the lock after our close sees a file that
	 * no name leads to, and leaves alone whatever now has that name. */
	unlink(r->path);
	close(r->fd);
	r->fd = -1;
}

void runreg_sweep(void)
{
	cleanup_dir DIR *d = opendir(reg_dir);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d))) {
		size_t len = strlen(de->d_name);
		if (de->d_name[0] == '.' || len < 6 || strcmp(de->d_name + len - 5, ".lock") != 0)
			continue;
		sweep_one(dirfd(d), de->d_name, 0);
	}
}
