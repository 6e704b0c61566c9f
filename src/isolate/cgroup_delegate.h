/* What the supervisor does to cgroups that are not a cell's own leaf:
 *   - delegation on pure v2 hosts: enabling controllers in the parent's
 *     cgroup.subtree_control, moving the supervisor itself aside into the
 *     shared sibling leaf `cellos-supervisor` when the no-internal-process rule
 *     requires it (docs/DESIGN.md, "Pure v2 hosts");
 *   - removing leaves: killing what is listed in one and rmdir'ing it, for the
 *     cell's own destroy and for the leaves a SIGKILLed supervisor left (the run
 *     registry's sweep). */
#ifndef CELLOS_CGROUP_DELEGATE_H
#define CELLOS_CGROUP_DELEGATE_H

#include <sys/types.h>

#include "util/err.h"

/* Enable the CG_* controllers `ctrls` in <parent>/cgroup.subtree_control; -1
 * with errno when they cannot be (EBUSY: other processes live in `parent`). */
int cgroup_v2_enable(const char *parent, unsigned ctrls);

/* Signal every process listed in dirfd's cgroup.procs but `except` and
 * ourselves; returns how many. */
int cgroup_signal_listed(int dirfd, int sig, pid_t except);
/* rmdir the leaf `path` (dirfd: the leaf, or -1), re-killing what is left in it
 * while the kernel tears its last processes down; bounded (~2 s). 0 or -1 (errno). */
int cgroup_leaf_remove(const char *path, int dirfd);

/* Remove a leaf a dead supervisor left (run registry sweep): only directories
 * named cellos-* on a cgroup filesystem; kills what is left in it first. */
int cgroup_remove_stale(const char *path, struct err *e);

#endif
