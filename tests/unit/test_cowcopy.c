/* Unit tests for src/util/cowcopy.c: after a fork, the pages the child still
 * shares with its parent are copied (each comes back exclusively the child's,
 * per /proc/self/pagemap), their contents are what they were, and a second
 * call finds nothing left to copy. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/cowcopy.h"

#define PAGES 16

static int exclusive(const void *p)
{
	long page = sysconf(_SC_PAGESIZE);
	uint64_t ent = 0;
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = pread(fd, &ent, sizeof ent, (off_t)((uintptr_t)p / (uintptr_t)page * sizeof ent));
	close(fd);
	return n == (ssize_t)sizeof ent && (ent >> 63 & 1) ? (int)(ent >> 56 & 1) : -1;
}

/* In the child: exit status 0 when all held, else which check failed. */
static int child(unsigned char *buf, size_t len)
{
	long page = sysconf(_SC_PAGESIZE);
	if (exclusive(buf) != 0)
		return 1; /* shared with the parent right after the fork */
	if (cowcopy_now() < PAGES)
		return 2;
	for (size_t off = 0; off < len; off += (size_t)page)
		if (exclusive(buf + off) != 1)
			return 3;
	for (size_t i = 0; i < len; i++)
		if (buf[i] != (unsigned char)(i * 7 + 3))
			return 4;
	if (cowcopy_now() != 0)
		return 5;
	return 0;
}

static void test_shared_pages_are_copied_and_keep_their_bytes(void **state)
{
	(void)state;
	long page = sysconf(_SC_PAGESIZE);
	size_t len = (size_t)page * PAGES;
	unsigned char *buf = aligned_alloc((size_t)page, len);
	assert_non_null(buf);
	for (size_t i = 0; i < len; i++)
		buf[i] = (unsigned char)(i * 7 + 3);
	assert_int_equal(exclusive(buf), 1);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(child(buf, len));
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	/* The parent's own bytes are untouched. */
	for (size_t i = 0; i < len; i++)
		assert_int_equal(buf[i], (unsigned char)(i * 7 + 3));
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_shared_pages_are_copied_and_keep_their_bytes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
