/* Warm cells (SPEC §11, CELLOS_AGENT_WARM): supervisors started ahead of any
 * job as `cellos-supervisor --warm -`. Each builds the parts of a cell that do
 * not depend on the document, says so by closing fd 3, and then waits for its
 * document on stdin; once it has it, it goes on as a normal run
 * (docs/DESIGN.md, "Warm cells"). A warm cell serves exactly one job; the agent
 * starts another in its place once no job waits (main.c, warm_refill_now).
 * Warm cells are spare capacity: a job starts in one when one is ready, in a
 * fresh supervisor otherwise. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "agent.h"
#include "util/fileio.h"
#include "util/ids.h"
#include "util/log.h"

/* A warm cell that died before it was ready is started again after this (a
 * broken configuration must not make the agent fork in a loop). */
#define WARM_RESTART_MS 1000
/* How much nicer a warm cell is while it is being built. */
#define WARM_NICE 10

static int64_t next_start_ms;

int warm_init(struct warm_pool *w, unsigned n, struct err *e)
{
	memset(w, 0, sizeof *w);
	if (!n)
		return 0;
	if (!(w->cells = calloc(n, sizeof *w->cells)))
		return err_set(e, "out of memory");
	w->n = n;
	for (unsigned i = 0; i < n; i++)
		w->cells[i].doc_fd = w->cells[i].ready_fd = -1;
	return 0;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static int start_one(struct warm_cell *c, const struct agent_settings *s, struct relays *r)
{
	int doc[2], ready[2];
	if (pipe2(doc, O_CLOEXEC) < 0)
		return -1;
	if (pipe2(ready, O_CLOEXEC) < 0) {
		close(doc[0]);
		close(doc[1]);
		return -1;
	}
	int relay = relay_new(r);
	uuid_v4(c->run_id);
	const char *argv[] = {s->supervisor, "--warm", "-", NULL};
	/* Built at a lower priority than the jobs (it is spare capacity, and
	 * built right when a job that took a warm cell is starting); the
	 * supervisor puts itself and its cell back to ours once ready. */
	pid_t p = job_start(s, c->run_id, doc[0], ready[1], relay, doc[1], ready[0], WARM_NICE, argv);
	close(doc[0]);
	close(ready[1]);
	if (relay >= 0)
		close(relay); /* the agent's end sees EOF if the child did not start */
	if (p < 0) {
		close(doc[1]);
		close(ready[0]);
		return -1;
	}
	c->pid = p;
	c->doc_fd = doc[1];
	c->ready_fd = ready[0];
	c->ready = false;
	log_debug("warm cell %d: building", (int)p);
	return 0;
}

void warm_fill(struct warm_pool *w, const struct agent_settings *s, struct relays *r)
{
	if (mono_ms() < next_start_ms)
		return;
	/* A few at a time (as many as there are CPUs), the next as one gets
	 * ready: a whole pool started at once is a storm of forks, and of
	 * builds, that the jobs still running pay for. */
	unsigned building = 0;
	for (unsigned i = 0; i < w->n; i++)
		building += w->cells[i].pid && !w->cells[i].ready;
	for (unsigned i = 0; i < w->n && building < s->cpus; i++) {
		if (w->cells[i].pid)
			continue;
		if (start_one(&w->cells[i], s, r) < 0) {
			log_warn("warm cell: cannot start a supervisor: %s", strerror(errno));
			next_start_ms = mono_ms() + WARM_RESTART_MS;
			return;
		}
		building++;
	}
}

bool warm_missing(const struct warm_pool *w)
{
	for (unsigned i = 0; i < w->n; i++)
		if (!w->cells[i].pid)
			return true;
	return false;
}

void warm_on_ready_fd(struct warm_pool *w, size_t i)
{
	struct warm_cell *c = &w->cells[i];
	char b;
	/* EOF: the supervisor closed fd 3 when ready, or died (then reaped). */
	ssize_t r = read(c->ready_fd, &b, 1);
	if (r <= 0) {
		c->ready = true;
		close_fd(&c->ready_fd);
		log_debug("warm cell %d: ready", (int)c->pid);
	}
}

int warm_claim(struct warm_pool *w, const char *doc, size_t len, pid_t *pid, char run_id[37])
{
	for (unsigned i = 0; i < w->n; i++) {
		struct warm_cell *c = &w->cells[i];
		if (!c->pid || !c->ready)
			continue;
		/* The document through the pipe, then EOF. A document larger than the
		 * pipe would block us while the supervisor reads: it is written in
		 * full either way (the supervisor is waiting for it). */
		int rc = write_all(c->doc_fd, doc, len);
		close_fd(&c->doc_fd);
		*pid = c->pid;
		memcpy(run_id, c->run_id, 37);
		memset(c, 0, sizeof *c);
		c->doc_fd = c->ready_fd = -1;
		if (rc < 0) {
			/* It died after it was ready: it is reaped as a job that failed. */
			log_warn("warm cell %d: the document could not be handed over: %s", (int)*pid, strerror(errno));
		}
		return 0;
	}
	return 1;
}

bool warm_reap(struct warm_pool *w, pid_t pid)
{
	for (unsigned i = 0; i < w->n; i++) {
		struct warm_cell *c = &w->cells[i];
		if (c->pid != pid)
			continue;
		if (!c->ready)
			next_start_ms = mono_ms() + WARM_RESTART_MS;
		close_fd(&c->doc_fd);
		close_fd(&c->ready_fd);
		c->pid = 0;
		c->ready = false;
		return true;
	}
	return false;
}

unsigned warm_ready_count(const struct warm_pool *w)
{
	unsigned n = 0;
	for (unsigned i = 0; i < w->n; i++)
		n += w->cells[i].pid && w->cells[i].ready;
	return n;
}

void warm_destroy(struct warm_pool *w)
{
	/* SIGTERM: the supervisor tears down what it built (no run, no events). */
	for (unsigned i = 0; i < w->n; i++)
		if (w->cells[i].pid)
			kill(w->cells[i].pid, SIGTERM);
}

bool warm_any_alive(const struct warm_pool *w)
{
	for (unsigned i = 0; i < w->n; i++)
		if (w->cells[i].pid)
			return true;
	return false;
}

void warm_free(struct warm_pool *w)
{
	for (unsigned i = 0; i < w->n; i++) {
		close_fd(&w->cells[i].doc_fd);
		close_fd(&w->cells[i].ready_fd);
	}
	free(w->cells);
	memset(w, 0, sizeof *w);
}
