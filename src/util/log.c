#include "util/log.h"

#include "util/ids.h"

#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

static enum log_level current = LOG_INFO;
static const char *program = "cellos-supervisor";
static const char *const names[] = {"error", "warn", "info", "debug"};

void log_set_level(enum log_level lvl) { current = lvl; }
void log_set_program(const char *name) { program = name; }

void log_msg(enum log_level lvl, const char *fmt, ...)
{
	if (lvl > current)
		return;
	/* Format into one buffer and write it with one write(2) so concurrent
	 * supervisors sharing a stderr do not interleave within a line. */
	char buf[2048];
	int n = snprintf(buf, sizeof buf, "%s: %s: ", program, names[lvl]);
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(buf + n, sizeof buf - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (m < 0)
		return;
	size_t len = (size_t)n + ((size_t)m < sizeof buf - (size_t)n - 1 ? (size_t)m : sizeof buf - (size_t)n - 2);
	buf[len++] = '\n';
	ssize_t w = write(STDERR_FILENO, buf, len);
	(void)w;
}

void log_step(int64_t *last_us, const char *what)
{
	if (current < LOG_DEBUG)
		return;
	int64_t now = mono_us();
	log_msg(LOG_DEBUG, "step %s: %.3f ms", what, (double)(now - *last_us) / 1000.0);
	*last_us = now;
}
