/* A host uid of its own for every run (SPEC §3, CELLOS_CELL_UID_RANGE): the
 * run's gid is the same number. Separate uids keep cells from reading each
 * other's /proc/<pid>/environ or memory and from sharing per-user quotas.
 *
 * Allocated beside the run registry: one lock file per uid,
 * /run/cellos/uids/<uid>.lock, whose flock the run holds for its whole life.
 * A uid is free when its file is missing, or when its lock can be taken and
 * the file still has its name (util/lockfile.h): a supervisor that died
 * holding it gave the lock up with its life, so its uid is reclaimed. The
 * search starts at a place derived from the run id, to spread allocations over
 * the range, and wraps around. */
#ifndef CELLOS_RUNUID_H
#define CELLOS_RUNUID_H

#include <sys/types.h>

#include "util/err.h"

#define RUNUID_DIR "/run/cellos/uids"
/* The default CELLOS_CELL_UID_RANGE. */
#define RUNUID_FIRST_DEFAULT 3000000000UL
#define RUNUID_LAST_DEFAULT 3000999999UL

struct runuid {
	uid_t uid;            /* the run's uid and gid */
	int fd;               /* the locked file, -1 when none */
	char path[512];
};

/* Parse CELLOS_CELL_UID_RANGE's value `v`, "FIRST-LAST" in decimal, into
 * *first and *last: first <= last, 0 not in the range, at least 16 uids, last
 * at most 4294967294 ((uid_t)-1 is no uid). Messages name the variable. */
int runuid_parse_range(const char *v, unsigned long *first, unsigned long *last, struct err *e);

/* Give run `run_id` a uid of first..last that no live run has. Every uid in
 * use is an error naming CELLOS_CELL_UID_RANGE. */
int runuid_alloc(unsigned long first, unsigned long last, const char *run_id, struct runuid *out, struct err *e);

/* Give the uid back (the run's processes are gone). */
void runuid_release(struct runuid *u);

/* Remove the lock files SIGKILLed supervisors left (no live holder), so that
 * nothing of a dead run stays on the host. Errors are ignored: a file left is
 * reclaimed by the next allocation of its uid anyway. */
void runuid_sweep(void);

/* Use `dir` (made with its parent when missing) instead of RUNUID_DIR: for tests. */
void runuid_set_dir(const char *dir);

#endif
