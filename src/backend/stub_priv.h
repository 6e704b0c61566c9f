/* The stub backend's state and the steps its warm cells share with a cold
 * create (stub.c, stub_warm.c). Private to src/backend/stub*.c. */
#ifndef CELLOS_STUB_PRIV_H
#define CELLOS_STUB_PRIV_H

#include <linux/filter.h>
#include <stdbool.h>
#include <sys/types.h>

#include "backend/backend.h"
#include "isolate/cellinit.h"
#include "isolate/cgroup.h"
#include "isolate/runreg.h"

#include "hostmount/hostmount.h"

struct stub {
	pid_t init;          /* the cell's init, as we see it */
	int pidfd;
	int ctl;             /* our end of the control socket */
	int report;          /* read end of the report pipe */
	int netns, mntns;    /* held from create to destroy */
	int userns;          /* with NS_USER: the identity export reads artifacts with */
	struct cgroup_cell cg;
	struct runreg reg;   /* lets the next supervisor clean up if we are SIGKILLed */
	bool reaped;
	struct sock_fprog filter; /* the workload's seccomp filter, sent with 'B' */
	bool launched;       /* 'B' sent (stub_launch) */
	int launch_errno;    /* and why it could not be */
	struct gateway *gw;  /* CELLOS_NETWORK=gateway (isolate/gateway.h), or NULL */
	bool gw_drop;        /* the cell's own ruleset failed (portable): no veth either */
	/* run.mounts, from create until the init is cloned: the opened sources, what
	 * the init is told (in the order applied), and the paths to mask. */
	struct hostmounts hm;
	size_t n_mounts;
	struct cellfs_mount *cm;
	char **targets, **staged;
	char **hide;         /* NULL-terminated */
};

/* stub.c */
/* The init's ends of the control socket and the report pipe, and the leaf's
 * cgroup.kill (or -1): for cellinit_args; the caller closes them after the clone. */
struct stub_init_ends {
	int ctl, report, cgroup_kill;
};
/* Our ends into s->ctl (SO_PASSCRED: the workload's pid comes with 'P') and
 * s->report, the init's into *ends. */
int stub_channels(struct stub *s, struct stub_init_ends *ends, struct err *e);
void stub_close_ends(const struct stub_init_ends *ends);
/* The init's mount and user namespaces (those in `ns`) into s->mntns/s->userns:
 * held from create to destroy. */
int stub_hold_ns(struct stub *s, unsigned ns, struct err *e);
int wait_setup(struct stub *s, struct cell *c, struct err *e);
int apply_limits(struct cell *c, struct stub *s, struct err *e);
int send_netns(struct stub *s, struct err *e);
/* The cell's network namespace into s->netns (isolate/netns.h): with a user
 * namespace (`ns` has NS_USER, s->userns open) owned by it and charged to the
 * run's uid/gid. */
int stub_make_netns(struct stub *s, unsigned ns, uid_t uid, gid_t gid, struct err *e);
pid_t clone_init(struct stub *s, struct cell *c, struct cellinit_args *a, struct err *e);
void stub_destroy(struct cell *c);

/* stub_warm.c: hand this process's warm cell to `c` when it fits it: 0 done
 * (c->priv is the cell, set up for c's document), -1 failed (e; the warm cell
 * is gone), 1 none or it does not fit (then it is destroyed: the caller builds
 * the cell cold). */
int stub_warm_claim(struct cell *c, struct err *e);

#endif
