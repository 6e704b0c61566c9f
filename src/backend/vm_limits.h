/* The size of a microVM (SPEC §6.3), the same rule for every VMM: memory is
 * CELLOS_VM_MEMORY_MIB unless run.limits.memoryMaxBytes says otherwise (rounded
 * up to MiB); vCPUs are CELLOS_VM_VCPUS unless cpuMax says otherwise
 * (ceil(quota/period)); the VMM's own cgroup memory limit is the guest's memory
 * plus CELLOS_VM_OVERHEAD_MIB (device emulation, TCG's translation cache). */
#ifndef CELLOS_VM_LIMITS_H
#define CELLOS_VM_LIMITS_H

struct vm_shape {
	long long mem_mib;        /* guest RAM */
	long long vcpus;
	long long vmm_mem_max;    /* bytes: memory.max of the VMM's cgroup leaf */
};

/* spec_mem: memoryMaxBytes (0: absent); spec_quota/spec_period: cpuMax (quota 0:
 * absent). */
void vm_shape_of(long long spec_mem, long long spec_quota, long long spec_period, long long def_mem_mib,
		 long long def_vcpus, long long overhead_mib, struct vm_shape *out);

#endif
