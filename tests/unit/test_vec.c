/* Tests of vec_reserve (src/util/vec.c): the first allocation, doubling, no
 * realloc while there is room, the elements kept across growth, and a size
 * whose bytes would overflow refused with the array unchanged. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>

#include "util/vec.h"

struct pair {
	int a, b;
};

static void test_grows_by_doubling_and_keeps_elements(void **state)
{
	(void)state;
	struct pair *v = NULL;
	size_t n = 0, cap = 0;
	for (int i = 0; i < 100; i++) {
		assert_int_equal(vec_reserve(&v, n, &cap, sizeof *v, 4), 0);
		assert_true(cap > n);
		v[n++] = (struct pair){i, -i};
	}
	assert_int_equal(cap, 128); /* 4, 8, 16, 32, 64, 128 */
	for (int i = 0; i < 100; i++)
		assert_true(v[i].a == i && v[i].b == -i);
	free(v);
}

static void test_no_realloc_while_there_is_room(void **state)
{
	(void)state;
	int *v = NULL;
	size_t cap = 0;
	assert_int_equal(vec_reserve(&v, 0, &cap, sizeof *v, 8), 0);
	int *first = v;
	assert_int_equal(vec_reserve(&v, 7, &cap, sizeof *v, 8), 0);
	assert_ptr_equal(v, first);
	assert_int_equal(cap, 8);
	free(v);
}

static void test_overflow_is_refused_and_the_array_kept(void **state)
{
	(void)state;
	char *v = malloc(1);
	size_t cap = SIZE_MAX / 2 + 1;
	char *before = v;
	assert_int_equal(vec_reserve(&v, cap, &cap, 1, 8), -1);
	assert_ptr_equal(v, before);
	assert_int_equal(cap, SIZE_MAX / 2 + 1);
	free(v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_grows_by_doubling_and_keeps_elements),
		cmocka_unit_test(test_no_realloc_while_there_is_room),
		cmocka_unit_test(test_overflow_is_refused_and_the_array_kept),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
