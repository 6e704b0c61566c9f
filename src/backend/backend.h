/* The cell-backend port (SPEC §6). The supervisor's lifecycle talks to a backend
 * only through these operations; timeouts, signals and events stay in the
 * supervisor. */
#ifndef CELLOS_BACKEND_H
#define CELLOS_BACKEND_H

#include <stdbool.h>
#include <sys/resource.h>
#include <sys/types.h>

#include "config.h"
#include "isolate/cgroup.h"
#include "isolate/gateway.h"
#include "isolate/nft.h"
#include "isolate/runreg.h"
#include "spec/spec.h"
#include "util/err.h"

/* What create() found out: facts, never a verdict. The backend reports what it
 * could and could not put in force, and why; what the deployment profile makes
 * of that (SPEC §7: portable reports, hardened refuses) is decided by the
 * supervisor alone (supervisor.c: admit_created). Reported in events. */
struct cell_facts {
	bool netns;                     /* the cell has a private network namespace */
	bool nft_applied;               /* its egress filter is in force (only with netns) */
	char nft_error[256];            /* why not, when not */
	bool leaf;                      /* the cell has a cgroup leaf of its own (v2 or v1) */
	char cgroup[4096];              /* the v2 leaf's path, "" when none */
	bool limits_applied;            /* every limit of cell.limits is in force */
	char limits_error[512];         /* why not, when not */
	const char *seccomp;            /* the filter in force as reported, when it is not cfg->seccomp
	                                 * (a runtime that cannot install the default: "off"); NULL */
	bool argv0_refused;             /* the program is outside CELLOS_RUN_ARGV0_ALLOW_PREFIXES: create
	                                 * failed and its message names the program */
	/* CELLOS_NETWORK=gateway (SPEC §6.4): the cell's veth, /30 and host table
	 * (owned by the backend), NULL when it has none (isolated, no egress
	 * declared, or its host table refused). The DNS proxy and SNI check listen
	 * on gw->host_addr. */
	struct gateway *gw;
	char gw_error[256];             /* the gateway was wanted but nftables refused its host table:
	                                 * why ("" otherwise); the cell then has no route out */
	/* microVM backends (SPEC §6.3): "" / NULL otherwise. */
	char vm_kernel_digest[65], vm_rootfs_digest[65]; /* what was booted, checked against the image */
	char vm_firecracker_digest[65]; /* firecracker: the VMM binary that ran */
	const char *vm_terminal_state;  /* "clean" or "forced", once collected */
};

struct cell {
	/* Inputs: set by the supervisor before create(), read-only to the backend. */
	const struct config *cfg;
	const struct spec *spec;
	char name[200];                 /* cellos-<cellId>-<runId8>: host-side objects */
	const char *run_id;             /* the run id of the events (CELLOS_RUN_ID or a fresh UUID) */
	char *const *envp;              /* the workload's complete environment */
	const char *path;               /* PATH of that environment */
	const struct nft_egress *egress;
	size_t n_egress;
	struct cgroup_limits limits;    /* effective run.limits (cgroup_limits_resolve) */
	unsigned ns;                    /* NS_* the cell has: cfg->ns, less a refused `user` (stub) */
	uid_t uid;                      /* the run's own unprivileged host uid/gid (SPEC §3): */
	gid_t gid;                      /* the workload's identity on the host, never 0 */
	uint16_t l7_port;               /* the SNI/Host check's port for the gateway's redirect (SPEC
					   §6.4, egress_proxy.h), 0: none */
	uint16_t l7_queue;              /* the SNI check's nfnetlink_queue for TLS (gateway.h), 0: none */
	int stdio[2];                   /* what the cell's fds 1 and 2 are to be (the child that becomes
					   the cell dup2s them): a relay pipe, or -1: ours, passed
					   through (util/stdio_relay.h) */
	const struct secrets *secrets;  /* secretDelivery "file": for the cell's secrets dir, else NULL */

	/* Outputs: filled in by create() (vm_terminal_state: by collect()). */
	struct cell_facts facts;

	/* The backend's own state: nobody else looks inside. */
	void *priv;
};

struct spawn_result {
	bool spawned;                   /* exec succeeded */
	int spawn_errno;                /* when not spawned */
	pid_t pid;                      /* workload pid as the supervisor sees it */
	char program[4096];             /* resolved argv[0] */
};

struct run_status {
	bool have_status;               /* false: the cell died without a report */
	int wstatus;
	struct rusage ru;               /* of the workload's main process */
	/* Whole-cell accounting from the cell's cgroup, where it has one. */
	bool have_cell_cpu, have_cell_mem;
	long long cell_user_us, cell_sys_us, cell_mem_peak;
	bool oom_killed;                /* the kernel OOM-killed a process of the cell */
	bool no_report;                 /* a microVM ended without a valid exit report */
	char vm_error[512];             /* then, optionally, more about why (the end line says it) */
};

struct backend_ops {
	const char *name;
	/* Build the cell; nothing of the workload runs yet. On failure everything
	 * already made is undone before returning. */
	int (*create)(struct cell *c, struct err *e);
	/* Optional: let the workload start now, without waiting; start() then only
	 * waits for its exec (and reports a failure of this). The supervisor writes
	 * lifecycle.started meanwhile, off the workload's start. NULL: start() does
	 * everything. */
	void (*launch)(struct cell *c);
	/* Start the workload; returns once exec succeeded or failed. */
	int (*start)(struct cell *c, struct spawn_result *r, struct err *e);
	/* An fd that becomes readable when the workload's main process ended. */
	int (*wait_fd)(struct cell *c);
	/* After wait_fd is readable: collect the status; every other process of the
	 * cell is killed at once. */
	void (*collect)(struct cell *c, struct run_status *st);
	/* Signal every process of the cell (SIGTERM: graceful; SIGKILL: all, now). */
	void (*signal)(struct cell *c, int sig);
	/* Read the nft rule counters of the cell's netns (only when c->facts.netns). */
	int (*read_counters)(struct cell *c, struct nft_counter **out, size_t *n, struct err *e);
	/* After collect, before destroy (SPEC §10): open the artifact at `path` as
	 * the cell sees it, with the workload's privileges, beneath the workspace
	 * and without following symlinks (a cell that sees the host's filesystem:
	 * only under CELLOS_EXPORT_HOST_PATHS_ALLOW); *fd is a regular file of at
	 * most cfg->export_max_bytes, O_RDONLY. NULL: the backend cannot (export
	 * fails). */
	int (*open_artifact)(struct cell *c, const char *path, int *fd, struct err *e);
	/* Remove everything the backend made. Never fails silently: errors are logged. */
	void (*destroy)(struct cell *c);
};

extern const struct backend_ops backend_stub;
extern const struct backend_ops backend_gvisor; /* gvisor.c: runsc */
extern const struct backend_ops backend_oci;    /* oci.c: crun or runc */
extern const struct backend_ops backend_qemu;   /* qemu.c: a QEMU microvm */
extern const struct backend_ops backend_firecracker; /* firecracker.c */

/* The cell's cgroup leaves (SPEC §6.1), shared by the backends: plan them under
 * CELLOS_CGROUP_PARENT (or our own cgroups), record them in the run registry
 * before they exist (a SIGKILL at any point leaves nothing unlisted), make them,
 * and report the v2 leaf in c->facts.cgroup. No usable hierarchy is not an error: the
 * cell then has no leaf (logged). */
int backend_cgroup_setup(struct cell *c, struct cgroup_cell *cg, const struct cgroup_limits *lim, struct runreg *reg,
			 struct err *e);

/* Whole-cell accounting (SPEC §8.1 resourceUsage, destroyed.reason oom) into
 * *st, once the cell's last process is gone (waits up to 2 s for that). */
void backend_cgroup_usage(struct cgroup_cell *cg, struct run_status *st);

/* Warm cells of the stub backend (SPEC §11, stub_warm.c): whether this
 * configuration has one; build it before the document (the run's id and
 * identity already fixed); destroy it unused. stub_create takes it when the
 * document fits it. */
bool stub_warm_wanted(const struct config *cfg);
int stub_warm_prepare(const struct config *cfg, const char *run_id, uid_t uid, gid_t gid, struct err *e);
void stub_warm_discard(void);
/* The warm cell's init to nice value `prio` (it was cloned at ours). */
void stub_warm_priority(int prio);

/* The backend selected by CELLOS_CELL_BACKEND. */
const struct backend_ops *backend_for(const struct config *cfg);

/* Whether a cell of this configuration sees the host's filesystem as its own
 * (the stub without a mount namespace): its artifacts are host paths (SPEC §10). */
bool backend_sees_host_fs(const struct config *cfg);

#endif
