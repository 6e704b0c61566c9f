/* The `data` of the events a run emits about its cell (SPEC §8.1): one builder
 * per event, from the facts the lifecycle hands over. The lifecycle
 * (supervisor.c) decides when each is emitted; what goes into it is here. Each
 * returns a new object (NULL only when out of memory, which events_emit
 * tolerates). Text from a document, a workload or the environment goes through
 * event_text (escaped, bounded). */
#ifndef CELLOS_LIFECYCLE_EVENTS_H
#define CELLOS_LIFECYCLE_EVENTS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "backend/backend.h"
#include "spec/spec.h"

/* lifecycle.v1.failed: a run that ends before `started` (SPEC §4). */
json_t *lifecycle_failed_data(const char *spec_id, const char *phase, const char *reason, const char *message);

/* observability.v1.network_policy: the declared egress, at network_scope. */
json_t *network_policy_data(const struct spec *s, const char *isolation_mode);

/* lifecycle.v1.started: what isolation is in force (the backend's facts), with
 * `seccomp` the configured filter unless the backend reports another. */
json_t *lifecycle_started_data(const struct spec *s, const struct cell *c, const char *backend,
			       const char *cfg_seccomp);

/* observability.v1.network_enforcement, after the run. `counters` (n) as the
 * backend read them, or `counters_error` when it could not; exit_code only
 * when ran. */
json_t *network_enforcement_data(const struct spec *s, const char *isolation_mode, const struct cell_facts *f,
				 bool ran, int exit_code, const struct nft_counter *counters, size_t n,
				 const char *counters_error);

/* compliance.v1.summary. The configured policy pack's id and version (SPEC
 * §12); without one (NULL), the document's spec.policy is echoed. */
json_t *compliance_summary_data(const struct spec *s, const char *backend, bool hardened, bool ran, int exit_code,
				const char *pack_id, const char *pack_version);

/* lifecycle.v1.destroyed: reason NULL on success. */
json_t *lifecycle_destroyed_data(const struct spec *s, const char *reason, int64_t duration_ms);

#endif
