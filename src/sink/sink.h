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

/* Where an event goes that a sink accepted but could not deliver after all. */
typedef void (*sink_dead_fn)(void *arg, const struct sink_event *ev, const char *why);

struct sink {
	const char *name;
	/* Deliver one event; -1 with *e set when the sink could not take it. A
	 * sink that delivers later (the JetStream sink's pipelined publishes)
	 * returns 0 and reports what it could not deliver to `dead`, at the
	 * latest in close. */
	int (*emit)(struct sink *s, const struct sink_event *ev, struct err *e);
	/* Optional: send what was accepted, without waiting; the caller is about
	 * to block (the supervisor waiting for its workload). */
	void (*flush)(struct sink *s);
	/* Optional: start what takes time (a connection) without sending; the
	 * caller is about to block. */
	void (*prepare)(struct sink *s);
	/* Flush (deliver or report everything accepted) and release. */
	void (*close)(struct sink *s);
	/* Set by the owner before the first emit (NULL: such events are only logged). */
	sink_dead_fn dead;
	void *dead_arg;
};

/* Constructors; they fail only at admission (SPEC §4). */
struct sink *sink_noop_open(void);
struct sink *sink_jsonl_open(const char *path, enum fsync_mode fsync, struct err *e);

#endif
