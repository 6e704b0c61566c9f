/* cellctl: what its commands share (the command table, arguments, exit
 * statuses). Each command lives in its own file: cellctl.c (validate, keygen,
 * the dispatcher), cellctl_verify.c, cellctl_show.c, cellctl_queue.c (queue,
 * submit, watch). */
#ifndef CELLCTL_H
#define CELLCTL_H

#include <stdbool.h>
#include <stddef.h>

/* SPEC §11: 0 success, 1 the check found problems, 2 usage or I/O error. */
enum { CELLCTL_OK = 0, CELLCTL_PROBLEMS = 1, CELLCTL_ERROR = 2 };

struct cellctl_cmd {
	const char *name;
	/* Complete help, printed by `cellctl CMD --help`: starts with the usage
	 * line(s), then a blank line. */
	const char *help;
	int (*run)(const struct cellctl_cmd *cmd, int argc, char **argv);
};

/* One option of a command: either takes a value (stored in *value) or is a
 * flag (*flag set). */
struct cellctl_opt {
	const char *name;
	const char **value;
	bool *flag;
};

/* Split a command's arguments into options (`opts`, NULL-terminated by name)
 * and at most `max_pos` operands. "--" ends the options; "-" is an operand
 * (standard input or output). On a usage error prints it and returns
 * CELLCTL_ERROR. (--help was handled before the command runs.) */
int cellctl_args(const struct cellctl_cmd *cmd, int argc, char **argv, const struct cellctl_opt *opts,
		 const char **pos, size_t max_pos, size_t *npos);

/* "cellctl CMD: <message>" and the command's usage lines on stderr;
 * returns CELLCTL_ERROR. */
int cellctl_usage_error(const struct cellctl_cmd *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* `s` with control characters and ill-formed UTF-8 escaped (util/escape.h),
 * into buf: text from a file or an event is never shown raw on a terminal. */
const char *cellctl_shown(char *buf, size_t size, const char *s, size_t len);

/* The `show` format for events that come from elsewhere than a file (watch,
 * submit --wait): one line per event and a summary at each run's end, on
 * stdout. `name` is how notes on stderr name the source. */
struct show;
struct show *cellctl_show_new(const char *name);
void cellctl_show_event(struct show *s, const char *text, size_t len);
void cellctl_show_free(struct show *s);

/* Distributed mode (SPEC §11): cellctl_queue.c. */
int cellctl_queue(const struct cellctl_cmd *cmd, int argc, char **argv);
extern const char cellctl_queue_help[];
int cellctl_submit(const struct cellctl_cmd *cmd, int argc, char **argv);
extern const char cellctl_submit_help[];
int cellctl_watch(const struct cellctl_cmd *cmd, int argc, char **argv);
extern const char cellctl_watch_help[];

int cellctl_verify(const struct cellctl_cmd *cmd, int argc, char **argv);
extern const char cellctl_verify_help[];
int cellctl_show(const struct cellctl_cmd *cmd, int argc, char **argv);
extern const char cellctl_show_help[];

#endif
