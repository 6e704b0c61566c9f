/* Dead-letter directory (SPEC §8.5, CELLOS_DLQ_DIR): where an event goes when a
 * sink could not take it after admission, so that nothing is silently lost. */
#ifndef CELLOS_DLQ_H
#define CELLOS_DLQ_H

#include <stddef.h>

#include "util/err.h"

struct dlq;

/* Admission: `dir` must be an existing, writable directory. */
struct dlq *dlq_open(const char *dir, struct err *e);

/* Write one file `<unix-millis>-<id, [^A-Za-z0-9._-] -> _>.jsonl` holding the line
 * {"error":"<error>","event":<line>} (RFC 8785 canonical, since `line` is). The
 * file name is copied to name_out. -1 with *e set when it could not be written
 * (a partial file is removed). */
int dlq_put(struct dlq *q, const char *event_id, const char *line, size_t len, const char *error, char *name_out,
	    size_t name_size, struct err *e);

void dlq_close(struct dlq *q);

#endif
