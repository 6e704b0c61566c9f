/* What the two JetStream sinks share (sink/nats.h): the pipelined one on the
 * project's own client for plain connections (nats_async.c, sink/nats_wire.h)
 * and the synchronous one on libnats for TLS and credentials (nats_sync.c). */
#ifndef CELLOS_SINK_NATS_IMPL_H
#define CELLOS_SINK_NATS_IMPL_H

#include "sink/nats.h"

#define NATS_TYPE_PREFIX "dev.cellos.events.cell."

/* The subject of an event of `type` (the inner type of a signed wrapper):
 * the template with {tenantId}, {cellId} (already made tokens) and {event}
 * (the type without the catalogue's prefix). */
int nats_subject_of(const char *tpl, const char *tenant, const char *cell, const char *type, char *out, size_t size,
		    struct err *e);

struct sink *nats_sync_open(const struct nats_sink_params *p, struct err *e);
struct sink *nats_async_open(const struct nats_sink_params *p, struct err *e);

#endif
