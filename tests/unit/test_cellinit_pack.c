/* Unit tests for src/isolate/cellinit_pack.c: a warm cell's claim record
 * (isolate/cellinit.h) comes back as it was sent, NULL fields included, and a
 * malformed or truncated record is refused rather than read past its end. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "isolate/cellinit.h"

static void free_lists(struct cellinit_args *a)
{
	free((void *)a->argv);
	free((void *)a->envp);
	free((void *)a->argv0_prefixes);
}

static void test_round_trip(void **state)
{
	(void)state;
	char *argv[] = {"/bin/sh", "-c", "echo 'a b'", "", NULL};
	char *envp[] = {"HOME=/root", "SECRET=x=y", NULL};
	struct cellinit_args in = {.hostname = "cell-1", .workdir = NULL, .home = "/root", .path = "/usr/bin:/bin",
				   .argv = argv, .envp = envp, .argv0_prefixes = NULL};
	char *rec;
	size_t len;
	assert_int_equal(cellinit_pack(&in, &rec, &len), 0);
	struct cellinit_args out = {0};
	assert_int_equal(cellinit_unpack(rec, len, &out), 0);
	assert_string_equal(out.hostname, "cell-1");
	assert_null(out.workdir);
	assert_string_equal(out.home, "/root");
	assert_string_equal(out.path, "/usr/bin:/bin");
	for (size_t i = 0; i < 4; i++)
		assert_string_equal(out.argv[i], argv[i]);
	assert_null(out.argv[4]);
	assert_string_equal(out.envp[1], "SECRET=x=y");
	assert_null(out.envp[2]);
	assert_null(out.argv0_prefixes);
	free_lists(&out);
	/* Every shorter prefix of the record is refused. */
	for (size_t n = 0; n < len; n++) {
		struct cellinit_args t = {0};
		assert_int_equal(cellinit_unpack(rec, n, &t), -1);
		free_lists(&t);
	}
	free(rec);
}

static void test_too_large_is_refused(void **state)
{
	(void)state;
	size_t big = CELLINIT_PACK_MAX;
	char *v = malloc(big);
	assert_non_null(v);
	memset(v, 'x', big - 1);
	v[big - 1] = '\0';
	char *envp[] = {v, NULL};
	struct cellinit_args in = {.hostname = "c", .envp = envp};
	char *rec = NULL;
	size_t len = 0;
	assert_int_equal(cellinit_pack(&in, &rec, &len), -1);
	assert_null(rec);
	free(v);
}

static void test_lying_count_is_refused(void **state)
{
	(void)state;
	/* hostname "c", three NULL strings, then argv claiming 1000 entries. */
	char rec[] = {1, 'c', 0, 0, 0, 0, (char)0xe8, 3, 0, 0, 'a', 0};
	struct cellinit_args t = {0};
	assert_int_equal(cellinit_unpack(rec, sizeof rec, &t), -1);
	free_lists(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_too_large_is_refused),
		cmocka_unit_test(test_lying_count_is_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
