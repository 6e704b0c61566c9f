/* The lifecycle of one cell (SPEC §4): phases, failure paths and the teardown
 * guarantees. Returns the supervisor's exit status (SPEC §1). */
#ifndef CELLOS_SUPERVISOR_H
#define CELLOS_SUPERVISOR_H

#include "config.h"
#include "events/event.h"
#include "spec/spec.h"

/* Signals the supervisor turns into a graceful teardown; main blocks them before
 * anything else so none is lost between start-up and the run. */
void supervisor_block_signals(void);

int supervisor_run(const struct config *cfg, const struct spec *spec, struct event_stream *es);

#endif
