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
