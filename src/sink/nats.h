/* The JetStream event sink (SPEC §8.4): the primary sink when CELLOS_NATS_URL is
 * set. Each event is published to its subject (CELLOS_NATS_SUBJECT) with
 * Nats-Msg-Id = its id and counts as delivered only once the stream acked it.
 *
 * A broker that is slow or gone costs the cell a bounded time in all: attempts
 * and back-off sleeps are charged to one budget per run (NATS_SINK_BUDGET_MS);
 * once it is spent, events go straight to the dead-letter directory (the caller
 * does that with the error emit returns). docs/DESIGN.md has the numbers and why. */
#ifndef CELLOS_SINK_NATS_H
#define CELLOS_SINK_NATS_H

#include <stdbool.h>

#include "sink/nats_conn.h"
#include "sink/sink.h"

/* Time the broker may hold a run, in all. */
#define NATS_SINK_BUDGET_MS 3000
/* One publish waits this long for its ack at most (less when the budget has
 * less left); then it is retried after a back-off that doubles from 50 ms. */
#define NATS_SINK_ATTEMPT_MS 1000
#define NATS_SINK_ATTEMPTS 4
/* A successful publish is charged only for what it took beyond this. */
#define NATS_SINK_FREE_MS 50

struct nats_sink_params {
	const struct nats_conn_opts *conn;
	const char *subject_template;  /* checked (nats_subject_check) */
	const char *tenant_id;         /* the document's correlation.tenantId, or NULL */
	const char *cell_id;           /* the document's id, or NULL (e.g. a benchmark) */
	bool require;                  /* CELL_OS_REQUIRE_JETSTREAM=1 */
	bool ensure_stream;            /* CELLOS_NATS_ENSURE_STREAM=1 */
};

/* Admission: connect. Not required: a server that does not answer is retried in
 * the background and the run goes on (events it never acks are dead-lettered).
 * Required: an unreachable server, or no stream capturing this run's subjects,
 * is an error naming CELL_OS_REQUIRE_JETSTREAM. */
struct sink *sink_nats_open(const struct nats_sink_params *p, struct err *e);

/* Whether these options need libnats (TLS, a credentials file): the sink is
 * then synchronous; else it pipelines its publishes on its own client. */
bool nats_sink_needs_libnats(const struct nats_conn_opts *o);

#endif
