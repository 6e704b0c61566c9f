/* Admission (SPEC §2, §4 phase 1): every check decided before a cell exists,
 * in one place. A run of the supervisor, `cellos-supervisor --validate` and
 * `cellctl validate` all go through admission_load, so what one accepts the
 * others accept too.
 *
 *   admission_check  the checks that need the configuration and the document
 *                    together: the deployment profile, secret delivery, the
 *                    secrets the broker can see (validation only), export
 *                    targets and host reads, host mounts (run.mounts)
 *   admission_load   the configuration from the environment, the document
 *                    from a file or stdin, then admission_check: every problem
 *                    and every warning collected, nothing printed
 *   the policy pack  CELLOS_POLICY_PACK (SPEC §12, policy.h): loaded with the
 *                    configuration, its rules checked after every other check
 *   admission_print_json  the `--format json` object of SPEC §2
 *
 * Problems and warnings are one line each, "field.path: message" (or a line
 * that starts with the variable it names), as the supervisor logs them. */
#ifndef CELLOS_ADMISSION_H
#define CELLOS_ADMISSION_H

#include <stdbool.h>
#include <stdio.h>

#include "config.h"
#include "policy.h"
#include "spec/spec.h"
#include "util/err.h"

enum admission_mode {
	ADMIT_RUN,      /* the cell is about to run */
	/* Nothing will run: also check now what a run finds out only in a later
	 * phase. A secret the broker cannot see is such a check: a run reports it
	 * in its secrets phase, with a lifecycle.v1.failed event (SPEC §4). */
	ADMIT_VALIDATE,
};

struct admission {
	struct config cfg;        /* loaded even when invalid: always config_free'd */
	struct spec spec;         /* valid only when have_spec */
	struct policy_pack pack;  /* CELLOS_POLICY_PACK, valid only when have_pack */
	bool have_cfg, have_spec, have_pack; /* the configuration / document / pack is valid */
	/* How many of `problems` are violations of the pack (they come last). When
	 * they are all there is, the cell was denied by policy (SPEC §12): a run
	 * records it in a lifecycle.v1.failed event. */
	size_t n_policy;
	bool refused;             /* some check failed (even if its message was lost to OOM) */
	struct problems problems;
	struct problems warnings;
};

/* The hardened profile's requirements (SPEC §7) on the configuration and the
 * document's argv[0] (NULL: nothing runs): -1 and one line naming every missing
 * piece, 0 when not hardened or nothing is missing. */
int admission_check_profile(const struct config *cfg, const char *argv0, struct err *e);

/* The checks on a valid configuration and a valid document. Every problem is
 * added to *probs; -1 when there was any. Warnings are logged (log_warn). */
int admission_check(const struct config *cfg, const struct spec *spec, enum admission_mode mode,
		    struct problems *probs);

/* Every problem is a violation of the policy pack (admission_load returned 1). */
bool admission_denied_by_policy(const struct admission *a);

/* Configuration, document (`path`, "-" = stdin), checks. Returns 0 when the
 * document is admitted, 1 when there are problems (a->problems), -1 when the
 * document cannot be read at all (*e: an I/O error, not a problem of the
 * document). In every case release *a with admission_free. */
int admission_load(struct admission *a, const char *path, enum admission_mode mode, struct err *e);

void admission_free(struct admission *a);

/* {"valid", "problems": [{"path", "message"}], "warnings": [...], "summary": {...}}
 * as one line on `out`. -1 when it could not be built or written. */
int admission_print_json(const struct admission *a, FILE *out);

#endif
