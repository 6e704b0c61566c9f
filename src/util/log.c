#include "util/log.h"

#include "util/escape.h"
#include "util/ids.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static enum log_level current = LOG_INFO;
static const char *program = "cellos-supervisor";
static const char *const names[] = {"error", "warn", "info", "debug"};

static void (*warn_hook)(void *arg, const char *msg);
static void *warn_hook_arg;

void log_set_level(enum log_level lvl) { current = lvl; }
void log_set_program(const char *name) { program = name; }

void log_set_warn_hook(void (*fn)(void *arg, const char *msg), void *arg)
{
	warn_hook = fn;
	warn_hook_arg = arg;
}

/* One line: "program: [level: ]message", escaped (see below). */
static void vlog(enum log_level lvl, bool tag, const char *fmt, va_list ap)
{
	bool hooked = tag && lvl == LOG_WARN && warn_hook;
	if (lvl > current && !hooked)
		return;
	char msg[2048];
	int m = vsnprintf(msg, sizeof msg, fmt, ap);
	if (m < 0)
		return;
	size_t len = (size_t)m < sizeof msg ? (size_t)m : sizeof msg - 1;
	/* A newline that ends the format itself is the end of the line, which is
	 * written anyway. Any other newline came from an argument and is escaped
	 * with the rest. */
	size_t flen = strlen(fmt);
	if (flen && fmt[flen - 1] == '\n' && len && msg[len - 1] == '\n')
		len--;
	if (hooked) {
		msg[len] = '\0';
		warn_hook(warn_hook_arg, msg);
		if (lvl > current)
			return;
	}

	/* Every control character is escaped, here and only here, whatever it came
	 * from (a document, a workload, the environment, another program): no
	 * argument can forge a line or drive the operator's terminal (SPEC §4). The
	 * line is written with one write(2) so that concurrent supervisors sharing a
	 * stderr do not interleave within it; it has room for every byte escaped. */
	char line[64 + 4 * sizeof msg];
	int n = tag ? snprintf(line, 64, "%s: %s: ", program, names[lvl]) : snprintf(line, 64, "%s: ", program);
	size_t pos = n < 0 ? 0 : (size_t)n < 64 ? (size_t)n : 63;
	pos += escape_controls(line + pos, sizeof line - pos, msg, len);
	line[pos++] = '\n'; /* over the NUL: escape_controls left room for it */
	ssize_t w = write(STDERR_FILENO, line, pos);
	(void)w;
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vlog(lvl, true, fmt, ap);
	va_end(ap);
}

void log_end(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vlog(LOG_ERROR, false, fmt, ap);
	va_end(ap);
}

int log_enabled(enum log_level lvl) { return lvl <= current; }

void log_step(int64_t *last_us, const char *what)
{
	if (current < LOG_DEBUG)
		return;
	int64_t now = mono_us();
	log_msg(LOG_DEBUG, "step %s: %.3f ms", what, (double)(now - *last_us) / 1000.0);
	*last_us = now;
}
