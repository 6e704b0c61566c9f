/* Where this host's cgroup hierarchies are (cgroup v2, and the v1 hierarchies of
 * hybrid hosts), where the supervisor itself sits in them, and where a cell's
 * leaf goes (SPEC §3 CELLOS_CGROUP_PARENT). The parsers are pure (unit-tested);
 * cgroup_host_load reads this host. */
#ifndef CELLOS_CGROUP_HOST_H
#define CELLOS_CGROUP_HOST_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#include "isolate/cgroup_limits.h"
#include "util/err.h"

/* "memory", "pids", "cpu": the controllers' names, by CG_IDX_*. */
extern const char *const cgroup_ctrl_names[CG_NCTRL];

#define CG_MAX_MOUNTS 32
#define CG_MNT_MAX 512

struct cgroup_mount {
	char mnt[CG_MNT_MAX];          /* mount point */
	char root[CG_MNT_MAX];         /* what of the hierarchy is mounted there ("/" usually) */
	bool v2;
	unsigned ctrls;                /* CG_* bound to this v1 hierarchy */
};

struct cgroup_host {
	struct cgroup_mount mounts[CG_MAX_MOUNTS];
	size_t n_mounts;
	int v2;                        /* index of the v2 mount, -1: none */
	int v1[CG_NCTRL];              /* index of each controller's v1 mount, -1: none */
	char own_v2[PATH_MAX];         /* the supervisor's cgroups (/proc/self/cgroup) */
	char own_v1[CG_NCTRL][PATH_MAX];
};

/* Fill h from the text of /proc/self/mountinfo and /proc/self/cgroup. */
void cgroup_host_parse(struct cgroup_host *h, const char *mountinfo, const char *self_cgroup);
/* Fill h from this host. `fast`: recognise the usual layouts by statfs() where
 * that is certain (falls back to parsing mountinfo); only mountinfo lists every
 * hierarchy, which locating a CELLOS_CGROUP_PARENT needs. */
int cgroup_host_load(struct cgroup_host *h, bool fast, struct err *e);
/* Directory of the cgroup the caller would put its leaf under, in the v2 hierarchy
 * (which = -1) or controller `which`'s v1 hierarchy:
 *   - parent NULL: the supervisor's own cgroup there;
 *   - parent inside that hierarchy: parent itself;
 *   - parent inside another cgroup hierarchy: the same path relative to the
 *     hierarchy's root, in this one (*mapped = true: the caller falls back to the
 *     own cgroup when that directory does not exist).
 * Returns 0, or -1 (with e) when the hierarchy is missing or parent is not in any. */
int cgroup_leaf_parent(const struct cgroup_host *h, int which, const char *parent, char *out, size_t size,
		       bool *mapped, struct err *e);

/* cgroup_leaf_parent, falling back to the supervisor's own cgroup when a
 * CELLOS_CGROUP_PARENT mapped from another hierarchy has no directory here. */
int cgroup_parent_dir(const struct cgroup_host *h, int which, const char *parent, char *out, size_t size,
		      struct err *e);
/* CG_* bits of a controller list file (cgroup.controllers, cgroup.subtree_control)
 * of directory `dir`; 0 when it cannot be read. */
unsigned cgroup_read_ctrls(const char *dir, const char *file);

#endif
