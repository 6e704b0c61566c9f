/* The JetStream sink with pipelined publishes, on the project's own client
 * (sink/nats_wire.h) or, under cellos-agent, through the agent's relay
 * (sink/nats_relay.h: the same shape over a socket to the agent): emit
 * queues the event; prepare connects and flush sends what is queued,
 * without waiting for acks (the supervisor calls them when it is about to
 * wait for its workload); close sends the rest and awaits every ack not yet
 * in, within the run's budget.
 * docs/DESIGN.md ("JetStream sink") says why and what is kept of the order.
 *
 * Each event has a state: queued (not sent on the current connection), sent
 * (its ack awaited, at most NATS_SINK_ATTEMPT_MS), failed (no ack, or a
 * refusal), done (acked, or handed to the dead-letter callback). The stream
 * keeps the order in which one connection's messages arrive, so:
 *   - events are sent in the run's order, and none is sent past a failed one
 *     that may still be retried;
 *   - a failed event is retried (with every later event not acked, in order:
 *     the same Nats-Msg-Id makes the stream drop what it has already) only once
 *     nothing is in flight and no later event is acked; otherwise it goes to
 *     the dead-letter directory, since it could only land after a later one. */
#include "sink/nats_impl.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sink/nats_conn.h"
#include "sink/nats_relay.h"
#include "sink/nats_wire.h"
#include "util/ids.h"
#include "util/log.h"
#include "util/nats_subject.h"
#include "util/vec.h"

enum pend_state { P_QUEUED, P_SENT, P_FAILED, P_DONE };

struct pend {
	char *subject, *id, *type, *line, *why;
	size_t len;
	enum pend_state st;
	bool acked;
	int attempts;
	int64_t sent_ms;
};

struct nats_async {
	struct sink base;
	struct nats_wire *w;      /* the own connection, or */
	struct nats_relay *relay; /* the agent's relay */
	const char *tpl;
	char tenant[256], cell[256];
	struct pend *p;
	size_t n, cap, head; /* head: the first event not done */
	uint64_t gen;        /* the connection the sent events went out on */
	int64_t hold_until;  /* back-off: nothing is sent before */
	int64_t backoff;
	int64_t spent_ms;    /* charged to the run's budget so far */
	bool warned;
	/* An admission request (CELL_OS_REQUIRE_JETSTREAM, CELLOS_NATS_ENSURE_STREAM). */
	unsigned req_seq;
	bool req_done;
	int req_status;
	char *req_data;
	size_t req_len;
	int64_t connect_us, publish_us, close_us;
	unsigned acked, duplicates, dead;
};

/* The carrier of the publishes. The relay is a connection that is up until
 * the agent closes it, and then gone for good. */
static void t_pump(struct nats_async *n, int ms)
{
	n->relay ? nats_relay_pump(n->relay, ms) : nats_wire_pump(n->w, ms);
}
static void t_flush(struct nats_async *n) { n->relay ? nats_relay_flush(n->relay) : nats_wire_flush(n->w); }
static bool t_up(const struct nats_async *n)
{
	return n->relay ? nats_relay_open(n->relay) : nats_wire_state(n->w) == NATS_WIRE_READY;
}
static bool t_gone(const struct nats_async *n) { return n->relay && !nats_relay_open(n->relay); }
static uint64_t t_generation(const struct nats_async *n) { return n->relay ? 1 : nats_wire_generation(n->w); }
static bool t_confirmed(const struct nats_async *n)
{
	return n->relay ? nats_relay_open(n->relay) : nats_wire_confirmed(n->w);
}
static unsigned t_failures(const struct nats_async *n)
{
	return n->relay ? !nats_relay_open(n->relay) : nats_wire_failures(n->w);
}
static const char *t_error(const struct nats_async *n)
{
	return n->relay ? nats_relay_error(n->relay) : nats_wire_error(n->w);
}
static const char *t_where(const struct nats_async *n)
{
	return n->relay ? nats_relay_where(n->relay) : nats_wire_where(n->w);
}
static int t_publish(struct nats_async *n, const char *subject, const char *token, const char *msg_id,
		     const void *data, size_t len, struct err *e)
{
	return n->relay ? nats_relay_publish(n->relay, subject, token, msg_id, data, len, e)
			: nats_wire_publish(n->w, subject, token, msg_id, data, len, e);
}

static void set_why(struct pend *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_why(struct pend *e, const char *fmt, ...)
{
	char buf[600];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	free(e->why);
	e->why = strdup(buf);
}

static void pend_free(struct pend *e)
{
	free(e->subject), free(e->id), free(e->type), free(e->line), free(e->why);
	e->subject = e->id = e->type = e->line = e->why = NULL;
}

static void settle_dead(struct nats_async *n, struct pend *e, const char *why)
{
	e->st = P_DONE;
	n->dead++;
	struct sink_event ev = {.line = e->line, .len = e->len, .id = e->id, .type = e->type};
	if (n->base.dead)
		n->base.dead(n->base.dead_arg, &ev, why);
	else
		log_error("sink nats: event %s (%s) not delivered: %s", e->id, e->type, why);
	pend_free(e);
}

static void failed(struct pend *e, const char *why)
{
	if (e->st != P_SENT)
		return;
	e->st = P_FAILED;
	set_why(e, "%s", why);
}

/* An ack, a refusal, or the answer to an admission request. */
static void on_reply(void *arg, const char *token, int status, const char *data, size_t len)
{
	struct nats_async *n = arg;
	if (token[0] == 'r') {
		if ((unsigned)strtoul(token + 1, NULL, 10) != n->req_seq || n->req_done)
			return;
		n->req_done = true;
		n->req_status = status;
		free(n->req_data);
		n->req_data = malloc(len + 1);
		if (n->req_data)
			memcpy(n->req_data, data, len), n->req_data[len] = '\0';
		n->req_len = len;
		return;
	}
	char *end;
	unsigned long long i = strtoull(token, &end, 10);
	if (*end || i >= n->n)
		return;
	struct pend *e = &n->p[i];
	/* A late ack of an event already given up on (failed, not yet retried)
	 * still counts: the stream has it. */
	if (e->st != P_SENT && e->st != P_FAILED)
		return;
	if (status < 0) {
		/* The agent says no answer will come: its reason. */
		char why[600];
		snprintf(why, sizeof why, "cellos-agent: %.*s", (int)(len < 500 ? len : 500), data);
		failed(e, why);
		return;
	}
	if (status == 503) {
		char why[1100];
		snprintf(why, sizeof why, "no JetStream stream captures subject %s", e->subject);
		failed(e, why);
		return;
	}
	if (status) {
		char why[64];
		snprintf(why, sizeof why, "NATS status %d", status);
		failed(e, why);
		return;
	}
	json_t *j = NULL;
	struct err er = {0};
	if (nats_js_answer(data, len, "JetStream refused the message", &j, NULL, &er) < 0) {
		failed(e, er.msg);
		return;
	}
	if (!json_is_string(json_object_get(j, "stream"))) {
		json_decref(j);
		failed(e, "JetStream ack without a stream");
		return;
	}
	n->duplicates += json_is_true(json_object_get(j, "duplicate"));
	json_decref(j);
	n->acked++;
	e->st = P_DONE;
	e->acked = true;
	pend_free(e);
}

/* Failed events: retry, or dead-letter (see the top of this file). */
static void decide(struct nats_async *n, int64_t now)
{
	for (size_t i = n->head; i < n->n; i++)
		if (n->p[i].st == P_SENT)
			return; /* wait until every answer is in, or overdue */
	for (size_t i = n->head; i < n->n; i++) {
		struct pend *e = &n->p[i];
		if (e->st != P_FAILED)
			continue;
		bool later_acked = false;
		for (size_t k = i + 1; k < n->n && !later_acked; k++)
			later_acked = n->p[k].acked;
		char why[900];
		if (later_acked) {
			snprintf(why, sizeof why, "%s; not retried: a later event of the run is in the stream already",
				 e->why);
			settle_dead(n, e, why);
			continue;
		}
		if (e->attempts >= NATS_SINK_ATTEMPTS) {
			snprintf(why, sizeof why, "%s (%d attempts)", e->why, e->attempts);
			settle_dead(n, e, why);
			continue;
		}
		/* Retry it and everything after it, in order, after the back-off. */
		for (size_t k = i; k < n->n; k++)
			if (n->p[k].st != P_DONE)
				n->p[k].st = P_QUEUED;
		n->hold_until = now + n->backoff;
		n->backoff *= 2;
		return;
	}
}

/* One round after the connection was pumped: what the connection's state
 * means for the sent events, overdue acks, retries, and sending. */
static void step(struct nats_async *n)
{
	int64_t now = mono_ms();
	if (!n->warned && t_gone(n)) {
		n->warned = true;
		log_warn("NATS: %s: the events not acked go to the dead-letter directory", t_error(n));
	} else if (!n->warned && t_failures(n) > 0 && !t_confirmed(n) && n->acked == 0) {
		n->warned = true;
		log_warn("NATS: no server answers yet (%s: %s): events wait for one within the run's %d ms budget, "
			 "then go to the dead-letter directory",
			 t_where(n), t_error(n), NATS_SINK_BUDGET_MS);
	}
	bool up = t_up(n);
	bool lost = !up || t_generation(n) != n->gen;
	for (size_t i = n->head; i < n->n; i++) {
		struct pend *e = &n->p[i];
		if (e->st != P_SENT)
			continue;
		if (lost) {
			char why[400];
			snprintf(why, sizeof why, "no ack: the connection to NATS was lost (%s)",
				 t_error(n)[0] ? t_error(n) : "reconnecting");
			failed(e, why);
		} else if (now - e->sent_ms >= NATS_SINK_ATTEMPT_MS) {
			char why[100];
			snprintf(why, sizeof why, "no ack from JetStream within %d ms", NATS_SINK_ATTEMPT_MS);
			failed(e, why);
		}
	}
	decide(n, now);
	if (up && now >= n->hold_until) {
		n->gen = t_generation(n);
		for (size_t i = n->head; i < n->n; i++) {
			struct pend *e = &n->p[i];
			if (e->st == P_FAILED)
				break; /* nothing overtakes an event that may be retried */
			if (e->st != P_QUEUED)
				continue;
			char token[24];
			snprintf(token, sizeof token, "%zu", i);
			struct err pe = {0};
			if (t_publish(n, e->subject, token, e->id, e->line, e->len, &pe) < 0) {
				settle_dead(n, e, pe.msg);
				continue;
			}
			e->st = P_SENT;
			e->sent_ms = now;
			e->attempts++;
		}
	}
	while (n->head < n->n && n->p[n->head].st == P_DONE)
		n->head++;
}

static int async_emit(struct sink *s, const struct sink_event *ev, struct err *e)
{
	struct nats_async *n = (struct nats_async *)s;
	int64_t t = mono_us();
	char subject[1024];
	if (nats_subject_of(n->tpl, n->tenant, n->cell, ev->type, subject, sizeof subject, e) < 0)
		return -1;
	if (vec_reserve(&n->p, n->n, &n->cap, sizeof *n->p, 16) < 0)
		return err_set(e, "out of memory");
	struct pend *p = &n->p[n->n];
	*p = (struct pend){.subject = strdup(subject), .id = strdup(ev->id), .type = strdup(ev->type),
			   .line = malloc(ev->len ? ev->len : 1), .len = ev->len};
	if (!p->subject || !p->id || !p->type || !p->line) {
		pend_free(p);
		return err_set(e, "out of memory");
	}
	memcpy(p->line, ev->line, ev->len);
	n->n++;
	/* Sent by the next flush (or close): each write wakes the server, which
	 * on a busy host takes the CPU from the supervisor there and then. */
	n->publish_us += mono_us() - t;
	return 0;
}

static void async_prepare(struct sink *s)
{
	struct nats_async *n = (struct nats_async *)s;
	if (t_up(n))
		return;
	int64_t t = mono_us();
	t_pump(n, 0);  /* connects */
	t_flush(n);    /* CONNECT, PING, SUB */
	n->connect_us += mono_us() - t;
}

static void async_flush(struct sink *s)
{
	struct nats_async *n = (struct nats_async *)s;
	if (n->head == n->n)
		return; /* nothing pending: not even a read */
	int64_t t = mono_us();
	t_pump(n, 0); /* acks, the server's INFO */
	step(n);
	t_flush(n);
	n->publish_us += mono_us() - t;
}

/* Wait for the acks of everything sent, retrying within the budget; what is
 * left when it is spent goes to the dead-letter callback. */
static void flush(struct nats_async *n)
{
	int64_t start = mono_ms();
	int64_t end = start + (NATS_SINK_BUDGET_MS - n->spent_ms);
	for (;;) {
		step(n);
		/* A closed relay answers nothing more: no use waiting. */
		if (n->head == n->n || t_gone(n))
			break;
		int64_t now = mono_ms();
		if (now >= end)
			break;
		int64_t wait = end - now;
		t_pump(n, (int)(wait < 50 ? wait : 50));
	}
	n->spent_ms += mono_ms() - start;
	if (n->head == n->n)
		return;
	if (!t_gone(n))
		log_warn("NATS: the broker held this run for its %d ms budget: the events not acked go to the "
			 "dead-letter directory",
			 NATS_SINK_BUDGET_MS);
	for (size_t i = n->head; i < n->n; i++) {
		struct pend *e = &n->p[i];
		if (e->st == P_DONE)
			continue;
		char why[900];
		if (t_gone(n)) {
			snprintf(why, sizeof why, "not acked: %s (%s)", t_error(n),
				 e->why ? e->why : e->st == P_SENT ? "no ack yet" : "not sent");
			settle_dead(n, e, why);
			continue;
		}
		const char *state = t_confirmed(n) ? "" : t_error(n);
		snprintf(why, sizeof why, "not acked within the run's %d ms budget for the broker (%s%s%s)",
			 NATS_SINK_BUDGET_MS,
			 e->why ? e->why : e->st == P_SENT ? "no ack yet" : "not sent: no connection",
			 state[0] ? "; " : "", state);
		settle_dead(n, e, why);
	}
}

static void async_close(struct sink *s)
{
	struct nats_async *n = (struct nats_async *)s;
	int64_t t = mono_us();
	flush(n);
	if (n->relay)
		nats_relay_free(n->relay);
	else
		nats_wire_free(n->w);
	n->close_us += mono_us() - t;
	log_debug("NATS: %u events acked (%u duplicates), %u dead-lettered, %lld ms of the budget spent; %.3f ms in "
		  "the sink (loading libnats 0.000, connecting %.3f, publishing %.3f, closing %.3f)",
		  n->acked, n->duplicates, n->dead, (long long)n->spent_ms,
		  (double)(n->connect_us + n->publish_us + n->close_us) / 1000.0, (double)n->connect_us / 1000.0,
		  (double)n->publish_us / 1000.0, (double)n->close_us / 1000.0);
	for (size_t i = n->head; i < n->n; i++)
		pend_free(&n->p[i]);
	free(n->p);
	free(n->req_data);
	free(n);
}

/* Wait until the server answered our CONNECT, each of the `urls` tried once
 * at most (an attempt is bounded by the client). */
static int wait_connected(struct nats_async *n, unsigned urls, struct err *e)
{
	int64_t t = mono_ms();
	unsigned before = t_failures(n);
	while (!t_confirmed(n) && t_failures(n) - before < urls)
		t_pump(n, 50);
	n->spent_ms += mono_ms() - t;
	if (t_confirmed(n))
		return 0;
	return err_set(e, "cannot connect to NATS (%s): %s", t_where(n), t_error(n));
}

/* nats_js_request's shape over this sink's connection. */
static int wire_request(void *arg, const char *api, json_t *req, json_t **resp, int64_t timeout_ms, int *err_code,
			struct err *e)
{
	struct nats_async *n = arg;
	char subject[512], what[560], token[16];
	snprintf(subject, sizeof subject, "$JS.API.%s", api);
	snprintf(what, sizeof what, "JetStream %s", api);
	*resp = NULL;
	if (err_code)
		*err_code = 0;
	char *body = req ? json_dumps(req, JSON_COMPACT) : NULL;
	if (req && !body)
		return err_set(e, "%s: out of memory", what);
	n->req_seq++;
	n->req_done = false;
	snprintf(token, sizeof token, "r%u", n->req_seq);
	int rc = t_publish(n, subject, token, NULL, body ? body : "", body ? strlen(body) : 0, e);
	free(body);
	if (rc < 0)
		return -1;
	t_flush(n);
	int64_t t = mono_ms(), end = t + timeout_ms;
	uint64_t gen = t_generation(n);
	while (!n->req_done && mono_ms() < end && t_generation(n) == gen && t_up(n))
		t_pump(n, (int)(end - mono_ms()));
	n->spent_ms += mono_ms() - t;
	if (!n->req_done)
		return err_set(e, "%s: no answer within %" PRId64 " ms%s%s", what, timeout_ms, t_gone(n) ? ": " : "",
			       t_gone(n) ? t_error(n) : "");
	if (n->req_status < 0)
		return err_set(e, "%s: cellos-agent: %s", what, n->req_data ? n->req_data : "no answer");
	if (n->req_status == 503)
		return err_set(e, "%s: JetStream is not enabled on the server (no responders)", what);
	return nats_js_answer(n->req_data, n->req_len, what, resp, err_code, e);
}

/* CELL_OS_REQUIRE_JETSTREAM: a stream must capture this run's subjects (the
 * subject of its lifecycle.v1.started stands for them all). */
static int check_captured(struct nats_async *n, struct err *e)
{
	char subject[1024];
	if (nats_subject_of(n->tpl, n->tenant, n->cell, NATS_TYPE_PREFIX "lifecycle.v1.started", subject,
			    sizeof subject, e) < 0)
		return -1;
	return nats_require_captured_via(wire_request, n, subject, NATS_SINK_ATTEMPT_MS, e);
}

struct sink *nats_async_open(const struct nats_sink_params *p, struct err *e)
{
	struct nats_async *n = calloc(1, sizeof *n);
	if (!n) {
		err_set(e, "CELLOS_NATS_URL: out of memory");
		return NULL;
	}
	int64_t t0 = mono_us();
	n->base = (struct sink){.name = "nats", .emit = async_emit, .flush = async_flush, .prepare = async_prepare, .close = async_close};
	n->tpl = p->subject_template;
	n->backoff = 50;
	nats_subject_token(p->tenant_id, n->tenant, sizeof n->tenant);
	nats_subject_token(p->cell_id, n->cell, sizeof n->cell);
	if (p->conn->relay) {
		if (!(n->relay = nats_relay_new(p->conn->relay_fd, on_reply, n, e))) {
			free(n);
			return NULL;
		}
	} else if ((n->w = nats_wire_take_prepared())) {
		/* A warm supervisor connected before its document existed. */
		nats_wire_set_reply(n->w, on_reply, n);
	} else {
		char name[300];
		snprintf(name, sizeof name, "cellos-supervisor %s", p->cell_id ? p->cell_id : "");
		if (!(n->w = nats_wire_new(p->conn->urls, name, on_reply, n, e))) {
			free(n);
			return NULL;
		}
	}
	/* Without an admission check, nothing waits for the server here: the
	 * connection comes up while the cell is made. */
	if (p->require || p->ensure_stream) {
		unsigned urls = 0;
		while (p->conn->urls[urls])
			urls++;
		struct err ce = {0};
		int rc = wait_connected(n, urls, &ce);
		if (rc < 0 && p->require) {
			err_set(e, "CELL_OS_REQUIRE_JETSTREAM: %s", ce.msg);
			async_close(&n->base);
			return NULL;
		}
		if (rc == 0 && p->ensure_stream) {
			struct nats_stream_def d = {.name = NATS_STREAM_EVENTS_NAME, .subject = NATS_STREAM_EVENTS_SUBJECT};
			bool created = false;
			int replicas = 0;
			struct err se = {0};
			if (nats_stream_ensure_via(wire_request, n, &d, 0, NATS_SINK_ATTEMPT_MS, &created, &replicas,
						   &se) < 0) {
				if (p->require) {
					err_set(e, "CELLOS_NATS_ENSURE_STREAM: %s", se.msg);
					async_close(&n->base);
					return NULL;
				}
				log_warn("CELLOS_NATS_ENSURE_STREAM: %s", se.msg);
			} else if (created) {
				log_info("NATS: created stream %s on %s (%d replica%s)", d.name, d.subject, replicas,
					 replicas == 1 ? "" : "s");
			}
		}
		if (p->require && check_captured(n, e) < 0) {
			async_close(&n->base);
			return NULL;
		}
	}
	/* Otherwise prepare, or the first flush, connects (docs/DESIGN.md: the
	 * supervisor is about to wait for its workload then). */
	n->connect_us = mono_us() - t0;
	return &n->base;
}
