/* Unit tests for src/util/scrub.c: secret values masked out of runtime messages.
 * Run under ASan (make SANITIZE=1 unit): the old in-place code made a
 * negative-size memmove for several of these. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/scrub.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* Mask the NUL-terminated text in `buf` (capacity `size`) through scrub_copy
 * from a copy, as oci_run.c masks a runtime's message. */
static void scrub(char *buf, size_t size, const char *const *secrets, size_t n)
{
	size_t len = strnlen(buf, size - 1);
	char *copy = malloc(len + 1);
	assert_non_null(copy);
	memcpy(copy, buf, len);
	scrub_copy(buf, size, copy, len, secrets, n);
	free(copy);
}

/* Scrub `text` in place in a heap buffer of exactly `size` bytes (so ASan sees
 * any write past it) and compare with `want`. */
static void check_in_place(const char *text, size_t size, const char *const *secrets, size_t n, const char *want)
{
	char *buf = malloc(size);
	assert_non_null(buf);
	snprintf(buf, size, "%s", text);
	scrub(buf, size, secrets, n);
	assert_string_equal(buf, want);
	free(buf);
}

static void test_secret_at_the_end(void **state)
{
	const char *s[] = {"hunter2"};
	check_in_place("env: KEY=hunter2", 64, s, 1, "env: KEY=" SCRUB_MASK);
	/* Exactly the size of the original text: the mask (longer than the
	 * secret) does not fit, so the text ends before it. */
	check_in_place("env: KEY=hunter2", sizeof "env: KEY=hunter2", s, 1, "env: KEY=");
	const char *short_secret[] = {"ab"};
	check_in_place("x=ab", 5, short_secret, 1, "x=");
	check_in_place("x=ab", 13, short_secret, 1, "x=" SCRUB_MASK);
}

static void test_secret_inside_the_mask_is_not_matched_again(void **state)
{
	const char *red[] = {"red"};
	check_in_place("the red fox", 64, red, 1, "the " SCRUB_MASK " fox");
	const char *a[] = {"a"};
	check_in_place("a banana", 128, a, 1, SCRUB_MASK " b" SCRUB_MASK "n" SCRUB_MASK "n" SCRUB_MASK);
	const char *mask[] = {SCRUB_MASK};
	check_in_place("v=" SCRUB_MASK, 64, mask, 1, "v=" SCRUB_MASK);
	/* A second secret that occurs in the mask of the first. */
	const char *two[] = {"xyz", "dact"};
	check_in_place("xyz", 64, two, 2, SCRUB_MASK);
}

static void test_overlapping_and_adjacent_occurrences(void **state)
{
	const char *aba[] = {"aba"};
	/* Overlapping occurrences are masked as one: no byte of either is left. */
	check_in_place("xababax", 64, aba, 1, "x" SCRUB_MASK "x");
	const char *aa[] = {"aa"};
	check_in_place("aaa", 64, aa, 1, SCRUB_MASK);
	const char *h[] = {"hunter2"};
	check_in_place("hunter2hunter2", 64, h, 1, SCRUB_MASK SCRUB_MASK);
	/* Two secrets overlapping each other, and the longer of two at one place. */
	const char *pair[] = {"pass", "password1"};
	check_in_place("[password1!]", 64, pair, 2, "[" SCRUB_MASK "!]");
	const char *chain[] = {"abc", "cde"};
	check_in_place("-abcde-", 64, chain, 2, "-" SCRUB_MASK "-");
}

static void test_buffer_nearly_full(void **state)
{
	const char *s[] = {"tok"};
	const char *text = "a tok b";
	const char *want = "a " SCRUB_MASK " b";
	/* Just enough room, then one byte less and less: always a prefix of the
	 * full result that never ends inside a mask. */
	check_in_place(text, strlen(want) + 1, s, 1, want);
	check_in_place(text, strlen(want), s, 1, "a " SCRUB_MASK " ");
	check_in_place(text, strlen(want) - 1, s, 1, "a " SCRUB_MASK);
	check_in_place(text, strlen(want) - 2, s, 1, "a ");
	check_in_place(text, 3, s, 1, "a ");
	check_in_place(text, 1, s, 1, "");
}

static void test_cut_never_keeps_part_of_a_secret(void **state)
{
	/* The input is longer than the output: a secret straddling the cut must
	 * not leave its first bytes behind. */
	const char *s[] = {"hunter2"};
	char out[14];
	size_t n = scrub_copy(out, sizeof out, "0123456789hunter2", 17, s, 1);
	assert_string_equal(out, "0123456789");
	assert_int_equal(n, 10);
	n = scrub_copy(out, sizeof out, "012345hunter2", 13, s, 1);
	assert_string_equal(out, "012345");
	n = scrub_copy(out, sizeof out, "hunter2 and more", 16, s, 1);
	assert_string_equal(out, SCRUB_MASK " an");
	assert_int_equal(n, 13);
}

static void test_empty_and_null_secrets_are_ignored(void **state)
{
	const char *s[] = {"", NULL, "k"};
	check_in_place("key", 64, s, N(s), SCRUB_MASK "ey");
	const char *none[] = {"", NULL};
	check_in_place("nothing to hide", 64, none, N(none), "nothing to hide");
	check_in_place("nothing to hide", 64, NULL, 0, "nothing to hide");
	check_in_place("", 1, s, N(s), "");
}

static void test_copy_counts_bytes_not_nul(void **state)
{
	/* scrub_copy takes a length: the input need not be NUL-terminated. */
	const char in[] = {'k', '=', 's', 'e', 'c'};
	const char *s[] = {"sec"};
	char out[32];
	assert_int_equal(scrub_copy(out, sizeof out, in, sizeof in, s, 1), 2 + strlen(SCRUB_MASK));
	assert_string_equal(out, "k=" SCRUB_MASK);
	/* A secret that would match only past the end of the input does not. */
	assert_int_equal(scrub_copy(out, sizeof out, "k=sec", 4, s, 1), 4);
	assert_string_equal(out, "k=se");
}

/* Random texts and secrets over a small alphabet without the mask's letters:
 * the result never holds a secret, always fits, and ASan watches every access. */
static void test_random(void **state)
{
	unsigned seed = 12345;
	for (int round = 0; round < 20000; round++) {
		char text[40], sec[3][5];
		size_t tl = (size_t)(rand_r(&seed) % 39);
		for (size_t i = 0; i < tl; i++)
			text[i] = "01xy"[rand_r(&seed) % 4];
		text[tl] = '\0';
		const char *secrets[3];
		for (int k = 0; k < 3; k++) {
			size_t sl = (size_t)(rand_r(&seed) % 5);
			for (size_t i = 0; i < sl; i++)
				sec[k][i] = "01"[rand_r(&seed) % 2];
			sec[k][sl] = '\0';
			secrets[k] = sec[k];
		}
		size_t size = 1 + (size_t)(rand_r(&seed) % 80);
		char *buf = malloc(size);
		assert_non_null(buf);
		snprintf(buf, size, "%s", text);
		scrub(buf, size, secrets, 3);
		assert_true(strlen(buf) < size);
		for (int k = 0; k < 3; k++)
			if (sec[k][0] && strstr(buf, sec[k]))
				fail_msg("secret '%s' left in '%s' (from '%s', size %zu)", sec[k], buf, text, size);
		free(buf);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_secret_at_the_end),
		cmocka_unit_test(test_secret_inside_the_mask_is_not_matched_again),
		cmocka_unit_test(test_overlapping_and_adjacent_occurrences),
		cmocka_unit_test(test_buffer_nearly_full),
		cmocka_unit_test(test_cut_never_keeps_part_of_a_secret),
		cmocka_unit_test(test_empty_and_null_secrets_are_ignored),
		cmocka_unit_test(test_copy_counts_bytes_not_nul),
		cmocka_unit_test(test_random),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
