/* The cell's filesystem (SPEC §6.1), built by the cell's init inside the cell's
 * fresh mount namespace, before anything of the workload runs.
 *
 * The cell's root is a new tmpfs (the "scaffold") holding only what we put there:
 *
 *   /usr /etc /opt            host directories, bind-mounted read-only, nosuid, nodev
 *                             (recursively: every submount too)
 *   /bin /sbin /lib*          the host's symlinks recreated (merged-/usr hosts), or
 *                             read-only binds where they are real directories
 *   /proc                     a new procfs (of the cell's PID namespace when it has one)
 *                             with kcore, sysrq-trigger, keys, ... masked and /proc/sys,
 *                             /proc/irq, /proc/bus, /proc/fs read-only
 *   /sys                      a new read-only sysfs (of the cell's network namespace),
 *                             /sys/firmware masked; absent where the kernel refuses one
 *   /dev                      read-only tmpfs: null zero full random urandom tty, the
 *                             fd/stdin/stdout/stderr/ptmx links, a private devpts,
 *                             a writable /dev/shm
 *   /tmp                      private writable tmpfs
 *   /var/tmp -> ../tmp, /run  (empty)
 *   run.workingDirectory      private writable tmpfs, any absolute path: missing
 *                             parents are created in the scaffold (never on the host),
 *                             owned by the workload
 *   /etc/passwd, /etc/group   without a user namespace: the host's, plus an entry
 *                             `cellos` for the run's uid/gid (read-only copies)
 *   /etc/resolv.conf          under the network gateway: the cell's DNS proxy (read-only)
 *   run.mounts                host trees the supervisor opened and staged
 *                             (hostmount/hostmount.h), at their targets, nosuid, nodev,
 *                             read-only unless asked otherwise; outermost first, and
 *                             after the workspace when inside it. Missing parents and
 *                             mount points are created only on the cell's own
 *                             filesystems (the scaffold, /tmp, the workspace)
 *
 * Secrets of the host inside the bound directories (/etc/shadow, SSH host keys, ...)
 * and the supervisor's own files that happen to lie there (`hide`) are masked: a
 * file by an inaccessible read-only device node, a directory by an empty mode-000
 * tmpfs, so opening either fails with EACCES. /root, /home, /var, /srv, /mnt, /media
 * and /run of the host are simply not there.
 *
 * The scaffold is then made read-only and the init pivots into it; the host's root
 * is detached, so nothing of the host is reachable but the read-only binds. */
#ifndef CELLOS_MOUNT_H
#define CELLOS_MOUNT_H

#include <stdbool.h>
#include <sys/types.h>

#include "util/err.h"

/* The most run.mounts entries a cell root can take (at least SPEC_MOUNTS_MAX). */
#define CELLFS_MOUNTS_MAX 64

/* One run.mounts entry for the init: a tree the supervisor staged (hostmount/hostmount.h). */
struct cellfs_mount {
	const char *target;       /* clean absolute path in the cell */
	const char *staged;       /* the staged tree, in the mount namespace the init starts in */
	bool dir;                 /* a directory (else a regular file) */
	size_t index;             /* i of spec.run.mounts[i] (messages) */
};

struct cellfs_opts {
	const char *workdir;      /* run.workingDirectory or NULL */
	char *const *hide;        /* NULL-terminated extra absolute paths to mask, or NULL */
	const struct secrets *secrets; /* secretDelivery "file": the secrets dir (secretfs.h), or NULL */
	const struct cellfs_mount *mounts; /* run.mounts in the order they are applied (outermost first) */
	size_t n_mounts;
	/* Owner of what is made for the workload (workspace, secrets), as ids of
	 * the mounting namespace: 0 in a user namespace, else the run's uid/gid. */
	uid_t owner_uid;
	gid_t owner_gid;
	/* Without a user namespace the workload runs under a host uid no file names:
	 * give it a passwd/group entry `cellos` (home `home`) so tools that look
	 * their user up (git, pip, ssh) work. */
	bool add_user;
	const char *home;
	/* Called right before /sys is mounted (a new sysfs shows the network
	 * namespace of its mounter), or NULL. /sys is mounted last, so that the
	 * supervisor can make the cell's network namespace meanwhile. */
	int (*before_sys)(void *arg, struct err *e);
	void *arg;
	/* The cell's /etc/resolv.conf (the gateway's DNS proxy, SPEC §6.4): read
	 * after before_sys returned (which may fill it); NULL or "": the host's
	 * file stays. Bound read-only over the host's file, or where its symlink
	 * points when that lies on the cell's own filesystems (/run/...). */
	const char *resolv_conf;
};

/* Build the cell's root and pivot into it. Must run in a private mount namespace
 * (and PID namespace, for a /proc that shows only the cell), with the privilege to
 * mount there. On return the caller's root and cwd are the cell's "/". */
int cellfs_build(const struct cellfs_opts *o, struct err *e);

/* The same root in two steps, for a warm cell (SPEC §11, docs/DESIGN.md "Warm
 * cells"): begin builds what does not depend on the document (the scaffold,
 * host binds, /dev, /proc, /tmp, the masks incl. `hide`, /sys after
 * before_sys) and pivots into it, the scaffold still writable; end adds the
 * workspace, the secrets dir, the passwd entry and resolv.conf, and makes it
 * read-only. Neither takes run.mounts. Only
 * workdir, secrets, owner, add_user, home and resolv_conf of end's options are
 * read. One begin at a time per process. */
int cellfs_build_begin(const struct cellfs_opts *o, struct err *e);
int cellfs_build_end(const struct cellfs_opts *o, struct err *e);

/* ---- the root an OCI runtime is given (backend/oci_run.h) ----
 *
 * The same scaffold, built the same way (descriptors, the new mount API, nothing
 * created on the host), but for a runtime that mounts the rest itself (/proc,
 * /dev, the workspace, the binds of run.mounts): every top-level entry of
 * `source` bound read-only except those the runtime mounts afresh (`fresh`,
 * made as empty directories), the mount points the runtime needs, and then the
 * whole tree read-only, nosuid, nodev. No pivot: the runtime is given `at`. */
struct cellfs_point {
	const char *path;         /* clean absolute path in the cell */
	bool dir;                 /* a directory, else a regular file */
	const char *field;        /* names the field in messages */
	const char *hint;         /* appended to a refusal, or NULL */
};

struct cellfs_scaffold_opts {
	const char *source;       /* the host tree shown as the cell's root: "/" or a root filesystem */
	const char *const *fresh; /* NULL-terminated top-level names never taken from `source` */
	const struct cellfs_point *points;
	size_t n_points;
};

/* Build it on the directory `at` (in a private mount namespace of the caller's). */
int cellfs_build_scaffold(const char *at, const struct cellfs_scaffold_opts *o, struct err *e);

#endif
