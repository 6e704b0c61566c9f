/* The limits as numbers. See isolate/cgroup_limits.h. */
#include "isolate/cgroup_limits.h"

#include <stdio.h>

void cgroup_limits_resolve(struct cgroup_limits *l, long long memory_max, long long spec_quota,
			   long long spec_period, long long env_quota, long long env_period, long long pids_max)
{
	*l = (struct cgroup_limits){.memory_max = memory_max > 0 ? memory_max : 0,
				    .pids_max = pids_max > 0 ? pids_max : 0};
	if (spec_quota > 0) {
		l->cpu_quota = spec_quota;
		l->cpu_period = spec_period > 0 ? spec_period : 100000;
	} else if (env_quota > 0) {
		l->cpu_quota = env_quota;
		l->cpu_period = env_period > 0 ? env_period : 100000;
		l->cpu_from_env = true;
	}
	if (l->cpu_quota && l->cpu_quota < CG_CPU_QUOTA_MIN) {
		l->cpu_quota = CG_CPU_QUOTA_MIN;
		l->cpu_raised = true;
	}
}

unsigned cgroup_limits_ctrls(const struct cgroup_limits *l)
{
	return (l->memory_max ? CG_MEMORY : 0u) | (l->pids_max ? CG_PIDS : 0u) | (l->cpu_quota ? CG_CPU : 0u);
}

void cgroup_format_cpu_max(const struct cgroup_limits *l, char *buf, size_t size)
{
	long long period = l->cpu_period > 0 ? l->cpu_period : 100000;
	if (l->cpu_quota > 0)
		snprintf(buf, size, "%lld %lld", l->cpu_quota, period);
	else
		snprintf(buf, size, "max %lld", period);
}

long long cgroup_pids_max_value(const struct cgroup_limits *l) { return l->pids_max ? l->pids_max + 1 : 0; }
