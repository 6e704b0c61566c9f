/* One cell of an OCI runtime: the state oci_run.c (the backend operations),
 * oci_child.c (the process that becomes the runtime) and oci_root.c (the cell's
 * root) share. Private to those files. */
#ifndef CELLOS_OCI_CELL_H
#define CELLOS_OCI_CELL_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

#include "backend/oci_bundle.h"
#include "backend/oci_hook.h"
#include "backend/oci_run.h"
#include "isolate/cgroup.h"
#include "hostmount/hostmount.h"
#include "isolate/runreg.h"

struct ocirt {
	const struct cell *cell;
	struct oci_runtime rt;
	char global[OCI_RUN_MAX_GLOBAL][128]; /* rt.global points here (the caller's may not outlive create) */
	char base[PATH_MAX];     /* /run/cellos/<kind>: a private tmpfs in the runtime's mount ns */
	char dir[PATH_MAX];      /* base/<name> */
	pid_t pid;               /* the runtime's `run` process */
	int pidfd;
	int mntns;               /* its mount namespace (holds bundle, state, rootfs) */
	struct oci_hooks hooks;  /* ev/go: the runtime's hooks and us (oci_hook.h) */
	int statefd;             /* the runtime's state directory (empty once it cleaned up) */
	int logfd;               /* memfd the runtime logs to */
	int sigfd;               /* SIGTERM/SIGINT, polled but never read (the supervisor reads) */
	bool exited;
	int wstatus;
	struct rusage ru;
	pid_t sandbox_pid;
	int64_t deadline;        /* create/start bound: the cell's TTL */
	struct cgroup_cell cg;
	struct runreg reg;
	char program[PATH_MAX];  /* argv[0] resolved in the cell's root */
	int resolve_errno;       /* 0, ENOENT or EACCES */
	bool fix_stdio[3];       /* regular-file stdout/stderr we gave the runtime in append mode */
	/* run.mounts: the opened sources (until the child has them) and the binds
	 * config.json names: <dir>/mounts/<i>, where the child attaches them. */
	struct hostmounts hm;
	struct oci_bind *binds;
	size_t n_binds;
};

/* What the child that becomes the runtime is given (a copy of our memory). */
struct oci_child_args {
	const struct ocirt *o;
	pid_t parent;                  /* to notice a parent that died before PDEATHSIG was armed */
	const char *root_src;          /* the cell's root on the host */
	const char *workdir;           /* run.workingDirectory or NULL */
	const char *config;            /* config.json text */
	const char *const *argv;       /* the runtime's command line */
	int sync;                      /* its end of the socketpair */
	int peer;                      /* our end (the child closes its copy) */
	int logfd;
};

/* The child's whole life (isolate/cellproc.h): the runtime's private mount
 * namespace, then exec of the runtime. Protocol over `sync`: "R" ready (or
 * "E<message>"); the parent answers "X"; EOF means exec happened, "E<message>"
 * that it failed. */
_Noreturn void oci_child_main(void *arg);

/* ---- the cell's root (oci_root.c) ---- */

/* Whether the absolute `path` lies in a directory the runtime mounts afresh
 * (/proc, /sys, /dev, /tmp, /run): nothing of the host's is there. */
bool oci_root_private(const char *path);
/* The workload's working directory: the workspace, else ours when the cell
 * sees it (the stub backend's rule), else "/". */
void oci_root_cwd(const struct cell *c, const struct oci_runtime *rt, char *out, size_t size);
/* execvp's lookup of argv[0], done on the host in the cell's root (the runtime
 * does the same inside): o->program, and 0, ENOENT or EACCES. */
int oci_root_resolve(struct ocirt *o, const struct cell *c, const char *cwd);
/* Build the cell's root at `dst` (isolate/mount.h, cellfs_build_scaffold). */
int oci_root_build(const struct oci_child_args *a, const char *dst, struct err *e);

#endif
