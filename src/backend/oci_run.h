/* Cells run by an OCI runtime (runsc for the gvisor backend; crun or runc for the
 * oci backend): the machinery they share.
 *
 * One `<runtime> run` process per cell, started by the supervisor:
 *
 *   supervisor ──clone3(CLONE_INTO_CGROUP: the cell's leaves)──▶ child
 *       child: PR_SET_PDEATHSIG(SIGKILL); a private mount namespace with a tmpfs
 *              on /run/cellos/<kind> holding <name>/{bundle,state,rootfs,ev,go}
 *              (config.json, with the secrets, and the runtime's state never touch
 *              a host filesystem); the cell's root as a read-only scaffold;
 *              then exec `<runtime> --root <name>/state run --bundle <name>/bundle <name>`
 *       runtime: creates the container, runs the prestart hook, which writes
 *              "C<state>" to the ev FIFO and blocks on the go FIFO: create() returns
 *              there, nothing of the workload has run. start() writes "go"; the
 *              poststart hook writes "S" once the workload's process exists.
 *   The runtime's exit status is the workload's; its stdio is the supervisor's.
 *
 * Teardown on every path: the runtime's own `kill --all` and `delete --force`
 * (run inside its mount namespace), then cgroup.kill of the cell's leaves, which
 * hold the runtime, its sandbox, gofer and hooks. When the supervisor is SIGKILLed
 * the death signal takes the runtime, whose sandbox and gofer die with it, the
 * private mount namespace goes with its last process, and the next supervisor's
 * run-registry sweep kills whatever is left in the registered leaves.
 *
 * The files: oci_run.c (these operations), oci_child.c (the child that becomes
 * the runtime), oci_root.c (the cell's root: isolate/mount.h builds it),
 * oci_hook.h (the hooks and FIFOs), oci_log.h (the runtime's error, masked),
 * oci_tool.h (the runtime's short commands, cached facts about its binary),
 * oci_bundle.h (config.json), oci_seccomp.h (linux.seccomp). */
#ifndef CELLOS_OCI_RUN_H
#define CELLOS_OCI_RUN_H

#include "backend/backend.h"
#include "backend/oci_seccomp.h"

#define OCI_RUN_MAX_GLOBAL 8

struct oci_runtime {
	const char *kind;               /* "gvisor", "oci": /run/cellos/<kind> */
	const char *name;               /* "runsc", "crun", "runc" (messages) */
	const char *path;               /* absolute path of the binary */
	/* Global options before the subcommand (runsc: --network, --platform). */
	const char *global[OCI_RUN_MAX_GLOBAL + 1];
	/* The log option: "--log-fd=3" style (runsc) or a path to /proc/self/fd/3. */
	const char *log_opt;
	bool log_format_json;           /* add --log-format=json */
	/* The workload's pids limit goes in as RLIMIT_NPROC (gVisor counts the
	 * workload's tasks inside the Sentry; a host pids.max would count the
	 * Sentry's own threads instead). */
	bool pids_as_rlimit;
	/* The runtime applies linux.resources to a cgroup of its own (runc): the
	 * cell's leaves then only hold the processes, without limits. */
	bool runtime_limits;
	const char *rootfs;             /* the cell's root on the host; NULL: "/" */
	/* The workload runs on the host kernel (runc, crun): a user namespace maps
	 * the container's root to the run's own uid, so it is never host root
	 * (SPEC §3). gVisor's workload is no host process at all. */
	bool map_user;
	/* The workload's system-call filter, written into the bundle as linux.seccomp
	 * in this runtime's dialect; NULL: none. */
	const struct seccomp_policy *seccomp;
	enum oci_seccomp_dialect seccomp_dialect;
	/* A bind's mount point must exist in the root it is given even where a tmpfs
	 * of the container covers it (runsc: its gofer binds the source into the
	 * host-side root, the tmpfs lives in the Sentry). */
	bool bind_points_in_root;
};

/* The backend operations, parameterised by the runtime create() was given. */
int oci_run_create(struct cell *c, const struct oci_runtime *rt, struct err *e);
int oci_run_start(struct cell *c, struct spawn_result *r, struct err *e);
int oci_run_wait_fd(struct cell *c);
void oci_run_collect(struct cell *c, struct run_status *st);
void oci_run_signal(struct cell *c, int sig);
int oci_run_read_counters(struct cell *c, struct nft_counter **out, size_t *n, struct err *e);
void oci_run_destroy(struct cell *c);

#endif
