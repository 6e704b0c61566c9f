/* The end line (SPEC §4): every run that does not succeed ends with one human
 * line on stderr naming the cell id and how it ended, e.g.
 *
 *   cellos-supervisor: cell ci-build-42 failed: out of memory (limit 256 MiB, peak 256 MiB) after 1.2 s
 *
 * The lifecycle fills a struct outcome as the run goes (the same facts its
 * events carry) and hands it to outcome_report() once, after the cell is gone
 * and the last event is written: the line is the last one the supervisor
 * writes, and nothing the supervisor does waits for it. A successful run
 * (reason NULL) prints nothing. The wording of each case is in outcome.c. */
#ifndef CELLOS_OUTCOME_H
#define CELLOS_OUTCOME_H

#include <stddef.h>
#include <stdint.h>

struct outcome {
	const char *cell_id;
	/* destroyed.reason / failed.reason (SPEC §8.1); NULL: the run succeeded. */
	const char *reason;
	/* Before `started` (lifecycle.v1.failed): the phase, and its message. */
	const char *phase;
	char message[1024];

	/* After `started`: how the workload ended. */
	int exit_status;           /* nonzero_exit: the workload's status */
	int term_signal;           /* signal_killed: the signal that ended its main process */
	const char *program;       /* spawn_failed: argv[0] */
	int spawn_errno;           /* spawn_failed: exec's errno; 0: `message` says why */
	long long mem_limit;       /* oom: the effective memoryMaxBytes, 0: none */
	long long mem_peak;        /* oom: the cell's peak, -1: unknown */
	long long timeout_ms;      /* timeout: the limit, and where it came from */
	const char *timeout_from;  /* "run.timeoutMs" or "CELLOS_RUN_TIMEOUT_MS" */
	long long ttl_seconds;     /* ttl_exceeded */
	int sup_signal;            /* supervisor_terminated: SIGTERM/SIGINT */
	int64_t elapsed_ms;        /* "after …": see outcome.c; -1: not said */

	/* Export (SPEC §10): artifacts that did not leave the cell, said whatever
	 * the reason (a failed workload stays the reason). */
	size_t export_failed, export_total;
	char export_names[256];    /* their names, comma-separated (cut to fit) */
};

/* The line without the program prefix and newline ("cell X failed: …") into
 * buf; returns its length, 0 (and "") for a run that succeeded. */
size_t outcome_format(const struct outcome *o, char *buf, size_t size);

/* Write the end line (util/log.h: log_end) when the run did not succeed. */
void outcome_report(const struct outcome *o);

#endif
