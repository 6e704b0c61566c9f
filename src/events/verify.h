/* Verification of a signed event log (SPEC §9, `cellctl verify`).
 *
 * Feed it the log line by line, then call verifier_finish: it checks every
 * signature, and for every run (events grouped by data.runId, so runs may be
 * interleaved) the sequence (no gap, duplicate or reordering), the digest chain
 * (cellosprevdigest = SHA-256 of the canonical form of the previous inner event),
 * and that the run ended (its last event is lifecycle.v1.destroyed, or
 * lifecycle.v1.failed for a run that failed before starting). Problems are
 * collected with their line numbers and sorted by line.
 *
 * An unsigned log (no keys: `unsigned_log`) is checked for its chains only:
 * its events are taken as they are, and a signed envelope is not checked but
 * noted (first_signed_line), since its signature could not be verified. */
#ifndef CELLOS_VERIFY_H
#define CELLOS_VERIFY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "util/err.h"

struct verify_problem {
	size_t line;            /* 1-based; 0: the log as a whole */
	size_t order;           /* insertion order, the tie-break when sorting */
	char *msg;
};

struct verify_key;
struct verify_run;

struct verifier {
	struct verify_key *keys;
	size_t n_keys;
	unsigned char *hmac_key; /* sodium_malloc'd, or NULL */
	size_t hmac_key_len;
	json_t *run_index;       /* runId -> index into runs */
	struct verify_run *runs;
	size_t n_runs, cap_runs;
	struct verify_problem *problems;
	size_t n_problems, cap_problems;
	size_t n_events;         /* lines that held an event that was checked */
	bool unsigned_log;       /* set before the first line: chains only, no signatures */
	size_t first_signed_line; /* unsigned_log: the first signed envelope met, 0: none */
	bool oom;
};

int verifier_init(struct verifier *v, struct err *e);
void verifier_free(struct verifier *v);

/* A keys file: one JSON object {"<kid>": "<base64url Ed25519 public key>", ...},
 * or several such objects one after the other (e.g. one line per `cellctl keygen`). */
int verifier_load_keys(struct verifier *v, const char *text, size_t len, struct err *e);
/* The HMAC-SHA256 key (any length); copied into locked memory. */
int verifier_set_hmac_key(struct verifier *v, const unsigned char *key, size_t len, struct err *e);

/* One line of the log (without its newline). */
void verifier_line(struct verifier *v, size_t lineno, const char *line, size_t len);
/* A problem the caller found itself (e.g. a last line without its newline). */
void verifier_problem(struct verifier *v, size_t lineno, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* End of the log: per-run checks, then problems sorted by line. */
void verifier_finish(struct verifier *v);

#endif
