/* The OCI runtime bundle of a cell (config.json, OCI runtime-spec 1.0.2).
 *
 * Pure: builds the document with jansson from the cell and a few host-side
 * choices, and knows nothing of the runtime that will run it (runsc, crun and
 * runc all take it). What it says:
 *   process   argv, the cell's complete (cleared) environment, cwd, uid/gid 0 of
 *             the container, no capabilities at all, noNewPrivileges, rlimits
 *             (NOFILE 1024; CORE 0, so no secret ever lands in a core dump);
 *   root      `root`, read-only;
 *   mounts    fresh /proc, /dev (+ /dev/pts, /dev/shm), /sys (ro), tmpfs /tmp and
 *             /run, a tmpfs over run.workingDirectory (the workspace) and the
 *             run.mounts binds (rbind, ro/rw, nosuid, nodev), those two outermost
 *             first;
 *   hostname  the cell id, cut to 64 bytes;
 *   linux     pid, network, ipc, uts and mount namespaces (and user, mapping the
 *             container's root to the run's uid, when asked), run.limits as
 *             linux.resources (applied by a runtime given `cgroups_path`), the
 *             usual masked and read-only /proc paths, the workload's system-call
 *             filter as linux.seccomp (backend/oci_seccomp.h);
 *   hooks     the caller's prestart / poststart hooks (how the supervisor learns
 *             when the container exists and when the workload runs). */
#ifndef CELLOS_OCI_BUNDLE_H
#define CELLOS_OCI_BUNDLE_H

#include <jansson.h>

#include "backend/backend.h"
#include "backend/oci_seccomp.h"

/* A hook: argv[0] is the absolute path of the program. */
struct oci_hook {
	const char *const *argv;        /* NULL-terminated */
	const char *const *env;         /* NULL-terminated, may be NULL */
};

/* A run.mounts entry as the runtime binds it. */
struct oci_bind {
	const char *source;             /* the path the runtime binds (as it sees it) */
	const char *destination;        /* clean absolute path in the container */
	bool read_only;
};

struct oci_bundle_args {
	const struct cell *cell;        /* argv, envp, limits, spec (id, workingDirectory) */
	const char *root;               /* root.path, as the runtime will see it */
	const char *cwd;                /* process.cwd (absolute) */
	const char *cgroups_path;       /* linux.cgroupsPath; NULL: none */
	long long pids_rlimit;          /* > 0: RLIMIT_NPROC (runtimes that count the workload's
	                                 * tasks themselves, gVisor); 0: none */
	const struct oci_hook *prestart;  /* NULL: none */
	const struct oci_hook *poststart; /* NULL: none */
	bool map_user;                  /* a user namespace: root of the container = cell->uid/gid */
	const struct seccomp_policy *seccomp; /* linux.seccomp; NULL: none */
	enum oci_seccomp_dialect seccomp_dialect;
	const struct oci_bind *binds;   /* run.mounts, outermost first */
	size_t n_binds;
	const char *resolv_conf;        /* bound read-only over /etc/resolv.conf (the gateway's DNS
	                                 * proxy, SPEC §6.4); NULL: the root's own */
};

/* The config.json document (new reference), or NULL with e set. */
json_t *oci_bundle_config(const struct oci_bundle_args *a, struct err *e);

/* Serialised once, for writing into the bundle directory (free() it). */
char *oci_bundle_text(const struct oci_bundle_args *a, struct err *e);

#endif
