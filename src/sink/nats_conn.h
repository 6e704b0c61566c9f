/* A connection to NATS and the JetStream calls the project makes over it: the one
 * place that knows the connection options (server list, credentials, TLS), the
 * JetStream API (requests to $JS.API.*, answered in JSON) and how a stream is
 * made. Used by the supervisor's event sink (sink/nats.c), by `cellctl`'s
 * distributed commands, and meant for `cellos-agent`.
 *
 * libnats is loaded on first use (sink/nats_dl.h). It runs its own threads (one
 * reader per connection, a flusher, library timers); callers keep every call on
 * one thread of their own. JetStream is driven through its wire API with core
 * requests rather than libnats's js_* helpers: the requests and answers are
 * JSON the project already parses (jansson), which keeps the set of libnats
 * entry points small and the behaviour visible here.
 *
 * Typical use:
 *
 *	struct nats_conn c;
 *	if (nats_conn_open(&c, &opts, "cellctl", 2000, 0, &e) < 0) ...
 *	struct nats_stream_def d = NATS_STREAM_EVENTS;
 *	nats_stream_ensure(&c, &d, 0, &created, &replicas, &e);
 *	nats_js_publish(&c, "cellos.events.x.y.z", id, line, len, 1000, &ack, &e);
 *	nats_conn_close(&c);
 */
#ifndef CELLOS_NATS_CONN_H
#define CELLOS_NATS_CONN_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sink/nats_opts.h"
#include "util/err.h"

struct nats_api;
struct __natsConnection;

struct nats_conn {
	const struct nats_api *api;
	struct __natsConnection *nc;
};

/* nats_conn_open flags. */
enum {
	/* When no server answers now, keep trying in the background instead of
	 * failing: the connection exists and nats_conn_open returns 1. */
	NATS_CONN_RETRY = 1 << 0,
};

/* Connect (timeout_ms per server attempt). `name` is what the servers show for
 * the connection. 0 connected; 1 not yet (NATS_CONN_RETRY only); -1 with *e
 * ("cannot connect to NATS (URLs): why"). Close with nats_conn_close in every
 * case but -1. */
int nats_conn_open(struct nats_conn *c, const struct nats_conn_opts *o, const char *name, int64_t timeout_ms,
		   unsigned flags, struct err *e);
bool nats_conn_connected(const struct nats_conn *c);
/* Connect now (retrying in the background when no server answers) and keep
 * the connection for the next nats_conn_open of this process, which then takes
 * it instead of connecting: `cellos-supervisor --warm` connects before the
 * document that names its sink exists. 0, or -1 with *e. */
int nats_conn_prepare(const struct nats_conn_opts *o, const char *name, int64_t timeout_ms, struct err *e);
/* Close the connection; the library's own threads are stopped when the last
 * connection of the process closes. */
void nats_conn_close(struct nats_conn *c);

/* One JetStream API call: `api` is the subject after "$JS.API." (e.g.
 * "STREAM.INFO.CELLOS_EVENTS"), `req` the request body (NULL: empty; not
 * stolen). On success *resp is the answer (caller decrefs). An answer with an
 * "error" member is -1 with its description in *e and its err_code in *err_code
 * (when not NULL; NATS_JS_NO_ANSWER when nothing answered within timeout_ms,
 * 0 for other transport errors). */
#define NATS_JS_NO_ANSWER (-1)
int nats_js_request(struct nats_conn *c, const char *api, json_t *req, json_t **resp, int64_t timeout_ms,
		    int *err_code, struct err *e);

/* A JetStream API answer (data, len) as nats_js_request returns it: *resp the
 * JSON object, or -1 with *e ("<what>: ...") and *err_code (when not NULL). */
int nats_js_answer(const char *data, size_t len, const char *what, json_t **resp, int *err_code, struct err *e);

/* nats_js_request's shape, for the calls below over another connection
 * (the sink's own client, sink/nats_wire.h). */
typedef int (*nats_js_request_fn)(void *conn, const char *api, json_t *req, json_t **resp, int64_t timeout_ms,
				  int *err_code, struct err *e);

/* What JetStream answered to a publish. */
struct nats_pub_ack {
	char stream[128];
	uint64_t seq;
	bool duplicate;          /* the stream had this message id already */
};

/* Publish one message to `subject` with the header Nats-Msg-Id: msg_id (NULL:
 * none) and wait up to timeout_ms for the stream's ack. -1 with *e when there
 * was none: no stream captures the subject, the stream refused it, or no answer
 * in time. */
int nats_js_publish(struct nats_conn *c, const char *subject, const char *msg_id, const void *data, size_t len,
		    int64_t timeout_ms, struct nats_pub_ack *ack, struct err *e);

/* The streams of the project (SPEC §11). */
struct nats_stream_def {
	const char *name;
	const char *subject;     /* the one subject filter of the stream */
	bool work_queue;         /* work-queue retention, else limits */
	int64_t duplicate_window_ns; /* 0: the server's default (2 min) */
};
#define NATS_STREAM_EVENTS_NAME "CELLOS_EVENTS"
#define NATS_STREAM_EVENTS_SUBJECT "cellos.events.>"
#define NATS_STREAM_CELLS_NAME "CELLOS_CELLS"
#define NATS_STREAM_CELLS_SUBJECT_PREFIX "cellos.cells."
/* A resubmitted job id is de-duplicated for this long (docs/DESIGN.md). */
#define NATS_CELLS_DUPLICATE_WINDOW_NS (3600LL * 1000000000LL)

/* Create the stream with file storage if no stream of that name exists; an
 * existing one is left as it is. replicas 0: as many as the cluster has, up to
 * 3 (tried 3, 2, 1: a single server refuses more than 1, a smaller cluster
 * refuses more than it has). *created says whether it was made, *replicas_out
 * its replica count (either may be NULL). */
int nats_stream_ensure(struct nats_conn *c, const struct nats_stream_def *d, int replicas, int64_t timeout_ms,
		       bool *created, int *replicas_out, struct err *e);
int nats_stream_ensure_via(nats_js_request_fn request, void *conn, const struct nats_stream_def *d, int replicas,
			   int64_t timeout_ms, bool *created, int *replicas_out, struct err *e);

/* The name of the stream that captures `subject` into name (size bytes): 0
 * found, 1 none does, -1 with *e. */
int nats_stream_for_subject(struct nats_conn *c, const char *subject, char *name, size_t size, int64_t timeout_ms,
			    struct err *e);
int nats_stream_for_subject_via(nats_js_request_fn request, void *conn, const char *subject, char *name, size_t size,
				int64_t timeout_ms, struct err *e);

/* CELL_OS_REQUIRE_JETSTREAM: 0 when a stream captures `subject` (the subject
 * of the run's lifecycle.v1.started stands for all its events), -1 with *e
 * naming the variable otherwise (none does, or the question failed). */
int nats_require_captured(struct nats_conn *c, const char *subject, int64_t timeout_ms, struct err *e);
int nats_require_captured_via(nats_js_request_fn request, void *conn, const char *subject, int64_t timeout_ms,
			      struct err *e);

#endif
