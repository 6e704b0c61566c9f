/* Unit tests for src/util/ids.c: the RFC 3339 timestamps of events, made by
 * arithmetic rather than gmtime_r (which loads the time zone database), must be
 * exactly what gmtime_r gives. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "util/ids.h"

static void expected(time_t t, long nsec, char out[32])
{
	struct tm tm;
	gmtime_r(&t, &tm);
	snprintf(out, 32, "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
		 tm.tm_hour, tm.tm_min, tm.tm_sec, nsec / 1000);
}

static void test_known_instants(void **state)
{
	char out[32];
	time_rfc3339_at(&(struct timespec){0, 0}, out);
	assert_string_equal(out, "1970-01-01T00:00:00.000000Z");
	time_rfc3339_at(&(struct timespec){951782400, 123456789}, out); /* a leap day of a year divisible by 400 */
	assert_string_equal(out, "2000-02-29T00:00:00.123456Z");
	time_rfc3339_at(&(struct timespec){4107542399, 999999999}, out); /* 2100 is not a leap year */
	assert_string_equal(out, "2100-02-28T23:59:59.999999Z");
}

/* Every ~7 hours from 1960 to 2200 (crossing every kind of year and month end),
 * and every second of two days around a year end. */
static void test_matches_gmtime(void **state)
{
	char got[32], want[32];
	for (int64_t t = -315619200; t < 7258118400; t += 25183) {
		time_rfc3339_at(&(struct timespec){(time_t)t, 5000}, got);
		expected((time_t)t, 5000, want);
		assert_string_equal(got, want);
	}
	for (int64_t t = 1798675200 - 86400; t < 1798675200 + 86400; t++) {
		time_rfc3339_at(&(struct timespec){(time_t)t, 0}, got);
		expected((time_t)t, 0, want);
		assert_string_equal(got, want);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_known_instants),
		cmocka_unit_test(test_matches_gmtime),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
