/* The backend operations of the gvisor and oci backends (backend/oci_run.h):
 * the cell's runtime started in the cell's leaves, held at its prestart hook by
 * create(), let go by start(), and taken down on every path. */
#include "backend/oci_run.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend/oci_cell.h"
#include "backend/oci_log.h"
#include "backend/oci_tool.h"
#include "isolate/argv0.h"
#include "isolate/cellproc.h"
#include "util/dirs.h"
#include "util/ids.h"
#include "util/log.h"
#include "util/path.h"
#include "util/stopsig.h"

/* Bound of a graceful exit of the runtime. */
#define EXIT_WAIT_MS 2000

static struct ocirt *priv(struct cell *c) { return c->priv; }

static void wipe_freep(char **p)
{
	if (*p) {
		explicit_bzero(*p, strlen(*p));
		free(*p);
	}
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* ---- the runtime's own commands (kill, delete), inside its mount namespace ---- */

/* `<runtime> <global> --root <state> <args...>` in the runtime's mount namespace. */
static int runtime_cmd(struct ocirt *o, const char *const *args, char *msg, size_t size)
{
	if (o->mntns < 0)
		return -1;
	const char *argv[32];
	size_t n = 0;
	char root[PATH_MAX + 8];
	snprintf(root, sizeof root, "--root=%s/state", o->dir);
	argv[n++] = o->rt.path;
	for (size_t i = 0; o->rt.global[i] && n < 20; i++)
		argv[n++] = o->rt.global[i];
	argv[n++] = root;
	for (size_t i = 0; args[i] && n < 31; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	int rc = oci_tool_run_in(o->mntns, o->rt.path, argv, NULL, OCI_TOOL_TIMEOUT_MS, msg, size);
	if (size)
		oci_tool_last_line(msg);
	return rc;
}

/* ---- the runtime's `run` process ---- */

/* Reap the runtime if it has ended (or within `timeout_ms`). True when reaped. */
static bool reap(struct ocirt *o, int timeout_ms)
{
	if (o->exited)
		return true;
	if (o->pid <= 0)
		return true;
	struct pollfd p = {.fd = o->pidfd, .events = POLLIN};
	int64_t end = mono_ms() + timeout_ms;
	for (;;) {
		int64_t left = end - mono_ms();
		int n = poll(&p, 1, left > 0 ? (int)left : 0);
		if (n > 0)
			break;
		if (n < 0 && errno == EINTR)
			continue;
		if (left <= 0 || n < 0)
			return false;
	}
	pid_t w;
	while ((w = wait4(o->pid, &o->wstatus, 0, &o->ru)) < 0 && errno == EINTR)
		;
	if (w < 0) {
		/* The status is lost (reaped by someone else): a supervisor failure,
		 * never the "exited 0" of a zeroed o->wstatus. */
		log_error("%s: cannot collect its exit status: %s", o->rt.name, strerror(errno));
		o->wstatus = W_EXITCODE(125, 0);
	}
	o->exited = true;
	/* The runtime wrote to the files behind our stdout/stderr in append mode;
	 * ours would still write where it stood and overwrite that output. */
	for (int fd = 1; fd <= 2; fd++)
		if (o->fix_stdio[fd])
			lseek(fd, 0, SEEK_END);
	return true;
}

/* End the runtime: gracefully (the gate refused, or `kill --all KILL`), then by
 * force; its sandbox and gofer die with it (death signal), and the cgroup
 * catches anything else. */
static void end_runtime(struct ocirt *o)
{
	if (o->exited || o->pid <= 0)
		return;
	if (!o->hooks.gate_open && o->hooks.go >= 0) {
		/* Still held at the prestart hook: let the runtime undo its container. */
		oci_hooks_refuse(&o->hooks);
	} else {
		char sig[8];
		snprintf(sig, sizeof sig, "%d", SIGKILL);
		const char *args[] = {"kill", "--all", o->dir + strlen(o->base) + 1, sig, NULL};
		runtime_cmd(o, args, NULL, 0);
	}
	if (reap(o, EXIT_WAIT_MS))
		return;
	log_warn("%s did not end within %d ms; killing it", o->rt.name, EXIT_WAIT_MS);
	kill(o->pid, SIGKILL);
	cgroup_cell_signal(&o->cg, SIGKILL, 0);
	reap(o, 10000);
}

static void reap_cb(void *arg) { reap(arg, 0); }

/* Wait for the hook line `want` (oci_hook.h); a stop request ends the wait only
 * while the container is being made. */
static int wait_hook(struct ocirt *o, char want, char *line, size_t size, bool stop_on_signal, struct err *e)
{
	struct oci_hooks_waiter w = {.name = o->rt.name, .pidfd = o->pidfd, .exited = &o->exited, .reap = reap_cb,
				     .arg = o, .sigfd = stop_on_signal ? o->sigfd : -1, .deadline = o->deadline};
	return oci_hooks_wait(&o->hooks, want, line, size, &w, e);
}

/* config.json's binds for run.mounts, outermost first. */
static int plan_binds(struct ocirt *o, const struct cell *c, struct err *e)
{
	if (!o->hm.n)
		return 0;
	if (!(o->binds = calloc(o->hm.n, sizeof *o->binds)))
		return err_set(e, "out of memory");
	for (size_t j = 0; j < o->hm.n; j++) {
		size_t i = o->hm.order[j];
		char clean[PATH_MAX], *src = NULL;
		if (path_clean(c->spec->mounts[i].target, clean, sizeof clean) < 0 ||
		    asprintf(&src, "%s/mounts/%zu", o->dir, i) < 0)
			return err_set(e, "spec.run.mounts[%zu]: out of memory", i);
		o->binds[o->n_binds++] = (struct oci_bind){.source = src, .destination = strdup(clean),
							   .read_only = c->spec->mounts[i].read_only};
		if (!o->binds[j].destination)
			return err_set(e, "out of memory");
	}
	return 0;
}

/* ---- the backend operations ---- */

int oci_run_create(struct cell *c, const struct oci_runtime *rt, struct err *e)
{
	/* Holds the secrets (process.env): wiped and freed on every path. */
	__attribute__((cleanup(wipe_freep))) char *config = NULL;
	struct ocirt *o = calloc(1, sizeof *o);
	if (!o)
		return err_set(e, "out of memory");
	o->cell = c;
	o->rt = *rt;
	for (size_t i = 0; i < OCI_RUN_MAX_GLOBAL && rt->global[i]; i++) {
		snprintf(o->global[i], sizeof o->global[i], "%s", rt->global[i]);
		o->rt.global[i] = o->global[i];
	}
	o->pid = -1;
	o->pidfd = o->mntns = o->statefd = o->logfd = o->sigfd = -1;
	oci_hooks_init(&o->hooks, "");
	o->reg.fd = -1;
	cgroup_cell_init(&o->cg);
	c->priv = o;
	o->deadline = mono_ms() + c->spec->ttl_seconds * 1000;
	int64_t t = mono_us();
	/* Whatever a SIGKILLed supervisor left: its cgroup leaves and their processes. */

	snprintf(o->base, sizeof o->base, DIRS_RUN_BASE "/%s", rt->kind);
	if (snprintf(o->dir, sizeof o->dir, "%s/%s", o->base, c->name) >= (int)sizeof o->dir - 64) {
		err_set(e, "%s: cell name too long", rt->name);
		goto fail;
	}
	/* The runtime, as the run's uid with a user namespace, traverses
	 * /run/cellos (util/dirs.h); its own directory stays 0700. */
	if (dirs_run_base() < 0 || dirs_mkdir_p(o->base, 0700) < 0) {
		err_sys(e, errno, "%s", o->base);
		goto fail;
	}

	char cwd[PATH_MAX];
	oci_root_cwd(c, rt, cwd, sizeof cwd);
	o->resolve_errno = oci_root_resolve(o, c, cwd);
	/* CELLOS_RUN_ARGV0_ALLOW_PREFIXES: refused before anything of the cell exists. */
	if (!o->resolve_errno && !argv0_allowed(o->program, c->cfg->argv0_prefixes)) {
		c->facts.argv0_refused = true;
		err_set(e, "run.argv[0]: %s is not under CELLOS_RUN_ARGV0_ALLOW_PREFIXES", o->program);
		goto fail;
	}

	/* run.mounts: every source opened now, once (hostmount/hostmount.h); the
	 * runtime binds the copies our child attaches in its private namespace,
	 * never a host path. */
	if (hostmounts_open(c->cfg, c->spec, &o->hm, e) < 0 || hostmounts_check_nested(c->spec, &o->hm, e) < 0 ||
	    plan_binds(o, c, e) < 0)
		goto fail;

	/* The hooks (oci_hook.h): the prestart one reports the container and holds
	 * it until start() (a refusal makes the runtime undo it); the poststart
	 * one reports the workload's process. */
	char root[PATH_MAX + 8];
	snprintf(root, sizeof root, "%s/rootfs", o->dir);
	oci_hooks_init(&o->hooks, o->dir);

	/* The cgroup holds the runtime and everything it starts; the limits are
	 * ours to enforce on it (the runtime gets no cgroupsPath). */
	struct cgroup_limits lim = c->limits;
	if (rt->pids_as_rlimit)
		lim.pids_max = 0;
	if (rt->runtime_limits)
		memset(&lim, 0, sizeof lim);
	struct oci_bundle_args ba = {.cell = c, .root = root, .cwd = cwd, .prestart = &o->hooks.gate, .poststart = &o->hooks.started,
				     .pids_rlimit = rt->pids_as_rlimit ? c->limits.pids_max : 0,
				     .map_user = rt->map_user,
				     .seccomp = rt->seccomp, .seccomp_dialect = rt->seccomp_dialect,
				     .binds = o->binds, .n_binds = o->n_binds};
	/* Under the gateway: the cell's resolver is the DNS proxy (the child writes
	 * the file next to the bundle, oci_child.c). */
	char resolv[PATH_MAX + 16];
	snprintf(resolv, sizeof resolv, "%s/resolv.conf", o->dir);
	if (c->facts.gw)
		ba.resolv_conf = resolv;

	config = oci_bundle_text(&ba, e);
	if (!config)
		goto fail;
	log_step(&t, "create.bundle");

	if (backend_cgroup_setup(c, &o->cg, &lim, &o->reg, e) < 0)
		goto fail;
	log_step(&t, "create.cgroup");

	/* How create notices SIGTERM/SIGINT while the runtime works (they are
	 * blocked): without it a stop request would wait for the container. */
	o->sigfd = stopsig_fd();
	if (o->sigfd < 0) {
		err_sys(e, errno, "%s: signalfd for SIGTERM/SIGINT", rt->name);
		goto fail;
	}
	o->logfd = memfd_create("cellos-runtime-log", MFD_CLOEXEC);
	int sv[2];
	if (o->logfd < 0 || socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		err_sys(e, errno, "%s: memfd/socketpair", rt->name);
		goto fail;
	}
	for (int fd = 1; fd <= 2; fd++) {
		struct stat st;
		int fl = fcntl(fd, F_GETFL);
		o->fix_stdio[fd] = fl >= 0 && !(fl & O_APPEND) && fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
	}

	char state[PATH_MAX + 16], bundle[PATH_MAX + 16], logopt[64];
	snprintf(state, sizeof state, "--root=%s/state", o->dir);
	snprintf(bundle, sizeof bundle, "%s/bundle", o->dir);
	snprintf(logopt, sizeof logopt, "%s", rt->log_opt);
	const char *argv[32];
	size_t n = 0;
	argv[n++] = rt->path;
	for (size_t i = 0; rt->global[i] && n < 20; i++)
		argv[n++] = rt->global[i];
	argv[n++] = state;
	argv[n++] = logopt;
	if (rt->log_format_json)
		argv[n++] = "--log-format=json";
	argv[n++] = "run";
	argv[n++] = "--bundle";
	argv[n++] = bundle;
	argv[n++] = c->name;
	argv[n] = NULL;

	struct oci_child_args ca = {.o = o, .parent = getpid(), .root_src = rt->rootfs ? rt->rootfs : "/",
				    .workdir = c->spec->working_directory, .config = config, .argv = argv,
				    .sync = sv[1], .peer = sv[0], .logfd = o->logfd};
	struct cellproc_clone req = {.what = rt->name, .child = oci_child_main, .arg = &ca};
	/* A child that exists is ours to tear down, whatever else failed. */
	int cloned = cellproc_clone(&o->cg, &req, &o->pid, &o->pidfd, e);
	close(sv[1]);
	hostmounts_close(&o->hm); /* the child has them */
	if (cloned < 0) {
		close(sv[0]);
		goto fail;
	}
	/* Nothing of the cell runs before its limits are in force. */
	if (cgroup_cell_apply(&o->cg, &lim, e) < 0) {
		close(sv[0]);
		goto fail;
	}
	/* A runtime that applies them itself fails the container when it cannot. */
	c->facts.limits_applied = rt->runtime_limits || (o->cg.applied & o->cg.want) == o->cg.want;
	snprintf(c->facts.limits_error, sizeof c->facts.limits_error, "%s", c->facts.limits_applied ? "" : o->cg.error);

	/* The child's setup: "R" (ready), or "E<message>". */
	char msg[ERR_MSG_MAX];
	ssize_t got = recv(sv[0], msg, sizeof msg - 1, 0);
	if (got < 1 || msg[0] != 'R') {
		close(sv[0]);
		msg[got > 1 ? got : 1] = '\0';
		if (got > 1 && (strncmp(msg + 1, "run.workingDirectory", 20) == 0 ||
				strncmp(msg + 1, "spec.run.mounts", 15) == 0))
			err_set(e, "%s", msg + 1);
		else
			err_set(e, "%s: preparing the cell: %s", rt->name, got > 1 ? msg + 1 : "the child ended");
		goto fail;
	}
	char pp[PATH_MAX + 64], proc_root[64];
	snprintf(pp, sizeof pp, "/proc/%d/ns/mnt", (int)o->pid);
	o->mntns = open(pp, O_RDONLY | O_CLOEXEC);
	snprintf(proc_root, sizeof proc_root, "/proc/%d/root", (int)o->pid);
	int hooks = oci_hooks_open(&o->hooks, proc_root, o->dir);
	snprintf(pp, sizeof pp, "%s%s/state", proc_root, o->dir);
	o->statefd = open(pp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (o->mntns < 0 || hooks < 0 || o->statefd < 0) {
		err_sys(e, errno, "%s: open the cell's runtime directory %s", rt->name, pp);
		close(sv[0]);
		goto fail;
	}
	if (send(sv[0], "X", 1, MSG_NOSIGNAL) != 1) {
		err_sys(e, errno, "%s: start", rt->name);
		close(sv[0]);
		goto fail;
	}
	/* EOF: exec happened (the socket is close-on-exec). */
	got = recv(sv[0], msg, sizeof msg - 1, 0);
	close(sv[0]);
	if (got > 1 && msg[0] == 'E') {
		msg[got] = '\0';
		err_set(e, "%s: %s (CELLOS_GVISOR_RUNSC / CELLOS_OCI_RUNTIME)", rt->name, msg + 1);
		goto fail;
	}
	log_step(&t, "create.spawn");

	/* The container exists when the prestart hook speaks. */
	char line[sizeof o->hooks.buf];
	int w = wait_hook(o, 'C', line, sizeof line, true, e);
	if (w <= 0) {
		if (w == 0) {
			char why[ERR_MSG_MAX - 64];
			oci_log_error(c, o->logfd, why, sizeof why);
			err_set(e, "%s: %s", rt->name, why[0] ? why : "ended before creating the container");
		}
		goto fail;
	}
	json_t *state_doc = json_loads(line + 1, 0, NULL);
	o->sandbox_pid = (pid_t)json_integer_value(json_object_get(state_doc, "pid"));
	json_decref(state_doc);
	log_step(&t, "create.container");
	return 0;
fail:
	oci_run_destroy(c);
	return -1;
}

int oci_run_start(struct cell *c, struct spawn_result *r, struct err *e)
{
	struct ocirt *o = priv(c);
	memset(r, 0, sizeof *r);
	snprintf(r->program, sizeof r->program, "%s", o->program);
	if (o->resolve_errno) {
		/* Not in the cell's root: nothing runs; the runtime undoes the container. */
		r->spawn_errno = o->resolve_errno;
		end_runtime(o);
		return 0;
	}
	if (oci_hooks_release(&o->hooks) < 0)
		return err_sys(e, errno, "%s: start the workload", o->rt.name);
	char line[64];
	struct err we = {0};
	int w = wait_hook(o, 'S', line, sizeof line, false, &we);
	if (w == 1) {
		r->spawned = true;
		r->pid = o->sandbox_pid > 0 ? o->sandbox_pid : o->pid;
		return 0;
	}
	char why[ERR_MSG_MAX - 64];
	oci_log_error(c, o->logfd, why, sizeof why);
	if (w == 0 && strstr(why, "creating process")) {
		/* The runtime could not exec what we found: it exists, so 126. */
		log_error("%s: %s", o->rt.name, why);
		r->spawn_errno = strstr(why, "permission denied") ? EACCES : ENOEXEC;
		return 0;
	}
	if (w < 0)
		return err_set(e, "%s", we.msg);
	return err_set(e, "%s: %s", o->rt.name, why[0] ? why : "ended before the workload started");
}

int oci_run_wait_fd(struct cell *c) { return priv(c)->pidfd; }

void oci_run_collect(struct cell *c, struct run_status *st)
{
	struct ocirt *o = priv(c);
	memset(st, 0, sizeof *st);
	if (!reap(o, 0))
		end_runtime(o);
	if (o->exited && o->hooks.gate_open && o->statefd >= 0) {
		st->ru = o->ru;
		if (WIFSIGNALED(o->wstatus)) {
			/* The runtime itself was killed (by us, on a stop): no report. */
			st->have_status = false;
		} else {
			int code = WEXITSTATUS(o->wstatus);
			char why[ERR_MSG_MAX - 64];
			oci_log_error(c, o->logfd, why, sizeof why);
			st->have_status = true;
			if (code == 128 && why[0]) {
				/* The runtime failed, not the workload. */
				log_error("%s: %s", o->rt.name, why);
				st->wstatus = W_EXITCODE(125, 0);
			} else if (code > 128 && code <= 128 + 64) {
				/* A runtime reports death by signal N as 128+N, like a shell. */
				st->wstatus = code - 128;
			} else {
				st->wstatus = W_EXITCODE(code, 0);
			}
		}
	}
	/* The main process is gone: nothing else of the cell may keep running. */
	cgroup_cell_signal(&o->cg, SIGKILL, 0);
	backend_cgroup_usage(&o->cg, st);
}

void oci_run_signal(struct cell *c, int sig)
{
	struct ocirt *o = priv(c);
	if (!o || reap(o, 0))
		return;
	char num[8];
	snprintf(num, sizeof num, "%d", sig);
	const char *args[] = {"kill", "--all", c->name, num, NULL};
	char msg[256];
	int rc = runtime_cmd(o, args, msg, sizeof msg);
	if (rc != 0)
		log_debug("%s kill --all %s %d: status %d: %s", o->rt.name, c->name, sig, rc, msg);
	if (sig == SIGKILL && !reap(o, EXIT_WAIT_MS)) {
		kill(o->pid, SIGKILL);
		cgroup_cell_signal(&o->cg, SIGKILL, 0);
	}
}

int oci_run_read_counters(struct cell *c, struct nft_counter **out, size_t *n, struct err *e)
{
	*out = NULL;
	*n = 0;
	return err_set(e, "%s: the cell has no nftables ruleset of ours", priv(c)->rt.name);
}

void oci_run_destroy(struct cell *c)
{
	struct ocirt *o = priv(c);
	if (!o)
		return;
	end_runtime(o);
	/* A runtime that was killed leaves its state: its own delete cleans up. */
	if (o->statefd >= 0 && !dirs_empty(o->statefd)) {
		const char *args[] = {"delete", "--force", c->name, NULL};
		char msg[256];
		int rc = runtime_cmd(o, args, msg, sizeof msg);
		if (rc != 0)
			log_warn("%s delete --force %s: status %d: %s", o->rt.name, c->name, rc, msg);
	}
	cellproc_release(&o->cg, &o->reg);
	/* The mount namespace goes last: with it the tmpfs holding the bundle, the
	 * state and the cell's root scaffold. */
	oci_hooks_close(&o->hooks);
	int *fds[] = {&o->statefd, &o->logfd, &o->sigfd, &o->pidfd, &o->mntns};
	for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
		close_fd(fds[i]);
	hostmounts_close(&o->hm);
	for (size_t i = 0; i < o->n_binds; i++) {
		free((char *)o->binds[i].source);
		free((char *)o->binds[i].destination);
	}
	free(o->binds);
	free(o);
	c->priv = NULL;
}
