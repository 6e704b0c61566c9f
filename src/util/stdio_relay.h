/* The workload's stdout/stderr when the supervisor's are a terminal (SPEC §6.1:
 * the terminal is never shared).
 *
 * A workload holding the operator's terminal could change its settings (clear
 * ISIG, IXON), stop its output (tcflow TCOOFF) so that the supervisor blocks on
 * its next line, read the operator's keystrokes (a terminal is opened O_RDWR, so
 * its stdout reads too), or change its line discipline; runsc forwards such
 * ioctls to the host fd. So for each of the supervisor's stdout/stderr that is a
 * terminal, the cell gets the write end of a pipe instead (every backend dup2s it
 * in the child that becomes the cell, stdio_relay_install), and the supervisor
 * copies what comes out to its own stdout/stderr in its wait loop, then drains
 * what is left once the cell is gone. A stdout/stderr that is not a terminal is
 * passed through as it is: no copy, byte-exact, no cost (the fast path).
 *
 * When stdout and stderr are the same terminal one pipe serves both, so the
 * interleaving of the two is the workload's own, as on the terminal itself.
 *
 * The relay writes only when the terminal can take data (POLLOUT): output the
 * operator stopped (^S) holds the workload's output back, never the supervisor,
 * whose deadlines still fire. Only the final drain, after the cell is stopped,
 * waits for such a terminal: the operator's choice, as for the supervisor's own
 * log lines. The workload has no way to stop it. */
#ifndef CELLOS_STDIO_RELAY_H
#define CELLOS_STDIO_RELAY_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>

#include "util/err.h"

/* Entries stdio_relay_pollfds() fills, one per stream (fd -1 when idle). */
#define STDIO_RELAY_POLLFDS 2

struct relay_stream {
	int from;                  /* our read end of the cell's pipe (O_NONBLOCK); -1: none, or at EOF */
	int to;                    /* STDOUT_FILENO or STDERR_FILENO */
	size_t off, len;           /* buf[off, len) is still to be written to `to` */
	bool dropping;             /* writing to `to` failed: what comes is read and dropped */
	char buf[4096];
};

struct stdio_relay {
	struct relay_stream s[STDIO_RELAY_POLLFDS];
	/* What the cell's fds 1 and 2 are to be: a pipe's write end, or -1 (ours,
	 * passed through). Ours until stdio_relay_close_cell_ends(). */
	int cell[2];
};

/* Nothing open: every other function may be called on it. */
void stdio_relay_init(struct stdio_relay *r);
/* A pipe for each of our fds 1 and 2 that is a terminal (one for both when they
 * are the same one). On failure nothing is left open. */
int stdio_relay_open(struct stdio_relay *r, struct err *e);
/* Once the backend's create has returned (either way), the cell holds its own
 * copies of the write ends: close ours, so that the relay sees EOF when the last
 * process of the cell is gone. */
void stdio_relay_close_cell_ends(struct stdio_relay *r);
/* Fill p[0 .. STDIO_RELAY_POLLFDS) for poll(). */
void stdio_relay_pollfds(const struct stdio_relay *r, struct pollfd *p);
/* Move what poll() found ready in those entries. Never blocks. */
void stdio_relay_pump(struct stdio_relay *r, const struct pollfd *p);
/* Once no process of the cell is left: copy whatever the pipes still hold; never
 * waits for more (a writer that is somehow still alive is not waited for). */
void stdio_relay_drain(struct stdio_relay *r);
/* Drain, then close everything. */
void stdio_relay_close(struct stdio_relay *r);

/* In the child that becomes the cell (stub: the cell's init; gvisor/oci: the
 * runtime): make cell[0] and cell[1] its fds 1 and 2, where they are not -1.
 * Async-signal-safe. Returns -1 with errno on failure. */
int stdio_relay_install(const int cell[2]);

#endif
