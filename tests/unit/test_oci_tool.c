/* Unit tests for the runtime's helper commands, src/backend/oci_tool.c (oci_tool_run):
 * the exit status they report, and what they report when it cannot be known.
 * This binary is linked with -Wl,--wrap=waitpid (Makefile). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/wait.h>

#include "backend/oci_tool.h"

/* waitpid that loses the status on demand, as when the kernel reaped the child
 * itself (SIGCHLD ignored): the child is gone, the call fails with ECHILD and
 * writes nothing. */
pid_t __real_waitpid(pid_t pid, int *status, int options);
pid_t __wrap_waitpid(pid_t pid, int *status, int options);
static bool status_lost;

pid_t __wrap_waitpid(pid_t pid, int *status, int options)
{
	if (!status_lost)
		return __real_waitpid(pid, status, options);
	int ignored;
	__real_waitpid(pid, &ignored, options);
	errno = ECHILD;
	return -1;
}

static int tool(const char *script, char *msg, size_t size)
{
	const char *const argv[] = {"/bin/sh", "-c", script, NULL};
	return oci_tool_run("/bin/sh", argv, NULL, 5000, msg, size);
}

static void tool_reports_exit_status_and_output(void **state)
{
	char msg[64];
	assert_int_equal(tool("echo first; echo last >&2; exit 3", msg, sizeof msg), 3);
	assert_string_equal(msg, "last");
	assert_int_equal(tool("exit 0", msg, sizeof msg), 0);
	assert_int_equal(tool("kill -TERM $$", msg, sizeof msg), 128 + 15);
}

/* A status nobody could collect is a failure, never "exited 0". */
static void tool_with_a_lost_status_fails(void **state)
{
	char msg[64];
	status_lost = true;
	int rc = tool("exit 3", msg, sizeof msg);
	int rc0 = tool("exit 0", msg, sizeof msg);
	status_lost = false;
	assert_int_equal(rc, -1);
	assert_int_equal(rc0, -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(tool_reports_exit_status_and_output),
		cmocka_unit_test(tool_with_a_lost_status_fails),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
