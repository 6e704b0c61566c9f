/* The event-sink port (SPEC §8.4). A sink takes one serialised event (one line,
 * without the trailing newline) at a time. A sink failure never stops the cell. */
#ifndef CELLOS_SINK_H
#define CELLOS_SINK_H

#include <stddef.h>

#include "sink/fsync.h"
#include "util/err.h"

struct sink {
	const char *name;
	/* Deliver one event; -1 with *e set when the sink could not take it. */
	int (*emit)(struct sink *s, const char *line, size_t len, struct err *e);
	/* Flush and release. */
	void (*close)(struct sink *s);
};

/* Constructors; they fail only at admission (SPEC §4). */
struct sink *sink_noop_open(void);
struct sink *sink_jsonl_open(const char *path, enum fsync_mode fsync, struct err *e);

#endif
