#include "events/event.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "events/canon.h"
#include "util/ids.h"
#include "util/log.h"

int events_open(struct event_stream *es, const struct config *cfg, struct err *e)
{
	memset(es, 0, sizeof *es);
	/* The primary sink is NATS when configured (not in this build), else a no-op. */
	es->sinks[es->n_sinks++] = sink_noop_open();
	if (cfg->jsonl_path) {
		struct sink *j = sink_jsonl_open(cfg->jsonl_path, cfg->jsonl_fsync, e);
		if (!j)
			return -1;
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

void events_emit(struct event_stream *es, const char *type, json_t *data, char id_out[37])
{
	char id[37], ts[32], seq[24], prev[65], full_type[160];
	uuid_v4(id);
	time_rfc3339(ts);
	snprintf(seq, sizeof seq, "%llu", (unsigned long long)++es->sequence);
	hex(es->prev_digest, sizeof es->prev_digest, prev);
	snprintf(full_type, sizeof full_type, EVENT_TYPE_PREFIX "%s", type);

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
	json_decref(ev);
	if (!line) {
		log_error("event %s: cannot serialise", full_type);
		es->failures++;
		return;
	}
	/* The line we write is the canonical form, so the digest of the next event's
	 * predecessor is simply the SHA-256 of this line. */
	crypto_hash_sha256(es->prev_digest, (const unsigned char *)line, len);
	for (size_t i = 0; i < es->n_sinks; i++) {
		struct err e = {0};
		if (es->sinks[i]->emit(es->sinks[i], line, len, &e) < 0) {
			es->failures++;
			log_error("sink %s: event %s (%s) not delivered: %s", es->sinks[i]->name, id, full_type, e.msg);
		}
	}
	free(line);
}

void events_close(struct event_stream *es)
{
	for (size_t i = 0; i < es->n_sinks; i++)
		es->sinks[i]->close(es->sinks[i]);
	es->n_sinks = 0;
}
