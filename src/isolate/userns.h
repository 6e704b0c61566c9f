/* A cell's user namespace, from the supervisor's side: who owns it and what its
 * one mapping is (SPEC §3: the workload's identity on the host is the run's own
 * unprivileged uid/gid, never 0). */
#ifndef CELLOS_USERNS_H
#define CELLOS_USERNS_H

#include <stdbool.h>
#include <sys/types.h>

#include "util/err.h"

/* Map root inside the user namespace of `pid` (its only uid/gid) to `uid`/`gid`
 * on the host. An unprivileged supervisor may map only itself, and the kernel
 * then requires setgroups to be denied: it maps its own ids instead. */
int userns_map(pid_t pid, uid_t uid, gid_t gid, struct err *e);

/* The effective ids of this thread while it creates a user namespace. The
 * kernel makes the namespace's *owner* the creator's euid, and charges its
 * per-user counters (inotify instances, namespaces, ...) to the owner at every
 * level above it: owned by root, a cell could exhaust host root's budget. So
 * the creator becomes the run's uid/gid for the clone, keeping its capabilities
 * (SECBIT_NO_SETUID_FIXUP) for what else the clone does (CLONE_INTO_CGROUP),
 * and returns to root right after. Only for a single-threaded caller. */
struct userns_owner {
	int securebits;
	bool active;
	/* The kernel clears a parent-death signal on any change of credentials:
	 * one our parent set (cellos-agent: its cells die with it) is re-armed
	 * when we return to root. */
	int pdeathsig;
	pid_t ppid;
};
int userns_become_owner(struct userns_owner *o, uid_t uid, gid_t gid, struct err *e);
/* Back to root (no-op when become_owner changed nothing); aborts when it cannot. */
void userns_end_owner(struct userns_owner *o);

/* Whether clone3() failed because the kernel refuses (this caller) a user
 * namespace: disabled (max_user_namespaces 0: ENOSPC), restricted by an LSM or
 * sysctl (EPERM, EACCES), too deep or too many (EUSERS), not built (EINVAL). */
bool userns_refused(int errnum);

#endif
