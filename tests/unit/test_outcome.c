/* Unit tests for src/outcome.c: the wording of the end line (SPEC §4). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "outcome.h"

#define MiB (1024LL * 1024)

static struct outcome base(const char *reason)
{
	return (struct outcome){.cell_id = "ci-build-42", .reason = reason, .ttl_seconds = 900, .elapsed_ms = -1};
}

static void says(const struct outcome *o, const char *want)
{
	char buf[2048];
	size_t n = outcome_format(o, buf, sizeof buf);
	assert_string_equal(buf, want);
	assert_int_equal(n, strlen(want));
}

static void test_success_says_nothing(void **state)
{
	struct outcome o = base(NULL);
	says(&o, "");
}

static void test_nonzero_exit(void **state)
{
	struct outcome o = base("nonzero_exit");
	o.exit_status = 3;
	o.elapsed_ms = 1234;
	says(&o, "cell ci-build-42 failed: exited with status 3 after 1.2 s");
	o.elapsed_ms = 30;
	says(&o, "cell ci-build-42 failed: exited with status 3 after 30 ms");
}

static void test_signal(void **state)
{
	struct outcome o = base("signal_killed");
	o.term_signal = SIGKILL;
	o.elapsed_ms = 2000;
	says(&o, "cell ci-build-42 failed: killed by signal 9 (SIGKILL) after 2.0 s");
	o.term_signal = SIGRTMIN + 2;
	o.elapsed_ms = 5;
	char want[128];
	snprintf(want, sizeof want, "cell ci-build-42 failed: killed by signal %d after 5 ms", SIGRTMIN + 2);
	says(&o, want);
}

static void test_oom_names_limit_and_peak(void **state)
{
	struct outcome o = base("oom");
	o.mem_limit = 256 * MiB;
	o.mem_peak = 256 * MiB;
	o.elapsed_ms = 1200;
	says(&o, "cell ci-build-42 failed: out of memory (limit 256 MiB, peak 256 MiB) after 1.2 s");
	o.mem_peak = 256 * MiB - 4096;
	says(&o, "cell ci-build-42 failed: out of memory (limit 256 MiB, peak 256.0 MiB) after 1.2 s");
	o.mem_limit = 0;
	o.mem_peak = -1;
	says(&o, "cell ci-build-42 failed: out of memory (no memory limit) after 1.2 s");
	o.mem_limit = 1536 * 1024;
	o.mem_peak = 900;
	says(&o, "cell ci-build-42 failed: out of memory (limit 1.5 MiB, peak 900 bytes) after 1.2 s");
}

static void test_timeout_names_the_limit_and_where_it_came_from(void **state)
{
	struct outcome o = base("timeout");
	o.timeout_ms = 2000;
	o.timeout_from = "run.timeoutMs";
	o.elapsed_ms = 2001;
	says(&o, "cell ci-build-42 failed: timed out after 2.0 s (run.timeoutMs 2000)");
	o.timeout_from = "CELLOS_RUN_TIMEOUT_MS";
	o.timeout_ms = 300;
	o.elapsed_ms = 301;
	says(&o, "cell ci-build-42 failed: timed out after 301 ms (CELLOS_RUN_TIMEOUT_MS 300)");
}

static void test_ttl(void **state)
{
	struct outcome o = base("ttl_exceeded");
	o.ttl_seconds = 1;
	o.elapsed_ms = 1003;
	says(&o, "cell ci-build-42 failed: lifetime.ttlSeconds 1 exceeded");
}

static void test_spawn_failure(void **state)
{
	struct outcome o = base("spawn_failed");
	o.program = "/x";
	o.spawn_errno = ENOENT;
	says(&o, "cell ci-build-42 failed: cannot execute /x: not found");
	o.spawn_errno = EACCES;
	says(&o, "cell ci-build-42 failed: cannot execute /x: permission denied");
	o.spawn_errno = 0;
	snprintf(o.message, sizeof o.message, "runsc exec: broken pipe");
	says(&o, "cell ci-build-42 failed: cannot start /x: runsc exec: broken pipe");
}

static void test_export(void **state)
{
	struct outcome o = base("export_failed");
	o.export_failed = 1;
	o.export_total = 1;
	snprintf(o.export_names, sizeof o.export_names, "report.xml");
	says(&o, "cell ci-build-42 failed: artifact report.xml not exported");
	o.export_total = 3;
	says(&o, "cell ci-build-42 failed: 1 of 3 artifacts not exported (report.xml)");
	o.export_failed = 2;
	snprintf(o.export_names, sizeof o.export_names, "report.xml, log");
	says(&o, "cell ci-build-42 failed: 2 of 3 artifacts not exported (report.xml, log)");
	/* A failed workload stays the reason; the export failure is said with it. */
	o.reason = "nonzero_exit";
	o.exit_status = 4;
	o.elapsed_ms = 19;
	says(&o, "cell ci-build-42 failed: exited with status 4 after 19 ms; 2 of 3 artifacts not exported "
		 "(report.xml, log)");
}

static void test_supervisor_terminated(void **state)
{
	struct outcome o = base("supervisor_terminated");
	o.sup_signal = SIGTERM;
	o.elapsed_ms = 1500;
	says(&o, "cell ci-build-42 failed: stopped by SIGTERM after 1.5 s");
	o.phase = "create";
	says(&o, "cell ci-build-42 failed at create: stopped by SIGTERM");
}

static void test_before_start_names_phase_and_message(void **state)
{
	struct outcome o = base("secret_unavailable");
	o.phase = "secrets";
	snprintf(o.message, sizeof o.message, "secret NOPE: not found");
	says(&o, "cell ci-build-42 failed at secrets: secret NOPE: not found");
	o.reason = "policy_denied";
	o.phase = "create";
	snprintf(o.message, sizeof o.message, "run.argv[0]: /bin/true is not under CELLOS_RUN_ARGV0_ALLOW_PREFIXES");
	says(&o, "cell ci-build-42 failed at create: refused by policy: run.argv[0]: /bin/true is not under "
		 "CELLOS_RUN_ARGV0_ALLOW_PREFIXES");
	o.reason = "ttl_exceeded";
	o.ttl_seconds = 2;
	says(&o, "cell ci-build-42 failed at create: lifetime.ttlSeconds 2 exceeded");
	o.reason = "backend_failed";
	snprintf(o.message, sizeof o.message, "runc create: exit status 1");
	says(&o, "cell ci-build-42 failed at create: runc create: exit status 1");
}

static void test_backend_failure_after_start(void **state)
{
	struct outcome o = base("backend_failed");
	snprintf(o.message, sizeof o.message, "no exit report arrived");
	o.elapsed_ms = 3000;
	says(&o, "cell ci-build-42 failed: backend failure: no exit report arrived after 3.0 s");
}

static void test_cut_to_the_buffer(void **state)
{
	struct outcome o = base("nonzero_exit");
	o.exit_status = 3;
	char buf[16];
	size_t n = outcome_format(&o, buf, sizeof buf);
	assert_int_equal(n, 15);
	assert_string_equal(buf, "cell ci-build-4");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_success_says_nothing),
		cmocka_unit_test(test_nonzero_exit),
		cmocka_unit_test(test_signal),
		cmocka_unit_test(test_oom_names_limit_and_peak),
		cmocka_unit_test(test_timeout_names_the_limit_and_where_it_came_from),
		cmocka_unit_test(test_ttl),
		cmocka_unit_test(test_spawn_failure),
		cmocka_unit_test(test_export),
		cmocka_unit_test(test_supervisor_terminated),
		cmocka_unit_test(test_before_start_names_phase_and_message),
		cmocka_unit_test(test_backend_failure_after_start),
		cmocka_unit_test(test_cut_to_the_buffer),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
