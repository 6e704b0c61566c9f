/* The agent's side of the work queue (SPEC §11): one durable pull consumer per
 * pool on CELLOS_CELLS, shared by every agent of the pool; pull requests for
 * exactly the free slots; acks the server confirms.
 *
 * Pull requests ($JS.API.CONSUMER.MSG.NEXT) are answered on one wildcard inbox
 * subscription, <inbox>.<pool index>.<request id>, and a finished job's ack on
 * <inbox>.a.<job index>.<token> (queue_ack_send). The subscription's callback
 * runs on libnats's thread and only writes the message pointer into a pipe the
 * main loop polls, so everything else happens on one thread.
 *
 * A pull request ends when its batch is delivered, with a status message (408
 * expired, 409 leadership change or consumer deleted, ...), or, when the server
 * that held it went away, at its deadline: then its slots are asked for again.
 * A job that arrives for a request we gave up on still runs if a slot is free;
 * otherwise it is handed back (-NAK), never dropped. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nats/nats.h>

#include "agent.h"
#include "sink/nats_dl.h"
#include "util/fileio.h"
#include "util/ids.h"
#include "util/log.h"

/* A pull request waits this long on the server for jobs, then is renewed. */
#define PULL_EXPIRES_MS 2000
/* ...and is given up on this long after it should have expired. */
#define PULL_GRACE_MS 1000
/* A consumer that could not be made is tried again after this. */
#define CONSUMER_RETRY_MS 1000

static void on_msg(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *closure)
{
	struct queue *q = closure;
	/* A full pipe blocks libnats's delivery thread: back-pressure, not loss. */
	if (write_all(q->pipe[1], &m, sizeof m) < 0)
		q->conn.api->natsMsg_Destroy(m);
}

int queue_open(struct queue *q, const struct agent_settings *s, struct agent_metrics *m, struct err *e)
{
	memset(q, 0, sizeof *q);
	q->pipe[0] = q->pipe[1] = -1;
	q->set = s;
	q->metrics = m;
	if (config_nats_load(&q->opts, NULL, e) != 0)
		return err_set(e, "CELLOS_NATS_URL: not set (cellos-agent takes its jobs from NATS JetStream)");
	if (pipe2(q->pipe, O_CLOEXEC) < 0)
		return err_sys(e, errno, "pipe");
	fcntl(q->pipe[0], F_SETFL, O_NONBLOCK);
	q->consumer_ready = calloc(s->n_pools, sizeof *q->consumer_ready);
	q->next_try_ms = calloc(s->n_pools, sizeof *q->next_try_ms);
	q->backlog = calloc(s->n_pools, sizeof *q->backlog);
	q->pulls = calloc(s->n_pools, sizeof *q->pulls);
	if (!q->consumer_ready || !q->next_try_ms || !q->backlog || !q->pulls)
		return err_set(e, "out of memory");
	/* A server that is not there yet is retried in the background. */
	if (nats_conn_open(&q->conn, &q->opts, "cellos-agent", AGENT_API_TIMEOUT_MS, NATS_CONN_RETRY, e) < 0)
		return -1;
	char id[37];
	uuid_v4(id);
	snprintf(q->inbox, sizeof q->inbox, "_INBOX.cellos-agent.%.8s%.4s", id, id + 9);
	char subject[80];
	snprintf(subject, sizeof subject, "%s.>", q->inbox);
	const struct nats_api *a = q->conn.api;
	natsStatus st = a->natsConnection_Subscribe(&q->sub, q->conn.nc, subject, on_msg, q);
	if (st == NATS_OK)
		st = a->natsSubscription_SetPendingLimits(q->sub, -1, -1);
	if (st != NATS_OK)
		return err_set(e, "NATS subscribe: %s", a->natsStatus_GetText(st));
	return 0;
}

void queue_close(struct queue *q)
{
	if (!q->set)
		return;
	if (q->sub)
		q->conn.api->natsSubscription_Destroy(q->sub);
	q->sub = NULL;
	if (q->conn.api) {
		/* Messages still in the pipe: released before the library goes. */
		natsMsg *m;
		while (read(q->pipe[0], &m, sizeof m) == (ssize_t)sizeof m)
			q->conn.api->natsMsg_Destroy(m);
		nats_conn_close(&q->conn);
	}
	for (int i = 0; i < 2; i++)
		if (q->pipe[i] >= 0)
			close(q->pipe[i]);
	config_nats_free(&q->opts);
	free(q->consumer_ready);
	free(q->next_try_ms);
	free(q->backlog);
	free(q->pulls);
	memset(q, 0, sizeof *q);
}

static void durable_name(const char *pool, char *out, size_t size) { snprintf(out, size, "cellos-agent-%s", pool); }

static int consumer_create(struct queue *q, size_t pool, struct err *e)
{
	char durable[128], api[256], filter[160];
	durable_name(q->set->pools[pool], durable, sizeof durable);
	snprintf(api, sizeof api, "CONSUMER.DURABLE.CREATE.%s.%s", NATS_STREAM_CELLS_NAME, durable);
	snprintf(filter, sizeof filter, "%s%s", NATS_STREAM_CELLS_SUBJECT_PREFIX, q->set->pools[pool]);
	json_t *req = json_pack("{s:s, s:{s:s, s:s, s:s, s:I, s:i, s:s, s:i}}", "stream_name", NATS_STREAM_CELLS_NAME,
				"config", "durable_name", durable, "deliver_policy", "all", "ack_policy", "explicit",
				"ack_wait", (json_int_t)AGENT_ACK_WAIT_S * 1000000000LL, "max_deliver", AGENT_MAX_DELIVER,
				"filter_subject", filter, "max_waiting", 512);
	if (!req)
		return err_set(e, "out of memory");
	json_t *resp = NULL;
	int rc = nats_js_request(&q->conn, api, req, &resp, AGENT_API_TIMEOUT_MS, NULL, e);
	json_decref(req);
	json_decref(resp);
	return rc;
}

/* A core publish on the queue's connection (reply: NULL for none). */
static natsStatus publish(struct queue *q, const char *subject, const char *reply, const char *data)
{
	const struct nats_api *a = q->conn.api;
	natsMsg *m = NULL;
	natsStatus s = a->natsMsg_Create(&m, subject, reply, data, (int)strlen(data));
	if (s == NATS_OK)
		s = a->natsConnection_PublishMsg(q->conn.nc, m);
	a->natsMsg_Destroy(m);
	return s;
}

/* Ask for n jobs of a pool. */
static void pull(struct queue *q, size_t pool, unsigned n)
{
	char durable[128], subject[256], reply[128], body[96];
	durable_name(q->set->pools[pool], durable, sizeof durable);
	snprintf(subject, sizeof subject, "$JS.API.CONSUMER.MSG.NEXT.%s.%s", NATS_STREAM_CELLS_NAME, durable);
	struct pull *p = &q->pulls[pool];
	p->id = ++q->next_pull_id;
	snprintf(reply, sizeof reply, "%s.%zu.%" PRIu64, q->inbox, pool, p->id);
	snprintf(body, sizeof body, "{\"batch\":%u,\"expires\":%lld}", n, (long long)PULL_EXPIRES_MS * 1000000LL);
	if (publish(q, subject, reply, body) != NATS_OK) {
		q->metrics->fetch_errors++;
		p->remaining = 0;
		return;
	}
	p->remaining = n;
	p->deadline_ms = mono_ms() + PULL_EXPIRES_MS + PULL_GRACE_MS;
}

int64_t queue_tick(struct queue *q, unsigned free_slots, bool fetch)
{
	int64_t now = mono_ms(), wait = PULL_EXPIRES_MS;
	bool connected = nats_conn_connected(&q->conn);
	unsigned outstanding = 0;
	for (size_t i = 0; i < q->set->n_pools; i++) {
		struct pull *p = &q->pulls[i];
		if (p->remaining && now >= p->deadline_ms) {
			/* No answer at all: the server holding it is gone. */
			q->metrics->fetch_errors++;
			p->remaining = 0;
		}
		outstanding += p->remaining;
		if (p->remaining && p->deadline_ms - now < wait)
			wait = p->deadline_ms - now;
	}
	if (!fetch || !connected)
		return connected ? wait : 200;
	for (size_t i = 0; i < q->set->n_pools; i++) {
		if (q->consumer_ready[i] || now < q->next_try_ms[i])
			continue;
		struct err e = {0};
		if (consumer_create(q, i, &e) == 0) {
			q->consumer_ready[i] = true;
			log_info("pool %s: taking jobs from %s%s", q->set->pools[i], NATS_STREAM_CELLS_SUBJECT_PREFIX,
				 q->set->pools[i]);
		} else {
			if (q->next_try_ms[i] == 0)
				log_warn("pool %s: %s (retrying every %d ms)", q->set->pools[i], e.msg, CONSUMER_RETRY_MS);
			q->metrics->fetch_errors++;
			q->next_try_ms[i] = mono_ms() + CONSUMER_RETRY_MS;
			if (CONSUMER_RETRY_MS < wait)
				wait = CONSUMER_RETRY_MS;
		}
	}
	/* The free slots not yet asked for, shared over the pools without a
	 * request, starting at a rotating pool so none is starved. */
	unsigned avail = free_slots > outstanding ? free_slots - outstanding : 0;
	size_t idle = 0;
	for (size_t i = 0; i < q->set->n_pools; i++)
		idle += q->consumer_ready[i] && !q->pulls[i].remaining;
	for (size_t k = 0; k < q->set->n_pools && avail && idle; k++) {
		size_t i = (q->next_pool + k) % q->set->n_pools;
		if (!q->consumer_ready[i] || q->pulls[i].remaining)
			continue;
		unsigned n = avail / (unsigned)idle;
		if (n == 0)
			n = 1;
		pull(q, i, n);
		avail -= n;
		idle--;
		q->next_pool = i + 1;
	}
	return wait;
}

/* "<inbox>.<pool>.<id>" -> pool index and request id. */
static bool reply_of(const struct queue *q, const char *subject, size_t *pool, uint64_t *id)
{
	size_t n = strlen(q->inbox);
	if (strncmp(subject, q->inbox, n) != 0 || subject[n] != '.')
		return false;
	char *end;
	unsigned long long p = strtoull(subject + n + 1, &end, 10);
	if (*end != '.' || p >= q->set->n_pools)
		return false;
	*pool = (size_t)p;
	*id = strtoull(end + 1, NULL, 10);
	return true;
}

/* "cellos.cells.<pool>" -> the pool's index. */
static bool pool_of(const struct queue *q, const char *subject, size_t *pool)
{
	size_t n = strlen(NATS_STREAM_CELLS_SUBJECT_PREFIX);
	if (strncmp(subject, NATS_STREAM_CELLS_SUBJECT_PREFIX, n) != 0)
		return false;
	for (size_t i = 0; i < q->set->n_pools; i++)
		if (strcmp(subject + n, q->set->pools[i]) == 0) {
			*pool = i;
			return true;
		}
	return false;
}

/* $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<dseq>.<ts>.<pending>, or the
 * newer form with <domain>.<account hash> after $JS.ACK and a random token at
 * the end. */
static bool parse_ack(const char *ack, unsigned *delivered, uint64_t *sseq, int64_t *ts, uint64_t *pending)
{
	char copy[256];
	snprintf(copy, sizeof copy, "%s", ack);
	char *tok[16], *save = NULL;
	int n = 0;
	for (char *t = strtok_r(copy, ".", &save); t && n < 16; t = strtok_r(NULL, ".", &save))
		tok[n++] = t;
	int base = n == 9 ? 4 : n >= 11 ? 6 : -1;
	if (base < 0 || strcmp(tok[0], "$JS") != 0 || strcmp(tok[1], "ACK") != 0)
		return false;
	*delivered = (unsigned)strtoul(tok[base], NULL, 10);
	*sseq = strtoull(tok[base + 1], NULL, 10);
	*ts = strtoll(tok[base + 3], NULL, 10);
	*pending = strtoull(tok[base + 4], NULL, 10);
	return true;
}

bool queue_has_backlog(const struct queue *q)
{
	for (size_t i = 0; i < q->set->n_pools; i++)
		if (q->backlog[i])
			return true;
	return false;
}

/* "<inbox>.a.<job index>.<token>" -> both. */
static bool ack_reply_of(const struct queue *q, const char *subject, struct ack_reply *ar)
{
	size_t n = strlen(q->inbox);
	if (strncmp(subject, q->inbox, n) != 0 || strncmp(subject + n, ".a.", 3) != 0)
		return false;
	char *end;
	ar->job = strtoull(subject + n + 3, &end, 10);
	if (*end != '.')
		return false;
	ar->token = strtoull(end + 1, NULL, 10);
	return true;
}

int queue_next(struct queue *q, struct delivery *d, struct ack_reply *ar)
{
	const struct nats_api *a = q->conn.api;
	natsMsg *m;
	for (;;) {
		ssize_t r = read(q->pipe[0], &m, sizeof m);
		if (r != (ssize_t)sizeof m)
			return 0;
		size_t pool;
		uint64_t id;
		const char *status = NULL;
		bool has_status = a->natsMsgHeader_Get(m, "Status", &status) == NATS_OK && status;
		if (ack_reply_of(q, a->natsMsg_GetSubject(m), ar)) {
			a->natsMsg_Destroy(m);
			/* A status here (503: no consumer took the ack) is no
			 * confirmation: the ack is sent again when its time is up. */
			if (has_status)
				continue;
			return QUEUE_ACKED;
		}
		/* A status message comes on the request's own reply subject; a job
		 * keeps the subject it was published to (cellos.cells.<pool>). */
		if (has_status) {
			if (!reply_of(q, a->natsMsg_GetSubject(m), &pool, &id)) {
				a->natsMsg_Destroy(m);
				continue;
			}
			struct pull *p = &q->pulls[pool];
			/* 100: a heartbeat. 404/408: nothing (more) for this request.
			 * Anything else (409 leadership change, consumer deleted...): an
			 * error; the request is over either way. */
			if (strcmp(status, "100") != 0) {
				if (strcmp(status, "404") == 0 || strcmp(status, "408") == 0) {
					/* The current request ended short of its batch:
					 * nothing waits (a late status of an older one
					 * says nothing about now). */
					if (p->id == id)
						q->backlog[pool] = 0;
				} else {
					q->metrics->fetch_errors++;
					if (strcmp(status, "409") == 0) {
						const char *desc = NULL;
						a->natsMsgHeader_Get(m, "Description", &desc);
						/* The consumer was deleted: make it again. */
						if (desc && strstr(desc, "Deleted"))
							q->consumer_ready[pool] = false;
					}
				}
				if (p->id == id)
					p->remaining = 0;
			}
			a->natsMsg_Destroy(m);
			continue;
		}
		const char *reply = a->natsMsg_GetReply(m);
		uint64_t sseq = 0;
		memset(d, 0, sizeof *d);
		if (!pool_of(q, a->natsMsg_GetSubject(m), &pool) || !reply ||
		    !parse_ack(reply, &d->delivered, &sseq, &d->queued_ns, &d->pending) || strlen(reply) >= sizeof d->ack) {
			a->natsMsg_Destroy(m);
			continue;
		}
		d->pool = pool;
		q->backlog[pool] = d->pending;
		if (q->pulls[pool].remaining)
			q->pulls[pool].remaining--;
		snprintf(d->ack, sizeof d->ack, "%s", reply);
		const char *msg_id = NULL;
		if (a->natsMsgHeader_Get(m, "Nats-Msg-Id", &msg_id) == NATS_OK && msg_id && *msg_id)
			snprintf(d->job_id, sizeof d->job_id, "%s", msg_id);
		else
			snprintf(d->job_id, sizeof d->job_id, "seq-%" PRIu64, sseq);
		int len = a->natsMsg_GetDataLength(m);
		d->len = len > 0 ? (size_t)len : 0;
		d->doc = malloc(d->len + 1);
		if (d->doc) {
			memcpy(d->doc, a->natsMsg_GetData(m), d->len);
			d->doc[d->len] = '\0';
		}
		a->natsMsg_Destroy(m);
		if (!d->doc) {
			/* Not taken: it comes back after AckWait. */
			log_error("job %s: out of memory", d->job_id);
			continue;
		}
		return QUEUE_JOB;
	}
}

void delivery_free(struct delivery *d)
{
	free(d->doc);
	d->doc = NULL;
}

int queue_ack(struct queue *q, const char *ack_subject, const char *what, struct err *e)
{
	const struct nats_api *a = q->conn.api;
	if (strcmp(what, "+WPI") == 0) {
		natsStatus s = publish(q, ack_subject, NULL, what);
		return s == NATS_OK ? 0 : err_set(e, "%s: %s", what, a->natsStatus_GetText(s));
	}
	/* With a reply subject the server answers once it has the ack: only then
	 * is it done (SPEC §11: acks are synchronous). */
	natsMsg *reply = NULL;
	natsStatus s = a->natsConnection_Request(&reply, q->conn.nc, ack_subject, what, (int)strlen(what),
						 AGENT_API_TIMEOUT_MS);
	a->natsMsg_Destroy(reply);
	if (s != NATS_OK)
		return err_set(e, "%s not confirmed: %s", what, a->natsStatus_GetText(s));
	return 0;
}

int queue_ack_send(struct queue *q, const char *ack_subject, const char *what, size_t job, uint64_t token,
		   struct err *e)
{
	char reply[128];
	snprintf(reply, sizeof reply, "%s.a.%zu.%" PRIu64, q->inbox, job, token);
	natsStatus s = publish(q, ack_subject, reply, what);
	return s == NATS_OK ? 0 : err_set(e, "%s: %s", what, q->conn.api->natsStatus_GetText(s));
}
