/* NATS connections and JetStream calls. See nats_conn.h. */
#include "sink/nats_conn.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "sink/nats_dl.h"
#include "util/log.h"

/* Connections open in this process: the library's threads are stopped with the
 * last one, so a short-lived program leaves nothing running behind it. */
static int open_conns;

/* "what failed: why", with libnats's own last error when it says more than the
 * status text. */
static int nats_fail(const struct nats_api *a, natsStatus s, struct err *e, const char *what)
{
	natsStatus ls;
	const char *detail = a->nats_GetLastError(&ls);
	const char *text = a->natsStatus_GetText(s);
	/* libnats prefixes where it failed: "(conn.c:123): text". */
	const char *sep = detail && detail[0] == '(' ? strstr(detail, "): ") : NULL;
	if (sep)
		detail = sep + 3;
	if (detail && *detail && strcmp(detail, text) != 0)
		return err_set(e, "%s: %s (%s)", what, text, detail);
	return err_set(e, "%s: %s", what, text);
}

static void join_urls(char *const *urls, char *out, size_t size)
{
	size_t n = 0;
	out[0] = '\0';
	for (char *const *u = urls; *u && n < size; u++)
		n += (size_t)snprintf(out + n, size - n, "%s%s", u == urls ? "" : ",", *u);
}

/* With a connected-callback libnats connects in the background; without one
 * its connect call would block, retrying, until a server answers. */
static void on_connected(natsConnection *nc, void *closure) {}

static int set_options(const struct nats_api *a, natsOptions *opts, const struct nats_conn_opts *o, const char *name,
		       int64_t timeout_ms, unsigned flags, struct err *e)
{
	int n = 0;
	while (o->urls[n])
		n++;
	natsStatus s = a->natsOptions_SetServers(opts, (const char **)o->urls, n);
	if (s != NATS_OK)
		return nats_fail(a, s, e, "CELLOS_NATS_URL");
	/* Every call of ours waits for an answer: write at once rather than
	 * leave the request to the flusher thread's next round. */
	if ((s = a->natsOptions_SetSendAsap(opts, true)) != NATS_OK)
		return nats_fail(a, s, e, "NATS options");
	if ((s = a->natsOptions_SetTimeout(opts, timeout_ms)) != NATS_OK ||
	    (s = a->natsOptions_SetName(opts, name)) != NATS_OK)
		return nats_fail(a, s, e, "NATS options");
	/* A broker that goes away comes back under the same connection: retried
	 * forever, often, since every wait of ours is bounded by its own timeout. */
	if ((s = a->natsOptions_SetMaxReconnect(opts, -1)) != NATS_OK ||
	    (s = a->natsOptions_SetReconnectWait(opts, 250)) != NATS_OK)
		return nats_fail(a, s, e, "NATS options");
	if ((flags & NATS_CONN_RETRY) && (s = a->natsOptions_SetRetryOnFailedConnect(opts, true, on_connected, NULL)) != NATS_OK)
		return nats_fail(a, s, e, "NATS options");
	if (o->creds && (s = a->natsOptions_SetUserCredentialsFromFiles(opts, o->creds, NULL)) != NATS_OK)
		return nats_fail(a, s, e, "CELLOS_NATS_CREDS");
	bool tls = o->tls_ca || o->tls_cert;
	for (char *const *u = o->urls; *u; u++)
		tls |= strncmp(*u, "tls://", 6) == 0;
	if (tls && (s = a->natsOptions_SetSecure(opts, true)) != NATS_OK)
		return nats_fail(a, s, e, "NATS TLS");
	if (o->tls_ca && (s = a->natsOptions_LoadCATrustedCertificates(opts, o->tls_ca)) != NATS_OK)
		return nats_fail(a, s, e, "CELLOS_NATS_TLS_CA");
	if (o->tls_cert && (s = a->natsOptions_LoadCertificatesChain(opts, o->tls_cert, o->tls_key)) != NATS_OK)
		return nats_fail(a, s, e, "CELLOS_NATS_TLS_CERT/CELLOS_NATS_TLS_KEY");
	return 0;
}

/* A connection made ahead by nats_conn_prepare, for the next nats_conn_open. */
static struct nats_conn prepared;

int nats_conn_prepare(const struct nats_conn_opts *o, const char *name, int64_t timeout_ms, struct err *e)
{
	if (prepared.api)
		return 0;
	int rc = nats_conn_open(&prepared, o, name, timeout_ms, NATS_CONN_RETRY, e);
	if (rc != 0)
		return rc < 0 ? -1 : 0;
	/* One request now: the first one sets up the connection's reply
	 * subscription, which would otherwise delay the run's first event.
	 * Its answer does not matter. */
	json_t *resp = NULL;
	struct err ie = {0};
	nats_js_request(&prepared, "INFO", NULL, &resp, timeout_ms, NULL, &ie);
	json_decref(resp);
	return 0;
}

int nats_conn_open(struct nats_conn *c, const struct nats_conn_opts *o, const char *name, int64_t timeout_ms,
		   unsigned flags, struct err *e)
{
	memset(c, 0, sizeof *c);
	if (prepared.api) {
		/* Made from the same environment: taken as it is, connected or still
		 * trying; unless the caller must have a server now and it has none. */
		*c = prepared;
		memset(&prepared, 0, sizeof prepared);
		if (nats_conn_connected(c) || (flags & NATS_CONN_RETRY))
			return nats_conn_connected(c) ? 0 : 1;
		nats_conn_close(c);
		memset(c, 0, sizeof *c);
	}
	if (!(c->api = nats_api_load(e)))
		return -1;
	const struct nats_api *a = c->api;
	natsOptions *opts = NULL;
	natsStatus s = a->natsOptions_Create(&opts);
	if (s != NATS_OK)
		return nats_fail(a, s, e, "NATS options");
	open_conns++;
	int rc = set_options(a, opts, o, name, timeout_ms, flags, e);
	if (rc == 0) {
		natsConnection *nc = NULL;
		s = a->natsConnection_Connect(&nc, opts);
		if (s == NATS_OK || ((flags & NATS_CONN_RETRY) && s == NATS_NOT_YET_CONNECTED)) {
			c->nc = nc;
			rc = s == NATS_OK ? 0 : 1;
		} else {
			char urls[1024];
			join_urls(o->urls, urls, sizeof urls);
			char what[1100];
			snprintf(what, sizeof what, "cannot connect to NATS (%s)", urls);
			rc = nats_fail(a, s, e, what);
		}
	}
	a->natsOptions_Destroy(opts);
	if (rc < 0) {
		c->nc = NULL;
		nats_conn_close(c);
	}
	return rc;
}

bool nats_conn_connected(const struct nats_conn *c)
{
	return c->nc && c->api->natsConnection_Status(c->nc) == NATS_CONN_STATUS_CONNECTED;
}

void nats_conn_close(struct nats_conn *c)
{
	if (!c->api)
		return;
	if (c->nc) {
		c->api->natsConnection_Close(c->nc);
		c->api->natsConnection_Destroy(c->nc);
		c->nc = NULL;
	}
	/* The library's timer, callback and collector threads end with it; a
	 * bounded wait, so a wedged thread cannot hold the caller. */
	if (--open_conns == 0)
		c->api->nats_CloseAndWait(2000);
	c->api = NULL;
}

/* The body of a reply as JSON, NULL with *e when it is not. */
static json_t *reply_json(const struct nats_api *a, natsMsg *m, const char *what, struct err *e)
{
	json_error_t je;
	int len = a->natsMsg_GetDataLength(m);
	json_t *j = json_loadb(a->natsMsg_GetData(m) ? a->natsMsg_GetData(m) : "", len > 0 ? (size_t)len : 0, 0, &je);
	if (!j || !json_is_object(j)) {
		json_decref(j);
		err_set(e, "%s: the answer is not a JSON object", what);
		return NULL;
	}
	return j;
}

/* An {"error": {"code", "err_code", "description"}} answer: -1 with *e. */
static int api_error(json_t *j, const char *what, int *err_code, struct err *e)
{
	json_t *er = json_object_get(j, "error");
	if (!er)
		return 0;
	const char *d = json_string_value(json_object_get(er, "description"));
	int code = (int)json_integer_value(json_object_get(er, "code"));
	if (err_code)
		*err_code = (int)json_integer_value(json_object_get(er, "err_code"));
	return err_set(e, "%s: %s (%d)", what, d ? d : "error", code);
}

int nats_js_request(struct nats_conn *c, const char *api, json_t *req, json_t **resp, int64_t timeout_ms,
		    int *err_code, struct err *e)
{
	const struct nats_api *a = c->api;
	*resp = NULL;
	if (err_code)
		*err_code = 0;
	char subject[512], what[560];
	snprintf(subject, sizeof subject, "$JS.API.%s", api);
	snprintf(what, sizeof what, "JetStream %s", api);
	char *body = req ? json_dumps(req, JSON_COMPACT) : NULL;
	if (req && !body)
		return err_set(e, "%s: out of memory", what);
	natsMsg *reply = NULL;
	natsStatus s = a->natsConnection_Request(&reply, c->nc, subject, body ? body : "", body ? (int)strlen(body) : 0,
						 timeout_ms);
	free(body);
	if (s == NATS_NO_RESPONDERS)
		return err_set(e, "%s: JetStream is not enabled on the server (no responders)", what);
	if (s == NATS_TIMEOUT && err_code)
		*err_code = NATS_JS_NO_ANSWER;
	if (s != NATS_OK)
		return nats_fail(a, s, e, what);
	int len = a->natsMsg_GetDataLength(reply);
	int rc = nats_js_answer(a->natsMsg_GetData(reply), len > 0 ? (size_t)len : 0, what, resp, err_code, e);
	a->natsMsg_Destroy(reply);
	return rc;
}

int nats_js_answer(const char *data, size_t len, const char *what, json_t **resp, int *err_code, struct err *e)
{
	json_error_t je;
	*resp = NULL;
	json_t *j = json_loadb(data ? data : "", len, 0, &je);
	if (!j || !json_is_object(j)) {
		json_decref(j);
		return err_set(e, "%s: the answer is not a JSON object", what);
	}
	if (api_error(j, what, err_code, e) < 0) {
		json_decref(j);
		return -1;
	}
	*resp = j;
	return 0;
}

static int conn_request(void *arg, const char *api, json_t *req, json_t **resp, int64_t timeout_ms, int *err_code,
			struct err *e)
{
	return nats_js_request(arg, api, req, resp, timeout_ms, err_code, e);
}

int nats_js_publish(struct nats_conn *c, const char *subject, const char *msg_id, const void *data, size_t len,
		    int64_t timeout_ms, struct nats_pub_ack *ack, struct err *e)
{
	const struct nats_api *a = c->api;
	natsMsg *m = NULL, *reply = NULL;
	natsStatus s = a->natsMsg_Create(&m, subject, NULL, data, (int)len);
	if (s == NATS_OK && msg_id)
		s = a->natsMsgHeader_Set(m, "Nats-Msg-Id", msg_id);
	if (s != NATS_OK) {
		a->natsMsg_Destroy(m);
		return nats_fail(a, s, e, "NATS message");
	}
	s = a->natsConnection_RequestMsg(&reply, c->nc, m, timeout_ms);
	a->natsMsg_Destroy(m);
	if (s == NATS_NO_RESPONDERS)
		return err_set(e, "no JetStream stream captures subject %s", subject);
	if (s == NATS_TIMEOUT)
		return err_set(e, "no ack from JetStream within %" PRId64 " ms", timeout_ms);
	/* Never connected yet, or reconnecting: say that rather than what libnats
	 * makes of a publish it cannot even try. */
	if (s != NATS_OK && !nats_conn_connected(c))
		return err_set(e, "not connected to NATS (no server answers)");
	if (s != NATS_OK)
		return nats_fail(a, s, e, "publish");
	json_t *j = reply_json(a, reply, "JetStream ack", e);
	a->natsMsg_Destroy(reply);
	if (!j)
		return -1;
	int rc = api_error(j, "JetStream refused the message", NULL, e);
	const char *stream = json_string_value(json_object_get(j, "stream"));
	if (rc == 0 && !stream)
		rc = err_set(e, "JetStream ack without a stream");
	if (rc == 0 && ack) {
		snprintf(ack->stream, sizeof ack->stream, "%s", stream);
		ack->seq = (uint64_t)json_integer_value(json_object_get(j, "seq"));
		ack->duplicate = json_is_true(json_object_get(j, "duplicate"));
	}
	json_decref(j);
	return rc;
}

/* JetStream's err_code for "replicas > 1 not supported in non-clustered mode",
 * "insufficient resources" and "no suitable peers for placement" (fewer
 * servers, or fewer up, than replicas). */
#define JS_ERR_REPLICAS_NOT_CLUSTERED 10074
#define JS_ERR_INSUFFICIENT_RESOURCES 10023
#define JS_ERR_NO_PEERS 10005
#define JS_ERR_STREAM_NOT_FOUND 10059

int nats_stream_ensure(struct nats_conn *c, const struct nats_stream_def *d, int replicas, int64_t timeout_ms,
		       bool *created, int *replicas_out, struct err *e)
{
	return nats_stream_ensure_via(conn_request, c, d, replicas, timeout_ms, created, replicas_out, e);
}

int nats_stream_ensure_via(nats_js_request_fn request, void *c, const struct nats_stream_def *d, int replicas,
			   int64_t timeout_ms, bool *created, int *replicas_out, struct err *e)
{
	char api[256];
	json_t *resp = NULL;
	int code = 0;
	if (created)
		*created = false;
	snprintf(api, sizeof api, "STREAM.INFO.%s", d->name);
	struct err ie = {0};
	if (request(c, api, NULL, &resp, timeout_ms, &code, &ie) == 0) {
		if (replicas_out)
			*replicas_out = (int)json_integer_value(
				json_object_get(json_object_get(resp, "config"), "num_replicas"));
		json_decref(resp);
		return 0;
	}
	if (code != JS_ERR_STREAM_NOT_FOUND) {
		*e = ie;
		return -1;
	}
	snprintf(api, sizeof api, "STREAM.CREATE.%s", d->name);
	for (int r = replicas > 0 ? replicas : 3; r >= 1; r--) {
		json_t *req = json_pack("{s:s, s:[s], s:s, s:s, s:I}", "name", d->name, "subjects", d->subject,
					"retention", d->work_queue ? "workqueue" : "limits", "storage", "file",
					"num_replicas", (json_int_t)r);
		if (!req)
			return err_set(e, "stream %s: out of memory", d->name);
		if (d->duplicate_window_ns)
			json_object_set_new(req, "duplicate_window", json_integer(d->duplicate_window_ns));
		int rc = request(c, api, req, &resp, timeout_ms, &code, e);
		json_decref(req);
		if (rc == 0) {
			json_decref(resp);
			if (created)
				*created = true;
			if (replicas_out)
				*replicas_out = r;
			return 0;
		}
		/* Fewer servers than replicas: try fewer, unless asked for exactly r. */
		if (replicas > 0 || (code != JS_ERR_REPLICAS_NOT_CLUSTERED && code != JS_ERR_INSUFFICIENT_RESOURCES &&
					  code != JS_ERR_NO_PEERS))
			return -1;
	}
	return -1;
}

int nats_stream_for_subject(struct nats_conn *c, const char *subject, char *name, size_t size, int64_t timeout_ms,
			    struct err *e)
{
	return nats_stream_for_subject_via(conn_request, c, subject, name, size, timeout_ms, e);
}

int nats_stream_for_subject_via(nats_js_request_fn request, void *c, const char *subject, char *name, size_t size,
				int64_t timeout_ms, struct err *e)
{
	json_t *req = json_pack("{s:s}", "subject", subject), *resp = NULL;
	if (!req)
		return err_set(e, "out of memory");
	int rc = request(c, "STREAM.NAMES", req, &resp, timeout_ms, NULL, e);
	json_decref(req);
	if (rc < 0)
		return -1;
	const char *first = json_string_value(json_array_get(json_object_get(resp, "streams"), 0));
	rc = first ? 0 : 1;
	if (first)
		snprintf(name, size, "%s", first);
	json_decref(resp);
	return rc;
}

int nats_require_captured(struct nats_conn *c, const char *subject, int64_t timeout_ms, struct err *e)
{
	return nats_require_captured_via(conn_request, c, subject, timeout_ms, e);
}

int nats_require_captured_via(nats_js_request_fn request, void *conn, const char *subject, int64_t timeout_ms,
			      struct err *e)
{
	char stream[128];
	struct err le = {0};
	int rc = nats_stream_for_subject_via(request, conn, subject, stream, sizeof stream, timeout_ms, &le);
	if (rc < 0)
		return err_set(e, "CELL_OS_REQUIRE_JETSTREAM: %s", le.msg);
	if (rc > 0)
		return err_set(e,
			       "CELL_OS_REQUIRE_JETSTREAM: no JetStream stream captures %s (create one, e.g. with "
			       "`cellctl queue init` or CELLOS_NATS_ENSURE_STREAM=1)",
			       subject);
	log_debug("NATS: %s is captured by stream %s", subject, stream);
	return 0;
}
