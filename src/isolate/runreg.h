/* Registry of live runs on this host, so that a supervisor can remove what a
 * SIGKILLed one left behind (its cgroup leaf) — SPEC §1: "the next supervisor on
 * the host removes what the dead one left".
 *
 * Each run holds an exclusive flock on /run/cellos/runs/<name>.lock for its whole
 * life; the file records the host objects it made, one cgroup leaf path per line
 * (the v2 leaf first, then the v1 ones). A lock that can be taken on a file that
 * still has its name belongs to a dead supervisor (util/lockfile.h). */
#ifndef CELLOS_RUNREG_H
#define CELLOS_RUNREG_H

#include <stddef.h>

#include "util/err.h"

#define RUNREG_DIR "/run/cellos/runs"

struct runreg {
	int fd;               /* the locked file, -1 when none */
	char path[512];
};

/* Returned by runreg_register when a live run holds the name. */
#define RUNREG_LIVE (-2)

/* Register run `name`, recording its `n` cgroup leaf paths (written before the
 * leaves are made, so no window leaves one unrecorded). A name is never taken
 * from a live run (RUNREG_LIVE); one a dead run left is cleaned up after first. */
int runreg_register(struct runreg *r, const char *name, const char *const *leaves, size_t n, struct err *e);
/* Remove the registration (the run's objects are gone). */
void runreg_release(struct runreg *r);
/* Clean up after every dead run found in the registry. Errors are logged. */
void runreg_sweep(void);
/* Use `dir` (made with its parent when missing) instead of RUNREG_DIR: for tests. */
void runreg_set_dir(const char *dir);

#endif
