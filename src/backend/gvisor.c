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
#include <stdbool.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend/oci_run.h"
#include "backend/oci_tool.h"
#include "isolate/gateway.h"
#include "isolate/netdev.h"
#include "isolate/netns.h"
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

/* CELLOS_NETWORK=gateway with declared egress (SPEC §6.4): a netns of ours
 * holding the cell's end of the veth (address, default route), which runsc's
 * sandbox joins with --network=sandbox: gVisor's own network stack then sends
 * the workload's packets out of that veth, and the run's host table (forward
 * and input chains, on the host side) enforces the same rules as for a stub
 * cell. runsc's stack bypasses netfilter inside that netns (it writes frames
 * to the device itself), so no ruleset of ours is put there: the host table
 * is the filter. */
struct sandbox_net {
	struct gateway *gw;
	bool cover;
};

/* Inside the sandbox's netns (isolate/netns.h): lo up, the cell's address and
 * route. */
static int sandbox_net_setup(void *arg, struct err *e)
{
	struct sandbox_net *x = arg;
	if (netdev_loopback_up(e) < 0 || gateway_cell_up(x->gw, e) < 0)
		return -1;
	/* runsc before 2023 takes the presence of this sysctl for the root netns
	 * and refuses --network=sandbox; recent kernels have it in every netns.
	 * Where it shows here, runsc gets a mount namespace with /proc/sys/net
	 * covered (oci_run.h, cover): the whole tree, since /proc/sys/net/core is
	 * a per-netns dentry a mount made before runsc's setns does not cover. */
	x->cover = access("/proc/sys/net/core/rmem_default", F_OK) == 0;
	return 0;
}

static int gateway_netns(struct cell *c, bool *cover, struct err *e)
{
	int cell = -1;
	if (netns_make(&cell, NULL, NULL, e) < 0) {
		err_prefix(e, "gvisor: the sandbox's network namespace");
		return -1;
	}
	struct gateway *gw = calloc(1, sizeof *gw);
	if (gw) {
		gw->l7_port = c->l7_port; /* the SNI/Host check's redirect (egress_proxy.h) */
		gw->l7_queue = c->l7_queue;
	}
	int rc = gw ? gateway_up(gw, c->name, &c->cfg->cell_subnet, c->egress, c->n_egress, c->cfg->egress_deny,
				 c->cfg->n_egress_deny, cell, e)
		    : err_set(e, "out of memory");
	if (rc == GATEWAY_NFT_FAILED) {
		/* Never fail open: runsc keeps no network, and the facts say why (what
		 * the profile makes of that is the supervisor's decision). */
		snprintf(c->facts.gw_error, sizeof c->facts.gw_error, "%s", e->msg);
		rc = 0;
		free(gw);
		gw = NULL;
	} else if (rc == 0) {
		struct sandbox_net x = {.gw = gw};
		rc = netns_run_in(cell, sandbox_net_setup, &x, e);
		*cover = x.cover;
		if (rc < 0) {
			gateway_down(gw);
			free(gw);
			gw = NULL;
		}
	} else {
		free(gw);
		gw = NULL;
	}
	if (!gw) {
		close(cell);
		return rc;
	}
	c->facts.gw = gw; /* gw->cell_netns: ours, closed with the gateway */
	return 0;
}

static void gateway_release(struct cell *c)
{
	if (!c->facts.gw)
		return;
	int fd = c->facts.gw->cell_netns;
	gateway_down_dying(c->facts.gw);
	free(c->facts.gw);
	c->facts.gw = NULL;
	if (fd >= 0)
		close(fd);
}

static void gvisor_destroy(struct cell *c)
{
	oci_run_destroy(c);
	gateway_release(c);
}

static int gvisor_create(struct cell *c, struct err *e)
{
	const struct config *cfg = c->cfg;
	char platform[32];
	if (dirs_run_base() < 0)
		return err_sys(e, errno, "%s", DIRS_RUN_BASE);
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
	if (cfg->network == NETWORK_GATEWAY && c->spec->n_egress > 0) {
		bool cover = false;
		if (gateway_netns(c, &cover, e) < 0)
			return -1;
		if (c->facts.gw)
			rt.global[0] = "--network=sandbox";
		if (c->facts.gw && cover)
			rt.cover = "/proc/sys/net";
	}
	if (oci_run_create(c, &rt, e) < 0) {
		gateway_release(c);
		return -1;
	}
	return 0;
}

const struct backend_ops backend_gvisor = {
	.name = "gvisor",
	.create = gvisor_create,
	.start = oci_run_start,
	.wait_fd = oci_run_wait_fd,
	.collect = oci_run_collect,
	.signal = oci_run_signal,
	.read_counters = oci_run_read_counters,
	.destroy = gvisor_destroy,
};
