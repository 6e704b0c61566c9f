/* Identifiers and timestamps used in events and host-side names. */
#ifndef CELLOS_IDS_H
#define CELLOS_IDS_H

#include <stdint.h>
#include <time.h>

/* Fresh random UUIDv4, lowercase, into out[37]. */
void uuid_v4(char out[37]);
/* RFC 3339 UTC with microseconds ("2026-11-29T20:14:33.123456Z") into out[32]. */
void time_rfc3339(char out[32]);
/* The same for the instant `ts` (CLOCK_REALTIME). */
void time_rfc3339_at(const struct timespec *ts, char out[32]);
/* Monotonic clock in milliseconds. */
int64_t mono_ms(void);
/* Monotonic clock in microseconds (step timings in debug logs). */
int64_t mono_us(void);

#endif
