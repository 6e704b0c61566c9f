/* Redaction of event data (SPEC §8.3, CELLOS_REDACT_EVENT_FIELDS). */
#ifndef CELLOS_REDACT_H
#define CELLOS_REDACT_H

#include <jansson.h>

#define REDACTED "[redacted]"

/* Every member anywhere inside `data` (objects nested in objects and arrays)
 * whose key is in `fields` (NULL-terminated) is replaced: a scalar by
 * "[redacted]", an array by ["[redacted]"], an object by {}. A replaced value is
 * not descended into. Returns 0, or -1 when out of memory (`data` may then be
 * partly redacted: the caller must not emit it). */
int redact_data(json_t *data, char *const *fields);

#endif
