/* cellos-agent: command line, start-up checks and the loop (SPEC §11). */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "util/ids.h"
#include "util/log.h"

#define VERSION "0.5.1-c"

/* An ack that could not be sent is tried again after this. */
#define ACK_RETRY_MS 500

static const char usage[] = "usage: cellos-agent [--help | --version]\n";
static const char help[] =
	"Takes cell documents from the NATS JetStream work queue (stream CELLOS_CELLS,\n"
	"subjects cellos.cells.<pool>) and runs each in its own cellos-supervisor, with\n"
	"the events going to JetStream. Any number of agents on any number of hosts\n"
	"share a pool. SIGTERM or SIGINT: stop taking jobs, let running cells finish for\n"
	"CELLOS_AGENT_DRAIN_SECONDS, terminate the rest (their jobs are handed back), exit 0.\n\n"
	"Configuration (environment; every other variable is passed on to the\n"
	"supervisors, see docs/reference.md):\n"
	"  CELLOS_NATS_URL            the NATS servers (required)\n"
	"  CELLOS_AGENT_POOLS         pools to take jobs from, comma list (default: default)\n"
	"  CELLOS_AGENT_MAX_CELLS     cells at once (default: the number of CPUs)\n"
	"  CELLOS_AGENT_WARM          warm cells kept ready (default 0)\n"
	"  CELLOS_AGENT_DRAIN_SECONDS how long a drain waits for running cells (default 30)\n"
	"  CELLOS_AGENT_SUPERVISOR    the supervisor binary (default: beside cellos-agent, else PATH)\n"
	"  CELLOS_AGENT_SECRETS       secret names whose CELLOS_SECRET_* inputs pass on (default none)\n"
	"  CELLOS_AGENT_TENANT        overwrite each job's correlation.tenantId\n"
	"  CELLOS_AGENT_METRICS_ADDR  host:port for Prometheus metrics on /metrics\n"
	"  CELLOS_AGENT_RELAY         0: supervisors connect to NATS themselves (default 1:\n"
	"                             their events go out on the agent's connection)\n\n"
	"Exit status: 0 after a drain; 125 configuration error.\n";

struct agent {
	struct agent_settings set;
	struct config cfg;
	struct queue q;
	struct relays relays;
	struct agent_metrics m;
	struct warm_pool warm;
	struct job *jobs;
	size_t n_jobs;          /* capacity */
	int sigfd, metrics_fd;
	bool draining, drain_killed;
	int64_t drain_deadline_ms;
	int64_t last_start_ms;  /* when the last job started (0: none yet) */
	uint64_t ack_token;     /* the last token of a job's ack (job_send_ack) */
};

/* Warm cells are spare capacity (SPEC §11). Rebuilt while jobs are still
 * queued, they take the CPU those jobs need: a burst of jobs that warm cells
 * were ready for ran no faster than cold (bench/README.md, "A burst through
 * warm cells"). Rebuilt while the last jobs of a burst still run, they slow
 * those down too (niced, but a build holds the kernel's cgroup, mount and
 * rtnl locks that every cell's start and teardown also take). So the pool is
 * refilled only once JetStream says no job of our pools is waiting (a
 * delivery's pending count, or a pull that came back short) and no job of
 * ours runs, or once no job has started for WARM_IDLE_MS (every slot held by
 * long jobs, or a stream of jobs that keeps one running: the pool is then
 * ready for the next). */
#define WARM_IDLE_MS 1000

static unsigned count(const struct agent *A, enum job_state st);

/* Whether the warm pool may be refilled now; else *wait is lowered to when
 * the idle rule will allow it. */
static bool warm_refill_now(const struct agent *A, int64_t now, int64_t *wait)
{
	if (A->draining || !warm_missing(&A->warm))
		return false;
	if (!queue_has_backlog(&A->q) && count(A, JOB_RUNNING) == 0)
		return true;
	int64_t due = A->last_start_ms + WARM_IDLE_MS - now;
	if (due <= 0)
		return true;
	if (due < *wait)
		*wait = due;
	return false;
}

static int64_t now_wall_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static unsigned count(const struct agent *A, enum job_state st)
{
	unsigned n = 0;
	for (size_t i = 0; i < A->n_jobs; i++)
		n += A->jobs[i].state == st;
	return n;
}

static struct job *free_job(struct agent *A)
{
	for (size_t i = 0; i < A->n_jobs; i++)
		if (A->jobs[i].state == JOB_FREE)
			return &A->jobs[i];
	return NULL;
}

/* Slots for new jobs: not more cells than CELLOS_AGENT_MAX_CELLS, and a record
 * for each (jobs whose ack is still unconfirmed hold one). */
static unsigned free_slots(const struct agent *A)
{
	unsigned running = count(A, JOB_RUNNING), records = count(A, JOB_FREE);
	unsigned slots = A->set.max_cells > running ? A->set.max_cells - running : 0;
	return slots < records ? slots : records;
}

static void job_log(const struct agent *A, const struct job *j, int64_t now)
{
	log_info("job %s pool %s cell %s run %s delivery %u%s: %s, exit %d, %lld ms%s", j->job_id,
		 A->set.pools[j->pool], j->cell_id, j->run_id, j->delivered, j->warm ? " (warm cell)" : "",
		 agent_outcome_names[j->outcome], j->status, (long long)(now - j->start_ms),
		 j->drain_killed ? ", terminated by the drain: handed back" : "");
}

/* Send a finished job's ack without holding the loop: the loop relays the
 * other cells' events and starts jobs while the server confirms it (SPEC §11:
 * an ack counts once confirmed). Sent again when no confirmation came within
 * AGENT_API_TIMEOUT_MS (ACK_RETRY_MS when it could not go out at all), until
 * the delivery's AckWait is over: then JetStream delivers the job again
 * anyway. */
static void job_send_ack(struct agent *A, struct job *j, int64_t now)
{
	if (now >= j->ack_give_up_ms) {
		log_error("job %s: %s not confirmed; JetStream will deliver it again", j->job_id, j->verdict);
		A->m.finished[j->outcome]++;
		j->state = JOB_FREE;
		return;
	}
	struct err e = {0};
	uint64_t token = ++A->ack_token;
	if (!j->ack_first_token)
		j->ack_first_token = token;
	if (queue_ack_send(&A->q, j->ack, j->verdict, (size_t)(j - A->jobs), token, &e) == 0)
		j->ack_next_ms = now + AGENT_API_TIMEOUT_MS;
	else
		j->ack_next_ms = now + ACK_RETRY_MS;
	if (j->ack_next_ms > j->ack_give_up_ms)
		j->ack_next_ms = j->ack_give_up_ms;
}

/* The server confirmed one of the sends of a job's ack: the record is free. */
static void ack_confirmed(struct agent *A, const struct ack_reply *ar)
{
	if (ar->job >= A->n_jobs)
		return;
	struct job *j = &A->jobs[ar->job];
	if (j->state != JOB_ACKING || ar->token < j->ack_first_token)
		return;
	A->m.finished[j->outcome]++;
	j->state = JOB_FREE;
}

static void job_exited(struct agent *A, struct job *j, int wstatus)
{
	int64_t now = mono_ms();
	j->status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
	if (j->drain_killed) {
		j->outcome = OUT_HANDED_BACK;
		j->verdict = "-NAK";
	} else {
		/* A failed cell is a result, not a retry (SPEC §11). */
		j->outcome = j->status == 0 ? OUT_SUCCEEDED : OUT_FAILED;
		j->verdict = "+ACK";
	}
	A->m.running--;
	job_log(A, j, now);
	j->state = JOB_ACKING;
	j->pid = 0;
	j->ack_give_up_ms = j->start_ms + AGENT_ACK_WAIT_S * 1000;
	if (j->ack_give_up_ms < now + ACK_RETRY_MS)
		j->ack_give_up_ms = now + ACK_RETRY_MS;
	job_send_ack(A, j, now);
}

static void reap(struct agent *A)
{
	int ws;
	pid_t pid;
	while ((pid = waitpid(-1, &ws, WNOHANG)) > 0) {
		if (warm_reap(&A->warm, pid))
			continue;
		for (size_t i = 0; i < A->n_jobs; i++)
			if (A->jobs[i].state == JOB_RUNNING && A->jobs[i].pid == pid) {
				job_exited(A, &A->jobs[i], ws);
				break;
			}
	}
}

/* Hand a delivery back without running it. */
static void hand_back(struct agent *A, struct delivery *d, const char *why)
{
	struct err e = {0};
	if (queue_ack(&A->q, d->ack, "-NAK", &e) < 0)
		log_warn("job %s: %s (it comes back after AckWait)", d->job_id, e.msg);
	log_info("job %s pool %s delivery %u: handed back (%s)", d->job_id, A->set.pools[d->pool], d->delivered, why);
	A->m.finished[OUT_HANDED_BACK]++;
}

static void on_delivery(struct agent *A, struct delivery *d)
{
	struct job *j = free_job(A);
	if (A->draining || !j || free_slots(A) == 0) {
		hand_back(A, d, A->draining ? "draining" : "no free slot");
		return;
	}
	char *doc = NULL, cell[160];
	size_t len = 0;
	enum agent_outcome outcome;
	struct err why = {0};
	if (job_prepare(&A->set, &A->cfg, d, &doc, &len, cell, &outcome, &why) > 0) {
		const char *reason = outcome == OUT_MAX_DELIVERIES ? "max_deliveries" : "invalid_document";
		job_publish_refusal(&A->cfg, &A->set, d, reason, why.msg);
		struct err e = {0};
		if (queue_ack(&A->q, d->ack, "+TERM", &e) < 0)
			log_warn("job %s: %s", d->job_id, e.msg);
		log_info("job %s pool %s cell %s delivery %u: %s, terminated: %s", d->job_id, A->set.pools[d->pool],
			 cell, d->delivered, reason, why.msg);
		A->m.finished[outcome]++;
		return;
	}
	memset(j, 0, sizeof *j);
	struct err e = {0};
	int rc = warm_claim(&A->warm, doc, len, &j->pid, j->run_id);
	if (rc == 0) {
		j->warm = true;
	} else {
		uuid_v4(j->run_id);
		int relay = relay_new(&A->relays);
		rc = job_spawn(&A->set, j->run_id, doc, len, relay, &j->pid, &e);
		if (relay >= 0)
			close(relay); /* the child's now; without a child, the agent's end sees EOF */
	}
	free(doc);
	if (rc < 0) {
		log_error("job %s: cannot start a supervisor: %s", d->job_id, e.msg);
		hand_back(A, d, "no supervisor");
		return;
	}
	int64_t now = mono_ms();
	A->last_start_ms = now;
	j->state = JOB_RUNNING;
	snprintf(j->job_id, sizeof j->job_id, "%s", d->job_id);
	snprintf(j->cell_id, sizeof j->cell_id, "%s", cell);
	snprintf(j->ack, sizeof j->ack, "%s", d->ack);
	j->pool = d->pool;
	j->delivered = d->delivered;
	j->start_ms = j->last_wpi_ms = now;
	A->m.started++;
	A->m.running++;
	if (d->queued_ns > 0)
		metrics_observe_start(&A->m, (double)(now_wall_ns() - d->queued_ns) / 1e9);
}

/* In-progress acks, ack retries, the drain's deadline. Returns the ms until
 * the next thing due. */
static int64_t timers(struct agent *A)
{
	int64_t now = mono_ms(), wait = 1000;
	for (size_t i = 0; i < A->n_jobs; i++) {
		struct job *j = &A->jobs[i];
		if (j->state == JOB_RUNNING) {
			if (now - j->last_wpi_ms >= AGENT_WPI_INTERVAL_MS) {
				struct err e = {0};
				if (queue_ack(&A->q, j->ack, "+WPI", &e) == 0)
					j->last_wpi_ms = now;
			}
			int64_t due = j->last_wpi_ms + AGENT_WPI_INTERVAL_MS - now;
			wait = due < wait ? due : wait;
		} else if (j->state == JOB_ACKING) {
			if (now >= j->ack_next_ms)
				job_send_ack(A, j, now);
			if (j->state == JOB_ACKING && j->ack_next_ms - now < wait)
				wait = j->ack_next_ms - now;
		}
	}
	if (A->draining && !A->drain_killed) {
		if (now >= A->drain_deadline_ms) {
			A->drain_killed = true;
			unsigned n = 0;
			for (size_t i = 0; i < A->n_jobs; i++)
				if (A->jobs[i].state == JOB_RUNNING) {
					A->jobs[i].drain_killed = true;
					kill(A->jobs[i].pid, SIGTERM);
					n++;
				}
			if (n)
				log_info("drain: %u cell(s) still running after %u s: terminated, their jobs handed back", n,
					 A->set.drain_seconds);
		} else if (A->drain_deadline_ms - now < wait) {
			wait = A->drain_deadline_ms - now;
		}
	}
	return wait < 0 ? 0 : wait;
}

static void start_drain(struct agent *A, int sig)
{
	if (A->draining)
		return;
	A->draining = true;
	A->drain_deadline_ms = mono_ms() + (int64_t)A->set.drain_seconds * 1000;
	log_info("%s: draining: no new jobs, %u cell(s) running, up to %u s for them", strsignal(sig),
		 count(A, JOB_RUNNING), A->set.drain_seconds);
	warm_destroy(&A->warm);
}

static bool drained(struct agent *A)
{
	if (!A->draining || count(A, JOB_RUNNING) || count(A, JOB_ACKING) || warm_any_alive(&A->warm))
		return false;
	/* Pull requests still open on the server would take jobs to an inbox
	 * nobody reads (they would wait out AckWait): let them end first. */
	for (size_t i = 0; i < A->set.n_pools; i++)
		if (A->q.pulls[i].remaining && nats_conn_connected(&A->q.conn))
			return false;
	return true;
}

static int loop(struct agent *A)
{
	enum { FD_SIG, FD_QUEUE, FD_METRICS, FD_REPLIES, FD_WARM };
	size_t fd_relay = FD_WARM + A->warm.n, nfds = fd_relay + A->relays.n_links;
	struct pollfd *pfd = calloc(nfds, sizeof *pfd);
	if (!pfd) {
		log_error("out of memory");
		return 125;
	}
	for (;;) {
		reap(A);
		int64_t wait = timers(A);
		if (drained(A))
			break;
		int64_t rwait = relays_tick(&A->relays);
		wait = rwait < wait ? rwait : wait;
		if (warm_refill_now(A, mono_ms(), &wait))
			warm_fill(&A->warm, &A->set, &A->relays);
		A->m.warm_ready = warm_ready_count(&A->warm);
		int64_t qwait = queue_tick(&A->q, A->draining ? 0 : free_slots(A), !A->draining);
		wait = qwait < wait ? qwait : wait;
		pfd[FD_SIG] = (struct pollfd){.fd = A->sigfd, .events = POLLIN};
		pfd[FD_QUEUE] = (struct pollfd){.fd = queue_fd(&A->q), .events = POLLIN};
		pfd[FD_METRICS] = (struct pollfd){.fd = A->metrics_fd, .events = POLLIN};
		relays_pollfd(&A->relays, &pfd[FD_REPLIES]);
		for (size_t i = 0; i < A->relays.n_links; i++)
			pfd[fd_relay + i] = (struct pollfd){.fd = A->relays.links[i].fd, .events = POLLIN};
		for (size_t i = 0; i < A->warm.n; i++) {
			const struct warm_cell *w = &A->warm.cells[i];
			pfd[FD_WARM + i] = (struct pollfd){.fd = w->pid && !w->ready ? w->ready_fd : -1, .events = POLLIN};
		}
		if (poll(pfd, nfds, (int)(wait > 0 ? wait : 0)) < 0 && errno != EINTR) {
			log_error("poll: %s", strerror(errno));
			free(pfd);
			return 125;
		}
		if (pfd[FD_SIG].revents & POLLIN) {
			struct signalfd_siginfo si;
			while (read(A->sigfd, &si, sizeof si) == (ssize_t)sizeof si)
				if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT)
					start_drain(A, (int)si.ssi_signo);
		}
		if (pfd[FD_METRICS].revents & POLLIN)
			metrics_serve_one(A->metrics_fd, &A->m);
		for (size_t i = 0; i < A->warm.n; i++)
			if (pfd[FD_WARM + i].revents)
				warm_on_ready_fd(&A->warm, i);
		/* The supervisors' events before anything that may wait on the
		 * server (acks): they are on a cell's critical path. */
		for (size_t i = 0; i < A->relays.n_links; i++)
			if (pfd[fd_relay + i].revents && A->relays.links[i].fd >= 0)
				relay_on_readable(&A->relays, i);
		relays_send(&A->relays);
		if (pfd[FD_REPLIES].revents)
			relays_on_ready(&A->relays);
		reap(A);
		struct delivery d;
		struct ack_reply ar;
		int got;
		while ((got = queue_next(&A->q, &d, &ar)) > 0) {
			if (got == QUEUE_ACKED) {
				ack_confirmed(A, &ar);
				continue;
			}
			on_delivery(A, &d);
			delivery_free(&d);
		}
	}
	free(pfd);
	log_info("drained: exiting");
	return 0;
}

int main(int argc, char **argv)
{
	log_set_program("cellos-agent");
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			fputs(usage, stdout);
			fputs(help, stdout);
			return 0;
		}
		if (strcmp(argv[i], "--version") == 0) {
			puts("cellos-agent " VERSION);
			return 0;
		}
		log_error("unknown argument '%s'", argv[i]);
		fputs(usage, stderr);
		return 125;
	}
	static struct agent A;
	A.sigfd = A.metrics_fd = -1;
	A.relays.pipe[0] = A.relays.pipe[1] = -1;
	struct err e = {0};
	int status = 125;
	/* Blocked before anything else: a SIGTERM during start-up is a drain. */
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGCHLD);
	sigprocmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* Before config_load: the signing key goes into sodium_malloc'd memory. */
	if (sodium_init() < 0) {
		log_error("libsodium failed to initialise");
		goto out;
	}
	if (agent_settings_load(&A.set, &e) < 0 || config_load(&A.cfg, &e) < 0) {
		log_error("%s", e.msg);
		goto out;
	}
	if ((A.sigfd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK)) < 0) {
		log_error("signalfd: %s", strerror(errno));
		goto out;
	}
	if (A.set.metrics_addr && (A.metrics_fd = metrics_listen(A.set.metrics_addr, &e)) < 0) {
		log_error("%s", e.msg);
		goto out;
	}
	A.n_jobs = (size_t)A.set.max_cells * 2 + 16;
	if (!(A.jobs = calloc(A.n_jobs, sizeof *A.jobs))) {
		log_error("out of memory");
		goto out;
	}
	/* A link for each supervisor that can be alive at once: the jobs' and
	 * the warm cells'. */
	if (warm_init(&A.warm, A.set.warm, &e) < 0 || queue_open(&A.q, &A.set, &A.m, &e) < 0 ||
	    relays_open(&A.relays, &A.q.conn, &A.q.opts, A.set.relay ? (unsigned)A.n_jobs + A.set.warm : 0, &e) < 0) {
		log_error("%s", e.msg);
		goto out;
	}
	log_info("started: pools %s%s, %u cell(s) at once, %u warm, supervisor %s", A.set.pools[0],
		 A.set.n_pools > 1 ? " (and more)" : "", A.set.max_cells, A.set.warm, A.set.supervisor);
	status = loop(&A);
out:
	relays_close(&A.relays);
	queue_close(&A.q);
	warm_free(&A.warm);
	free(A.jobs);
	if (A.metrics_fd >= 0)
		close(A.metrics_fd);
	if (A.sigfd >= 0)
		close(A.sigfd);
	config_free(&A.cfg);
	agent_settings_free(&A.set);
	return status;
}
