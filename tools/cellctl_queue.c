/* cellctl's distributed commands (SPEC §11): queue init, queue, submit, watch.
 *
 * The queue is the JetStream stream CELLOS_CELLS (work-queue retention,
 * subjects cellos.cells.<pool>, one message per cell document, Nats-Msg-Id =
 * job id); the events are in CELLOS_EVENTS (cellos.events.>), where the
 * supervisors run by cellos-agent publish them. Connection options and the
 * JetStream calls are src/sink/nats_conn.h's, shared with the supervisor and
 * the agent.
 *
 * A job's runs are found by their events: the agent sets the document's
 * correlation.externalJobId to the job id, and the supervisor puts the
 * correlation into lifecycle.v1.started, lifecycle.v1.failed (agent) and
 * compliance.v1.summary; every other event of the run is then known by its
 * runId. */
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nats/nats.h>

#include "cellctl.h"
#include "config.h"
#include "events/event.h"
#include "events/sign.h"
#include "sink/nats_conn.h"
#include "sink/nats_dl.h"
#include "spec/spec.h"
#include "util/ids.h"

/* How long a JetStream API call or a publish may wait for its answer. */
#define API_TIMEOUT_MS 5000
/* How long a connection attempt to one server may take. */
#define CONNECT_TIMEOUT_MS 2000
/* While following events, how often a stop signal is looked at. */
#define POLL_MS 200
/* The server's heartbeat on an idle consumer, and how long without one (or an
 * event) until the consumer counts as lost. */
#define HEARTBEAT_MS 2000
#define LOST_MS (3 * HEARTBEAT_MS)

const char cellctl_queue_help[] =
	"usage: cellctl queue [init] [--server URL] [--replicas N]\n"
	"\n"
	"Without an operand: print the jobs of the queue (the JetStream stream\n"
	"CELLOS_CELLS) per pool, as a table: POOL, PENDING (queued, not yet taken by an\n"
	"agent), IN-FLIGHT (taken by an agent and not yet acknowledged) and CONSUMERS\n"
	"(the agents' durable consumers reading that pool).\n"
	"\n"
	"queue init: make the streams of distributed mode when they do not exist yet\n"
	"(an existing stream is left as it is), and say what there is:\n"
	"  CELLOS_CELLS   work-queue retention, subjects cellos.cells.<pool>, a job id\n"
	"                 resubmitted within an hour is de-duplicated\n"
	"  CELLOS_EVENTS  the cells' events, subjects cellos.events.>\n"
	"Both use file storage and as many replicas as the cluster has servers, up to\n"
	"3 (one on a single server).\n"
	"\n"
	"  --server URL   the NATS servers (nats://host:port or tls://host:port, a\n"
	"                 comma list for a cluster); default CELLOS_NATS_URL.\n"
	"                 CELLOS_NATS_CREDS and CELLOS_NATS_TLS_CA, _CERT, _KEY apply\n"
	"  --replicas N   (init) exactly N replicas (1-5) instead\n"
	"\n"
	"Exit status: 0 success; 2 usage or I/O error (no server, a JetStream error).\n";

const char cellctl_submit_help[] =
	"usage: cellctl submit DOC|- [--pool P] [--job-id ID] [--wait] [--no-validate] [--server URL]\n"
	"\n"
	"Queue a cell for cellos-agent: publish the document to cellos.cells.<pool> of\n"
	"the stream CELLOS_CELLS, wait for the stream's acknowledgement, and print the\n"
	"job id on stdout. The document is validated first (as cellctl validate does\n"
	"with the document alone); its problems are printed and nothing is queued.\n"
	"Publishing a job id again within an hour is de-duplicated by the stream: the\n"
	"job is not queued twice (stderr says so).\n"
	"\n"
	"  DOC|-          the ExecutionCell document (- : standard input)\n"
	"  --pool P       the pool (a NATS subject token); default the document's\n"
	"                 spec.placement.poolId, else \"default\". A --pool that differs\n"
	"                 from the document's poolId is a usage error\n"
	"  --job-id ID    the job id, a UUID (default: a new one)\n"
	"  --wait         then follow the job's events (the show format, on stdout\n"
	"                 after the job id) until a run of it ends, and exit with the\n"
	"                 cell's status, like a local cellos-supervisor run\n"
	"  --no-validate  queue the document as it is (the agent refuses an invalid\n"
	"                 one with a lifecycle.v1.failed event)\n"
	"  --server URL   the NATS servers; default CELLOS_NATS_URL (see cellctl queue)\n"
	"\n"
	"Exit status: 0 queued (with --wait: the cell's status, SPEC §1: 0, the\n"
	"workload's status, 124 timeout, 125 the supervisor failed or refused the\n"
	"cell, 128+N a signal); 1 the document has problems, or the cell failed\n"
	"without an exit status; 2 usage or I/O error (no server, no stream, interrupted\n"
	"while waiting).\n";

const char cellctl_watch_help[] =
	"usage: cellctl watch [--job ID] [--cell ID] [--server URL]\n"
	"\n"
	"Follow the cells' events as they are published to the stream CELLOS_EVENTS,\n"
	"live, in the format of cellctl show (one line per event, a summary when a run\n"
	"ends), until SIGINT or SIGTERM (then exit 0). Events published before the\n"
	"command started are not shown. Signed envelopes are shown as the events they\n"
	"carry, unverified.\n"
	"\n"
	"  --job ID       only the runs of this job (cellctl submit's job id: the\n"
	"                 document's correlation.externalJobId, set by cellos-agent)\n"
	"  --cell ID      only the events of this cell (the document's spec.id)\n"
	"  --server URL   the NATS servers; default CELLOS_NATS_URL (see cellctl queue)\n"
	"\n"
	"Exit status: 0 stopped by a signal; 2 usage or I/O error.\n";

/* ---- connection ---- */

static int connect_or_say(const struct cellctl_cmd *cmd, const char *server, struct nats_conn *c,
			  struct nats_conn_opts *o)
{
	struct err e = {0};
	int rc = config_nats_load(o, server, &e);
	if (rc > 0)
		return cellctl_usage_error(cmd, "no NATS server: set CELLOS_NATS_URL or give --server URL");
	if (rc < 0 || nats_conn_open(c, o, "cellctl", CONNECT_TIMEOUT_MS, 0, &e) < 0) {
		fprintf(stderr, "cellctl %s: %s\n", cmd->name, e.msg);
		config_nats_free(o);
		return CELLCTL_ERROR;
	}
	return CELLCTL_OK;
}

static void disconnect(struct nats_conn *c, struct nats_conn_opts *o)
{
	nats_conn_close(c);
	config_nats_free(o);
}

/* A valid pool name: one NATS subject token (SPEC §11). */
static bool is_pool(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch <= 0x20 || ch == 0x7f || ch == '.' || ch == '*' || ch == '>')
			return false;
	}
	return true;
}

/* ---- queue init, queue ---- */

/* How long queue init keeps asking a cluster that does not answer. */
#define INIT_BUDGET_MS 30000

/* A cluster that has just formed can leave a JetStream API request without an
 * answer while its leaders settle (seen: the STREAM.CREATE of an R3 stream,
 * right after the meta group had a leader, unanswered for 5 s). The requests
 * of queue init are idempotent (STREAM.INFO, and a STREAM.CREATE of the same
 * configuration answers with the stream), so one that got no answer at all is
 * asked again until INIT_BUDGET_MS; any answer, error or not, is final. */
struct init_conn {
	struct nats_conn *c;
	int64_t deadline_ms;
};

static int init_request(void *arg, const char *api, json_t *req, json_t **resp, int64_t timeout_ms, int *err_code,
			struct err *e)
{
	struct init_conn *ic = arg;
	for (;;) {
		/* The last attempt gets what is left of the budget, not more. */
		int64_t left = ic->deadline_ms - mono_ms();
		int code = 0;
		int rc = nats_js_request(ic->c, api, req, resp, left > 0 && left < timeout_ms ? left : timeout_ms, &code,
					 e);
		if (err_code)
			*err_code = code;
		if (rc == 0 || code != NATS_JS_NO_ANSWER || mono_ms() >= ic->deadline_ms)
			return rc;
	}
}

static int queue_init(const struct cellctl_cmd *cmd, struct nats_conn *c, int replicas)
{
	const struct nats_stream_def defs[] = {
		{.name = NATS_STREAM_CELLS_NAME,
		 .subject = NATS_STREAM_CELLS_SUBJECT_PREFIX "*",
		 .work_queue = true,
		 .duplicate_window_ns = NATS_CELLS_DUPLICATE_WINDOW_NS},
		{.name = NATS_STREAM_EVENTS_NAME, .subject = NATS_STREAM_EVENTS_SUBJECT},
	};
	struct init_conn ic = {.c = c, .deadline_ms = mono_ms() + INIT_BUDGET_MS};
	for (size_t i = 0; i < 2; i++) {
		bool created = false;
		int r = 0;
		struct err e = {0};
		if (nats_stream_ensure_via(init_request, &ic, &defs[i], replicas, API_TIMEOUT_MS, &created, &r, &e) < 0) {
			fprintf(stderr, "cellctl %s: stream %s: %s\n", cmd->name, defs[i].name, e.msg);
			return CELLCTL_ERROR;
		}
		printf("%s: %s (subjects %s, %d replica%s)\n", defs[i].name, created ? "created" : "exists",
		       defs[i].subject, r, r == 1 ? "" : "s");
	}
	return CELLCTL_OK;
}

struct pool_row {
	char name[256];
	long long stored, in_flight;
	int consumers;
};

static struct pool_row *pool_row(struct pool_row *rows, size_t *n, size_t cap, const char *subject)
{
	size_t plen = strlen(NATS_STREAM_CELLS_SUBJECT_PREFIX);
	const char *name = strncmp(subject, NATS_STREAM_CELLS_SUBJECT_PREFIX, plen) == 0 ? subject + plen : subject;
	for (size_t i = 0; i < *n; i++)
		if (strcmp(rows[i].name, name) == 0)
			return &rows[i];
	if (*n == cap)
		return NULL;
	struct pool_row *r = &rows[(*n)++];
	*r = (struct pool_row){0};
	snprintf(r->name, sizeof r->name, "%s", name);
	return r;
}

static int cmp_rows(const void *a, const void *b)
{
	return strcmp(((const struct pool_row *)a)->name, ((const struct pool_row *)b)->name);
}

/* A work queue holds a job until it is acked: what is stored per subject is
 * pending plus in flight; the consumers' ack-pending counts are in flight. */
static int queue_show(const struct cellctl_cmd *cmd, struct nats_conn *c)
{
	struct err e = {0};
	json_t *info = NULL, *list = NULL;
	json_t *req = json_pack("{s:s}", "subjects_filter", NATS_STREAM_CELLS_SUBJECT_PREFIX "*");
	int rc = nats_js_request(c, "STREAM.INFO." NATS_STREAM_CELLS_NAME, req, &info, API_TIMEOUT_MS, NULL, &e);
	json_decref(req);
	if (rc == 0)
		rc = nats_js_request(c, "CONSUMER.LIST." NATS_STREAM_CELLS_NAME, NULL, &list, API_TIMEOUT_MS, NULL, &e);
	if (rc < 0) {
		fprintf(stderr, "cellctl %s: %s%s\n", cmd->name, e.msg,
			strstr(e.msg, "not found") ? " (cellctl queue init makes the streams)" : "");
		json_decref(info);
		return CELLCTL_ERROR;
	}
	enum { MAX_POOLS = 1024 };
	static struct pool_row rows[MAX_POOLS];
	size_t n = 0;
	const char *subject;
	json_t *count;
	json_object_foreach(json_object_get(json_object_get(info, "state"), "subjects"), subject, count)
	{
		struct pool_row *r = pool_row(rows, &n, MAX_POOLS, subject);
		if (r)
			r->stored += json_integer_value(count);
	}
	size_t i;
	json_t *ci;
	json_array_foreach(json_object_get(list, "consumers"), i, ci)
	{
		const char *filter = json_string_value(json_object_get(json_object_get(ci, "config"), "filter_subject"));
		struct pool_row *r = pool_row(rows, &n, MAX_POOLS, filter ? filter : "*");
		if (!r)
			continue;
		r->consumers++;
		r->in_flight += json_integer_value(json_object_get(ci, "num_ack_pending"));
	}
	qsort(rows, n, sizeof rows[0], cmp_rows);
	printf("%-20s %8s %9s %9s\n", "POOL", "PENDING", "IN-FLIGHT", "CONSUMERS");
	for (i = 0; i < n; i++) {
		long long pending = rows[i].stored - rows[i].in_flight;
		char shown[1024];
		printf("%-20s %8lld %9lld %9d\n", cellctl_shown(shown, sizeof shown, rows[i].name, strlen(rows[i].name)),
		       pending < 0 ? 0 : pending, rows[i].in_flight, rows[i].consumers);
	}
	json_decref(info);
	json_decref(list);
	return CELLCTL_OK;
}

int cellctl_queue(const struct cellctl_cmd *cmd, int argc, char **argv)
{
	const char *server = NULL, *replicas_s = NULL, *pos[1];
	size_t npos;
	const struct cellctl_opt opts[] = {{"--server", &server, NULL}, {"--replicas", &replicas_s, NULL}, {0}};
	if (cellctl_args(cmd, argc, argv, opts, pos, 1, &npos) != CELLCTL_OK)
		return CELLCTL_ERROR;
	bool init = npos == 1;
	if (init && strcmp(pos[0], "init") != 0)
		return cellctl_usage_error(cmd, "unknown operand %s (expected init, or nothing)", pos[0]);
	int replicas = 0;
	if (replicas_s) {
		char *end;
		long r = strtol(replicas_s, &end, 10);
		if (!init)
			return cellctl_usage_error(cmd, "--replicas goes with queue init");
		if (*end || r < 1 || r > 5)
			return cellctl_usage_error(cmd, "--replicas: expected 1 to 5, got '%s'", replicas_s);
		replicas = (int)r;
	}
	struct nats_conn c;
	struct nats_conn_opts o = {0};
	if (connect_or_say(cmd, server, &c, &o) != CELLCTL_OK)
		return CELLCTL_ERROR;
	int rc = init ? queue_init(cmd, &c, replicas) : queue_show(cmd, &c);
	disconnect(&c, &o);
	if (rc == CELLCTL_OK && fflush(stdout) != 0) {
		fprintf(stderr, "cellctl %s: cannot write: %s\n", cmd->name, strerror(errno));
		rc = CELLCTL_ERROR;
	}
	return rc;
}

/* ---- following events (watch, submit --wait) ---- */

static volatile sig_atomic_t stop_signal;
static void on_stop(int sig) { stop_signal = sig; }

static void catch_stop_signals(void)
{
	struct sigaction sa = {.sa_handler = on_stop};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

/* An ephemeral push consumer on CELLOS_EVENTS delivering to a subscription of
 * ours: no acks (a reader, not a worker), gone when we are. The server sends a
 * heartbeat when there is nothing to deliver; when neither comes for a while,
 * the consumer is gone (a restarted server, a cluster that lost it) and is made
 * again from the stream sequence after the last event seen. */
struct follower {
	struct nats_conn *c;
	natsSubscription *sub;
	char consumer[128];
	char *inbox;
	int64_t start_ns;        /* what the first consumer started from (follow_open) */
	uint64_t last_seq;       /* stream sequence of the last event delivered; 0: none yet */
	int64_t last_heard_ms;   /* monotonic time of the last message or heartbeat */
};

static int64_t mono_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Make the consumer: after the stream sequence f->last_seq when there is one,
 * else from f->start_ns (0: what is published from now on; -1: everything). */
static int consumer_create(struct follower *f, struct err *e)
{
	json_t *cfg = json_pack("{s:s, s:s, s:s, s:b, s:I, s:I}", "deliver_subject", f->inbox, "ack_policy", "none",
				"filter_subject", NATS_STREAM_EVENTS_SUBJECT, "mem_storage", 1, "inactive_threshold",
				(json_int_t)(60LL * 1000000000LL), "idle_heartbeat",
				(json_int_t)(HEARTBEAT_MS * 1000000LL));
	if (!cfg)
		return err_set(e, "out of memory");
	if (f->last_seq) {
		json_object_set_new(cfg, "deliver_policy", json_string("by_start_sequence"));
		json_object_set_new(cfg, "opt_start_seq", json_integer((json_int_t)(f->last_seq + 1)));
	} else if (f->start_ns > 0) {
		char when[64];
		time_t secs = (time_t)(f->start_ns / 1000000000LL);
		struct tm tm;
		gmtime_r(&secs, &tm);
		size_t k = strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
		snprintf(when + k, sizeof when - k, ".%09lldZ", (long long)(f->start_ns % 1000000000LL));
		json_object_set_new(cfg, "deliver_policy", json_string("by_start_time"));
		json_object_set_new(cfg, "opt_start_time", json_string(when));
	} else {
		json_object_set_new(cfg, "deliver_policy", json_string(f->start_ns < 0 ? "all" : "new"));
	}
	json_t *req = json_pack("{s:s, s:o}", "stream_name", NATS_STREAM_EVENTS_NAME, "config", cfg), *resp = NULL;
	int rc = req ? nats_js_request(f->c, "CONSUMER.CREATE." NATS_STREAM_EVENTS_NAME, req, &resp, API_TIMEOUT_MS,
				       NULL, e)
		     : err_set(e, "out of memory");
	json_decref(req);
	if (rc < 0)
		return -1;
	snprintf(f->consumer, sizeof f->consumer, "%s", json_string_value(json_object_get(resp, "name")) ?: "");
	json_decref(resp);
	f->last_heard_ms = mono_now_ms();
	return 0;
}

static int follow_open(struct follower *f, struct nats_conn *c, int64_t start_ns, struct err *e)
{
	const struct nats_api *a = c->api;
	*f = (struct follower){.c = c, .start_ns = start_ns};
	natsInbox *inbox = NULL;
	if (a->natsInbox_Create(&inbox) != NATS_OK || !(f->inbox = strdup(inbox))) {
		a->natsInbox_Destroy(inbox);
		return err_set(e, "out of memory");
	}
	a->natsInbox_Destroy(inbox);
	if (a->natsConnection_SubscribeSync(&f->sub, c->nc, f->inbox) != NATS_OK)
		return err_set(e, "cannot subscribe to %s", f->inbox);
	return consumer_create(f, e);
}

static void consumer_delete(struct follower *f)
{
	if (!f->consumer[0])
		return;
	char api[256];
	json_t *resp = NULL;
	struct err e = {0};
	snprintf(api, sizeof api, "CONSUMER.DELETE." NATS_STREAM_EVENTS_NAME ".%s", f->consumer);
	nats_js_request(f->c, api, NULL, &resp, API_TIMEOUT_MS, NULL, &e);
	json_decref(resp);
	f->consumer[0] = '\0';
}

static void follow_close(struct follower *f)
{
	consumer_delete(f);
	if (f->sub)
		f->c->api->natsSubscription_Destroy(f->sub);
	free(f->inbox);
}

/* The stream sequence of a delivered message, from its reply subject
 * $JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<time>.<pending>
 * (a domain adds two tokens in front of <stream>); 0 when there is none. */
static uint64_t stream_seq_of(const char *reply)
{
	if (!reply || strncmp(reply, "$JS.ACK.", 8) != 0)
		return 0;
	const char *tok[12];
	int n = 0;
	for (const char *p = reply; p && n < 12; p = strchr(p, '.'), p = p ? p + 1 : NULL)
		tok[n++] = p;
	int at = n == 9 ? 5 : n >= 11 ? 7 : -1;
	return at < 0 ? 0 : strtoull(tok[at], NULL, 10);
}

/* What a job's runs have said so far. */
struct job_watch {
	const char *job;         /* NULL: every run */
	const char *cell;        /* NULL: every cell */
	char **runs;             /* runs of the job */
	size_t n_runs;
	/* The end of the first run of the job that ended. */
	bool ended;
	int status;
	json_t *exits;           /* runId -> command.completed exitCode */
};

static bool job_has_run(const struct job_watch *w, const char *run)
{
	for (size_t i = 0; i < w->n_runs; i++)
		if (strcmp(w->runs[i], run) == 0)
			return true;
	return false;
}

static void job_add_run(struct job_watch *w, const char *run)
{
	if (job_has_run(w, run))
		return;
	char **nr = realloc(w->runs, (w->n_runs + 1) * sizeof *nr);
	if (!nr)
		return;
	w->runs = nr;
	if ((w->runs[w->n_runs] = strdup(run)))
		w->n_runs++;
}

/* The status a local run of the supervisor would have exited with (SPEC §1),
 * from the run's last event. */
static int run_status(const char *short_type, json_t *d, json_t *exit_code)
{
	if (strcmp(short_type, "lifecycle.v1.failed") == 0)
		return 125; /* refused or failed before the cell started */
	const char *reason = json_string_value(json_object_get(d, "reason"));
	const char *outcome = json_string_value(json_object_get(d, "outcome"));
	if (reason && (strcmp(reason, "export_failed") == 0 || strcmp(reason, "backend_failed") == 0))
		return 125;
	if (reason && strcmp(reason, "supervisor_terminated") == 0)
		return 128 + SIGTERM;
	if (json_is_integer(exit_code))
		return (int)json_integer_value(exit_code);
	if (outcome && strcmp(outcome, "succeeded") == 0)
		return 0;
	return CELLCTL_PROBLEMS;
}

/* One message from CELLOS_EVENTS: shown when it belongs to what is watched. */
static void on_event(struct job_watch *w, struct show *show, const char *text, size_t len)
{
	json_t *ev = json_loadb(text, len, 0, NULL);
	json_t *inner = ev;
	const char *type = json_string_value(json_object_get(ev, "type"));
	if (type && strcmp(type, SIGNED_ENVELOPE_TYPE) == 0) {
		inner = json_object_get(json_object_get(ev, "data"), "event");
		type = json_string_value(json_object_get(inner, "type"));
	}
	json_t *d = json_object_get(inner, "data");
	const char *run = json_string_value(json_object_get(d, "runId"));
	const char *cell = json_string_value(json_object_get(d, "cellId"));
	if (!type || !run || strncmp(type, EVENT_TYPE_PREFIX, strlen(EVENT_TYPE_PREFIX)) != 0 ||
	    (w->cell && (!cell || strcmp(cell, w->cell) != 0))) {
		json_decref(ev);
		return;
	}
	const char *st = type + strlen(EVENT_TYPE_PREFIX);
	if (w->job) {
		const char *job =
			json_string_value(json_object_get(json_object_get(d, "correlation"), "externalJobId"));
		if (job && strcmp(job, w->job) == 0)
			job_add_run(w, run);
		if (!job_has_run(w, run)) {
			json_decref(ev);
			return;
		}
	}
	cellctl_show_event(show, text, len);
	if (strcmp(st, "command.v1.completed") == 0 && w->exits)
		json_object_set(w->exits, run, json_object_get(d, "exitCode"));
	if (w->job && !w->ended &&
	    (strcmp(st, "lifecycle.v1.destroyed") == 0 || strcmp(st, "lifecycle.v1.failed") == 0)) {
		w->ended = true;
		w->status = run_status(st, d, w->exits ? json_object_get(w->exits, run) : NULL);
	}
	json_decref(ev);
}

/* Follow until the job ends (until_end) or a stop signal. -1 with *e when the
 * subscription failed. */
static int follow(struct follower *f, struct job_watch *w, bool until_end, struct err *e)
{
	const struct nats_api *a = f->c->api;
	struct show *show = cellctl_show_new(NATS_STREAM_EVENTS_NAME);
	if (!show)
		return err_set(e, "out of memory");
	int rc = 0;
	while (!stop_signal && !(until_end && w->ended)) {
		natsMsg *m = NULL;
		natsStatus s = a->natsSubscription_NextMsg(&m, f->sub, POLL_MS);
		if (s == NATS_TIMEOUT) {
			if (mono_now_ms() - f->last_heard_ms < LOST_MS)
				continue;
			/* Neither events nor heartbeats: make the consumer again
			 * (libnats reconnects the subscription itself). */
			struct err ce = {0};
			consumer_delete(f);
			if (consumer_create(f, &ce) < 0) {
				f->last_heard_ms = mono_now_ms(); /* try again later */
				continue;
			}
			fprintf(stderr, "cellctl: the events consumer was lost (a server restarted?): resumed%s\n",
				f->last_seq ? " after the last event shown" : "");
			continue;
		}
		if (s != NATS_OK) {
			/* A slow reader: some events were dropped for it. Say so, go on. */
			if (s == NATS_SLOW_CONSUMER) {
				fprintf(stderr, "cellctl: some events were missed (too slow a reader)\n");
				continue;
			}
			rc = err_set(e, "reading events: %s", a->natsStatus_GetText(s));
			break;
		}
		f->last_heard_ms = mono_now_ms();
		int len = a->natsMsg_GetDataLength(m);
		/* Flow-control and heartbeat messages have no body. */
		if (len > 0) {
			uint64_t seq = stream_seq_of(a->natsMsg_GetReply(m));
			if (seq)
				f->last_seq = seq;
			on_event(w, show, a->natsMsg_GetData(m), (size_t)len);
		}
		a->natsMsg_Destroy(m);
		fflush(stdout);
	}
	cellctl_show_free(show);
	return rc;
}

static void job_watch_free(struct job_watch *w)
{
	for (size_t i = 0; i < w->n_runs; i++)
		free(w->runs[i]);
	free(w->runs);
	json_decref(w->exits);
}

int cellctl_watch(const struct cellctl_cmd *cmd, int argc, char **argv)
{
	const char *server = NULL, *pos[1];
	struct job_watch w = {0};
	size_t npos;
	const struct cellctl_opt opts[] = {
		{"--server", &server, NULL}, {"--job", &w.job, NULL}, {"--cell", &w.cell, NULL}, {0}};
	if (cellctl_args(cmd, argc, argv, opts, pos, 0, &npos) != CELLCTL_OK)
		return CELLCTL_ERROR;
	if ((w.job && !*w.job) || (w.cell && !*w.cell))
		return cellctl_usage_error(cmd, "%s needs a value", w.job && !*w.job ? "--job" : "--cell");
	catch_stop_signals();
	struct nats_conn c;
	struct nats_conn_opts o = {0};
	if (connect_or_say(cmd, server, &c, &o) != CELLCTL_OK)
		return CELLCTL_ERROR;
	struct follower f;
	struct err e = {0};
	int rc = CELLCTL_OK;
	if (follow_open(&f, &c, 0, &e) < 0) {
		rc = CELLCTL_ERROR;
	} else {
		setvbuf(stdout, NULL, _IOLBF, 0);
		fprintf(stderr, "cellctl watch: following %s (SIGINT or SIGTERM to stop)\n", NATS_STREAM_EVENTS_NAME);
		if (follow(&f, &w, false, &e) < 0)
			rc = CELLCTL_ERROR;
	}
	follow_close(&f);
	if (rc != CELLCTL_OK)
		fprintf(stderr, "cellctl watch: %s\n", e.msg);
	disconnect(&c, &o);
	job_watch_free(&w);
	return rc;
}

/* ---- submit ---- */

/* 8-4-4-4-12 hex digits, as CELLOS_RUN_ID. */
static bool is_uuid(const char *s)
{
	if (strlen(s) != 36)
		return false;
	for (int i = 0; i < 36; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;
		if (dash ? s[i] != '-' : !((s[i] >= '0' && s[i] <= '9') || ((s[i] | 0x20) >= 'a' && (s[i] | 0x20) <= 'f')))
			return false;
	}
	return true;
}

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* When the stream took a job that turned out to be a duplicate: the time of
 * the original message, so its runs' events can be found from there; -1 (all
 * events) when the queue no longer holds it (an agent took and acked it). */
static int64_t original_time(struct nats_conn *c, uint64_t seq)
{
	json_t *req = json_pack("{s:I}", "seq", (json_int_t)seq), *resp = NULL;
	struct err e = {0};
	int rc = req ? nats_js_request(c, "STREAM.MSG.GET." NATS_STREAM_CELLS_NAME, req, &resp, API_TIMEOUT_MS, NULL,
				       &e)
		     : -1;
	json_decref(req);
	const char *t = rc == 0 ? json_string_value(json_object_get(json_object_get(resp, "message"), "time")) : NULL;
	struct tm tm = {0};
	const char *rest = t ? strptime(t, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;
	json_decref(resp);
	if (!rest)
		return -1;
	/* A second earlier: the clocks of the servers and of the supervisors'
	 * hosts may differ a little; extra events are filtered out anyway. */
	return ((int64_t)timegm(&tm) - 1) * 1000000000LL;
}

int cellctl_submit(const struct cellctl_cmd *cmd, int argc, char **argv)
{
	const char *server = NULL, *pool = NULL, *job_id = NULL, *pos[1];
	bool wait = false, no_validate = false;
	size_t npos;
	const struct cellctl_opt opts[] = {{"--server", &server, NULL},
					   {"--pool", &pool, NULL},
					   {"--job-id", &job_id, NULL},
					   {"--wait", NULL, &wait},
					   {"--no-validate", NULL, &no_validate},
					   {0}};
	if (cellctl_args(cmd, argc, argv, opts, pos, 1, &npos) != CELLCTL_OK)
		return CELLCTL_ERROR;
	if (npos != 1)
		return cellctl_usage_error(cmd, "no document given (a file, or - for standard input)");
	char job[37];
	if (job_id) {
		if (!is_uuid(job_id))
			return cellctl_usage_error(cmd, "--job-id: '%s' is not a UUID", job_id);
		for (int i = 0; i < 36; i++)
			job[i] = (char)(job_id[i] >= 'A' && job_id[i] <= 'F' ? job_id[i] - 'A' + 'a' : job_id[i]);
		job[36] = '\0';
	} else {
		uuid_v4(job);
	}
	if (pool && !is_pool(pool))
		return cellctl_usage_error(cmd, "--pool: '%s' is not a NATS subject token (no '.', '*', '>', blanks)",
					   pool);

	char *doc = NULL, shown[1024];
	size_t len = 0;
	struct err e = {0};
	cellctl_shown(shown, sizeof shown, pos[0], strlen(pos[0]));
	if (spec_read(pos[0], &doc, &len, &e) < 0) {
		fprintf(stderr, "cellctl submit: %s\n", e.msg);
		return CELLCTL_ERROR;
	}
	/* The pool: the document's, unless --pool says it (they must agree). */
	json_t *root = json_loadb(doc, len, 0, NULL);
	const char *doc_pool =
		json_string_value(json_object_get(json_object_get(json_object_get(root, "spec"), "placement"), "poolId"));
	char pool_buf[256];
	snprintf(pool_buf, sizeof pool_buf, "%s", pool ? pool : doc_pool ? doc_pool : "default");
	if (pool && doc_pool && strcmp(pool, doc_pool) != 0) {
		cellctl_usage_error(cmd, "--pool %s differs from the document's spec.placement.poolId %s", pool,
				    doc_pool);
		json_decref(root);
		free(doc);
		return CELLCTL_ERROR;
	}
	json_decref(root);
	if (!is_pool(pool_buf)) {
		free(doc);
		fprintf(stderr, "cellctl submit: spec.placement.poolId: '%s' is not a NATS subject token\n",
			cellctl_shown(shown, sizeof shown, pool_buf, strlen(pool_buf)));
		return CELLCTL_PROBLEMS;
	}
	if (!no_validate) {
		struct spec spec;
		struct problems probs = {0}, warns = {0};
		int prc = spec_parse_ex(doc, len, false, &spec, &probs, &warns);
		for (size_t i = 0; i < probs.n; i++) {
			char msg[8192];
			printf("%s: %s\n", shown, cellctl_shown(msg, sizeof msg, probs.items[i], strlen(probs.items[i])));
		}
		problems_free(&probs);
		problems_free(&warns);
		if (prc < 0) {
			free(doc);
			fflush(stdout);
			return CELLCTL_PROBLEMS;
		}
		spec_free(&spec);
	}

	if (wait)
		catch_stop_signals();
	struct nats_conn c;
	struct nats_conn_opts o = {0};
	if (connect_or_say(cmd, server, &c, &o) != CELLCTL_OK) {
		free(doc);
		return CELLCTL_ERROR;
	}
	int rc = CELLCTL_ERROR;
	struct follower f = {0};
	struct job_watch w = {.job = job, .exits = json_object()};
	/* Following starts before the job is queued, so no event of it is missed;
	 * a second back for the servers' clocks. */
	int64_t since = now_ns() - 1000000000LL;
	if (wait && follow_open(&f, &c, since, &e) < 0) {
		fprintf(stderr, "cellctl submit: events: %s\n", e.msg);
		goto out;
	}
	char subject[300];
	snprintf(subject, sizeof subject, NATS_STREAM_CELLS_SUBJECT_PREFIX "%s", pool_buf);
	struct nats_pub_ack ack;
	if (nats_js_publish(&c, subject, job, doc, len, API_TIMEOUT_MS, &ack, &e) < 0) {
		fprintf(stderr, "cellctl submit: %s%s\n", e.msg,
			strstr(e.msg, "no JetStream stream") ? " (cellctl queue init makes the streams)" : "");
		goto out;
	}
	printf("%s\n", job);
	fflush(stdout);
	if (ack.duplicate)
		fprintf(stderr, "cellctl submit: job %s was queued already: de-duplicated by the stream\n", job);
	if (!wait) {
		rc = CELLCTL_OK;
		goto out;
	}
	if (ack.duplicate) {
		/* Its runs may have started before this command: look from the
		 * original submission on. */
		follow_close(&f);
		if (follow_open(&f, &c, original_time(&c, ack.seq), &e) < 0) {
			fprintf(stderr, "cellctl submit: events: %s\n", e.msg);
			goto out;
		}
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (follow(&f, &w, true, &e) < 0)
		fprintf(stderr, "cellctl submit: %s\n", e.msg);
	else if (w.ended)
		rc = w.status;
	else
		fprintf(stderr, "cellctl submit: stopped waiting; job %s stays queued\n", job);
out:
	follow_close(&f);
	job_watch_free(&w);
	disconnect(&c, &o);
	free(doc);
	return rc;
}
