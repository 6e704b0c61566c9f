#include "events/event.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "events/redact.h"
#include "events/sign.h"
#include "sink/dlq.h"
#include "sink/nats.h"
#include "util/canon.h"
#include "util/ids.h"
#include "util/log.h"
#include "util/utf8.h"

int events_open(struct event_stream *es, const struct config *cfg, struct err *e)
{
	return events_open_cell(es, cfg, NULL, NULL, e);
}

static void sink_gave_up(void *arg, const struct sink_event *ev, const char *why);

int events_open_cell(struct event_stream *es, const struct config *cfg, const char *cell_id, const char *tenant_id,
		     struct err *e)
{
	memset(es, 0, sizeof *es);
	es->redact = cfg->redact_fields;
	if (cfg->dlq_dir && !(es->dlq = dlq_open(cfg->dlq_dir, e)))
		return -1;
	if (cfg->signing != SIGN_OFF) {
		int64_t t = mono_us();
		es->signer = signer_new(cfg->signing, cfg->signing_kid, cfg->signing_key, cfg->signing_key_len, e);
		es->sign_us += mono_us() - t;
		if (!es->signer) {
			events_close(es);
			return -1;
		}
	}
	/* The primary sink is NATS JetStream when configured, else a no-op. */
	if (cfg->nats_on) {
		struct nats_sink_params np = {.conn = &cfg->nats,
					      .subject_template = cfg->nats_subject,
					      .tenant_id = tenant_id,
					      .cell_id = cell_id,
					      .require = cfg->require_jetstream,
					      .ensure_stream = cfg->nats_ensure_stream};
		struct sink *n = sink_nats_open(&np, e);
		if (!n) {
			events_close(es);
			return -1;
		}
		n->dead = sink_gave_up;
		n->dead_arg = es;
		es->sinks[es->n_sinks++] = n;
	} else {
		es->sinks[es->n_sinks++] = sink_noop_open();
	}
	if (cfg->jsonl_path) {
		struct sink *j = sink_jsonl_open(cfg->jsonl_path, cfg->jsonl_fsync, e);
		if (!j) {
			events_close(es);
			return -1;
		}
		es->sinks[es->n_sinks++] = j;
	}
	char host[256] = "localhost";
	if (gethostname(host, sizeof host - 1) < 0)
		strcpy(host, "localhost");
	snprintf(es->source, sizeof es->source, "/cellos/supervisor/%s", host);
	return 0;
}

void events_begin_run(struct event_stream *es, const char *cell_id, const char *run_id)
{
	snprintf(es->cell_id, sizeof es->cell_id, "%s", cell_id);
	snprintf(es->run_id, sizeof es->run_id, "%s", run_id);
	snprintf(es->subject, sizeof es->subject, "urn:cellos:cell:%s", cell_id);
	es->sequence = 0;
	memset(es->prev_digest, 0, sizeof es->prev_digest);
}

static void hex(const unsigned char *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * n] = '\0';
}

/* A sink could not take the event (or it could not be signed): it goes to the
 * dead-letter directory, and whatever happens it is logged. The cell goes on. */
static void dead_letter(struct event_stream *es, const char *id, const char *type, const char *line, size_t len,
			const char *why)
{
	es->failures++;
	if (!es->dlq) {
		log_error("event %s (%s) lost: %s (no CELLOS_DLQ_DIR)", id, type, why);
		return;
	}
	char name[160];
	struct err e = {0};
	if (dlq_put(es->dlq, id, line, len, why, name, sizeof name, &e) < 0) {
		log_error("event %s (%s) lost: %s; %s", id, type, why, e.msg);
		return;
	}
	es->dead_lettered++;
	log_warn("event %s (%s) written to CELLOS_DLQ_DIR as %s: %s", id, type, name, why);
}

/* A sink that took an event but could not deliver it after all (the
 * JetStream sink's pipelined publishes, at the latest when it is closed). */
static void sink_gave_up(void *arg, const struct sink_event *ev, const char *why)
{
	struct event_stream *es = arg;
	char msg[1100];
	snprintf(msg, sizeof msg, "sink nats: %s", why);
	log_error("sink nats: event %s (%s) not delivered: %s", ev->id, ev->type, why);
	dead_letter(es, ev->id, ev->type, ev->line, ev->len, msg);
}

/* Sign (when configured) and hand the event to every sink. Errors of all the
 * sinks that refused it go into one dead letter: one file per failed event. */
static void deliver(struct event_stream *es, json_t *ev, const char *id, const char *type, const char *line,
		    size_t len)
{
	char *wrapped = NULL, wid[37];
	const char *out = line, *out_id = id;
	size_t out_len = len;
	es->emitted++;
	if (es->signer) {
		int64_t t = mono_us();
		wrapped = signer_wrap(es->signer, ev, line, len, &out_len, wid);
		es->sign_us += mono_us() - t;
		if (!wrapped) {
			/* Emitting it unsigned would break the contract: keep the
			 * record of what happened in the DLQ instead. */
			dead_letter(es, id, type, line, len, "cannot sign the event: out of memory");
			return;
		}
		out = wrapped;
		out_id = wid;
	}
	char why[1024] = "";
	size_t wl = 0;
	const struct sink_event sev = {.line = out, .len = out_len, .id = out_id, .type = type};
	for (size_t i = 0; i < es->n_sinks; i++) {
		struct err e = {0};
		if (es->sinks[i]->emit(es->sinks[i], &sev, &e) < 0) {
			log_error("sink %s: event %s (%s) not delivered: %s", es->sinks[i]->name, out_id, type, e.msg);
			if (wl < sizeof why)
				wl += (size_t)snprintf(why + wl, sizeof why - wl, "%ssink %s: %s", wl ? "; " : "",
						       es->sinks[i]->name, e.msg);
		}
	}
	if (wl)
		dead_letter(es, out_id, type, out, out_len, why);
	free(wrapped);
}

json_t *event_text(const char *s)
{
	json_t *v = json_string(s); /* well-formed: the usual case, no copy */
	if (v || !s)
		return v;
	char *fixed = utf8_repair(s, strlen(s));
	v = fixed ? json_string(fixed) : NULL;
	free(fixed);
	return v;
}

void events_emit(struct event_stream *es, const char *type, json_t *data, char id_out[37])
{
	char id[37], ts[32], seq[24], prev[65], full_type[160];
	uuid_v4(id);
	time_rfc3339(ts);
	snprintf(seq, sizeof seq, "%llu", (unsigned long long)++es->sequence);
	hex(es->prev_digest, sizeof es->prev_digest, prev);
	snprintf(full_type, sizeof full_type, EVENT_TYPE_PREFIX "%s", type);

	/* The caller could not build its data (out of memory, or text passed to
	 * jansson without event_text()): the event still happens, with what is
	 * left, rather than vanish from the chain. */
	if (!data) {
		log_error("event %s: its data could not be built: emitted without it", full_type);
		data = json_object();
	}

	/* Redaction first: the digest chain and the signature cover the event as
	 * emitted (SPEC §8.3, §9). cellId and runId are set afterwards, so they are
	 * always there, whatever the list says. */
	if (es->redact && redact_data(data, es->redact) < 0) {
		log_error("event %s: cannot redact its data: data left out rather than emitted unredacted", full_type);
		json_object_clear(data);
	}
	json_object_set_new(data, "cellId", json_string(es->cell_id));
	json_object_set_new(data, "runId", json_string(es->run_id));
	json_t *ev = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:o}",
			       "specversion", "1.0", "id", id, "source", es->source, "type", full_type,
			       "subject", es->subject, "time", ts, "datacontenttype", "application/json",
			       "sequence", seq, "cellosprevdigest", prev, "data", data);
	if (id_out)
		memcpy(id_out, id, 37);
	size_t len = 0;
	char *line = ev ? canon_dump(ev, &len) : NULL;
	if (!line) {
		json_decref(ev);
		log_error("event %s: cannot serialise", full_type);
		es->failures++;
		return;
	}
	/* `line` is the canonical form of the (inner) event, so the digest of the
	 * next event's predecessor is simply its SHA-256; with signing, the wrapper
	 * around it is not part of the chain (docs/DESIGN.md). */
	crypto_hash_sha256(es->prev_digest, (const unsigned char *)line, len);
	deliver(es, ev, id, full_type, line, len);
	json_decref(ev);
	free(line);
}

void events_flush(struct event_stream *es)
{
	for (size_t i = 0; i < es->n_sinks; i++)
		if (es->sinks[i]->flush)
			es->sinks[i]->flush(es->sinks[i]);
}

void events_prepare(struct event_stream *es)
{
	for (size_t i = 0; i < es->n_sinks; i++)
		if (es->sinks[i]->prepare)
			es->sinks[i]->prepare(es->sinks[i]);
}

void events_close(struct event_stream *es)
{
	/* Closed already (the supervisor closes the stream before its end line;
	 * main closes it again): nothing left to do or say. */
	if (!es->n_sinks && !es->signer && !es->dlq)
		return;
	for (size_t i = 0; i < es->n_sinks; i++)
		es->sinks[i]->close(es->sinks[i]);
	es->n_sinks = 0;
	log_debug("events: %u emitted, %u not delivered, %u dead-lettered; signing %.3f ms", es->emitted, es->failures,
		  es->dead_lettered, (double)es->sign_us / 1000.0);
	signer_free(es->signer);
	es->signer = NULL;
	dlq_close(es->dlq);
	es->dlq = NULL;
}
