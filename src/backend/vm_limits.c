#include "backend/vm_limits.h"

#define MIB (1024LL * 1024LL)

void vm_shape_of(long long spec_mem, long long spec_quota, long long spec_period, long long def_mem_mib,
		 long long def_vcpus, long long overhead_mib, struct vm_shape *out)
{
	out->mem_mib = spec_mem > 0 ? (spec_mem + MIB - 1) / MIB : def_mem_mib;
	out->vcpus = def_vcpus;
	if (spec_quota > 0 && spec_period > 0)
		out->vcpus = (spec_quota + spec_period - 1) / spec_period;
	if (out->vcpus < 1)
		out->vcpus = 1;
	out->vmm_mem_max = (out->mem_mib + overhead_mib) * MIB;
}
