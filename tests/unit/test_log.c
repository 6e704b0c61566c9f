/* Unit tests for src/util/log.c and src/util/escape.c: what reaches stderr. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "util/escape.h"
#include "util/log.h"

/* fd 2 is pointed at a memfd while a test logs; captured() reads it back. */
static int saved_stderr = -1, mem = -1;

static int setup(void **state)
{
	log_set_level(LOG_DEBUG);
	mem = memfd_create("test-log", MFD_CLOEXEC);
	saved_stderr = dup(STDERR_FILENO);
	if (mem < 0 || saved_stderr < 0 || dup2(mem, STDERR_FILENO) < 0)
		return -1;
	return 0;
}

/* Each test starts with nothing captured, whatever the previous one left. */
static int empty(void **state)
{
	lseek(mem, 0, SEEK_SET);
	return ftruncate(mem, 0);
}

static int teardown(void **state)
{
	dup2(saved_stderr, STDERR_FILENO);
	close(saved_stderr);
	close(mem);
	return 0;
}

/* What was logged since the last call (malloc'd, NUL-terminated). */
static char *captured(size_t *len)
{
	off_t end = lseek(mem, 0, SEEK_END);
	char *buf = calloc(1, (size_t)end + 1);
	assert_non_null(buf);
	assert_int_equal(pread(mem, buf, (size_t)end, 0), end);
	assert_int_equal(ftruncate(mem, 0), 0);
	lseek(mem, 0, SEEK_SET);
	if (len)
		*len = (size_t)end;
	return buf;
}

static void logged_is(const char *want)
{
	char *got = captured(NULL);
	assert_string_equal(got, want);
	free(got);
}

static void test_arguments_cannot_forge_lines(void **state)
{
	log_error("run.argv[0]: cannot execute %s: %s", "/no\x1b[2K\rcellos-supervisor: info: ok\nnext", "ENOENT");
	logged_is("cellos-supervisor: error: run.argv[0]: cannot execute /no\\x1b[2K\\x0dcellos-supervisor: info: "
		  "ok\\x0anext: ENOENT\n");
}

static void test_del_c1_tab_and_invalid_utf8_are_escaped(void **state)
{
	log_warn("%s", "\x7f|\xc2\x9b|\t|\xff\xfe|\xe2\x82|\x07");
	logged_is("cellos-supervisor: warn: \\x7f|\\xc2\\x9b|\\x09|\\xff\\xfe|\\xe2\\x82|\\x07\n");
}

static void test_utf8_text_is_kept(void **state)
{
	log_info("caf\xc3\xa9 %s", "\xe2\x82\xac \xf0\x9f\x98\x80 \xc2\xa0");
	logged_is("cellos-supervisor: info: caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xc2\xa0\n");
}

static void test_trailing_newline_of_the_format_stays_the_end_of_the_line(void **state)
{
	log_error("cell %s failed\n", "x");
	logged_is("cellos-supervisor: error: cell x failed\n");
	/* From an argument it is text: escaped. */
	log_error("%s", "message\n");
	logged_is("cellos-supervisor: error: message\\x0a\n");
	/* Both: the format's own is the end, the argument's is escaped. */
	log_error("%s\n", "message\n");
	logged_is("cellos-supervisor: error: message\\x0a\n");
}

static void test_long_message_is_one_line(void **state)
{
	char arg[4000];
	memset(arg, '\x1b', sizeof arg - 1);
	arg[sizeof arg - 1] = '\0';
	log_error("%s", arg);
	size_t len;
	char *got = captured(&len);
	assert_true(len > 4000);
	assert_null(memchr(got, '\x1b', len));
	assert_ptr_equal(memchr(got, '\n', len), got + len - 1);
	assert_memory_equal(got + len - 5, "\\x1b\n", 5);
	free(got);
}

static void test_level_filter(void **state)
{
	log_set_level(LOG_WARN);
	log_info("not shown");
	log_debug("not shown");
	log_warn("shown");
	log_set_level(LOG_DEBUG);
	logged_is("cellos-supervisor: warn: shown\n");
}

/* The end line (outcome.h): no level tag, escaped like the rest, shown at any level. */
static void test_end_line_has_no_level_and_is_escaped(void **state)
{
	log_set_level(LOG_ERROR);
	log_end("cell %s failed: %s", "c1", "exited\x1b[2K\ncellos-supervisor: forged");
	log_set_level(LOG_DEBUG);
	logged_is("cellos-supervisor: cell c1 failed: exited\\x1b[2K\\x0acellos-supervisor: forged\n");
}

static void escaped_is(const char *in, size_t size, const char *want)
{
	char *out = malloc(size);
	assert_non_null(out);
	assert_int_equal(escape_controls(out, size, in, strlen(in)), strlen(want));
	assert_string_equal(out, want);
	free(out);
}

static void test_escape_is_bounded_by_whole_escapes_and_characters(void **state)
{
	escaped_is("a\x1b" "b", 64, "a\\x1bb");
	escaped_is("a\x1b" "b", 7, "a\\x1bb");
	escaped_is("a\x1b" "b", 6, "a\\x1b");
	escaped_is("a\x1b" "b", 5, "a");
	escaped_is("a\x1b" "b", 2, "a");
	escaped_is("a\x1b" "b", 1, "");
	/* A character is not cut either, nor an ill-formed sequence's escapes. */
	escaped_is("a\xe2\x82\xac", 5, "a\xe2\x82\xac");
	escaped_is("a\xe2\x82\xac", 4, "a");
	escaped_is("a\xe2\x82", 10, "a\\xe2\\x82");
	escaped_is("a\xe2\x82", 9, "a");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_arguments_cannot_forge_lines, empty),
		cmocka_unit_test_setup(test_del_c1_tab_and_invalid_utf8_are_escaped, empty),
		cmocka_unit_test_setup(test_utf8_text_is_kept, empty),
		cmocka_unit_test_setup(test_trailing_newline_of_the_format_stays_the_end_of_the_line, empty),
		cmocka_unit_test_setup(test_long_message_is_one_line, empty),
		cmocka_unit_test_setup(test_level_filter, empty),
		cmocka_unit_test_setup(test_end_line_has_no_level_and_is_escaped, empty),
		cmocka_unit_test_setup(test_escape_is_bounded_by_whole_escapes_and_characters, empty),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
