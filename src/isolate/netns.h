/* The supervisor's thread in a cell's network namespace and back: for the work
 * that must happen there but not in a process of the cell (lo up, the nft
 * ruleset, reading its counters). Only for a single-threaded caller: the
 * namespace is the calling thread's. */
#ifndef CELLOS_NETNS_H
#define CELLOS_NETNS_H

#include <sys/types.h>

#include "util/err.h"

typedef int (*netns_fn)(void *arg, struct err *e);

/* fn(arg, e) inside the network namespace `netns`, then back in ours. Its result. */
int netns_run_in(int netns, netns_fn fn, void *arg, struct err *e);

/* A new network namespace: fn(arg, e) inside it (NULL: nothing), then back in
 * ours; *out holds it (-1 when it could not be made or opened). */
int netns_make(int *out, netns_fn fn, void *arg, struct err *e);

/* A new network namespace owned by the user namespace `userns` (an fd), made
 * by a short-lived vfork()ed child that becomes its owner uid/gid and joins
 * it, so that the namespace is charged to that uid and its root may mount a
 * sysfs of it; *out holds it (-1 on failure). For a cell whose init already
 * runs: the init joins it (setns) instead of clone3() making it, which took the
 * namespace's creation off the cell's start (docs/DESIGN.md). */
int netns_make_in(int userns, uid_t uid, gid_t gid, int *out, struct err *e);

#endif
