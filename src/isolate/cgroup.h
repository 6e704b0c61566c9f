/* The cell's cgroup leaves (SPEC §3 CELLOS_CGROUP_PARENT, §6.1): how every process
 * of the cell is found and killed, where run.limits are enforced, and where the
 * cell's resource usage and OOM kills are read back.
 *
 * One leaf `cellos-<cellId>-<runId8>` per hierarchy the cell needs:
 *   - the cgroup v2 hierarchy (pure v2 hosts: /sys/fs/cgroup; hybrid hosts: the
 *     controller-less /sys/fs/cgroup/unified). Always made when possible: it
 *     gives cgroup.kill, cgroup.events and cpu.stat even without controllers. The
 *     cell's init is cloned straight into it (CLONE_INTO_CGROUP).
 *   - on hybrid hosts, the v1 hierarchies of the controllers v2 cannot provide:
 *     memory (always: peak usage and OOM kills), pids and cpu (when limited).
 *     Nothing can clone into a v1 cgroup, so the supervisor's own thread joins
 *     the v1 leaves around the clone (cgroup_cell_enter/leave): the init is born
 *     in them, before it can fork anything.
 *
 * Life of a cgroup_cell: plan (decide every path, touch nothing) -> the run
 * registry records the paths -> make (mkdir, enable v2 controllers) -> enter ->
 * clone3 -> leave -> apply (write the limits) -> ... -> wait_empty, usage ->
 * destroy. */
#ifndef CELLOS_CGROUP_H
#define CELLOS_CGROUP_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "isolate/cgroup_limits.h"
#include "util/err.h"

struct cgroup_dir {
	char path[PATH_MAX];           /* "" when there is none */
	int fd;                        /* O_DIRECTORY, -1 when not made */
	char own[PATH_MAX];            /* v1: the supervisor's cgroup there, to go back to */
	bool joined;                   /* v1: the supervisor's thread is in it */
};

struct cgroup_cell {
	struct cgroup_dir v2;
	struct cgroup_dir v1[CG_NCTRL];
	bool has_kill;                 /* v2 cgroup.kill (Linux >= 5.14) */
	unsigned v2_ctrls;             /* CG_* the v2 leaf carries */
	unsigned v2_enable;            /* of those, to enable in the parent's subtree_control */
	char v2_parent[PATH_MAX];
	unsigned want;                 /* CG_* the limits need */
	bool cpu_env;                  /* the CPU limit came from CELLOS_CGROUP_CPU_MAX (messages) */
	unsigned applied;              /* of want, in force */
	char error[512];               /* why something of want is not in force, "" */
};

/* Whole-cell accounting, read after the cell's processes are gone. */
struct cgroup_usage {
	bool have_cpu, have_mem;
	long long user_us, sys_us;     /* cpu.stat (v2 leaf, any host with one) */
	long long mem_peak;            /* memory.peak / memory.max_usage_in_bytes, bytes */
	long long oom_kills;           /* memory.events / memory.oom_control oom_kill */
};

/* Reset to "no leaves" (call before anything else, so destroy is always safe). */
void cgroup_cell_init(struct cgroup_cell *cg);
/* Decide every path (reads the host, creates nothing). -1 when not even a v2
 * leaf is possible; limits that cannot be placed are noted in cg->error. */
int cgroup_cell_plan(struct cgroup_cell *cg, const char *parent, const char *name, const struct cgroup_limits *l,
		     struct err *e);
/* The leaf paths of the plan (for the run registry), v2 first. Returns the count. */
size_t cgroup_cell_paths(const struct cgroup_cell *cg, const char **out, size_t max);
/* mkdir the leaves, enabling v2 controllers where needed (moving the supervisor
 * into a sibling leaf `cellos-supervisor` when the no-internal-process rule
 * requires it). Failures are noted in cg->error; never fatal. */
void cgroup_cell_make(struct cgroup_cell *cg);
/* Move the calling thread into / back out of the v1 leaves, around the clone.
 * enter failures drop that leaf (noted); leave failing is fatal (-1). */
void cgroup_cell_enter(struct cgroup_cell *cg);
int cgroup_cell_leave(struct cgroup_cell *cg, struct err *e);
/* Write the limits. -1 only when a limit is below what the cell already uses
 * (it could never be honoured); other failures are noted in cg->error. */
int cgroup_cell_apply(struct cgroup_cell *cg, const struct cgroup_limits *l, struct err *e);
/* Send `sig` to every process of the cell but `except` (0: none); SIGKILL to all
 * through cgroup.kill when there is one. */
void cgroup_cell_signal(struct cgroup_cell *cg, int sig, pid_t except);
bool cgroup_cell_populated(struct cgroup_cell *cg);
/* Wait (bounded) until no process is left; true when empty. */
bool cgroup_cell_wait_empty(struct cgroup_cell *cg, int timeout_ms);
void cgroup_cell_usage(struct cgroup_cell *cg, struct cgroup_usage *u);
/* Kill what is left, wait until empty (bounded) and remove every leaf. */
int cgroup_cell_destroy(struct cgroup_cell *cg, struct err *e);
/* True when the cell has any leaf that can enumerate its processes. */
bool cgroup_cell_any(const struct cgroup_cell *cg);

/* Hardened profile (SPEC §7): can a leaf with memory, pids and cpu limits be made
 * under `parent` (NULL: default placement)? -1 with the reason otherwise. */
int cgroup_probe_limits(const char *parent, struct err *e);

#endif
