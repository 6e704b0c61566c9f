/* Supervisor log on stderr, filtered by CELLOS_LOG. Never pass secret values here.
 *
 * One line per call, written with one write(2). Every control character and
 * ill-formed UTF-8 byte of the formatted message is escaped as \xNN
 * (util/escape.h), so arguments may carry any text; a newline that ends the
 * format is the line's own end, not escaped, and not doubled. */
#ifndef CELLOS_LOG_H
#define CELLOS_LOG_H

#include <stdint.h>

enum log_level { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG };

void log_set_level(enum log_level lvl);
/* Whether lines of `lvl` are written: for work done only to log it. */
int log_enabled(enum log_level lvl);
/* The name that starts every line (default "cellos-supervisor"). */
void log_set_program(const char *name);
void log_msg(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The end line of a run that did not succeed (SPEC §4, outcome.h): "program:
 * message", without a level (it is not one message among others but the
 * verdict), escaped like every line and written at any CELLOS_LOG level. */
void log_end(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* While set, every warning is also handed to `fn` as formatted (not escaped,
 * without the program prefix), whatever CELLOS_LOG says: admission collects
 * the warnings of its checks this way (--format json lists them). NULL: none. */
void log_set_warn_hook(void (*fn)(void *arg, const char *msg), void *arg);

/* Debug-level step timing: logs "step <what>: <ms since *last_us>" and resets *last_us. */
void log_step(int64_t *last_us, const char *what);

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
