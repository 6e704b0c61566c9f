/* Opening an artifact for export as the cell sees it (SPEC §10).
 *
 * The workload is hostile: by the time export runs it may have replaced the
 * artifact with a symlink (to a host file, or out of the workspace), a FIFO (an
 * open that never returns), a device, or a file far larger than anything we
 * should read. The open happens in a short-lived child of the supervisor that
 * joins the cell's user and mount namespaces (the supervisor itself never
 * changes namespace), takes the workload's identity and drops every capability
 * (so it can open nothing the workload could not), resolves the path beneath
 * the workspace with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
 * RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV), checks that it is a regular file of
 * at most max_bytes without opening it for reading (O_PATH), then opens that
 * same file and passes the descriptor back over a socketpair (SCM_RIGHTS).
 *
 * Without a mount namespace (an export-only cell, or a stub cell without one)
 * the path is a host path: it must lie under one of the operator's prefixes,
 * and is opened as the run's unprivileged uid, never with the supervisor's
 * privileges. */
#ifndef CELLOS_ARTIFACT_H
#define CELLOS_ARTIFACT_H

#include <sys/types.h>

#include "util/err.h"

struct artifact_view {
	int userns, mntns;         /* the cell's namespaces, or -1: the supervisor's own */
	/* The identity to open with when there is no user namespace to take the
	 * cell's root from: the run's host uid/gid (never 0). */
	uid_t uid;
	gid_t gid;
	const char *workspace;     /* the path must lie inside it (resolved beneath it); NULL: anywhere from "/" */
	/* mntns < 0 (a host path): the path must lie under one of these
	 * (CELLOS_EXPORT_HOST_PATHS_ALLOW, path_clean form); NULL: nowhere. */
	char *const *host_allow;
	long long max_bytes;
};

/* Open `path` (absolute) as `v` says. On success *fd is an O_RDONLY descriptor
 * of a regular file of at most v->max_bytes. Messages name the path and why,
 * e.g. "a symbolic link is on the path (not followed)". */
int artifact_open(const struct artifact_view *v, const char *path, int *fd, struct err *e);

#endif
