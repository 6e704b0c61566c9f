#include "isolate/runuid.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "util/lockfile.h"

/* (uid_t)-1 means "leave unchanged" to setresuid() and chown(): no run's uid. */
#define RUNUID_MAX 4294967294UL
/* Fewer would make "all in use" a matter of a handful of parallel runs. */
#define RUNUID_MIN_COUNT 16

static char uid_dir[256] = RUNUID_DIR;

void runuid_set_dir(const char *dir)
{
	snprintf(uid_dir, sizeof uid_dir, "%s", dir);
}

/* Decimal digits at *p, at least one; values above RUNUID_MAX saturate just
 * above it (so that "too large" is told apart from "not a number"). */
static bool parse_uid(const char **p, unsigned long *out)
{
	const char *s = *p;
	unsigned long long v = 0;
	if (*s < '0' || *s > '9')
		return false;
	for (; *s >= '0' && *s <= '9'; s++)
		v = v > RUNUID_MAX ? RUNUID_MAX + 1ull : v * 10 + (unsigned long long)(*s - '0');
	*p = s;
	*out = (unsigned long)v;
	return true;
}

int runuid_parse_range(const char *v, unsigned long *first, unsigned long *last, struct err *e)
{
	const char *p = v;
	unsigned long a, b;
	if (!parse_uid(&p, &a) || *p++ != '-' || !parse_uid(&p, &b) || *p)
		return err_set(e, "CELLOS_CELL_UID_RANGE: '%.64s' is not FIRST-LAST (two decimal uids)", v);
	if (a > RUNUID_MAX || b > RUNUID_MAX)
		return err_set(e, "CELLOS_CELL_UID_RANGE: '%s' goes above uid %lu ((uid_t)-1 is no uid)", v, RUNUID_MAX);
	if (a > b)
		return err_set(e, "CELLOS_CELL_UID_RANGE: '%s': the first uid is above the last", v);
	if (a == 0)
		return err_set(e, "CELLOS_CELL_UID_RANGE: '%s' includes uid 0: a workload is never host root", v);
	if (b - a + 1 < RUNUID_MIN_COUNT)
		return err_set(e, "CELLOS_CELL_UID_RANGE: '%s' has %lu uids; at least %d are needed", v, b - a + 1,
			       RUNUID_MIN_COUNT);
	*first = a;
	*last = b;
	return 0;
}

/* FNV-1a: where in the range a run's search starts. */
static uint64_t hash(const char *s)
{
	uint64_t h = 14695981039346656037ull;
	for (; s && *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

/* Take `uid` if it is free: 1 taken, 0 in use, -1 error. */
static int try_uid(int dir, unsigned long uid, struct runuid *out, struct err *e)
{
	char name[32];
	snprintf(name, sizeof name, "%lu.lock", uid);
	int fd;
	int got = lockfile_take(dir, name, &fd);
	if (got <= 0)
		return got < 0 ? err_sys(e, errno, "uid allocator %s/%s", uid_dir, name) : 0;
	out->uid = (uid_t)uid;
	out->fd = fd;
	snprintf(out->path, sizeof out->path, "%s/%s", uid_dir, name);
	return 1;
}

int runuid_alloc(unsigned long first, unsigned long last, const char *run_id, struct runuid *out, struct err *e)
{
	out->uid = (uid_t)-1;
	out->fd = -1;
	out->path[0] = '\0';
	if (first == 0 || first > last || last > RUNUID_MAX)
		return err_set(e, "CELLOS_CELL_UID_RANGE: %lu-%lu is not a range of uids", first, last);
	if (lockfile_mkdirs(uid_dir) < 0)
		return err_sys(e, errno, "uid allocator %s", uid_dir);
	int dir = open(uid_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir < 0)
		return err_sys(e, errno, "uid allocator %s", uid_dir);
	unsigned long n = last - first + 1;
	unsigned long start = (unsigned long)(hash(run_id) % n);
	int rc = 0;
	for (unsigned long i = 0; i < n && rc == 0; i++)
		rc = try_uid(dir, first + (start + i) % n, out, e);
	close(dir);
	if (rc == 0)
		return err_set(e, "CELLOS_CELL_UID_RANGE: all %lu uids of %lu-%lu are in use by live runs", n, first, last);
	return rc < 0 ? -1 : 0;
}

void runuid_release(struct runuid *u)
{
	lockfile_release(u->path, &u->fd);
}

static bool uid_dead(int fd, int dirfd, const char *name, void *arg)
{
	(void)fd, (void)dirfd, (void)name, (void)arg;
	return true; /* nothing to undo: the uid is free again once the slot is */
}

void runuid_sweep(void)
{
	lockfile_sweep(uid_dir, uid_dead, NULL);
}
