/* CloudEvents of one run (SPEC §8): envelope, sequence and digest chain, fan-out
 * to the sinks. */
#ifndef CELLOS_EVENT_H
#define CELLOS_EVENT_H

#include <jansson.h>
#include <stdint.h>

#include "config.h"
#include "sink/sink.h"
#include "util/err.h"

#define EVENT_TYPE_PREFIX "dev.cellos.events.cell."

struct signer;
struct dlq;

struct event_stream {
	struct sink *sinks[2];  /* primary (NATS or noop) and the JSONL mirror */
	size_t n_sinks;
	char source[300];       /* /cellos/supervisor/<hostname> */
	char subject[300];      /* urn:cellos:cell:<cellId> */
	char cell_id[160];
	char run_id[37];
	uint64_t sequence;      /* of the last event emitted */
	unsigned char prev_digest[32]; /* SHA-256 of the canonical form of the last event */
	unsigned failures;      /* events some sink could not take */
	/* SPEC §8.3, §8.5, §9: redaction, dead letters, signing. */
	char *const *redact;    /* borrowed from the config; NULL: none */
	struct signer *signer;  /* NULL: events are emitted unsigned */
	struct dlq *dlq;        /* NULL: a failed event is only logged */
	unsigned emitted, dead_lettered;
	int64_t sign_us;        /* time spent deriving the key and signing (debug log, bench) */
};

/* Admission: open the sinks named by the configuration, for the cell `cell_id`
 * of tenant `tenant_id` (either NULL when not known: a tool, a benchmark); they
 * name the NATS subject (CELLOS_NATS_SUBJECT). events_open: both NULL. */
int events_open_cell(struct event_stream *es, const struct config *cfg, const char *cell_id, const char *tenant_id,
		     struct err *e);
int events_open(struct event_stream *es, const struct config *cfg, struct err *e);
/* Bind the stream to a run. */
void events_begin_run(struct event_stream *es, const char *cell_id, const char *run_id);
/* Emit one event of type EVENT_TYPE_PREFIX + `type`. `data` is stolen; cellId and
 * runId are added. If id_out is not NULL, the event id is copied there. Sink
 * failures are logged, counted and never fatal. */
void events_emit(struct event_stream *es, const char *type, json_t *data, char id_out[37]);
/* Free text for event data: messages, reasons, paths, program names, anything
 * read from the host, the environment or another program. jansson refuses text
 * that is not UTF-8 (json_string() gives NULL, json_pack() fails whole), which
 * lost the event; here each ill-formed sequence becomes U+FFFD (util/utf8.h),
 * so the event can always be serialised. NULL only when out of memory. */
json_t *event_text(const char *s);
/* Send what the sinks hold without waiting (the JetStream sink queues events
 * until then): called when the supervisor is about to wait. */
void events_flush(struct event_stream *es);
/* Start what the sinks need time for (the JetStream sink's connection),
 * sending nothing: called when the supervisor is about to wait. */
void events_prepare(struct event_stream *es);
/* Deliver (or dead-letter) everything and close the sinks. */
void events_close(struct event_stream *es);

#endif
