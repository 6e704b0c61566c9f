/* The `gvisor` backend (SPEC §6.2): the workload inside runsc, gVisor's
 * user-space kernel, as an OCI container (backend/oci_run.h does the running,
 * backend/oci_bundle.h writes the bundle). Here: runsc's options and the choice
 * of its platform.
 *
 * Platform: CELLOS_GVISOR_PLATFORM, else the first of systrap, ptrace that a
 * trial `runsc do /bin/true` runs on this host (systrap only exists in runsc
 * from 2023 on; kvm is never guessed: with /dev/kvm present but no usable
 * virtualisation it hangs instead of failing). The answer is cached in
 * /run/cellos/gvisor/.platform for this runsc binary (device, inode, size,
 * mtime): the trial costs a sandbox boot, the cache one stat.
 *
 * The workload's system-call filter (CELLOS_SECCOMP) goes into the bundle as
 * linux.seccomp in runsc's dialect (backend/oci_seccomp.h) and is enforced by
 * gVisor's Sentry on the workload's calls, given --oci-seccomp. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend/oci_run.h"
#include "backend/oci_tool.h"
#include "util/dirs.h"
#include "util/log.h"

#define GVISOR_DIR "/run/cellos/gvisor"
#define PLATFORM_CACHE GVISOR_DIR "/.platform"
#define PROBE_TIMEOUT_MS 10000

/* One trial: `runsc --platform=P --network=none do /bin/true`, its temporary
 * bundle and state in a directory of ours that goes away afterwards. runsc's
 * sandbox runs as nobody and must reach the bundle: the directory is 0711. */
static int probe(const char *runsc, const char *platform, char *msg, size_t size)
{
	char dir[] = "/tmp/cellos-gvisor-probe-XXXXXX";
	if (!mkdtemp(dir) || chmod(dir, 0711) < 0) {
		snprintf(msg, size, "temporary directory: %s", strerror(errno));
		if (dir[sizeof dir - 2] != 'X')
			rmdir(dir);
		return -1;
	}
	char root[96], tmpdir[96], plat[64];
	snprintf(root, sizeof root, "--root=%s/root", dir);
	snprintf(tmpdir, sizeof tmpdir, "TMPDIR=%s", dir);
	snprintf(plat, sizeof plat, "--platform=%s", platform);
	const char *argv[] = {runsc, root, plat, "--network=none", "do", "/bin/true", NULL};
	const char *env[] = {OCI_TOOL_PATH, tmpdir, NULL};
	int rc = oci_tool_run(runsc, argv, env, PROBE_TIMEOUT_MS, msg, size);
	dirs_rmtree(dir);
	if (rc == 128 + SIGKILL)
		snprintf(msg, size, "no answer within %d ms", PROBE_TIMEOUT_MS);
	else if (rc != 0 && !msg[0])
		snprintf(msg, size, rc < 0 ? "could not run" : "exit status %d", rc);
	return rc == 0 ? 0 : -1;
}

static int detect_platform(const char *runsc, char *out, size_t size, struct err *e)
{
	struct stat st;
	if (stat(runsc, &st) < 0)
		return err_sys(e, errno, "CELLOS_GVISOR_RUNSC: %s", runsc);
	if (oci_tool_cache_get(PLATFORM_CACHE, runsc, out, size))
		return 0;
	static const char *const candidates[] = {"systrap", "ptrace"};
	char tried[ERR_MSG_MAX - 200] = "";
	size_t len = 0;
	for (size_t i = 0; i < sizeof candidates / sizeof candidates[0]; i++) {
		char msg[256];
		if (probe(runsc, candidates[i], msg, sizeof msg) == 0) {
			log_debug("gvisor: platform %s works with %s", candidates[i], runsc);
			oci_tool_cache_put(PLATFORM_CACHE, runsc, candidates[i]);
			snprintf(out, size, "%s", candidates[i]);
			return 0;
		}
		len += (size_t)snprintf(tried + len, len < sizeof tried ? sizeof tried - len : 0, "%splatform %s: %s",
					len ? "; " : "", candidates[i], msg);
	}
	return err_set(e, "gvisor: %s cannot run a sandbox on this host (tried %s; set CELLOS_GVISOR_PLATFORM)", runsc,
		       tried);
}

static int gvisor_create(struct cell *c, struct err *e)
{
	const struct config *cfg = c->cfg;
	char platform[32];
	if (mkdir("/run/cellos", 0700) < 0 && errno != EEXIST)
		return err_sys(e, errno, "/run/cellos");
	if (mkdir(GVISOR_DIR, 0700) < 0 && errno != EEXIST)
		return err_sys(e, errno, "%s", GVISOR_DIR);
	if (cfg->gvisor_platform)
		snprintf(platform, sizeof platform, "%s", cfg->gvisor_platform);
	else if (detect_platform(cfg->oci_runtime_path, platform, sizeof platform, e) < 0)
		return -1;
	char platform_opt[48];
	snprintf(platform_opt, sizeof platform_opt, "--platform=%s", platform);
	struct oci_runtime rt = {
		.kind = "gvisor",
		.name = "runsc",
		.path = cfg->oci_runtime_path,
		/* No network stack at all: the cell has loopback only (SPEC §6.2).
		 * --ignore-cgroups: runsc would otherwise make cgroups of its own at
		 * /<id> of every hierarchy (left behind when it is killed) and count
		 * a pids limit against its own threads. The cell's leaves hold runsc
		 * and all it starts, and carry the limits. */
		.global = {"--network=none", "--ignore-cgroups", platform_opt, NULL /* --oci-seccomp */, NULL},
		.log_opt = "--log-fd=3",
		.log_format_json = true,
		.pids_as_rlimit = true,
		.rootfs = cfg->gvisor_rootfs[0] ? cfg->gvisor_rootfs : NULL,
		.seccomp_dialect = OCI_SECCOMP_RUNSC,
		.bind_points_in_root = true,
	};
	/* runsc ignores linux.seccomp unless given --oci-seccomp; a runsc without the
	 * flag (an old one) refuses it as unknown, which is the probe. */
	const char *probe[] = {cfg->oci_runtime_path, "--oci-seccomp", "--version", NULL};
	if (oci_seccomp_for_runtime(c, &rt, probe, NULL, e) < 0)
		return -1;
	if (rt.seccomp)
		rt.global[3] = "--oci-seccomp";
	return oci_run_create(c, &rt, e);
}

const struct backend_ops backend_gvisor = {
	.name = "gvisor",
	.create = gvisor_create,
	.start = oci_run_start,
	.wait_fd = oci_run_wait_fd,
	.collect = oci_run_collect,
	.signal = oci_run_signal,
	.read_counters = oci_run_read_counters,
	.destroy = oci_run_destroy,
};
