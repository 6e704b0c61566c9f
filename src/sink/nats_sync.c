/* The JetStream sink over libnats, for TLS and credentials: each event is
 * published and its ack awaited before emit returns. See nats.h. */
#include "sink/nats_impl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/nats_subject.h"
#include "sink/nats_dl.h"
#include "util/ids.h"
#include "util/log.h"


struct nats_sink {
	struct sink base;
	struct nats_conn conn;
	const char *tpl;
	char tenant[256], cell[256];
	int64_t spent_ms;       /* charged to the run's budget so far */
	/* Where the time goes (debug log, bench/jetstream.sh): loading libnats,
	 * connecting, publishing, closing. */
	int64_t load_us, connect_us, publish_us, close_us;
	unsigned acked, duplicates;
};

static void sleep_ms(int64_t ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static int subject_of(struct nats_sink *n, const char *type, char *out, size_t size, struct err *e)
{
	return nats_subject_of(n->tpl, n->tenant, n->cell, type, out, size, e);
}

static int nats_publish(struct nats_sink *n, const struct sink_event *ev, struct err *e);

static int nats_emit(struct sink *s, const struct sink_event *ev, struct err *e)
{
	struct nats_sink *n = (struct nats_sink *)s;
	int64_t t = mono_us();
	int rc = nats_publish(n, ev, e);
	n->publish_us += mono_us() - t;
	return rc;
}

static int nats_publish(struct nats_sink *n, const struct sink_event *ev, struct err *e)
{
	char subject[1024];
	if (subject_of(n, ev->type, subject, sizeof subject, e) < 0)
		return -1;
	if (n->spent_ms >= NATS_SINK_BUDGET_MS)
		return err_set(e, "not published: the broker already held this run for its %d ms budget",
			       NATS_SINK_BUDGET_MS);
	struct err last = {0};
	int64_t backoff = 50;
	int attempt;
	for (attempt = 1; attempt <= NATS_SINK_ATTEMPTS; attempt++) {
		int64_t left = NATS_SINK_BUDGET_MS - n->spent_ms;
		int64_t wait = left < NATS_SINK_ATTEMPT_MS ? left : NATS_SINK_ATTEMPT_MS;
		if (wait <= 0)
			break;
		struct nats_pub_ack ack;
		int64_t t = mono_ms();
		memset(&last, 0, sizeof last);
		int rc = nats_js_publish(&n->conn, subject, ev->id, ev->line, ev->len, wait, &ack, &last);
		int64_t took = mono_ms() - t;
		if (rc == 0) {
			if (took > NATS_SINK_FREE_MS)
				n->spent_ms += took - NATS_SINK_FREE_MS;
			n->acked++;
			n->duplicates += ack.duplicate;
			return 0;
		}
		n->spent_ms += took;
		if (attempt == NATS_SINK_ATTEMPTS)
			break;
		left = NATS_SINK_BUDGET_MS - n->spent_ms;
		if (left <= 0)
			break;
		int64_t pause = backoff < left ? backoff : left;
		sleep_ms(pause);
		n->spent_ms += pause;
		backoff *= 2;
	}
	if (n->spent_ms >= NATS_SINK_BUDGET_MS)
		log_warn("NATS: the broker held this run for its %d ms budget: later events go to the dead-letter "
			 "directory unpublished",
			 NATS_SINK_BUDGET_MS);
	return err_set(e, "%s on %s (%d attempt%s)", last.msg[0] ? last.msg : "not published", subject,
		       attempt > NATS_SINK_ATTEMPTS ? NATS_SINK_ATTEMPTS : attempt,
		       attempt == 1 ? "" : "s");
}

static void nats_close(struct sink *s)
{
	struct nats_sink *n = (struct nats_sink *)s;
	int64_t t = mono_us();
	nats_conn_close(&n->conn);
	n->close_us += mono_us() - t;
	log_debug("NATS: %u events acked (%u duplicates), %lld ms of the budget spent; %.3f ms in the sink (loading "
		  "libnats %.3f, connecting %.3f, publishing %.3f, closing %.3f)",
		  n->acked, n->duplicates, (long long)n->spent_ms,
		  (double)(n->load_us + n->connect_us + n->publish_us + n->close_us) / 1000.0, (double)n->load_us / 1000.0,
		  (double)n->connect_us / 1000.0, (double)n->publish_us / 1000.0, (double)n->close_us / 1000.0);
	free(n);
}

/* CELL_OS_REQUIRE_JETSTREAM: the streams must be there for this run's events.
 * The subject of its lifecycle.v1.started stands for them all (with the
 * default template they differ only in the last tokens). */
static int check_captured(struct nats_sink *n, struct err *e)
{
	char subject[1024];
	if (subject_of(n, NATS_TYPE_PREFIX "lifecycle.v1.started", subject, sizeof subject, e) < 0)
		return -1;
	return nats_require_captured(&n->conn, subject, NATS_SINK_ATTEMPT_MS, e);
}

struct sink *nats_sync_open(const struct nats_sink_params *p, struct err *e)
{
	struct nats_sink *n = calloc(1, sizeof *n);
	if (!n) {
		err_set(e, "CELLOS_NATS_URL: out of memory");
		return NULL;
	}
	n->base = (struct sink){.name = "nats", .emit = nats_emit, .close = nats_close};
	n->tpl = p->subject_template;
	nats_subject_token(p->tenant_id, n->tenant, sizeof n->tenant);
	nats_subject_token(p->cell_id, n->cell, sizeof n->cell);

	char name[300];
	snprintf(name, sizeof name, "cellos-supervisor %s", p->cell_id ? p->cell_id : "");
	struct err ce = {0};
	int64_t t0_us = mono_us();
	if (!nats_api_load(&ce)) {
		err_set(e, "CELLOS_NATS_URL: %s", ce.msg);
		free(n);
		return NULL;
	}
	n->load_us = mono_us() - t0_us;
	t0_us = mono_us();
	int64_t t = mono_ms();
	int rc = nats_conn_open(&n->conn, p->conn, name, NATS_SINK_ATTEMPT_MS, p->require ? 0 : NATS_CONN_RETRY, &ce);
	n->spent_ms += mono_ms() - t;
	if (rc < 0) {
		/* Not even a connection object: libnats is missing or an option is
		 * unusable (a credentials or certificate file). */
		err_set(e, "%s%s", p->require ? "CELL_OS_REQUIRE_JETSTREAM: " : "", ce.msg);
		free(n);
		return NULL;
	}
	if (rc > 0)
		log_warn("NATS: no server answers yet (%s): events wait for one within the run's %d ms budget, then "
			 "go to the dead-letter directory",
			 ce.msg[0] ? ce.msg : "retrying", NATS_SINK_BUDGET_MS);
	if (rc == 0 && p->ensure_stream) {
		struct nats_stream_def d = {.name = NATS_STREAM_EVENTS_NAME, .subject = NATS_STREAM_EVENTS_SUBJECT};
		bool created = false;
		int replicas = 0;
		struct err se = {0};
		t = mono_ms();
		if (nats_stream_ensure(&n->conn, &d, 0, NATS_SINK_ATTEMPT_MS, &created, &replicas, &se) < 0) {
			if (p->require) {
				err_set(e, "CELLOS_NATS_ENSURE_STREAM: %s", se.msg);
				nats_close(&n->base);
				return NULL;
			}
			log_warn("CELLOS_NATS_ENSURE_STREAM: %s", se.msg);
		} else if (created) {
			log_info("NATS: created stream %s on %s (%d replica%s)", d.name, d.subject, replicas,
				 replicas == 1 ? "" : "s");
		}
		n->spent_ms += mono_ms() - t;
	}
	if (p->require && check_captured(n, e) < 0) {
		nats_close(&n->base);
		return NULL;
	}
	n->connect_us = mono_us() - t0_us;
	return &n->base;
}
