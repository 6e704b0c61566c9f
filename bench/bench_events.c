/* Events signed and written per second, through the supervisor's own event path
 * (events_emit: envelope, redaction, canonical form, digest chain, signing, the
 * sinks). Configured from the environment exactly like the supervisor
 * (CELLOS_EVENT_SIGNING*, CELL_OS_JSONL_EVENTS, CELL_OS_JSONL_FSYNC, ...).
 *
 * usage: bench-events [N]   (default 20000); N events are timed, then a
 * lifecycle.v1.destroyed ends the run and the sinks are closed, also timed: the
 * JetStream sink takes its last acks there. The sinks are flushed after each
 * event, like the supervisor's wait loop does. Prints one line:
 *   <N> events in <ms> ms: <events/s> events/s (<algorithm>) */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>

#include "config.h"
#include "events/event.h"
#include "events/sign.h"
#include "util/ids.h"
#include "util/log.h"

int main(int argc, char **argv)
{
	long n = argc > 1 ? strtol(argv[1], NULL, 10) : 20000;
	if (n <= 0 || sodium_init() < 0)
		return 2;
	struct config cfg;
	struct err e = {0};
	struct event_stream es;
	if (config_load(&cfg, &e) < 0 || events_open(&es, &cfg, &e) < 0) {
		fprintf(stderr, "bench-events: %s\n", e.msg);
		config_free(&cfg);
		return 2;
	}
	char run_id[37];
	uuid_v4(run_id);
	events_begin_run(&es, "bench-events", run_id);
	/* The size and shape of a command.v1.completed event (about 700 bytes). */
	int64_t t0 = mono_us();
	for (long i = 0; i < n; i++) {
		json_t *d = json_pack("{s:s, s:[s, s, s], s:i, s:I, s:b, s:{s:I, s:I, s:I}}", "specId", "bench-events",
				      "argv", "/usr/bin/make", "-j4", "test", "exitCode", 0, "durationMs", (json_int_t)i,
				      "timedOut", 0, "resourceUsage", "maxRssBytes", (json_int_t)1234567, "userCpuMs",
				      (json_int_t)12, "sysCpuMs", (json_int_t)3);
		events_emit(&es, "command.v1.completed", d, NULL);
		/* As the supervisor's wait loop does between the events it emits. */
		events_flush(&es);
	}
	/* End the run, so that `cellctl verify` accepts the log. */
	events_emit(&es, "lifecycle.v1.destroyed", json_pack("{s:s, s:s}", "specId", "bench-events", "outcome", "succeeded"),
		    NULL);
	enum sign_alg alg = cfg.signing;
	events_close(&es);
	int64_t us = mono_us() - t0;
	unsigned failed = es.failures;
	config_free(&cfg);
	printf("%ld events in %.1f ms: %.0f events/s (%s)\n", n, us / 1000.0, n * 1e6 / (double)(us ? us : 1),
	       sign_alg_name(alg));
	return failed ? 1 : 0;
}
