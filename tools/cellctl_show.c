/* cellctl show: an event log for people (SPEC §9).
 *
 * One line per event: time, cell, run (the first 8 characters of its id), a
 * short type, and the few fields that matter for that type as key=value. A
 * signed envelope is shown as the event it carries (signatures are verify's
 * business). When a run ends (lifecycle.v1.destroyed, or lifecycle.v1.failed
 * before it started) a summary line follows, gathered from its events.
 *
 * Everything taken from the log is escaped (util/escape.h): a log is input
 * like any other, and a workload's argv or a path could otherwise drive the
 * reader's terminal. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cellctl.h"
#include "events/event.h"
#include "events/sign.h"
#include "util/escape.h"

/* How often a followed file is looked at again once its end is reached. */
#define FOLLOW_POLL_MS 100
/* A line longer than this is not an event the supervisor wrote (its events are
 * at most 1 MiB): it is skipped without being held in memory. */
#define LINE_MAX_BYTES (2 * 1024 * 1024)

const char cellctl_show_help[] =
	"usage: cellctl show [--follow] [--run RUNID] [EVENTS.jsonl|-]\n"
	"\n"
	"Print an event log for people: one line per event, with its time, cell, run\n"
	"(the first 8 characters of its id), short type (e.g. command.completed,\n"
	"process_spawned, lifecycle.destroyed) and the fields that matter as key=value\n"
	"(exit and duration of the command, program and pid of the workload, outcome\n"
	"and reason of the end, nft packet counters, artifact and destination of an\n"
	"export, ...). Signed envelopes are shown as the events they carry; their\n"
	"signatures are not checked (cellctl verify does that). When a run ends, a\n"
	"summary follows:\n"
	"  == run RUN cell CELL: outcome=... reason=... exit=... duration=...\n"
	"     peak_memory=... allowed_packets=... denied_packets=... denied_bytes=...\n"
	"Control characters from the log are shown escaped (\\x1b). A line that is not\n"
	"an event is skipped, with a note on stderr.\n"
	"\n"
	"  EVENTS.jsonl|-   the log (CELL_OS_JSONL_EVENTS of the supervisor); - or\n"
	"                   nothing: standard input\n"
	"  --follow         once at the end of a regular file, wait for what is appended\n"
	"                   to it, like tail -f, until SIGINT or SIGTERM (then exit 0);\n"
	"                   standard input (or a pipe) is read until it ends\n"
	"  --run RUNID      only the events of this run: its id, or a prefix of it such\n"
	"                   as the 8 characters shown\n"
	"\n"
	"Exit status: 0 success; 2 usage or I/O error (e.g. a missing file).\n";

/* What a run's summary says, gathered from its events as they come. */
struct run {
	char *id;
	char *cell;
	json_t *exit_code, *peak, *duration; /* borrowed copies (json_incref'd) or NULL */
	json_t *outcome, *reason, *phase;
	bool enforced;
	long long allowed_packets, denied_packets, denied_bytes;
};

struct show {
	const char *name;        /* the file as shown in notes */
	const char *run_filter;
	struct run *runs;        /* runs seen and not ended yet */
	size_t n_runs, cap_runs;
	size_t lineno;
};

/* ---- one output line ---- */

struct line {
	char buf[16384];
	size_t len;
};

static void put(struct line *l, const char *s)
{
	size_t n = strlen(s), room = sizeof l->buf - 1 - l->len;
	if (n > room)
		n = room;
	memcpy(l->buf + l->len, s, n);
	l->len += n;
	l->buf[l->len] = '\0';
}

static void put_text(struct line *l, const char *s, size_t n)
{
	l->len += escape_controls(l->buf + l->len, sizeof l->buf - l->len, s, n);
}

static void put_json_text(struct line *l, json_t *v)
{
	if (json_is_string(v))
		put_text(l, json_string_value(v), json_string_length(v));
	else
		put(l, "-");
}

/* " key=value"; a value with spaces (a message) in double quotes, so that the
 * fields of a line stay apart. */
static void field_str(struct line *l, const char *key, json_t *v)
{
	if (!json_is_string(v))
		return;
	const char *s = json_string_value(v);
	size_t n = json_string_length(v);
	bool quote = n == 0 || strpbrk(s, " \"") != NULL;
	put(l, " ");
	put(l, key);
	put(l, quote ? "=\"" : "=");
	put_text(l, s, n);
	if (quote)
		put(l, "\"");
}

static void field_int(struct line *l, const char *key, json_t *v)
{
	if (!json_is_integer(v))
		return;
	char b[64];
	snprintf(b, sizeof b, " %s=%lld", key, (long long)json_integer_value(v));
	put(l, b);
}

static void field_flag(struct line *l, const char *key, json_t *v)
{
	if (json_is_true(v)) {
		put(l, " ");
		put(l, key);
	}
}

/* 850ms, 1.5s, 61.234s */
static void field_ms(struct line *l, const char *key, json_t *v)
{
	if (!json_is_integer(v))
		return;
	long long ms = json_integer_value(v);
	char b[96];
	if (ms < 1000) {
		snprintf(b, sizeof b, " %s=%lldms", key, ms);
	} else {
		int n = snprintf(b, sizeof b, " %s=%lld.%03lld", key, ms / 1000, ms % 1000);
		while (n > 0 && b[n - 1] == '0') /* 1.500 -> 1.5, 2.000 -> 2 */
			b[--n] = '\0';
		if (n > 0 && b[n - 1] == '.')
			b[--n] = '\0';
		snprintf(b + n, sizeof b - (size_t)n, "s");
	}
	put(l, b);
}

/* 512B, 1.5KiB, 12.3MiB */
static void field_bytes(struct line *l, const char *key, json_t *v)
{
	if (!json_is_integer(v))
		return;
	double x = (double)json_integer_value(v);
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	size_t u = 0;
	while (x >= 1024 && u + 1 < sizeof units / sizeof units[0]) {
		x /= 1024;
		u++;
	}
	char b[96];
	if (u == 0)
		snprintf(b, sizeof b, " %s=%lldB", key, (long long)json_integer_value(v));
	else
		snprintf(b, sizeof b, " %s=%.1f%s", key, x, units[u]);
	put(l, b);
}

static void emit(struct line *l)
{
	put(l, "\n");
	fputs(l->buf, stdout);
}

/* ---- event types ---- */

/* dev.cellos.events.cell.observability.v1.network_policy -> network_policy,
 * ...command.v1.completed -> command.completed. Another type is shown whole. */
static void short_type(const char *type, char *out, size_t size)
{
	size_t plen = strlen(EVENT_TYPE_PREFIX);
	if (strncmp(type, EVENT_TYPE_PREFIX, plen) != 0) {
		snprintf(out, size, "%s", type);
		return;
	}
	const char *t = type + plen, *v = strstr(t, ".v");
	if (v && v[2] >= '0' && v[2] <= '9') {
		const char *after = v + 2 + strspn(v + 2, "0123456789");
		if (*after == '.')
			snprintf(out, size, "%.*s%s", (int)(v - t), t, after);
		else
			snprintf(out, size, "%s", t);
	} else {
		snprintf(out, size, "%s", t);
	}
	if (strncmp(out, "observability.", 14) == 0)
		memmove(out, out + 14, strlen(out + 14) + 1);
}

static void join_strings(struct line *l, const char *key, json_t *arr)
{
	if (!json_is_array(arr))
		return;
	put(l, " ");
	put(l, key);
	put(l, "=");
	size_t i;
	json_t *v;
	json_array_foreach(arr, i, v)
	{
		if (i)
			put(l, ",");
		put_json_text(l, v);
	}
}

/* The nft chain's counters (SPEC §8.1 ruleCounters): a rule ending in accept
 * let packets out, one ending in drop or reject stopped them. */
static void count_egress(json_t *counters, long long *allowed, long long *denied, long long *denied_bytes)
{
	size_t i;
	json_t *c;
	json_array_foreach(counters, i, c)
	{
		const char *rule = json_string_value(json_object_get(c, "rule"));
		long long p = json_integer_value(json_object_get(c, "packets"));
		long long b = json_integer_value(json_object_get(c, "bytes"));
		if (!rule)
			continue;
		size_t n = strlen(rule);
		if (n >= 6 && strcmp(rule + n - 6, "accept") == 0)
			*allowed += p;
		else if ((n >= 4 && strcmp(rule + n - 4, "drop") == 0) || (n >= 6 && strcmp(rule + n - 6, "reject") == 0)) {
			*denied += p;
			*denied_bytes += b;
		}
	}
}

static void put_egress(struct line *l, long long allowed, long long denied, long long denied_bytes)
{
	char b[128];
	snprintf(b, sizeof b, " allowed_packets=%lld denied_packets=%lld denied_bytes=%lld", allowed, denied,
		 denied_bytes);
	put(l, b);
}

/* The fields that matter for each type. */
static void fields(struct line *l, const char *st, json_t *d)
{
#define F(k) json_object_get(d, k)
	if (strcmp(st, "network_policy") == 0) {
		field_str(l, "isolation", F("isolationMode"));
		field_int(l, "egress_rules", F("declaredEgressCount"));
	} else if (strcmp(st, "lifecycle.started") == 0) {
		field_str(l, "backend", F("backend"));
		json_t *iso = F("isolation");
		join_strings(l, "namespaces", json_object_get(iso, "namespaces"));
		field_str(l, "seccomp", json_object_get(iso, "seccomp"));
		field_int(l, "ttl_seconds", F("ttlSeconds"));
	} else if (strcmp(st, "process_spawned") == 0) {
		field_str(l, "program", F("program"));
		field_int(l, "pid", F("pid"));
	} else if (strcmp(st, "command.completed") == 0) {
		field_int(l, "exit", F("exitCode"));
		field_ms(l, "duration", F("durationMs"));
		field_int(l, "signal", F("termSignal"));
		field_flag(l, "timed_out", F("timedOut"));
		field_str(l, "spawn_error", F("spawnError"));
		field_bytes(l, "peak_memory", json_object_get(F("resourceUsage"), "maxRssBytes"));
	} else if (strcmp(st, "network_enforcement") == 0) {
		json_t *applied = F("nftRulesApplied");
		if (json_is_boolean(applied))
			put(l, json_is_true(applied) ? " nft=applied" : " nft=not_applied");
		field_str(l, "nft_error", F("nftError"));
		long long a = 0, dn = 0, db = 0;
		count_egress(F("ruleCounters"), &a, &dn, &db);
		put_egress(l, a, dn, db);
	} else if (strcmp(st, "export.completed") == 0 || strcmp(st, "export.failed") == 0) {
		field_str(l, "artifact", F("artifactName"));
		field_str(l, "target", F("targetName"));
		field_str(l, "destination", F("destination"));
		field_int(l, "bytes", F("bytes"));
		field_str(l, "reason", F("reason"));
	} else if (strcmp(st, "compliance.summary") == 0) {
		field_str(l, "profile", F("profile"));
		field_int(l, "secrets", F("secretRefCount"));
		field_int(l, "egress_rules", F("egressRuleCount"));
		field_str(l, "policy", F("policyPackId"));
	} else if (strcmp(st, "lifecycle.destroyed") == 0) {
		field_str(l, "outcome", F("outcome"));
		field_str(l, "reason", F("reason"));
		field_ms(l, "duration", F("durationMs"));
	} else if (strcmp(st, "lifecycle.failed") == 0) {
		field_str(l, "phase", F("phase"));
		field_str(l, "reason", F("reason"));
		field_str(l, "message", F("message"));
	} else if (strcmp(st, "dns_query") == 0) {
		field_str(l, "name", F("queryName"));
		field_str(l, "type", F("queryType"));
		field_str(l, "decision", F("decision"));
		field_str(l, "reason", F("reasonCode"));
	} else if (strcmp(st, "l7_egress_decision") == 0) {
		field_str(l, "destination", F("destination"));
		field_str(l, "server", F("serverName"));
		field_str(l, "decision", F("decision"));
		field_str(l, "reason", F("reasonCode"));
	}
#undef F
}

/* ---- runs ---- */

static void run_release(struct run *r)
{
	free(r->id);
	free(r->cell);
	json_decref(r->exit_code);
	json_decref(r->peak);
	json_decref(r->duration);
	json_decref(r->outcome);
	json_decref(r->reason);
	json_decref(r->phase);
}

static struct run *run_find(struct show *s, const char *id, const char *cell)
{
	for (size_t i = 0; i < s->n_runs; i++)
		if (strcmp(s->runs[i].id, id) == 0)
			return &s->runs[i];
	if (s->n_runs == s->cap_runs) {
		size_t cap = s->cap_runs ? 2 * s->cap_runs : 8;
		struct run *nr = realloc(s->runs, cap * sizeof *nr);
		if (!nr)
			return NULL;
		s->runs = nr;
		s->cap_runs = cap;
	}
	struct run *r = &s->runs[s->n_runs];
	*r = (struct run){.id = strdup(id), .cell = strdup(cell ? cell : "-")};
	if (!r->id || !r->cell) {
		run_release(r);
		return NULL;
	}
	s->n_runs++;
	return r;
}

static void keep(json_t **slot, json_t *v)
{
	if (!v)
		return;
	json_decref(*slot);
	*slot = json_incref(v);
}

static void print_summary(const struct run *r, bool ended)
{
	struct line l = {.len = 0};
	put(&l, "== run ");
	put_text(&l, r->id, strlen(r->id) < 8 ? strlen(r->id) : 8);
	put(&l, " cell ");
	put_text(&l, r->cell, strlen(r->cell));
	put(&l, ":");
	if (!ended) {
		put(&l, " not ended (still running, or its last events are missing)");
		emit(&l);
		return;
	}
	field_str(&l, "outcome", r->outcome);
	field_str(&l, "phase", r->phase);
	field_str(&l, "reason", r->reason);
	field_int(&l, "exit", r->exit_code);
	field_ms(&l, "duration", r->duration);
	field_bytes(&l, "peak_memory", r->peak);
	if (r->enforced)
		put_egress(&l, r->allowed_packets, r->denied_packets, r->denied_bytes);
	emit(&l);
}

/* Note what the event says about its run; at its end, the summary. */
static void account(struct show *s, const char *st, json_t *d)
{
	const char *id = json_string_value(json_object_get(d, "runId"));
	if (!id)
		return;
	struct run *r = run_find(s, id, json_string_value(json_object_get(d, "cellId")));
	if (!r)
		return; /* out of memory: the summary is lost, not the event lines */
	if (strcmp(st, "command.completed") == 0) {
		keep(&r->exit_code, json_object_get(d, "exitCode"));
		keep(&r->peak, json_object_get(json_object_get(d, "resourceUsage"), "maxRssBytes"));
	} else if (strcmp(st, "network_enforcement") == 0) {
		r->enforced = true;
		count_egress(json_object_get(d, "ruleCounters"), &r->allowed_packets, &r->denied_packets,
			     &r->denied_bytes);
	} else if (strcmp(st, "lifecycle.destroyed") == 0 || strcmp(st, "lifecycle.failed") == 0) {
		/* lifecycle.failed has no outcome of its own: the run failed to start. */
		json_t *failed = strcmp(st, "lifecycle.failed") == 0 ? json_string("failed") : NULL;
		keep(&r->outcome, failed ? failed : json_object_get(d, "outcome"));
		json_decref(failed);
		keep(&r->phase, json_object_get(d, "phase"));
		keep(&r->reason, json_object_get(d, "reason"));
		keep(&r->duration, json_object_get(d, "durationMs"));
		print_summary(r, true);
		run_release(r);
		*r = s->runs[--s->n_runs];
	}
}

/* ---- lines ---- */

/* On stderr, after the lines shown so far: NAME:LINE: what. */
static void note(const struct show *s, size_t lineno, const char *what)
{
	char name[1024];
	cellctl_shown(name, sizeof name, s->name, strlen(s->name));
	fflush(stdout);
	fprintf(stderr, "cellctl show: %s:%zu: %s\n", name, lineno, what);
}

static void show_line(struct show *s, const char *text, size_t len)
{
	if (len == 0)
		return;
	json_error_t je;
	/* NULs allowed: they are shown escaped like any other control character. */
	json_t *ev = json_loadb(text, len, JSON_ALLOW_NUL, &je);
	json_t *type = json_object_get(ev, "type");
	if (!json_is_object(ev) || !json_is_string(type)) {
		char why[4 * sizeof je.text + 64] = "skipped: not a JSON event";
		if (!ev) { /* jansson's reason quotes the input */
			char detail[4 * sizeof je.text];
			escape_controls(detail, sizeof detail, je.text, strlen(je.text));
			snprintf(why, sizeof why, "skipped: not a JSON event (%s)", detail);
		}
		note(s, s->lineno, why);
		json_decref(ev);
		return;
	}
	json_t *inner = ev;
	if (strcmp(json_string_value(type), SIGNED_ENVELOPE_TYPE) == 0) {
		inner = json_object_get(json_object_get(ev, "data"), "event");
		type = json_object_get(inner, "type");
		if (!json_is_object(inner) || !json_is_string(type)) {
			note(s, s->lineno, "skipped: a signed envelope without an event");
			json_decref(ev);
			return;
		}
	}
	json_t *d = json_object_get(inner, "data");
	json_t *run_id = json_object_get(d, "runId");
	if (s->run_filter && (!json_is_string(run_id) ||
			      strncmp(json_string_value(run_id), s->run_filter, strlen(s->run_filter)) != 0)) {
		json_decref(ev);
		return;
	}
	char st[256];
	short_type(json_string_value(type), st, sizeof st);

	struct line l = {.len = 0};
	put_json_text(&l, json_object_get(inner, "time"));
	put(&l, "  ");
	put_json_text(&l, json_object_get(d, "cellId"));
	put(&l, "  ");
	if (json_is_string(run_id))
		put_text(&l, json_string_value(run_id), json_string_length(run_id) < 8 ? json_string_length(run_id) : 8);
	else
		put(&l, "-");
	put(&l, "  ");
	size_t at = l.len;
	put_text(&l, st, strlen(st));
	for (size_t w = l.len - at; w < 20; w++) /* the fields start in one column */
		put(&l, " ");
	if (json_is_object(d))
		fields(&l, st, d);
	emit(&l);
	if (json_is_object(d))
		account(s, st, d);
	json_decref(ev);
}

/* ---- for other commands (watch, submit --wait) ---- */

struct show *cellctl_show_new(const char *name)
{
	struct show *s = calloc(1, sizeof *s);
	if (s)
		s->name = name;
	return s;
}

void cellctl_show_event(struct show *s, const char *text, size_t len)
{
	s->lineno++;
	show_line(s, text, len);
}

void cellctl_show_free(struct show *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n_runs; i++)
		run_release(&s->runs[i]);
	free(s->runs);
	free(s);
}

/* ---- reading, following ---- */

static volatile sig_atomic_t stop_signal;
static void on_stop(int sig) { stop_signal = sig; }

/* Wait until `fd` is readable (fd < 0: for `ms`), or a stop signal came: the
 * signals are blocked everywhere else and let through only in here, so one
 * that arrives between two waits is never missed. */
static int wait_input(int fd, int ms, const sigset_t *open_mask)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
	int r = ppoll(fd >= 0 ? &p : NULL, fd >= 0 ? 1 : 0, ms >= 0 ? &ts : NULL, open_mask);
	return r < 0 && errno != EINTR ? -1 : 0;
}

/* Every complete line of buf[0..*len) is shown; the rest moves to the front.
 * `*skipping`: the first line is the end of an overlong one, not shown. */
static void drain_lines(struct show *s, char *buf, size_t *len, bool *skipping)
{
	size_t start = 0;
	char *nl;
	while ((nl = memchr(buf + start, '\n', *len - start))) {
		size_t n = (size_t)(nl - (buf + start));
		s->lineno++;
		if (*skipping)
			*skipping = false;
		else
			show_line(s, buf + start, n);
		start += n + 1;
	}
	memmove(buf, buf + start, *len - start);
	*len -= start;
}

static int read_log(struct show *s, int fd, bool follow, bool is_stdin)
{
	struct stat st;
	bool tail = follow && !is_stdin && fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
	sigset_t stop_mask, open_mask;
	if (follow) {
		/* SIGINT/SIGTERM end the command normally (exit 0), between lines. */
		struct sigaction sa = {.sa_handler = on_stop};
		sigemptyset(&sa.sa_mask);
		sigaction(SIGINT, &sa, NULL);
		sigaction(SIGTERM, &sa, NULL);
		sigemptyset(&stop_mask);
		sigaddset(&stop_mask, SIGINT);
		sigaddset(&stop_mask, SIGTERM);
		sigprocmask(SIG_BLOCK, &stop_mask, &open_mask);
		sigdelset(&open_mask, SIGINT);
		sigdelset(&open_mask, SIGTERM);
		setvbuf(stdout, NULL, _IOLBF, 0); /* a line as soon as its event is read */
	}
	size_t cap = 65536, len = 0;
	char *buf = malloc(cap);
	off_t offset = 0;
	bool skipping = false; /* inside a line longer than LINE_MAX_BYTES */
	int rc = CELLCTL_OK;
	if (!buf) {
		fprintf(stderr, "cellctl show: out of memory\n");
		return CELLCTL_ERROR;
	}
	while (!stop_signal) {
		if (follow && !tail && wait_input(fd, -1, &open_mask) < 0)
			break;
		if (stop_signal)
			break;
		if (len == cap && cap >= LINE_MAX_BYTES) {
			/* Not an event of ours: skip to its end, keep nothing of it. */
			if (!skipping)
				note(s, s->lineno + 1, "skipped: a line longer than 2 MiB");
			skipping = true;
			len = 0;
		} else if (len == cap) {
			char *nb = realloc(buf, cap * 2);
			if (!nb) {
				fprintf(stderr, "cellctl show: out of memory\n");
				rc = CELLCTL_ERROR;
				break;
			}
			buf = nb;
			cap *= 2;
		}
		ssize_t r = read(fd, buf + len, cap - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			char name[1024];
			fprintf(stderr, "cellctl show: cannot read %s: %s\n", cellctl_shown(name, sizeof name, s->name,
											    strlen(s->name)),
				strerror(errno));
			rc = CELLCTL_ERROR;
			break;
		}
		if (r > 0) {
			offset += r;
			len += (size_t)r;
			drain_lines(s, buf, &len, &skipping);
			continue;
		}
		/* The end, for now. */
		if (!tail)
			break;
		if (fstat(fd, &st) == 0 && st.st_size < offset) {
			/* Like tail -f: a truncated log is read again from its start. */
			note(s, s->lineno, "the file was truncated: reading it from the start");
			lseek(fd, 0, SEEK_SET);
			s->lineno = 0;
			offset = 0;
			len = 0;
			skipping = false;
		}
		fflush(stdout);
		wait_input(-1, FOLLOW_POLL_MS, &open_mask);
	}
	/* A last line without its newline is shown too, once nothing more can come. */
	if (rc == CELLCTL_OK && !stop_signal && len && !skipping) {
		s->lineno++;
		show_line(s, buf, len);
	}
	free(buf);
	return rc;
}

int cellctl_show(const struct cellctl_cmd *cmd, int argc, char **argv)
{
	const char *pos[1];
	size_t npos;
	struct show s = {0};
	bool follow = false;
	const struct cellctl_opt opts[] = {{"--follow", NULL, &follow}, {"--run", &s.run_filter, NULL}, {0}};
	if (cellctl_args(cmd, argc, argv, opts, pos, 1, &npos) != CELLCTL_OK)
		return CELLCTL_ERROR;
	if (s.run_filter && !s.run_filter[0])
		return cellctl_usage_error(cmd, "--run needs a run id (or a prefix of one)");
	s.name = npos ? pos[0] : "-";
	bool is_stdin = strcmp(s.name, "-") == 0;
	int fd = is_stdin ? STDIN_FILENO : open(s.name, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		char name[1024];
		fprintf(stderr, "cellctl show: cannot open %s: %s\n", cellctl_shown(name, sizeof name, s.name, strlen(s.name)),
			strerror(errno));
		return CELLCTL_ERROR;
	}
	int rc = read_log(&s, fd, follow, is_stdin);
	/* Runs whose end was not in the log (unless the reader was stopped while
	 * following: those may well still be running). */
	for (size_t i = 0; i < s.n_runs; i++) {
		if (rc == CELLCTL_OK && !stop_signal)
			print_summary(&s.runs[i], false);
		run_release(&s.runs[i]);
	}
	free(s.runs);
	if (fd != STDIN_FILENO)
		close(fd);
	if (fflush(stdout) != 0) {
		fprintf(stderr, "cellctl show: cannot write: %s\n", strerror(errno));
		rc = CELLCTL_ERROR;
	}
	return rc;
}
