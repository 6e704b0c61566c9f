/* The steps every backend takes around the first process of a cell: born inside
 * the cell's cgroup leaves (isolate/cgroup.h), and the leaves taken down again
 * with their run-registry entry (isolate/runreg.h). One implementation, so that
 * the order that makes them safe (nothing of the cell ever runs outside its
 * leaves; a leaf that outlives us stays registered) lives in one place. */
#ifndef CELLOS_CELLPROC_H
#define CELLOS_CELLPROC_H

#include <sys/types.h>

#include "isolate/cgroup.h"
#include "isolate/runreg.h"
#include "util/err.h"

struct cellproc_clone {
	unsigned long flags;           /* CLONE_NEW*: the namespaces the child is born in */
	const char *what;              /* "clone3 of <what>" in messages */
	/* Called in the parent right before / after clone3(), inside the v1 leaves
	 * (NULL: nothing). `before` failing (-1, e set) means no clone; `after`
	 * runs whenever `before` succeeded. For what the clone itself must be done
	 * as, e.g. the identity that is to own a new user namespace. */
	int (*before)(void *arg, struct err *e);
	void (*after)(void *arg);
	void (*child)(void *arg);      /* the child's whole life: must not return */
	void *arg;
};

/* clone3() of the cell's first process straight into its leaves: the v2 leaf by
 * CLONE_INTO_CGROUP, the v1 ones (hybrid hosts) by moving the calling thread into
 * them around the clone (cgroup_cell_enter/leave), so the child is born in all of
 * them before it can fork anything. CLONE_PIDFD always.
 *
 * 0: *pid and *pidfd are the child. -1 with e set: when clone3() failed, *pid is
 * -1 and errno is clone3's (a caller may retry with other flags); when only the
 * way back out of the v1 leaves failed, *pid and *pidfd are the child all the
 * same, which the caller then tears down. */
int cellproc_clone(struct cgroup_cell *cg, const struct cellproc_clone *req, pid_t *pid, int *pidfd, struct err *e);

/* The end of the cell's leaves, once its processes are gone or to be killed
 * (cgroup_cell_destroy kills what is left): the calling thread out of any v1
 * leaf, every leaf removed, then the registry entry released. A leaf that cannot
 * be removed (or a thread stuck in one) stays registered for the next
 * supervisor's sweep; the error is logged. Closes the registry file. */
void cellproc_release(struct cgroup_cell *cg, struct runreg *reg);

#endif
