/* cellos-agent (SPEC §11): pulls cell documents from the JetStream work queue
 * and runs one cellos-supervisor per job.
 *
 *   settings.c  CELLOS_AGENT_* and the environment handed to supervisors
 *   queue.c     the NATS side: durable pull consumers, pull requests, acks
 *   job.c       one job: the document made ready, its supervisor, its outcome
 *   warm.c      warm cells: supervisors waiting, cell built, for a document
 *   relay.c     the supervisors' events published on the agent's connection
 *   metrics.c   Prometheus text on CELLOS_AGENT_METRICS_ADDR
 *   main.c      the loop: signals, messages, children, timers, drain
 *
 * Everything runs on the main thread except libnats's own threads; the
 * callbacks of ours they run (queue.c, relay.c) only pass messages through a
 * pipe. */
#ifndef CELLOS_AGENT_H
#define CELLOS_AGENT_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <poll.h>
#include <sys/types.h>

#include "config.h"
#include "sink/nats_conn.h"
#include "util/err.h"

/* SPEC §11: the consumer every agent of a pool shares. */
#define AGENT_ACK_WAIT_S 30
#define AGENT_MAX_DELIVER 3
/* In-progress acks while a cell runs: well within AckWait. */
#define AGENT_WPI_INTERVAL_MS (AGENT_ACK_WAIT_S * 1000 / 3)
/* One JetStream API call or synchronous ack waits this long for its answer. */
#define AGENT_API_TIMEOUT_MS 2000

/* ---- settings.c ---- */

struct agent_settings {
	char **pools;              /* CELLOS_AGENT_POOLS, NULL-terminated */
	size_t n_pools;
	unsigned cpus;             /* online CPUs, at least 1 */
	unsigned max_cells;        /* CELLOS_AGENT_MAX_CELLS (default: cpus) */
	unsigned warm;             /* CELLOS_AGENT_WARM */
	unsigned drain_seconds;    /* CELLOS_AGENT_DRAIN_SECONDS */
	char supervisor[PATH_MAX]; /* CELLOS_AGENT_SUPERVISOR, resolved */
	const char *tenant;        /* CELLOS_AGENT_TENANT or NULL */
	const char *metrics_addr;  /* CELLOS_AGENT_METRICS_ADDR or NULL */
	bool relay;                /* CELLOS_AGENT_RELAY (default on) */
	/* The environment of every supervisor: the agent's own as it was at
	 * start, without CELLOS_AGENT_*, CELLOS_RUN_ID, and the secret inputs
	 * CELLOS_AGENT_SECRETS does not list. NULL-terminated, owned. */
	char **child_env;
	size_t n_child_env;
};

/* Read CELLOS_AGENT_* and snapshot the environment for the supervisors. Must
 * run before config_load(), which wipes some values (the signing key) from the
 * environment once decoded. -1 with *e naming the variable. */
int agent_settings_load(struct agent_settings *s, struct err *e);
void agent_settings_free(struct agent_settings *s);
/* A pool name is one NATS subject token that is also a consumer name. */
bool agent_pool_valid(const char *p);

/* ---- metrics.c ---- */

enum agent_outcome {
	OUT_SUCCEEDED,      /* the supervisor exited 0 */
	OUT_FAILED,         /* it exited non-zero: a result, acked */
	OUT_INVALID,        /* the document was refused: +TERM */
	OUT_MAX_DELIVERIES, /* delivered MaxDeliver times: +TERM */
	OUT_HANDED_BACK,    /* terminated by a drain, or not started: -NAK */
	OUT_N
};
extern const char *const agent_outcome_names[OUT_N];

struct agent_metrics {
	unsigned running;
	uint64_t started, finished[OUT_N], fetch_errors;
	uint64_t start_buckets[16]; /* cumulative counts per bound of AGENT_START_BOUNDS */
	uint64_t start_count;
	double start_sum;
	unsigned warm_ready;
};

/* Listen on host:port (a literal IPv4 or [IPv6] address). -1 with *e. */
int metrics_listen(const char *addr, struct err *e);
/* Serve one connection waiting on the listening socket. */
void metrics_serve_one(int lfd, const struct agent_metrics *m);
void metrics_observe_start(struct agent_metrics *m, double seconds);

/* ---- queue.c ---- */

struct pull {
	uint64_t id;        /* the last token of its reply subject */
	unsigned remaining; /* messages still to come for it */
	int64_t deadline_ms;
};

struct queue {
	struct nats_conn conn;
	struct nats_conn_opts opts;
	struct __natsSubscription *sub;
	char inbox[64];
	int pipe[2];               /* natsMsg pointers from libnats's thread */
	bool *consumer_ready;      /* per pool */
	int64_t *next_try_ms;      /* per pool: when to try making its consumer again */
	uint64_t *backlog;         /* per pool: jobs still waiting, as the last delivery or empty pull said */
	struct pull *pulls;        /* per pool: the one pull request outstanding, if remaining > 0 */
	uint64_t next_pull_id;
	size_t next_pool;          /* round robin of free slots over pools */
	const struct agent_settings *set;
	struct agent_metrics *metrics;
};

/* A job message as delivered. */
struct delivery {
	size_t pool;
	char job_id[128];   /* Nats-Msg-Id, else "seq-<stream sequence>" */
	char ack[256];      /* the reply subject: $JS.ACK.... */
	unsigned delivered; /* how many times JetStream has delivered it, this one included */
	int64_t queued_ns;  /* when the stream took it (wall clock, ns) */
	uint64_t pending;   /* jobs of its pool still waiting behind it (the consumer's count) */
	char *doc;          /* owned */
	size_t len;
};

int queue_open(struct queue *q, const struct agent_settings *s, struct agent_metrics *m, struct err *e);
void queue_close(struct queue *q);
/* The fd to poll for messages. */
static inline int queue_fd(const struct queue *q) { return q->pipe[0]; }
/* Make missing consumers (retried while the server cannot), then ask for up
 * to `free_slots` jobs over the pools. Returns the ms until it wants to be
 * called again. */
int64_t queue_tick(struct queue *q, unsigned free_slots, bool fetch);
/* The server's confirmation of an ack sent with queue_ack_send. */
struct ack_reply {
	size_t job;
	uint64_t token;
};
enum { QUEUE_JOB = 1, QUEUE_ACKED = 2 };
/* Take the messages the pipe holds: QUEUE_JOB and *d filled for a job (free
 * it with delivery_free); QUEUE_ACKED and *ar filled for an ack the server
 * confirmed; 0 when there is nothing (more). Status messages are handled
 * inside. */
int queue_next(struct queue *q, struct delivery *d, struct ack_reply *ar);
void delivery_free(struct delivery *d);
/* Whether any pool had jobs waiting when JetStream last said (a delivery's
 * pending count, or a pull that came back empty). */
bool queue_has_backlog(const struct queue *q);
/* Send "+ACK", "-NAK", "+TERM" (synchronously: the server confirms) or
 * "+WPI" (fire and forget) for a delivery's ack subject. */
int queue_ack(struct queue *q, const char *ack_subject, const char *what, struct err *e);
/* Send an ack the server is asked to confirm, without waiting for it: the
 * confirmation comes through queue_next as (job, token). 0 sent, or -1 with
 * *e (not connected: nothing went out). */
int queue_ack_send(struct queue *q, const char *ack_subject, const char *what, size_t job, uint64_t token,
		   struct err *e);

/* ---- relay.c ---- */

struct relay_link {
	int fd;             /* the agent's end, -1: free */
	uint32_t gen;       /* tells a link from the one before it in the slot */
};

struct relay_pending {
	uint64_t id;        /* the last token of its reply subject */
	size_t link;
	uint32_t gen;
	char token[24];     /* the supervisor's */
	int64_t deadline_ms;
	uint64_t conn_gen;  /* the relay's connection it was sent on (nats_wire_generation) */
};

struct nats_wire;

struct relays {
	bool on;
	struct nats_wire *w;       /* the relay's own connection, or NULL: */
	struct nats_conn *conn;    /* the queue's (TLS or a credentials file) */
	struct __natsSubscription *sub;
	char inbox[64];
	int pipe[2];               /* natsMsg pointers from libnats's thread */
	struct relay_link *links;
	size_t n_links;
	struct relay_pending *pend;
	size_t n_pend, cap_pend;
	uint64_t next_id;
	uint32_t next_gen;
	char *buf;                 /* one datagram */
};

/* The relay's connection (its own, or `conn` where TLS or a credentials file
 * needs libnats); up to max_links supervisors at once (0: relay off). -1 with
 * *e. */
int relays_open(struct relays *r, struct nats_conn *conn, const struct nats_conn_opts *opts, unsigned max_links,
		struct err *e);
void relays_close(struct relays *r);
/* A link for a supervisor about to start: its end (the caller closes it once
 * the child has it), or -1 when the relay is off or full (the supervisor then
 * connects itself). */
int relay_new(struct relays *r);
/* Link i is readable (or closed): publish what it sent. */
void relay_on_readable(struct relays *r, size_t i);
/* What to poll for the server's answers (the connection, or libnats's pipe);
 * fd -1 when nothing. */
void relays_pollfd(const struct relays *r, struct pollfd *p);
/* That fd is ready: pass the answers on. */
void relays_on_ready(struct relays *r);
/* Send what the links' messages queued (one write for all of a turn). */
void relays_send(struct relays *r);
/* Connect when due; answer 'F' for what is overdue or was sent on a lost
 * connection; the ms until the next is. */
int64_t relays_tick(struct relays *r);

/* ---- job.c ---- */

enum job_state { JOB_FREE, JOB_RUNNING, JOB_ACKING };

struct job {
	enum job_state state;
	char job_id[128];
	char run_id[37];
	char cell_id[160];
	char ack[256];
	size_t pool;
	unsigned delivered;
	pid_t pid;
	bool warm;             /* ran in a warm cell */
	bool drain_killed;     /* terminated by a drain: handed back */
	int64_t start_ms, last_wpi_ms;
	/* After the supervisor exited: the ack to confirm, retried until then. */
	int status;            /* the supervisor's exit status (128+N for a signal) */
	const char *verdict;   /* "+ACK" or "-NAK" */
	enum agent_outcome outcome;
	int64_t ack_next_ms, ack_give_up_ms;
	/* The ack's sends: a confirmation of any of them counts (tokens only
	 * grow, so one for this record's previous job is told apart). */
	uint64_t ack_first_token;
};

/* What to do with a delivery before it runs: 0 it may run (*doc_out is the
 * document as the supervisor gets it, malloc'd; cell_id filled); 1 refused
 * (outcome and a one-line reason in *why: the agent terminates it with an
 * event). */
int job_prepare(const struct agent_settings *s, const struct config *cfg, const struct delivery *d,
		char **doc_out, size_t *len_out, char cell_id[160], enum agent_outcome *outcome, struct err *why);
/* Publish lifecycle.v1.failed (phase admission) for a job the agent refused. */
void job_publish_refusal(const struct config *cfg, const struct agent_settings *s, const struct delivery *d,
			 const char *reason, const char *message);
/* Start a supervisor for the document. The child dies with the agent
 * (PR_SET_PDEATHSIG). 0 and *pid, or -1 with *e. */
int job_spawn(const struct agent_settings *s, const char *run_id, const char *doc, size_t len, int relay_fd,
	      pid_t *pid, struct err *e);

/* Start a supervisor (job_spawn and warm cells): the death signal, its own
 * process group, close1/close2 closed (>= 0), nice_add added to its nice
 * value, stdio (stdin in_fd, stdout /dev/null, stderr the agent's), fd 3 =
 * extra_fd when >= 0, the relay's end (>= 0) on the next descriptor with
 * CELLOS_NATS_RELAY_FD naming it, CELLOS_RUN_ID=run_id, exec argv. Returns its
 * pid (once it has exec'd or failed to), or -1 with errno. Main loop only. */
pid_t job_start(const struct agent_settings *s, const char *run_id, int in_fd, int extra_fd, int relay_fd,
		int close1, int close2, int nice_add, const char *const *argv);

/* ---- warm.c ---- */

struct warm_cell {
	pid_t pid;
	int doc_fd;        /* write end: the document goes here, then it is closed */
	int ready_fd;      /* read end: readable once the cell is built (or the child died) */
	bool ready;
	char run_id[37];
};

struct warm_pool {
	struct warm_cell *cells;
	unsigned n;        /* wanted (CELLOS_AGENT_WARM) */
};

int warm_init(struct warm_pool *w, unsigned n, struct err *e);
/* Start the warm cells that are missing (not while draining). */
void warm_fill(struct warm_pool *w, const struct agent_settings *s, struct relays *r);
/* Whether a warm cell is missing (one to start, or one that is restarting). */
bool warm_missing(const struct warm_pool *w);
/* Handle readiness on cell i's fd (poll told so). */
void warm_on_ready_fd(struct warm_pool *w, size_t i);
/* A ready warm cell takes the document: the supervisor goes on as a normal run
 * with it. 0 with *pid and run_id filled, 1 when none is ready. */
int warm_claim(struct warm_pool *w, const char *doc, size_t len, pid_t *pid, char run_id[37]);
/* A child exited: true when it was a warm cell (never claimed). */
bool warm_reap(struct warm_pool *w, pid_t pid);
unsigned warm_ready_count(const struct warm_pool *w);
/* Terminate the unclaimed ones (drain). */
void warm_destroy(struct warm_pool *w);
bool warm_any_alive(const struct warm_pool *w);
void warm_free(struct warm_pool *w);

#endif
