/* Per-cell cgroup leaf (SPEC §6.1), used to find and kill every process of the
 * cell. This part handles the cgroup v2 hierarchy (pure v2 hosts, and the
 * controller-less v2 hierarchy of hybrid hosts at /sys/fs/cgroup/unified). */
#ifndef CELLOS_CGROUP_H
#define CELLOS_CGROUP_H

#include <limits.h>
#include <stdbool.h>
#include <sys/types.h>

#include "util/err.h"

struct cgroup_leaf {
	char path[PATH_MAX];   /* "" when no leaf could be made */
	int dirfd;             /* O_DIRECTORY fd for clone3(CLONE_INTO_CGROUP), -1 if none */
	bool has_kill;         /* cgroup.kill exists (Linux >= 5.14) */
};

/* Make the leaf `name` under `parent` (NULL: the supervisor's own v2 cgroup).
 * Returns 0 with leaf->path set, or -1 when no v2 leaf can be made here (e.g. not
 * writable); then leaf->path is "" and the caller falls back. */
int cgroup_leaf_create(struct cgroup_leaf *leaf, const char *parent, const char *name, struct err *e);
/* Send `sig` to every process in the leaf but `except` (0: none). SIGKILL to all
 * uses cgroup.kill when present. */
void cgroup_leaf_signal(struct cgroup_leaf *leaf, int sig, pid_t except);
/* True while any process is left in the leaf. */
bool cgroup_leaf_populated(struct cgroup_leaf *leaf);
/* Kill what is left, wait until the leaf is empty (bounded) and remove it. */
int cgroup_leaf_destroy(struct cgroup_leaf *leaf, struct err *e);

#endif
