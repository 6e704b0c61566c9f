/* One job (SPEC §11): the document as its supervisor gets it, the refusal of a
 * document that cannot run, the supervisor process. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <linux/close_range.h>
#include <unistd.h>

#include "admission.h"
#include "agent.h"
#include "events/event.h"
#include "spec/spec.h"
#include "util/fd.h"
#include "util/fileio.h"
#include "util/ids.h"
#include "util/log.h"

/* correlation.externalJobId = the job id; correlation.tenantId = the pinned
 * tenant. A document that is not an object with a "spec" object is left as it
 * is: validation says what is wrong with it. */
static char *rewrite(const struct agent_settings *s, const struct delivery *d, size_t *len)
{
	json_t *doc = json_loadb(d->doc, d->len, 0, NULL);
	json_t *spec = json_object_get(doc, "spec");
	if (!json_is_object(spec)) {
		json_decref(doc);
		*len = d->len;
		return strndup(d->doc, d->len);
	}
	json_t *corr = json_object_get(spec, "correlation");
	if (!corr) {
		corr = json_object();
		json_object_set_new(spec, "correlation", corr);
	}
	if (json_is_object(corr)) {
		json_object_set_new(corr, "externalJobId", json_string(d->job_id));
		if (s->tenant)
			json_object_set_new(corr, "tenantId", json_string(s->tenant));
	}
	char *out = json_dumps(doc, JSON_COMPACT);
	json_decref(doc);
	*len = out ? strlen(out) : 0;
	return out;
}

int job_prepare(const struct agent_settings *s, const struct config *cfg, const struct delivery *d,
		char **doc_out, size_t *len_out, char cell_id[160], enum agent_outcome *outcome, struct err *why)
{
	*doc_out = NULL;
	/* The document's id as far as it has one: for the log line. */
	json_t *j = json_loadb(d->doc, d->len, 0, NULL);
	const char *id = json_string_value(json_object_get(json_object_get(j, "spec"), "id"));
	snprintf(cell_id, 160, "%s", id && spec_is_portable_id(id) ? id : "unknown");
	json_decref(j);
	/* Delivered MaxDeliver times: the runs before this one never finished
	 * (their agents died). This delivery is the last the server makes; it
	 * ends the job rather than leave it in the stream. */
	if (d->delivered >= AGENT_MAX_DELIVER) {
		*outcome = OUT_MAX_DELIVERIES;
		err_set(why, "delivered %u times without finishing (MaxDeliver %d)", d->delivered, AGENT_MAX_DELIVER);
		return 1;
	}
	size_t len = 0;
	char *doc = rewrite(s, d, &len);
	if (!doc) {
		*outcome = OUT_INVALID;
		err_set(why, "out of memory");
		return 1;
	}
	struct spec spec;
	struct problems probs = {0}, warns = {0};
	int rc = spec_parse_ex(doc, len, cfg->strict_spec || cfg->hardened, &spec, &probs, &warns);
	if (rc == 0) {
		snprintf(cell_id, 160, "%s", spec.id);
		admission_check(cfg, &spec, ADMIT_RUN, &probs);
		spec_free(&spec);
	}
	if (probs.n) {
		*outcome = OUT_INVALID;
		err_set(why, "%s%s", probs.items[0], probs.n > 1 ? " (and more)" : "");
		problems_free(&probs);
		problems_free(&warns);
		free(doc);
		return 1;
	}
	problems_free(&probs);
	problems_free(&warns);
	*doc_out = doc;
	*len_out = len;
	return 0;
}

void job_publish_refusal(const struct config *cfg, const struct agent_settings *s, const struct delivery *d,
			 const char *reason, const char *message)
{
	/* The cell id and tenant as far as the document says them. */
	json_t *doc = json_loadb(d->doc, d->len, 0, NULL);
	json_t *spec = json_object_get(doc, "spec");
	const char *id = json_string_value(json_object_get(spec, "id"));
	const char *tenant = s->tenant ? s->tenant
				       : json_string_value(json_object_get(json_object_get(spec, "correlation"), "tenantId"));
	char cell[160];
	snprintf(cell, sizeof cell, "%s", id && spec_is_portable_id(id) ? id : "unknown");
	struct event_stream es;
	struct err e = {0};
	if (events_open_cell(&es, cfg, cell, tenant, &e) < 0) {
		log_error("job %s: the lifecycle.v1.failed event cannot be published: %s", d->job_id, e.msg);
		json_decref(doc);
		return;
	}
	char run[37];
	uuid_v4(run);
	events_begin_run(&es, cell, run);
	json_t *corr = json_pack("{s:s}", "externalJobId", d->job_id);
	if (corr && tenant)
		json_object_set_new(corr, "tenantId", json_string(tenant));
	json_t *data = json_pack("{s:s, s:s, s:s, s:o*, s:o*}", "specId", cell, "phase", "admission", "reason", reason,
				 "message", event_text(message), "correlation", corr);
	if (data)
		events_emit(&es, "lifecycle.v1.failed", data, NULL);
	events_close(&es);
	json_decref(doc);
}

/* The document on a memfd: the supervisor reads it as its stdin, however
 * long it is, without the agent writing to a pipe. */
static int doc_fd(const char *doc, size_t len, struct err *e)
{
	int fd = memfd_create("cellos-job", MFD_CLOEXEC);
	if (fd < 0)
		return err_sys(e, errno, "memfd_create");
	if (write_all(fd, doc, len) < 0 || lseek(fd, 0, SEEK_SET) < 0) {
		close_keep_errno(fd);
		return err_sys(e, errno, "document");
	}
	return fd;
}

/* What the child of job_start needs; the parent fills it and is suspended
 * until the child has exec'd (or died), so the child only reads it. */
struct child_args {
	const struct agent_settings *s;
	int in_fd, extra_fd, relay_fd, close1, close2, nice_add;
	const char *const *argv;
	char *const *envp;
};

/* In the child: the death signal, stdio, our signal mask undone. Never
 * returns. A supervisor gets SIGTERM when the agent dies: it kills its cell and
 * still reports the run (supervisor_terminated). It runs in the agent's memory
 * (CLONE_VM, on its own stack) until execve: system calls only, no writes to
 * anything but its own stack and errno (the suspended caller's, which nothing
 * reads after a successful clone). */
static int child_main(void *arg)
{
	const struct child_args *c = arg;
	int relay = c->relay_fd, last = c->extra_fd >= 0 ? 3 : 2;
	pid_t parent = getppid();
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() != parent)
		_exit(125);
	setpgid(0, 0);
	if (c->close1 >= 0)
		close(c->close1);
	if (c->close2 >= 0)
		close(c->close2);
	if (c->nice_add) {
		errno = 0;
		int prio = getpriority(PRIO_PROCESS, 0);
		if (errno == 0)
			setpriority(PRIO_PROCESS, 0, prio + c->nice_add > 19 ? 19 : prio + c->nice_add);
	}
	/* Out of the way of the descriptors it is going to be and of fd 3. */
	if (relay >= 0 && relay <= 4 && (relay = fcntl(relay, F_DUPFD, 5)) < 0)
		_exit(125);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (dup2(c->in_fd, STDIN_FILENO) < 0 || (null >= 0 && dup2(null, STDOUT_FILENO) < 0))
		_exit(125);
	if (c->extra_fd == 3)
		fcntl(3, F_SETFD, 0);
	else if (c->extra_fd >= 0 && dup2(c->extra_fd, 3) < 0)
		_exit(125);
	if (relay >= 0 && dup2(relay, ++last) < 0)
		_exit(125);
	/* Nothing else of ours: libnats opens its sockets without O_CLOEXEC, and
	 * a supervisor holding the agent's connection would keep it open after
	 * the agent is gone (and a stray fd 3 would read as a warm cell's pipe). */
	if (syscall(SYS_close_range, (unsigned)last + 1, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
		_exit(125);
	execve(c->s->supervisor, (char *const *)c->argv, c->envp);
	_exit(errno == ENOENT ? 127 : 126);
}

/* The child's stack: one child at a time is between clone and execve (the
 * caller is suspended meanwhile), and only the main loop starts children. */
static _Alignas(64) char child_stack[64 * 1024];

pid_t job_start(const struct agent_settings *s, const char *run_id, int in_fd, int extra_fd, int relay_fd,
		int close1, int close2, int nice_add, const char *const *argv)
{
	/* Not fork(): copying the agent's page tables (libnats, its threads) and
	 * tearing the copy down again at execve cost each job more CPU than the
	 * rest of the agent's work for it (bench/README.md). CLONE_VFORK: we
	 * wait until the child has exec'd, as posix_spawn does. */
	char run_env[64], relay_env[64];
	snprintf(run_env, sizeof run_env, "CELLOS_RUN_ID=%s", run_id);
	/* The descriptor child_main puts the relay's end on. */
	snprintf(relay_env, sizeof relay_env, "CELLOS_NATS_RELAY_FD=%d", extra_fd >= 0 ? 4 : 3);
	s->child_env[s->n_child_env] = run_env;
	s->child_env[s->n_child_env + 1] = relay_fd >= 0 ? relay_env : NULL;
	struct child_args c = {.s = s, .in_fd = in_fd, .extra_fd = extra_fd, .relay_fd = relay_fd, .close1 = close1,
			       .close2 = close2, .nice_add = nice_add, .argv = argv, .envp = s->child_env};
	pid_t p = clone(child_main, child_stack + sizeof child_stack, CLONE_VM | CLONE_VFORK | SIGCHLD, &c);
	s->child_env[s->n_child_env] = s->child_env[s->n_child_env + 1] = NULL;
	return p;
}

int job_spawn(const struct agent_settings *s, const char *run_id, const char *doc, size_t len, int relay_fd,
	      pid_t *pid, struct err *e)
{
	int fd = doc_fd(doc, len, e);
	if (fd < 0)
		return -1;
	const char *argv[] = {s->supervisor, "-", NULL};
	pid_t p = job_start(s, run_id, fd, -1, relay_fd, -1, -1, 0, argv);
	if (p < 0) {
		close_keep_errno(fd);
		return err_sys(e, errno, "clone");
	}
	close(fd);
	*pid = p;
	return 0;
}
