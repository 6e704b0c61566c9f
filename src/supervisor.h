/* The lifecycle of one cell (SPEC §4): phases, failure paths and the teardown
 * guarantees. Returns the supervisor's exit status (SPEC §1). */
#ifndef CELLOS_SUPERVISOR_H
#define CELLOS_SUPERVISOR_H

#include "config.h"
#include "events/event.h"
#include "policy.h"
#include "spec/spec.h"

/* Signals the supervisor turns into a graceful teardown; main blocks them before
 * anything else so none is lost between start-up and the run. */
void supervisor_block_signals(void);

/* --warm (SPEC §11, docs/DESIGN.md "Warm cells"): before the document, with
 * the configuration alone and the run id of CELLOS_RUN_ID, take the run's uid
 * and build what of its cell does not depend on the document (the stub
 * backend's namespaces, leaves and base root; nothing for other backends or
 * the gateway). The run of supervisor_run takes both. -1 with the reason:
 * nothing is left built (the run is then built cold). */
int supervisor_warm_prepare(const struct config *cfg, struct err *e);
/* Once built: ourselves and the warm cell's init to nice value `prio` (a warm
 * cell is built at a lower priority than the job it will serve). */
void supervisor_warm_priority(int prio);
/* Destroy what supervisor_warm_prepare built that no run took (idempotent). */
void supervisor_warm_discard(void);

/* Run an admitted cell; `pack` is the policy pack that admitted it (NULL: none),
 * named in compliance.summary. */
int supervisor_run(const struct config *cfg, const struct spec *spec, const struct policy_pack *pack,
		   struct event_stream *es);

/* A cell the policy pack denied at admission (SPEC §12): its one
 * lifecycle.v1.failed event (phase admission, reason policy_denied, `message`
 * the violations) and the end line. Returns the exit status, 125. */
int supervisor_deny(const struct config *cfg, const struct spec *spec, const char *message,
		    struct event_stream *es);

#endif
