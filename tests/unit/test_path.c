/* Unit tests for src/util/path.c: the PATH walk shared by the cell's init, the
 * OCI runtimes' argv[0] lookup and config's program lookup (path_search_next). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <string.h>

#include "util/path.h"

/* The candidates of a whole walk, joined with '|'. */
static void walk(const char *pathv, const char *name, bool absolute_only, size_t size, char *out)
{
	char cand[64];
	out[0] = '\0';
	for (const char *it = pathv; path_search_next(&it, name, absolute_only, cand, size);) {
		if (out[0])
			strcat(out, "|");
		strcat(out, cand);
	}
}

static void test_entries_in_order(void **state)
{
	char out[512];
	walk("/usr/local/bin:/usr/bin:/bin", "sh", true, 64, out);
	assert_string_equal(out, "/usr/local/bin/sh|/usr/bin/sh|/bin/sh");
}

static void test_empty_entries_are_skipped(void **state)
{
	char out[512];
	walk(":/a::/b:", "x", true, 64, out);
	assert_string_equal(out, "/a/x|/b/x");
	walk("", "x", false, 64, out);
	assert_string_equal(out, "");
	walk(NULL, "x", false, 64, out);
	assert_string_equal(out, "");
}

static void test_relative_entries_only_when_asked(void **state)
{
	char out[512];
	walk("bin:/usr/bin:.", "x", true, 64, out);
	assert_string_equal(out, "/usr/bin/x");
	walk("bin:/usr/bin:.", "x", false, 64, out);
	assert_string_equal(out, "bin/x|/usr/bin/x|./x");
}

static void test_candidates_that_do_not_fit_are_skipped(void **state)
{
	char out[512];
	/* "/long/dir/x" needs 12 bytes with its NUL; "/b/x" 5. */
	walk("/long/dir:/b", "x", true, 8, out);
	assert_string_equal(out, "/b/x");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_entries_in_order),
		cmocka_unit_test(test_empty_entries_are_skipped),
		cmocka_unit_test(test_relative_entries_only_when_asked),
		cmocka_unit_test(test_candidates_that_do_not_fit_are_skipped),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
