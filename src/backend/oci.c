/* The `oci` backend (ext): the cell as a container of crun or runc
 * (CELLOS_OCI_RUNTIME), from the same bundle and machinery as gvisor
 * (backend/oci_run.h). The workload runs on the host kernel in its own pid,
 * network (loopback only), ipc, uts and mount namespaces, without capabilities,
 * in the cell's cgroup leaves, under the workload's system-call filter
 * (linux.seccomp, installed by the runtime right before it execs the workload). */
#include <string.h>

#include "backend/oci_run.h"

static int oci_create(struct cell *c, struct err *e)
{
	const char *path = c->cfg->oci_runtime_path;
	const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
	bool crun = strcmp(base, "crun") == 0;
	struct oci_runtime rt = {
		.kind = "oci",
		.name = crun ? "crun" : "runc",
		.path = path,
		/* crun: the cell's leaves hold it and carry the limits (it refuses
		 * hybrid hosts otherwise). runc has no such switch: it makes its own
		 * cgroup, removed by its delete, left behind if it is SIGKILLed. */
		.global = {crun ? "--cgroup-manager=disabled" : NULL, NULL},
		/* Both log to a path; /proc/self/fd/3 is the memfd we hand them. */
		.log_opt = crun ? "--log=file:/proc/self/fd/3" : "--log=/proc/self/fd/3",
		.log_format_json = true,
		.pids_as_rlimit = false,
		.runtime_limits = !crun,
		.map_user = true,
		.seccomp_dialect = OCI_SECCOMP_LIBSECCOMP,
	};
	/* Both install linux.seccomp through libseccomp, when built with it: their
	 * --version says so (runc: a "libseccomp: X" line; crun: "+SECCOMP"). */
	const char *probe[] = {path, "--version", NULL};
	if (oci_seccomp_for_runtime(c, &rt, probe, crun ? "+SECCOMP" : "libseccomp:", e) < 0)
		return -1;
	return oci_run_create(c, &rt, e);
}

const struct backend_ops backend_oci = {
	.name = "oci",
	.create = oci_create,
	.start = oci_run_start,
	.wait_fd = oci_run_wait_fd,
	.collect = oci_run_collect,
	.signal = oci_run_signal,
	.read_counters = oci_run_read_counters,
	.destroy = oci_run_destroy,
};
