#include "supervisor.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend/backend.h"
#include "export/export.h"
#include "hostmount/hostmount.h"
#include "isolate/artifact.h"
#include "egress_proxy.h"
#include "isolate/gateway.h"
#include "isolate/resolve.h"
#include "isolate/runreg.h"
#include "isolate/runuid.h"
#include "isolate/secretfs.h"
#include "lifecycle_events.h"
#include "outcome.h"
#include "policy.h"
#include "secrets/broker.h"
#include "util/ids.h"
#include "util/log.h"
#include "util/stdio_relay.h"
#include "util/stopsig.h"

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* Everything one run knows; lives on supervisor_run's stack. */
struct run {
	const struct config *cfg;
	const struct spec *spec;
	const struct policy_pack *pack;  /* the pack that admitted the cell, NULL: none */
	struct event_stream *es;
	const struct backend_ops *be;
	char run_id[37];
	int64_t t0;
	int64_t step_us;               /* for debug step timings */
	int64_t ttl_deadline;          /* monotonic ms */
	int sigfd;
	int term_sig;                  /* SIGTERM/SIGINT received, or 0 */

	struct nft_egress *egress;     /* resolved egress rules */
	size_t n_egress, cap_egress;
	char **egress_strings;         /* owned address strings of resolved DNS names (and set names) */
	size_t n_egress_strings;
	uint32_t **egress_elems;       /* owned: per DNS-name rule under the gateway, its addresses */
	size_t n_egress_elems;
	struct egress_proxy px;        /* the gateway's DNS proxy and SNI/Host check (SPEC §6.4) */
	char **envp;                   /* workload environment (secret entries borrowed) */
	struct secrets secrets;
	struct runuid uid;             /* the run's own host uid (SPEC §3), fd -1 when fixed */
	struct cell cell;
	bool created;
	struct stdio_relay relay;      /* the workload's stdout/stderr where ours are a terminal */

	/* Outcome. */
	bool ran;                      /* command.completed was emitted */
	int exit_code;                 /* command exit code (SPEC §1 value) */
	int status;                    /* supervisor exit status */
	const char *reason;            /* destroyed.reason, NULL on success */
	struct outcome *out;           /* what the end line says (outcome.h) */
};

void supervisor_block_signals(void)
{
	sigset_t set;
	stopsig_set(&set);
	sigprocmask(SIG_BLOCK, &set, NULL);
	/* A closed stdout/stderr or socket must not kill the supervisor mid-teardown. */
	signal(SIGPIPE, SIG_IGN);
	/* An ignored SIGCHLD survives execve (some launchers start programs so):
	 * the kernel would then reap our children itself, no wait could tell their
	 * exit status, and the workload would inherit it too. */
	signal(SIGCHLD, SIG_DFL);
}

/* Consume one pending SIGTERM/SIGINT, if any; the first one is remembered. */
static int read_signal(struct run *r)
{
	struct signalfd_siginfo si;
	if (r->sigfd < 0 || read(r->sigfd, &si, sizeof si) != (ssize_t)sizeof si)
		return 0;
	if (!r->term_sig)
		r->term_sig = (int)si.ssi_signo;
	return (int)si.ssi_signo;
}

static bool terminated(struct run *r)
{
	read_signal(r);
	return r->term_sig != 0;
}

static const char *isolation_mode(const struct run *r)
{
	if (r->cfg->backend == BACKEND_GVISOR)
		return "gvisor";
	if (r->cfg->backend == BACKEND_QEMU || r->cfg->backend == BACKEND_FIRECRACKER)
		return "microvm";
	return (r->cfg->ns & NS_NET) ? "clone_newnet" : "host";
}

/* ---- phase: network_scope ---- */

static int add_egress(struct run *r, int family, const char *addr, const struct egress_rule *er)
{
	/* Grown geometrically: a document may declare tens of thousands of rules,
	 * and one realloc per rule made network_scope quadratic. */
	if (r->n_egress == r->cap_egress) {
		size_t cap = r->cap_egress ? 2 * r->cap_egress : 16;
		struct nft_egress *ne = realloc(r->egress, cap * sizeof *ne);
		if (!ne)
			return -1;
		r->egress = ne;
		r->cap_egress = cap;
	}
	r->egress[r->n_egress++] = (struct nft_egress){
		.family = family, .addr = addr, .port = er->port, .udp = er->proto == PROTO_UDP};
	return 0;
}

static char *own_string(struct run *r, char *copy)
{
	char **ns = copy ? realloc(r->egress_strings, (r->n_egress_strings + 1) * sizeof *ns) : NULL;
	if (!ns) {
		free(copy);
		return NULL;
	}
	r->egress_strings = ns;
	r->egress_strings[r->n_egress_strings++] = copy;
	return copy;
}

/* Whether the cell gets the network gateway (SPEC §6.4): configured, a private
 * netns (config.c checks the stub has one), and some egress declared. */
static bool gateway_wanted(const struct run *r)
{
	return r->cfg->network == NETWORK_GATEWAY && r->spec->n_egress > 0;
}

/* The resolver a DNS-name rule is resolved through (SPEC §6.4): the declared
 * one, else CELLOS_DNS_UPSTREAM, else (NULL) the host's. */
static const char *scope_resolver(const struct run *r, char *ip, size_t size, int *port)
{
	json_t *res = r->spec->dns_authority ? json_object_get(r->spec->dns_authority, "resolvers") : NULL;
	json_t *addr = json_object_get(json_array_get(res, 0), "address");
	if (json_is_string(addr) && resolve_split_addr(json_string_value(addr), ip, size, port) == 0)
		return ip;
	if (r->cfg->dns_upstream_ip[0]) {
		snprintf(ip, size, "%s", r->cfg->dns_upstream_ip);
		*port = r->cfg->dns_upstream_port;
		return ip;
	}
	return NULL;
}

/* Under the gateway a DNS-name rule is one rule over a set `egress_<i>` of the
 * name's IPv4 addresses, resolved here (a wildcard's set starts empty), less
 * any in CELLOS_EGRESS_DENY_CIDRS; the DNS proxy extends it at run time. */
static int add_name_set(struct run *r, size_t i, const struct egress_rule *er)
{
	char name[32], ip[64];
	int port = 53;
	snprintf(name, sizeof name, "egress_%zu", i);
	char *set = own_string(r, strdup(name));
	uint32_t **nb = realloc(r->egress_elems, (r->n_egress_elems + 1) * sizeof *nb);
	if (!set || !nb)
		return -1;
	r->egress_elems = nb;
	uint32_t *addrs = NULL;
	size_t n = 0;
	if (strncmp(er->host, "*.", 2) != 0) {
		struct err e = {0};
		const char *server = scope_resolver(r, ip, sizeof ip, &port);
		if (resolve_a(er->host, server, port, &addrs, &n, &e) < 0)
			log_warn("egress rule %zu: %s; its set starts empty", i, e.msg);
		else if (n == 0)
			log_warn("egress rule %zu: %s has no IPv4 address; its set starts empty", i, er->host);
	}
	size_t k = 0;
	for (size_t j = 0; j < n; j++) {
		if (gateway_cidr_denied(r->cfg->egress_deny, r->cfg->n_egress_deny, ntohl(addrs[j]), 32)) {
			char txt[INET_ADDRSTRLEN];
			log_warn("egress rule %zu: %s resolves to %s, inside CELLOS_EGRESS_DENY_CIDRS: not reachable", i,
				 er->host, inet_ntop(AF_INET, &addrs[j], txt, sizeof txt));
			continue;
		}
		addrs[k++] = addrs[j];
	}
	r->egress_elems[r->n_egress_elems++] = addrs;
	if (add_egress(r, 4, NULL, er) < 0)
		return -1;
	struct nft_egress *g = &r->egress[r->n_egress - 1];
	g->set = set;
	g->host = er->host;
	g->rule = i;
	g->elems = addrs;
	g->n_elems = k;
	return 0;
}

/* Literal and CIDR hosts go to nft as they are; DNS names are resolved here, once,
 * and a name that does not resolve contributes no accept rule (the cell can reach
 * nothing it did not declare, never more). */
static int resolve_egress(struct run *r)
{
	bool gw = gateway_wanted(r);
	for (size_t i = 0; i < r->spec->n_egress; i++) {
		const struct egress_rule *er = &r->spec->egress[i];
		int family = spec_host_family(er->host); /* 4, 6 (address or CIDR), 0 (name) */
		if (family > 0) {
			if (gw && family == 6)
				log_warn("egress rule %zu: %s is IPv6: enforced in the cell, but the gateway routes IPv4 only", i,
					 er->host);
			if (add_egress(r, family, er->host, er) < 0)
				return -1;
			continue;
		}
		if (gw) {
			if (add_name_set(r, i, er) < 0)
				return -1;
			continue;
		}
		if (strncmp(er->host, "*.", 2) == 0) {
			log_warn("egress rule %zu: wildcard host %s cannot be resolved to addresses; no nft rule for it", i, er->host);
			continue;
		}
		struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
		if (getaddrinfo(er->host, NULL, &hints, &res) != 0) {
			log_warn("egress rule %zu: %s does not resolve; no nft rule for it", i, er->host);
			continue;
		}
		for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
			char txt[INET6_ADDRSTRLEN];
			const void *a = ai->ai_family == AF_INET ? (const void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr
								 : (const void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;
			if (!inet_ntop(ai->ai_family, a, txt, sizeof txt))
				continue;
			char *copy = own_string(r, strdup(txt));
			if (!copy)
				break;
			if (add_egress(r, ai->ai_family == AF_INET ? 4 : 6, copy, er) < 0)
				break;
		}
		freeaddrinfo(res);
	}
	return 0;
}

static void emit_network_policy(struct run *r)
{
	events_emit(r->es, "observability.v1.network_policy", network_policy_data(r->spec, isolation_mode(r)), NULL);
}

/* ---- environment of the workload (SPEC §2) ---- */

static int env_set(char ***envp, size_t *n, char *entry)
{
	size_t klen = strcspn(entry, "=");
	for (size_t i = 0; i < *n; i++)
		if (strncmp((*envp)[i], entry, klen) == 0 && (*envp)[i][klen] == '=') {
			(*envp)[i] = entry; /* later sources win */
			return 0;
		}
	char **ne = realloc(*envp, (*n + 2) * sizeof *ne);
	if (!ne)
		return -1;
	*envp = ne;
	ne[(*n)++] = entry;
	ne[*n] = NULL;
	return 0;
}

/* Strings we allocate for the environment are kept in one pool so they can be
 * freed without touching the secret entries, which the broker owns. */
struct strpool {
	char **s;
	size_t n;
};

static char *pool_printf(struct strpool *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *pool_printf(struct strpool *p, const char *fmt, ...)
{
	char **ns = realloc(p->s, (p->n + 1) * sizeof *ns);
	if (!ns)
		return NULL;
	p->s = ns;
	va_list ap;
	va_start(ap, fmt);
	char *out = NULL;
	if (vasprintf(&out, fmt, ap) < 0)
		out = NULL;
	va_end(ap);
	if (out)
		p->s[p->n++] = out;
	return out;
}

static int build_env(struct run *r, struct strpool *pool)
{
	size_t n = 0;
	char *e;
	r->envp = calloc(1, sizeof *r->envp);
	if (!r->envp || !(e = pool_printf(pool, "PATH=%s", DEFAULT_PATH)) || env_set(&r->envp, &n, e) < 0)
		return -1;
	/* HOME (SPEC §2): never the supervisor's own; run.env may override it. */
	const char *home = r->spec->working_directory ? r->spec->working_directory : "/tmp";
	if (!(e = pool_printf(pool, "HOME=%s", home)) || env_set(&r->envp, &n, e) < 0)
		return -1;
	for (size_t i = 0; i < r->spec->n_env; i++)
		if (!(e = pool_printf(pool, "%s=%s", r->spec->env[i].key, r->spec->env[i].value)) ||
		    env_set(&r->envp, &n, e) < 0)
			return -1;
	if (!(e = pool_printf(pool, "CELLOS_CELL_ID=%s", r->spec->id)) || env_set(&r->envp, &n, e) < 0 ||
	    !(e = pool_printf(pool, "CELLOS_RUN_ID=%s", r->run_id)) || env_set(&r->envp, &n, e) < 0)
		return -1;
	if (r->spec->delivery == DELIVERY_ENV)
		for (size_t i = 0; i < r->secrets.n; i++)
			if (env_set(&r->envp, &n, r->secrets.items[i].env_entry) < 0)
				return -1;
	/* file delivery: the files are in the cell (isolate/secretfs.h), this says where. */
	if (r->spec->delivery == DELIVERY_FILE &&
	    (!(e = pool_printf(pool, "CELLOS_SECRETS_DIR=%s", SECRETFS_DIR)) || env_set(&r->envp, &n, e) < 0))
		return -1;
	return 0;
}

static const char *env_path(char **envp)
{
	for (char **p = envp; *p; p++)
		if (strncmp(*p, "PATH=", 5) == 0)
			return *p + 5;
	return "";
}

/* ---- events of the lifecycle ---- */

static void emit_failed(struct run *r, const char *phase, const char *reason, const char *message)
{
	/* correlation (ext), as in started: a run that never started is still
	 * found by its job id (cellos-agent, SPEC §11). */
	json_t *d = lifecycle_failed_data(r->spec->id, phase, reason, message);
	if (d && r->spec->correlation)
		json_object_set_new(d, "correlation", json_deep_copy(r->spec->correlation));
	events_emit(r->es, "lifecycle.v1.failed", d, NULL);
}

static void emit_started(struct run *r, char started_id[37])
{
	events_emit(r->es, "lifecycle.v1.started",
		    lifecycle_started_data(r->spec, &r->cell, r->be->name, r->cfg->seccomp), started_id);
}

static void emit_network_enforcement(struct run *r)
{
	struct nft_counter *c = NULL;
	size_t n = 0;
	struct err e = {0};
	bool failed = r->cell.facts.nft_applied && r->be->read_counters(&r->cell, &c, &n, &e) < 0;
	events_emit(r->es, "observability.v1.network_enforcement",
		    network_enforcement_data(r->spec, isolation_mode(r), &r->cell.facts, r->ran, r->exit_code,
					     failed ? NULL : c, failed ? 0 : n, failed ? e.msg : NULL),
		    NULL);
	if (!failed)
		nft_counters_free(c, n);
}

static void emit_summary_and_destroyed(struct run *r)
{
	events_emit(r->es, "compliance.v1.summary",
		    compliance_summary_data(r->spec, r->be->name, r->cfg->hardened, r->ran, r->exit_code,
					    r->pack ? r->pack->id : NULL, r->pack ? r->pack->version : NULL),
		    NULL);
	events_emit(r->es, "lifecycle.v1.destroyed", lifecycle_destroyed_data(r->spec, r->reason, mono_ms() - r->t0,
									 r->cell.facts.vm_terminal_state),
		    NULL);
}

/* ---- phase: run ---- */

static int64_t run_deadline(struct run *r, int64_t start)
{
	long long t = r->spec->timeout_ms ? r->spec->timeout_ms : r->cfg->run_timeout_ms;
	return t ? start + t : INT64_MAX;
}

/* Wait until the workload's main process ends, or `deadline`, or a signal,
 * relaying its output meanwhile where our stdout/stderr are a terminal.
 * Returns 1 when it ended, 0 on deadline, -1 on SIGTERM/SIGINT. */
/* The events so far are sent (events_flush) once the workload has run this
 * long, and then at every turn: a short workload's events go out with the
 * last ones, in one write at the end, instead of waking the broker while the
 * workload runs (docs/DESIGN.md, JetStream sink). */
#define EVENTS_FLUSH_AFTER_MS 5

static int wait_workload(struct run *r, int64_t deadline)
{
	int fd = r->be->wait_fd(&r->cell);
	int64_t flush_at = mono_ms() + EVENTS_FLUSH_AFTER_MS;
	for (;;) {
		int64_t now = mono_ms();
		if (now >= deadline)
			return 0;
		int64_t left = deadline - now;
		/* The gateway's proxies decide here, in this one thread: each is an
		 * epoll set (with its own timer) that polls readable when it has
		 * work, so they need no locking of their own (only an allowed
		 * connection's bytes move in threads: l7proxy.h). */
		struct pollfd p[2 + STDIO_RELAY_POLLFDS + EGRESS_PROXY_POLLFDS] = {{.fd = fd, .events = POLLIN},
										   {.fd = r->sigfd, .events = POLLIN}};
		stdio_relay_pollfds(&r->relay, p + 2);
		egress_proxy_pollfds(&r->px, p + 2 + STDIO_RELAY_POLLFDS);
		int64_t wait = left > 60000 ? 60000 : left;
		if (now >= flush_at) {
			events_flush(r->es);
		} else {
			/* The broker's connection is made while the workload runs:
			 * what is left at the end is sending and the acks. */
			events_prepare(r->es);
			if (flush_at - now < wait)
				wait = flush_at - now;
		}
		int n = poll(p, 2 + STDIO_RELAY_POLLFDS + EGRESS_PROXY_POLLFDS, (int)wait);
		if (n < 0 && errno != EINTR)
			return 0;
		if (n > 0) {
			stdio_relay_pump(&r->relay, p + 2);
			egress_proxy_pump(&r->px, p + 2 + STDIO_RELAY_POLLFDS);
		}
		if (n > 0 && p[0].revents)
			return 1;
		if (n > 0 && p[1].revents && read_signal(r))
			return -1;
	}
}

/* SIGTERM to every process of the cell, `grace` seconds, then SIGKILL to all.
 * Any SIGTERM/SIGINT to the supervisor during the grace period cuts it short. */
static void stop_cell(struct run *r, int64_t grace_ms)
{
	r->be->signal(&r->cell, SIGTERM);
	wait_workload(r, mono_ms() + grace_ms);
	r->be->signal(&r->cell, SIGKILL);
}

/* resourceUsage (ext) covers the whole cell where its cgroup can tell: CPU from
 * the v2 leaf's cpu.stat, memory as the leaf's peak (the figure memoryMaxBytes
 * bounds); otherwise the workload's main process as wait4 saw it. */
static json_t *resource_usage(const struct run_status *st)
{
	long long rss = st->have_cell_mem ? st->cell_mem_peak : (long long)st->ru.ru_maxrss * 1024;
	long long user = st->have_cell_cpu ? st->cell_user_us / 1000
					   : st->ru.ru_utime.tv_sec * 1000LL + st->ru.ru_utime.tv_usec / 1000;
	long long sys = st->have_cell_cpu ? st->cell_sys_us / 1000
					  : st->ru.ru_stime.tv_sec * 1000LL + st->ru.ru_stime.tv_usec / 1000;
	return json_pack("{s:I, s:I, s:I}", "maxRssBytes", (json_int_t)rss, "userCpuMs", (json_int_t)user, "sysCpuMs",
			 (json_int_t)sys);
}

static void run_workload(struct run *r)
{
	const struct spec *s = r->spec;
	int64_t start = mono_ms();
	struct spawn_result sp;
	struct err e = {0};
	json_t *d;

	bool start_failed = r->be->start(&r->cell, &sp, &e) < 0;
	if (start_failed) {
		sp.spawned = false;
		sp.spawn_errno = EIO;
	}
	json_t *argv = json_array();
	for (size_t i = 0; i < s->argc; i++)
		json_array_append_new(argv, json_string(s->argv[i]));

	if (!sp.spawned) {
		struct run_status st;
		r->be->collect(&r->cell, &st);
		/* The cell is gone: now its output, then our lines (SPEC §4). */
		stdio_relay_drain(&r->relay);
		r->out->program = s->argv[0];
		r->out->spawn_errno = start_failed ? 0 : sp.spawn_errno;
		if (start_failed)
			snprintf(r->out->message, sizeof r->out->message, "%s", e.msg);
		r->exit_code = sp.spawn_errno == ENOENT ? 127 : 126;
		r->status = r->exit_code;
		r->reason = "spawn_failed";
		r->ran = true;
		char msg[4400];
		snprintf(msg, sizeof msg, "%s: %s", s->argv[0], strerror(sp.spawn_errno));
		d = json_pack("{s:s, s:o, s:i, s:I, s:o, s:b}", "specId", s->id, "argv", argv, "exitCode", r->exit_code,
			      "durationMs", (json_int_t)(mono_ms() - start), "spawnError", event_text(msg), "timedOut",
			      0);
		json_object_set_new(d, "resourceUsage",
				    json_pack("{s:i, s:i, s:i}", "maxRssBytes", 0, "userCpuMs", 0, "sysCpuMs", 0));
		events_emit(r->es, "command.v1.completed", d, NULL);
		return;
	}

	log_step(&r->step_us, "spawn");
	events_emit(r->es, "observability.v1.process_spawned",
		    json_pack("{s:o, s:I, s:i}", "program", event_text(sp.program), "argc", (json_int_t)s->argc, "pid",
			      (int)sp.pid),
		    NULL);

	int64_t rd = run_deadline(r, start);
	int64_t deadline = rd < r->ttl_deadline ? rd : r->ttl_deadline;
	int w = wait_workload(r, deadline);
	int64_t waited = mono_ms() - start;
	bool timed_out = w == 0;
	if (w == 0)
		r->reason = rd <= r->ttl_deadline ? "timeout" : "ttl_exceeded";
	else if (w < 0)
		r->reason = "supervisor_terminated";
	/* Stopped first, then logged (SPEC §4): a write to our stderr may block (a
	 * terminal the operator stopped), and it must never delay the kill. */
	if (w <= 0)
		stop_cell(r, s->graceful_shutdown_seconds * 1000);

	struct run_status st;
	r->be->collect(&r->cell, &st);
	int64_t duration = mono_ms() - start;
	/* Every process of the cell is gone: what it wrote comes before our verdict
	 * (the end line, outcome.h, written once the run is over). */
	stdio_relay_drain(&r->relay);

	int term_signal = 0;
	if (st.no_report) {
		/* A microVM that ended without a valid exit report (SPEC §6.3): its
		 * workload's fate is unknown. */
		r->exit_code = 125;
		if (w > 0)
			r->reason = "backend_failed";
	} else if (!st.have_status) {
		term_signal = SIGKILL; /* the cell was killed before its init could report */
		r->exit_code = 128 + SIGKILL;
	} else if (WIFEXITED(st.wstatus)) {
		r->exit_code = WEXITSTATUS(st.wstatus);
	} else {
		term_signal = WTERMSIG(st.wstatus);
		r->exit_code = 128 + term_signal;
	}
	if (timed_out)
		r->exit_code = 124;
	r->ran = true;

	r->out->elapsed_ms = duration;
	if (w < 0) {
		r->status = 128 + r->term_sig;
		r->out->elapsed_ms = mono_ms() - r->t0;
	} else if (timed_out) {
		r->status = 124;
		r->out->elapsed_ms = waited;
		r->out->timeout_ms = s->timeout_ms ? s->timeout_ms : r->cfg->run_timeout_ms;
		r->out->timeout_from = s->timeout_ms ? "run.timeoutMs" : "CELLOS_RUN_TIMEOUT_MS";
	} else if (st.no_report) {
		r->status = 125;
		snprintf(r->out->message, sizeof r->out->message, "%s",
			 st.vm_error[0] ? st.vm_error : "no exit report arrived from the guest");
	} else {
		r->status = r->exit_code;
		/* A cell that failed after the kernel OOM-killed one of its processes
		 * failed for lack of memory, whatever the main process reported. */
		if (st.oom_killed && (term_signal || r->exit_code != 0))
			r->reason = "oom";
		else if (term_signal)
			r->reason = "signal_killed";
		else if (r->exit_code != 0)
			r->reason = "nonzero_exit";
		r->out->exit_status = r->exit_code;
		r->out->term_signal = term_signal;
		r->out->mem_limit = r->cell.limits.memory_max;
		r->out->mem_peak = st.have_cell_mem ? st.cell_mem_peak : (long long)st.ru.ru_maxrss * 1024;
	}

	d = json_pack("{s:s, s:o, s:i, s:I, s:b}", "specId", s->id, "argv", argv, "exitCode", r->exit_code,
		      "durationMs", (json_int_t)duration, "timedOut", timed_out);
	if (term_signal)
		json_object_set_new(d, "termSignal", json_integer(term_signal));
	if (timed_out || st.no_report) {
		char msg[160];
		snprintf(msg, sizeof msg, "%s%s%s after %lld ms", st.no_report ? "no exit report arrived from the guest" : "",
			 st.no_report && timed_out ? ": " : "", timed_out ? r->reason : "", (long long)duration);
		json_object_set_new(d, "spawnError", json_string(msg));
	}
	json_object_set_new(d, "resourceUsage", resource_usage(&st));
	events_emit(r->es, "command.v1.completed", d, NULL);
}

/* ---- the lifecycle ---- */

/* The run's own host uid (SPEC §3): CELLOS_CELL_UID, or one allocated from
 * CELLOS_CELL_UID_RANGE that no other live run holds, until destroy. */
/* A warm cell's identity (supervisor_warm_prepare), until its run takes it. */
static struct runuid warm_uid = {.fd = -1};
static bool warm_has_uid;

/* What dead runs left, before a run takes its identity: their processes (cgroup
 * leaves) must be gone before their uid can be handed to this run, and their /30
 * before the address plan is read. */
static void sweep_dead_runs(void)
{
	runreg_sweep();
	runuid_sweep();
	gateway_sweep();
}

static int take_identity(struct run *r, struct err *e)
{
	if (warm_has_uid) {
		/* Taken for this run id when the warm cell was built (the sweeps too). */
		r->uid = warm_uid;
		warm_has_uid = false;
		return 0;
	}
	sweep_dead_runs();
	if (r->cfg->fixed_uid) {
		r->uid.uid = r->cfg->fixed_uid;
		return 0;
	}
	return runuid_alloc(r->cfg->uid_first, r->cfg->uid_last, r->run_id, &r->uid, e);
}

/* A phase before `started` failed: undo, report, and set the exit status. */
static int fail_before_start(struct run *r, const char *phase, const char *reason, const char *msg)
{
	int status = 125;
	/* terminated(): a backend may end its create early on a signal it saw
	 * pending but left for us to read. */
	if (r->term_sig || terminated(r)) {
		reason = "supervisor_terminated";
		status = 128 + r->term_sig;
	} else if (strcmp(reason, "ttl_exceeded") == 0) {
		status = 124;
	}
	/* No line here: the end line (outcome.h) names the phase and says this. */
	r->out->phase = phase;
	r->out->reason = reason;
	snprintf(r->out->message, sizeof r->out->message, "%s", msg);
	emit_failed(r, phase, reason, msg);
	return status;
}

/* Checked between phases: a signal or the TTL ends the run before the next one. */
static const char *interrupted(struct run *r)
{
	if (terminated(r))
		return "supervisor_terminated";
	if (mono_ms() >= r->ttl_deadline)
		return "ttl_exceeded";
	return NULL;
}

/* ---- phase: export ---- */

static const char *export_stop(void *arg) { return interrupted(arg); }

/* The cell's view, through the backend. An export-only cell has no workload: its
 * artifacts are host files, under CELLOS_EXPORT_HOST_PATHS_ALLOW only (checked at
 * admission and again by the reader), read as the run's own unprivileged uid
 * with no capability and no symlink followed (SPEC §10): never with the
 * supervisor's privileges, which could read any file of the host. */
static int export_open(void *arg, const char *path, int *fd, struct err *e)
{
	struct run *r = arg;
	if (r->spec->has_run && !r->be->open_artifact)
		return err_set(e, "the %s backend cannot read artifacts from its cell", r->be->name);
	if (r->spec->has_run)
		return r->be->open_artifact(&r->cell, path, fd, e);
	struct artifact_view v = {.userns = -1, .mntns = -1, .uid = r->cell.uid, .gid = r->cell.gid,
				  .host_allow = r->cfg->export_host_allow, .max_bytes = r->cfg->export_max_bytes};
	return artifact_open(&v, path, fd, e);
}

static void export_artifacts(struct run *r, const char *started_id)
{
	struct export_phase x = {.cfg = r->cfg, .spec = r->spec, .es = r->es, .started_id = started_id,
				 .open = export_open, .open_arg = r, .stop = export_stop, .stop_arg = r,
				 .deadline_ms = r->ttl_deadline};
	size_t failed = export_run(&x);
	r->out->export_failed = failed;
	r->out->export_total = r->spec->n_artifacts;
	snprintf(r->out->export_names, sizeof r->out->export_names, "%s", x.failed_names);
	if (!failed || r->reason)
		return; /* a failed workload stays the reason (and its status the exit status) */
	/* The workload succeeded but an artifact did not leave the cell: a
	 * supervisor failure (SPEC §1: 125), unless a signal or the TTL cut the
	 * export short. */
	const char *why = interrupted(r);
	r->reason = why ? why : "export_failed";
	r->status = !why ? 125 : strcmp(why, "ttl_exceeded") == 0 ? 124 : 128 + r->term_sig;
	r->out->elapsed_ms = why ? mono_ms() - r->t0 : -1;
}

/* ---- phase: create ---- */

/* SPEC §7, on what create() reports: the portable profile runs the cell and
 * says what is not in force (a warning here, the facts in the events); the
 * hardened one refuses it, before anything of the workload runs. The one place
 * that turns a backend's facts into a refusal, for every backend, with one
 * reason: policy_denied (docs/DESIGN.md). */
static int admit_created(struct run *r, struct err *e)
{
	const struct cell_facts *f = &r->cell.facts;
	bool hardened = r->cfg->hardened;
	if (hardened && !f->leaf)
		return err_set(e, "CELLOS_DEPLOYMENT_PROFILE=hardened: no cgroup leaf could be made for the cell");
	if (!f->limits_applied) {
		if (hardened)
			return err_set(e, "CELLOS_DEPLOYMENT_PROFILE=hardened: run.limits cannot be enforced: %s",
				       f->limits_error);
		log_warn("run.limits not enforced: %s", f->limits_error);
	}
	/* SPEC §6.4: a gateway whose host table nftables refused is never "fail
	 * open": the backend left the cell without a route out. */
	if (f->gw_error[0]) {
		if (hardened)
			return err_set(e, "CELLOS_DEPLOYMENT_PROFILE=hardened: the gateway's nftables table could not be "
					  "applied: %s",
				       f->gw_error);
		log_warn("%s; the cell keeps an isolated network (no route out)", f->gw_error);
	}
	if (f->netns && !f->nft_applied) {
		if (hardened)
			return err_set(e, "CELLOS_DEPLOYMENT_PROFILE=hardened: nftables could not be applied in the cell: %s",
				       f->nft_error);
		if (!f->gw_error[0]) /* said just above */
			log_warn("nftables not applied: %s", f->nft_error);
	}
	if (hardened && f->seccomp && strcmp(f->seccomp, "off") == 0)
		return err_set(e, "CELLOS_DEPLOYMENT_PROFILE=hardened: the %s backend's runtime cannot install a "
				  "system-call filter (CELLOS_SECCOMP)",
			       r->be->name);
	return 0;
}

static int lifecycle(const struct config *cfg, const struct spec *spec, const struct policy_pack *pack,
		     struct event_stream *es, struct outcome *out)
{
	/* SIGTERM/SIGINT are blocked since start-up (main): this descriptor is the
	 * only way the supervisor sees them. Without it they would stay blocked for
	 * good and neither the supervisor nor its cell could be stopped short of
	 * SIGKILL, so nothing is started. */
	int sigfd = stopsig_fd();
	if (sigfd < 0) {
		out->phase = "admission";
		out->reason = "backend_failed";
		snprintf(out->message, sizeof out->message, "signalfd for SIGTERM/SIGINT: %s", strerror(errno));
		return 125;
	}
	struct run r = {.cfg = cfg, .spec = spec, .pack = pack, .es = es, .be = backend_for(cfg), .sigfd = sigfd,
			.uid = {.fd = -1}, .out = out};
	stdio_relay_init(&r.relay);
	r.t0 = mono_ms();
	r.step_us = mono_us();
	r.ttl_deadline = r.t0 + spec->ttl_seconds * 1000;
	if (cfg->run_id[0])
		memcpy(r.run_id, cfg->run_id, sizeof r.run_id);
	else
		uuid_v4(r.run_id);
	events_begin_run(es, spec->id, r.run_id);

	struct strpool pool = {0};
	struct err e = {0};
	const char *why;
	int status = 0;

	/* network_scope */
	if (resolve_egress(&r) < 0) {
		status = fail_before_start(&r, "network_scope", "backend_failed", "out of memory");
		goto out;
	}
	emit_network_policy(&r);
	log_step(&r.step_us, "network_scope");
	if ((why = interrupted(&r))) {
		status = fail_before_start(&r, "network_scope", why, "interrupted before secrets");
		goto out;
	}

	/* secrets */
	if (secrets_resolve(cfg, spec, &r.secrets, &e) < 0) {
		status = fail_before_start(&r, "secrets", "secret_unavailable", e.msg);
		goto out;
	}
	if ((why = interrupted(&r))) {
		status = fail_before_start(&r, "secrets", why, "interrupted before create");
		goto out;
	}
	log_step(&r.step_us, "secrets");

	/* create */
	if (build_env(&r, &pool) < 0) {
		status = fail_before_start(&r, "create", "backend_failed", "out of memory");
		goto out;
	}
	if (take_identity(&r, &e) < 0) {
		status = fail_before_start(&r, "create", "backend_failed", e.msg);
		goto out;
	}
	/* SPEC §6.1: where our stdout/stderr are a terminal, the cell gets pipes. */
	if (stdio_relay_open(&r.relay, &e) < 0) {
		status = fail_before_start(&r, "create", "backend_failed", e.msg);
		goto out;
	}
	r.cell = (struct cell){.cfg = cfg, .spec = spec, .envp = r.envp, .path = env_path(r.envp),
			       .egress = r.egress, .n_egress = r.n_egress, .ns = cfg->ns,
			       .uid = (uid_t)r.uid.uid, .gid = (gid_t)(cfg->fixed_uid ? cfg->fixed_gid : r.uid.uid),
			       .stdio = {r.relay.cell[0], r.relay.cell[1]},
			       .secrets = spec->delivery == DELIVERY_FILE ? &r.secrets : NULL};
	snprintf(r.cell.name, sizeof r.cell.name, "cellos-%s-%.8s", spec->id, r.run_id);
	r.cell.run_id = r.run_id;
	cgroup_limits_resolve(&r.cell.limits, spec->memory_max_bytes, spec->cpu_quota_micros, spec->cpu_period_micros,
			      cfg->cpu_quota, cfg->cpu_period, spec->pids_max);
	if (r.cell.limits.cpu_raised)
		log_warn("%s: a CPU quota under %lld µs is raised to %lld µs (the kernel's minimum)",
			 r.cell.limits.cpu_from_env ? "CELLOS_CGROUP_CPU_MAX" : "run.limits.cpuMax.quotaMicros",
			 CG_CPU_QUOTA_MIN, CG_CPU_QUOTA_MIN);
	if (gateway_wanted(&r) &&
	    egress_proxy_prepare(&r.px, cfg, spec, r.egress, r.n_egress, es, &r.cell.l7_port, &r.cell.l7_queue, &e) < 0) {
		stdio_relay_close_cell_ends(&r.relay);
		status = fail_before_start(&r, "create", "backend_failed", e.msg);
		goto out;
	}
	int created = r.be->create(&r.cell, &e);
	/* The cell has its copies now (or none, having failed): the relay sees EOF
	 * once the last of them is gone. */
	stdio_relay_close_cell_ends(&r.relay);
	if (created < 0) {
		stdio_relay_drain(&r.relay); /* e.g. what the runtime said, before our line */
		status = fail_before_start(&r, "create", r.cell.facts.argv0_refused ? "policy_denied" : "backend_failed",
					   e.msg);
		goto out;
	}
	r.created = true;
	if (admit_created(&r, &e) < 0) {
		r.be->destroy(&r.cell);
		r.created = false;
		status = fail_before_start(&r, "create", "policy_denied", e.msg);
		goto out;
	}
	/* The DNS proxy and SNI/Host check listen on the gateway's address (SPEC
	 * §6.4); a cell that got no gateway (nft refused, portable) needs neither. */
	if (r.cell.facts.gw && egress_proxy_start(&r.px, r.cell.facts.gw, &e) < 0) {
		r.be->destroy(&r.cell);
		r.created = false;
		status = fail_before_start(&r, "create", "backend_failed", e.msg);
		goto out;
	}
	if (!r.cell.facts.gw)
		egress_proxy_stop(&r.px);
	log_step(&r.step_us, "create");
	if ((why = interrupted(&r))) {
		r.be->destroy(&r.cell);
		r.created = false;
		status = fail_before_start(&r, "create", why, "interrupted before start");
		goto out;
	}

	/* The workload may start while lifecycle.started is written (it still
	 * comes before process_spawned, SPEC §8.1). */
	if (spec->has_run && r.be->launch)
		r.be->launch(&r.cell);
	char started_id[37];
	emit_started(&r, started_id);
	egress_proxy_preload(&r.px);

	/* run */
	if (spec->has_run)
		run_workload(&r);
	egress_proxy_stop(&r.px); /* the cell's processes are gone */
	log_step(&r.step_us, "run");
	if (r.cell.facts.netns)
		emit_network_enforcement(&r);
	log_step(&r.step_us, "network_enforcement");
	/* export: the cell's processes are gone, its mount namespace is not */
	if (spec->n_artifacts)
		export_artifacts(&r, started_id);
	log_step(&r.step_us, "export");

	/* destroy, revoke. The events so far go to the broker first: their
	 * acks come back while the cell is torn down, and only the last two
	 * are waited for at the end (docs/DESIGN.md, JetStream sink). */
	events_flush(r.es);
	r.be->destroy(&r.cell);
	r.created = false;
	runuid_release(&r.uid);
	log_step(&r.step_us, "destroy");
	secrets_revoke(&r.secrets);
	if (!r.reason && terminated(&r)) {
		r.reason = "supervisor_terminated";
		r.status = 128 + r.term_sig;
		out->elapsed_ms = mono_ms() - r.t0;
	}
	out->reason = r.reason;
	emit_summary_and_destroyed(&r);
	log_step(&r.step_us, "summary");
	status = r.status;
out:
	egress_proxy_stop(&r.px);
	if (r.created)
		r.be->destroy(&r.cell);
	runuid_release(&r.uid);
	stdio_relay_close(&r.relay);
	secrets_revoke(&r.secrets);
	for (size_t i = 0; i < pool.n; i++)
		free(pool.s[i]);
	free(pool.s);
	free(r.envp);
	free(r.egress);
	for (size_t i = 0; i < r.n_egress_strings; i++)
		free(r.egress_strings[i]);
	free(r.egress_strings);
	for (size_t i = 0; i < r.n_egress_elems; i++)
		free(r.egress_elems[i]);
	free(r.egress_elems);
	if (r.sigfd >= 0)
		close(r.sigfd);
	out->sup_signal = r.term_sig;
	return status;
}

int supervisor_warm_prepare(const struct config *cfg, struct err *e)
{
	if (!stub_warm_wanted(cfg) || !cfg->run_id[0])
		return 0;
	sweep_dead_runs();
	if (cfg->fixed_uid)
		warm_uid.uid = cfg->fixed_uid;
	else if (runuid_alloc(cfg->uid_first, cfg->uid_last, cfg->run_id, &warm_uid, e) < 0)
		return -1;
	warm_has_uid = true;
	if (stub_warm_prepare(cfg, cfg->run_id, (uid_t)warm_uid.uid,
			      (gid_t)(cfg->fixed_uid ? cfg->fixed_gid : warm_uid.uid), e) < 0) {
		supervisor_warm_discard();
		return -1;
	}
	return 0;
}

void supervisor_warm_priority(int prio)
{
	setpriority(PRIO_PROCESS, 0, prio);
	stub_warm_priority(prio);
}

void supervisor_warm_discard(void)
{
	stub_warm_discard();
	if (warm_has_uid)
		runuid_release(&warm_uid);
	warm_has_uid = false;
}

int supervisor_run(const struct config *cfg, const struct spec *spec, const struct policy_pack *pack,
		   struct event_stream *es)
{
	struct outcome out = {.cell_id = spec->id, .ttl_seconds = spec->ttl_seconds, .elapsed_ms = -1};
	int status = lifecycle(cfg, spec, pack, es, &out);
	/* The cell is gone and its last event written: now the verdict, once, as
	 * the supervisor's last line (SPEC §4). The sinks are closed first so that
	 * nothing they have to say (a failed fdatasync) comes after it; main's own
	 * events_close() is then a no-op. */
	events_close(es);
	outcome_report(&out);
	return status;
}

int supervisor_deny(const struct config *cfg, const struct spec *spec, const char *message,
		    struct event_stream *es)
{
	char run_id[37];
	if (cfg->run_id[0])
		memcpy(run_id, cfg->run_id, sizeof run_id);
	else
		uuid_v4(run_id);
	events_begin_run(es, spec->id, run_id);
	events_emit(es, "lifecycle.v1.failed", lifecycle_failed_data(spec->id, "admission", "policy_denied", message),
		    NULL);
	struct outcome out = {.cell_id = spec->id, .reason = "policy_denied", .phase = "admission", .elapsed_ms = -1};
	snprintf(out.message, sizeof out.message, "%s", message);
	events_close(es);
	outcome_report(&out);
	return 125;
}
