/* The cell's own init (the "shim"): the first process of every stub cell.
 *
 * It is created by clone3() with the cell's namespaces (so it is PID 1 when the
 * cell has a PID namespace), finishes the in-cell setup (the cell's root, see
 * isolate/mount.h; hostname; the working directory; the run's own uid, a fresh
 * session keyring; it drops every privilege; then argv[0] is resolved and
 * checked once, in the final root and cwd), spawns the workload on request
 * (which installs the seccomp filter and execs exactly the checked file),
 * forwards SIGTERM/SIGINT to it, reaps orphans, and reports the workload's wait
 * status and resource usage to the supervisor.
 *
 * Protocol over `ctl` (SOCK_SEQPACKET, one message per record):
 *   supervisor -> init : 'A' do the in-cell setup     'B' start the workload
 *                        ('B' + struct sock_filter[]: under this seccomp filter)
 *   warm cell (args.warm): 'W' build the document-independent part, then
 *                        'A' + cellinit_pack() record: the rest; each answered
 *                        like 'A' ('R', 'S', 'D')
 *   supervisor -> init : 'N' + the cell's network namespace (SCM_RIGHTS), during
 *                        setup, with a private netns: join it before mounting /sys
 *   init -> supervisor : 'R' setup done, or 'S' + int errno + text: setup failed
 *                        (errno 0: the text is complete), or 'D' + text: argv[0]
 *                        refused by CELLOS_RUN_ARGV0_ALLOW_PREFIXES
 *   workload -> supervisor (same socket, before exec):
 *                        'P' + resolved program path (with SCM_CREDENTIALS: its pid)
 *                        'E' + int errno: exec failed
 *   The socket reaching EOF after 'P' means exec succeeded (the end is CLOEXEC).
 * `report` (pipe): one struct cellinit_report when the workload's main process ends. */
#ifndef CELLOS_CELLINIT_H
#define CELLOS_CELLINIT_H

#include <stdbool.h>
#include <sys/resource.h>
#include <sys/types.h>

struct cellfs_mount;

struct cellinit_args {
	unsigned ns;               /* NS_* bits of the cell (isolate/ns.h) */
	const char *hostname;      /* with NS_UTS */
	const char *workdir;       /* NULL: inherit the supervisor's cwd */
	const char *home;          /* HOME of the workload (its passwd entry without a user namespace) */
	const char *path;          /* PATH used to look up a bare argv[0] */
	char *const *argv;
	char *const *envp;
	int ctl;                   /* init's end of the control socket */
	int report;                /* write end of the report pipe */
	int cgroup_kill;           /* open cgroup.kill of the leaf, or -1 */
	pid_t supervisor;          /* to detect a supervisor that died before we armed PDEATHSIG */
	uid_t uid;                 /* the run's own host identity: without a user namespace */
	gid_t gid;                 /* the init and the workload become it (never host root) */
	/* The cell may get the network gateway (SPEC §6.4) and has a mount namespace:
	 * the gateway's address comes with 'N' and becomes the nameserver of the
	 * cell's /etc/resolv.conf; 0.0.0.0 means no gateway after all. */
	bool gw_resolv;
	int stdio[2];              /* the cell's fds 1 and 2: a relay pipe, or -1: ours (struct cell) */
	/* Containment (isolate/mount.h, caps.h, seccomp.h, argv0.h). */
	char *const *argv0_prefixes;          /* NULL: any program */
	char *const *hide;                    /* host paths to mask in the cell's root, or NULL */
	const struct secrets *secrets;        /* secretDelivery "file" (isolate/secretfs.h), or NULL */
	const struct cellfs_mount *mounts;    /* run.mounts, staged by the supervisor (isolate/mount.h) */
	size_t n_mounts;
	/* A warm cell (SPEC §11): the init is cloned before there is a document,
	 * builds the document-independent part on 'W' and waits; 'A' then carries
	 * hostname, workdir, home, path, argv, envp and argv0_prefixes
	 * (cellinit_pack). No secrets dir, no run.mounts, no gateway: those cells
	 * start cold (docs/DESIGN.md, "Warm cells"). */
	bool warm;
};

/* The largest claim record (the workload's argv and environment): a larger one
 * makes the supervisor start the cell cold. */
#define CELLINIT_PACK_MAX (192 * 1024)

/* The document-dependent fields of `a` as one record (malloc'd, *len bytes);
 * -1 when they do not fit CELLINIT_PACK_MAX - 1. */
int cellinit_pack(const struct cellinit_args *a, char **out, size_t *len);
/* Those fields of `a` from a record: pointers into `buf`, which must outlive
 * them (the lists are malloc'd). -1 on a malformed record. */
int cellinit_unpack(char *buf, size_t len, struct cellinit_args *a);

struct cellinit_report {
	int wstatus;
	struct rusage ru;
};

_Noreturn void cellinit_main(const struct cellinit_args *a);

#endif
