/* How the OCI runtime tells the supervisor where it stands, and waits for it:
 * two OCI hooks (runtime-spec config.md#posix-platform-hooks) and two FIFOs in
 * the cell's runtime directory.
 *
 *   prestart ("cellos-gate"): reads the container state the runtime hands every
 *       hook on stdin, writes "C<state>\n" to `ev`, then blocks reading `go`: on
 *       "go" it exits 0 and the runtime starts the workload; on anything else
 *       (or EOF) it fails, and the runtime undoes the container. So create()
 *       returns with the container made and nothing of the workload run.
 *   poststart ("cellos-started"): writes "S\n" once the workload's process exists.
 *
 * The hooks are two lines of /bin/sh, not a program of ours: the runtime runs
 * them from its own context (runsc: on the host, with the bundle's PATH), where
 * /bin/sh is always present and a helper binary would have to be located,
 * installed and kept in step with the supervisor. The script is constant; the
 * FIFO paths reach it as positional parameters ("$1", "$2"), never spliced into
 * its text, so no path can change what it does. `1<>` opens a FIFO for writing
 * without blocking on a reader. */
#ifndef CELLOS_OCI_HOOK_H
#define CELLOS_OCI_HOOK_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "backend/oci_bundle.h"
#include "util/err.h"

struct oci_hooks {
	/* For the bundle (oci_bundle_args.prestart, .poststart). */
	struct oci_hook gate, started;
	/* Our ends of the FIFOs (after oci_hooks_open), -1 before. */
	int ev, go;
	bool gate_open;                /* "go" was written */
	char buf[4096];                /* what ev said that was not consumed yet */
	size_t len;
	/* Storage behind gate and started. */
	char ev_path[PATH_MAX + 8], go_path[PATH_MAX + 8];
	const char *gate_argv[7], *started_argv[6];
};

/* The hooks of a cell whose runtime directory is `dir` (as the runtime sees it). */
void oci_hooks_init(struct oci_hooks *h, const char *dir);

/* Make the FIFOs in `dir` (in the runtime's mount namespace). -1 with errno, the
 * failing path in `failed`. */
int oci_hooks_make(const char *dir, char *failed, size_t size);

/* Open our ends from outside: `root` is the directory the runtime's view is
 * reached through (/proc/<pid>/root). -1 with errno. */
int oci_hooks_open(struct oci_hooks *h, const char *root, const char *dir);

/* Let the prestart hook go on (-1 with errno), or refuse: the runtime undoes the
 * container. */
int oci_hooks_release(struct oci_hooks *h);
void oci_hooks_refuse(struct oci_hooks *h);

/* What else may end a wait: the runtime's process, and a stop request. */
struct oci_hooks_waiter {
	const char *name;              /* the runtime (messages) */
	int pidfd;                     /* the runtime's process */
	const bool *exited;            /* set by reap() once it is reaped */
	void (*reap)(void *arg);       /* called when pidfd is readable */
	void *arg;
	int sigfd;                     /* SIGTERM/SIGINT (util/stopsig.h), -1: not watched */
	int64_t deadline;              /* mono_ms */
};

/* Wait for the line starting with `want` ('C' or 'S') on ev. 1: got it (in
 * `line`); 0: the runtime ended; -1: deadline, stop request or poll failure (e). */
int oci_hooks_wait(struct oci_hooks *h, char want, char *line, size_t size, const struct oci_hooks_waiter *w,
		   struct err *e);

void oci_hooks_close(struct oci_hooks *h);

#endif
