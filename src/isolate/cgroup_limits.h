/* The cell's resource limits as numbers (SPEC run.limits, CELLOS_CGROUP_CPU_MAX):
 * which value wins, what the kernel's files get. Pure arithmetic; no file is
 * touched here (cgroup_cell.c writes them). */
#ifndef CELLOS_CGROUP_LIMITS_H
#define CELLOS_CGROUP_LIMITS_H

#include <stdbool.h>
#include <stddef.h>

/* Controllers the cell may need, as bits; CG_IDX_* index arrays. */
enum { CG_IDX_MEMORY = 0, CG_IDX_PIDS, CG_IDX_CPU, CG_NCTRL };
enum { CG_MEMORY = 1 << CG_IDX_MEMORY, CG_PIDS = 1 << CG_IDX_PIDS, CG_CPU = 1 << CG_IDX_CPU };

/* The kernel refuses CFS quotas below 1 ms (cpu.max, cpu.cfs_quota_us). */
#define CG_CPU_QUOTA_MIN 1000LL

/* The cell's effective limits; 0 = none. */
struct cgroup_limits {
	long long memory_max;          /* bytes */
	long long cpu_quota, cpu_period; /* µs */
	long long pids_max;            /* processes and threads of the workload */
	bool cpu_from_env;             /* CELLOS_CGROUP_CPU_MAX supplied cpu_quota/period */
	bool cpu_raised;               /* the quota asked was below CG_CPU_QUOTA_MIN */
};

/* run.limits, with CELLOS_CGROUP_CPU_MAX (env_quota/env_period, 0 if unset) only
 * when the spec has no cpuMax; a quota under the kernel minimum is raised to it. */
void cgroup_limits_resolve(struct cgroup_limits *l, long long memory_max, long long spec_quota,
			   long long spec_period, long long env_quota, long long env_period, long long pids_max);
/* CG_* bits of the controllers `l` needs. */
unsigned cgroup_limits_ctrls(const struct cgroup_limits *l);
/* cpu.max text ("<quota> <period>", or "max <period>" without a quota). */
void cgroup_format_cpu_max(const struct cgroup_limits *l, char *buf, size_t size);
/* The pids.max the leaf gets: pids_max plus one for the cell's own init, which is
 * ours, not the workload's. */
long long cgroup_pids_max_value(const struct cgroup_limits *l);

#endif
