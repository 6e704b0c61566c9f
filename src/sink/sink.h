/* The event-sink port (SPEC §8.4). A sink takes one serialised event (one line,
 * without the trailing newline) at a time. A sink failure never stops the cell. */
#ifndef CELLOS_SINK_H
#define CELLOS_SINK_H

#include <stddef.h>

#include "sink/fsync.h"
#include "util/err.h"

/* One event as the sinks get it. */
struct sink_event {
	const char *line;  /* the serialised event (the signed wrapper when signing) */
	size_t len;
	const char *id;    /* the id of `line`'s event (the wrapper's when signed) */
	const char *type;  /* the type of the (inner) event, e.g. dev.cellos.events.cell.lifecycle.v1.started */
};

struct sink {
	const char *name;
	/* Deliver one event; -1 with *e set when the sink could not take it. */
	int (*emit)(struct sink *s, const struct sink_event *ev, struct err *e);
	/* Flush and release. */
	void (*close)(struct sink *s);
};

/* Constructors; they fail only at admission (SPEC §4). */
struct sink *sink_noop_open(void);
struct sink *sink_jsonl_open(const char *path, enum fsync_mode fsync, struct err *e);

#endif
