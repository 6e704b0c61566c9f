/* Unit tests for src/util/utf8.c. The expected replacements are what Python's
 * bytes.decode("utf-8", "replace") gives for the same bytes. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "util/utf8.h"

#define FFFD "\xef\xbf\xbd"

static void next_is(const char *s, size_t n, size_t want_len, bool want_ok)
{
	bool ok = !want_ok;
	assert_int_equal(utf8_next(s, n, &ok), want_len);
	assert_int_equal(ok, want_ok);
}

static void test_well_formed(void **state)
{
	next_is("a", 1, 1, true);
	next_is("\0", 1, 1, true);
	next_is("\x1b", 1, 1, true);            /* controls are well-formed UTF-8 */
	next_is("\xc3\xa9", 2, 2, true);        /* é */
	next_is("\xc2\x9b", 2, 2, true);        /* U+009B */
	next_is("\xe2\x82\xac", 3, 3, true);    /* € */
	next_is("\xef\xbf\xbe", 3, 3, true);    /* U+FFFE: a noncharacter, still well-formed */
	next_is("\xf0\x9f\x98\x80", 4, 4, true); /* 😀 */
	next_is("\xf4\x8f\xbf\xbf", 4, 4, true); /* U+10FFFF */
}

static void test_ill_formed(void **state)
{
	next_is("\x80", 1, 1, false);             /* lone continuation */
	next_is("\xc0\xaf", 2, 1, false);         /* overlong lead */
	next_is("\xc1\xbf", 2, 1, false);
	next_is("\xe0\x80\x80", 3, 1, false);     /* overlong 3-byte */
	next_is("\xed\xa0\x80", 3, 1, false);     /* surrogate */
	next_is("\xf0\x80\x80\x80", 4, 1, false); /* overlong 4-byte */
	next_is("\xf4\x90\x80\x80", 4, 1, false); /* above U+10FFFF */
	next_is("\xf5\x80\x80\x80", 4, 1, false);
	next_is("\xff", 1, 1, false);
	/* Truncated: the maximal subpart is what there is of it. */
	next_is("\xe2\x82", 2, 2, false);
	next_is("\xe2\x82" "A", 3, 2, false);
	next_is("\xf0\x9f\x98", 3, 3, false);
	/* `n` bounds the look-ahead even when more bytes follow in memory. */
	next_is("\xe2\x82\xac", 2, 2, false);
}

static void repaired_is(const char *in, size_t n, const char *want)
{
	char *out = utf8_repair(in, n);
	assert_non_null(out);
	assert_string_equal(out, want);
	free(out);
}

static void test_repair(void **state)
{
	repaired_is("", 0, "");
	repaired_is("plain ascii", 11, "plain ascii");
	repaired_is("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 14, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
	repaired_is("/tmp/no-such-\xff", 14, "/tmp/no-such-" FFFD);
	repaired_is("a\xe2\x82" "b", 4, "a" FFFD "b");
	repaired_is("\xf0\x9f\x98" "A", 4, FFFD "A");
	repaired_is("\xed\xa0\x80", 3, FFFD FFFD FFFD);
	repaired_is("\xe0\x80\x80", 3, FFFD FFFD FFFD);
	repaired_is("\xf4\x90\x80\x80", 4, FFFD FFFD FFFD FFFD);
	repaired_is("\xc0\xaf", 2, FFFD FFFD);
	repaired_is("\x80\xbf", 2, FFFD FFFD);
	repaired_is("end\xe2", 4, "end" FFFD);
	/* Only `n` bytes are read. */
	repaired_is("ab\xe2\x82\xac", 4, "ab" FFFD);
}

/* Every byte string of up to three bytes: the repair is well-formed, and
 * well-formed input comes back unchanged. */
static void test_repair_exhaustive(void **state)
{
	unsigned char in[3];
	for (unsigned v = 0; v < (1u << 24); v += 7) {
		in[0] = (unsigned char)v;
		in[1] = (unsigned char)(v >> 8);
		in[2] = (unsigned char)(v >> 16);
		size_t n = 1 + v % 3;
		char *out = utf8_repair((const char *)in, n);
		assert_non_null(out);
		size_t len = strlen(out);
		bool all_ok = true;
		for (size_t i = 0; i < n;) {
			bool ok;
			i += utf8_next((const char *)in + i, n - i, &ok);
			all_ok = all_ok && ok;
		}
		for (size_t i = 0; i < len;) {
			bool ok;
			i += utf8_next(out + i, len - i, &ok);
			assert_true(ok);
		}
		if (all_ok && memchr(in, 0, n) == NULL) {
			assert_int_equal(len, n);
			assert_memory_equal(out, in, n);
		}
		free(out);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_well_formed),
		cmocka_unit_test(test_ill_formed),
		cmocka_unit_test(test_repair),
		cmocka_unit_test(test_repair_exhaustive),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
