#include "outcome.h"

#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "util/err.h"
#include "util/log.h"

/* Appends to a fixed buffer; what does not fit is cut (the buffer always ends
 * with a NUL). */
struct out {
	char *buf;
	size_t size, len;
};

static void put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct out *o, const char *fmt, ...)
{
	if (o->len + 1 >= o->size)
		return;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(o->buf + o->len, o->size - o->len, fmt, ap);
	va_end(ap);
	if (n > 0)
		o->len = o->len + (size_t)n < o->size ? o->len + (size_t)n : o->size - 1;
}

/* 512 ms, 1.2 s, 75.0 s: milliseconds below a second, else tenths. */
static void put_duration(struct out *o, int64_t ms)
{
	if (ms < 1000)
		put(o, "%lld ms", (long long)ms);
	else
		put(o, "%.1f s", (double)ms / 1000.0);
}

/* 256 MiB exactly, 63.9 MiB, 512.0 KiB, 900 bytes. */
static void put_bytes(struct out *o, long long b)
{
	const long long MiB = 1024 * 1024;
	if (b >= MiB && b % MiB == 0)
		put(o, "%lld MiB", b / MiB);
	else if (b >= MiB)
		put(o, "%.1f MiB", (double)b / (double)MiB);
	else if (b >= 1024)
		put(o, "%.1f KiB", (double)b / 1024.0);
	else
		put(o, "%lld bytes", b);
}

/* "9 (SIGKILL)"; a signal without an abbreviation (a real-time one) is its number. */
static void put_signal(struct out *o, int sig)
{
	const char *abbrev = sigabbrev_np(sig);
	if (abbrev)
		put(o, "%d (SIG%s)", sig, abbrev);
	else
		put(o, "%d", sig);
}

static void put_signal_name(struct out *o, int sig)
{
	const char *abbrev = sigabbrev_np(sig);
	if (abbrev)
		put(o, "SIG%s", abbrev);
	else
		put(o, "signal %d", sig);
}

/* exec's errno for people: "not found", "permission denied", "exec format error". */
static void put_exec_error(struct out *o, int errnum)
{
	if (errnum == ENOENT) {
		put(o, "not found");
		return;
	}
	const char *s = strerror(errnum);
	put(o, "%c%s", s[0] ? tolower((unsigned char)s[0]) : '?', s[0] ? s + 1 : "");
}

static void put_export(struct out *o, const struct outcome *oc)
{
	if (oc->export_failed == 1 && oc->export_total == 1)
		put(o, "artifact %s not exported", oc->export_names);
	else if (oc->export_failed == 1)
		put(o, "1 of %zu artifacts not exported (%s)", oc->export_total, oc->export_names);
	else
		put(o, "%zu of %zu artifacts not exported (%s)", oc->export_failed, oc->export_total,
		    oc->export_names);
}

size_t outcome_format(const struct outcome *oc, char *buf, size_t size)
{
	if (!size)
		return 0;
	buf[0] = '\0';
	if (!oc->reason)
		return 0;
	struct out o = {buf, size, 0};
	const char *r = oc->reason;
	bool after = oc->elapsed_ms >= 0;

	put(&o, "cell %s failed", oc->cell_id);
	if (oc->phase) {
		/* lifecycle.v1.failed: the phase and what went wrong in it. */
		put(&o, " at %s: ", oc->phase);
		if (strcmp(r, "supervisor_terminated") == 0) {
			put(&o, "stopped by ");
			put_signal_name(&o, oc->sup_signal);
		} else if (strcmp(r, "ttl_exceeded") == 0) {
			put(&o, "lifetime.ttlSeconds %lld exceeded", oc->ttl_seconds);
		} else if (strcmp(r, "policy_denied") == 0) {
			put(&o, "refused by policy: %s", oc->message);
		} else {
			put(&o, "%s", oc->message);
		}
		return o.len;
	}

	put(&o, ": ");
	if (strcmp(r, "nonzero_exit") == 0) {
		put(&o, "exited with status %d", oc->exit_status);
	} else if (strcmp(r, "signal_killed") == 0) {
		put(&o, "killed by signal ");
		put_signal(&o, oc->term_signal);
	} else if (strcmp(r, "oom") == 0) {
		put(&o, "out of memory (");
		if (oc->mem_limit) {
			put(&o, "limit ");
			put_bytes(&o, oc->mem_limit);
		} else {
			put(&o, "no memory limit");
		}
		if (oc->mem_peak >= 0) {
			put(&o, ", peak ");
			put_bytes(&o, oc->mem_peak);
		}
		put(&o, ")");
	} else if (strcmp(r, "timeout") == 0) {
		put(&o, "timed out after ");
		put_duration(&o, oc->elapsed_ms);
		put(&o, " (%s %lld)", oc->timeout_from, oc->timeout_ms);
		after = false;
	} else if (strcmp(r, "ttl_exceeded") == 0) {
		put(&o, "lifetime.ttlSeconds %lld exceeded", oc->ttl_seconds);
		after = false;
	} else if (strcmp(r, "spawn_failed") == 0) {
		if (oc->spawn_errno) {
			put(&o, "cannot execute %s: ", oc->program);
			put_exec_error(&o, oc->spawn_errno);
		} else {
			put(&o, "cannot start %s: %s", oc->program, oc->message);
		}
		after = false;
	} else if (strcmp(r, "export_failed") == 0) {
		put_export(&o, oc);
		after = false;
	} else if (strcmp(r, "supervisor_terminated") == 0) {
		put(&o, "stopped by ");
		put_signal_name(&o, oc->sup_signal);
	} else {
		/* backend_failed (a VM without an exit report) and any reason added
		 * later: the reason, and what was said. */
		put(&o, "%s", strcmp(r, "backend_failed") == 0 ? "backend failure" : r);
		if (oc->message[0])
			put(&o, ": %s", oc->message);
	}
	if (after) {
		put(&o, " after ");
		put_duration(&o, oc->elapsed_ms);
	}
	if (oc->export_failed && strcmp(r, "export_failed") != 0) {
		put(&o, "; ");
		put_export(&o, oc);
	}
	return o.len;
}

void outcome_report(const struct outcome *o)
{
	char line[ERR_MSG_MAX + 1024];
	if (outcome_format(o, line, sizeof line))
		log_end("%s", line);
}
