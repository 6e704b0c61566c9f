#include "util/ids.h"

#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

void uuid_v4(char out[37])
{
	unsigned char b[16];
	randombytes_buf(b, sizeof b);
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
		 b[14], b[15]);
}

/* Seconds since the epoch to the UTC calendar, by arithmetic: glibc's
 * gmtime_r() loads the time zone database (/etc/localtime: seven system calls)
 * on first use, for a conversion that never needs it. Days are counted in
 * 400-year eras of the proleptic Gregorian calendar (146097 days each) from
 * 0000-03-01, so that the leap day is the last day of a year. */
void time_rfc3339_at(const struct timespec *ts, char out[32])
{
	int64_t secs = (int64_t)ts->tv_sec;
	int64_t days = secs / 86400, rem = secs % 86400;
	if (rem < 0) {
		rem += 86400;
		days--;
	}
	int64_t z = days + 719468; /* days from 0000-03-01 to 1970-01-01 */
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	int64_t doe = z - era * 146097;                                      /* day of the era, 0..146096 */
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; /* year of the era, 0..399 */
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);               /* from March 1st, 0..365 */
	int64_t mp = (5 * doy + 2) / 153;                                    /* month from March, 0..11 */
	int64_t day = doy - (153 * mp + 2) / 5 + 1;
	int64_t month = mp < 10 ? mp + 3 : mp - 9;
	int64_t year = yoe + era * 400 + (month <= 2);
	snprintf(out, 32, "%04lld-%02lld-%02lldT%02lld:%02lld:%02lld.%06ldZ", (long long)year, (long long)month,
		 (long long)day, (long long)(rem / 3600), (long long)(rem / 60 % 60), (long long)(rem % 60),
		 ts->tv_nsec / 1000);
}

void time_rfc3339(char out[32])
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	time_rfc3339_at(&ts, out);
}

int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}
