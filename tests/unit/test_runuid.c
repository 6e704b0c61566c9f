/* Tests of the per-run uid allocator (src/isolate/runuid.c) in a temporary
 * directory: CELLOS_CELL_UID_RANGE's parser; no two live holders of one uid,
 * within a process, across processes, and in the race where a holder releases
 * between another allocator's open and its flock (acted out by wrapping flock,
 * -Wl,--wrap=flock in the Makefile); reuse after release and after a dead
 * holder. Forked children report through their exit status or a pipe and
 * always _exit: no cmocka assertion runs in them. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "isolate/runuid.h"

/* ---- flock, wrapped ---- */

int __real_flock(int fd, int op);

/* Run once, just before the next non-blocking flock. */
static void (*before_nb_flock)(void);

int __wrap_flock(int fd, int op)
{
	if ((op & LOCK_NB) && before_nb_flock) {
		void (*fn)(void) = before_nb_flock;
		before_nb_flock = NULL;
		fn();
	}
	return __real_flock(fd, op);
}

/* ---- fixture ---- */

static char dir[64];

static int setup(void **state)
{
	snprintf(dir, sizeof dir, "/tmp/cellos-unit-runuid-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	runuid_set_dir(dir);
	before_nb_flock = NULL;
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

#define FIRST 5000UL
#define LAST 5015UL /* 16 uids, the fewest a range may have */
#define RUN "9b2f6c1e-0d3a-4e57-8a41-6f0e2b7c9d13"

static void alloc_ok(const char *run_id, struct runuid *u)
{
	struct err e = {0};
	if (runuid_alloc(FIRST, LAST, run_id, u, &e) < 0)
		fail_msg("runuid_alloc: %s", e.msg);
	assert_true(u->uid >= FIRST && u->uid <= LAST);
	assert_true(u->fd >= 0);
}

/* ---- CELLOS_CELL_UID_RANGE ---- */

static void parse_ranges(void **state)
{
	static const struct {
		const char *v;
		unsigned long first, last;
	} cases[] = {
		{"3000000000-3000999999", 3000000000UL, 3000999999UL},
		{"1-16", 1, 16},
		{"100000-165535", 100000, 165535},
		{"4294967279-4294967294", 4294967279UL, 4294967294UL},
		{"007-22", 7, 22},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		unsigned long first = 0, last = 0;
		struct err e = {0};
		if (runuid_parse_range(cases[i].v, &first, &last, &e) < 0)
			fail_msg("'%s': %s", cases[i].v, e.msg);
		assert_int_equal(first, cases[i].first);
		assert_int_equal(last, cases[i].last);
	}
}

static void parse_errors(void **state)
{
	static const struct {
		const char *v, *needle;
	} cases[] = {
		{"", "is not FIRST-LAST"},
		{"3000000000", "is not FIRST-LAST"},
		{"-3000000000", "is not FIRST-LAST"},
		{"3000000000-", "is not FIRST-LAST"},
		{"a-b", "is not FIRST-LAST"},
		{" 1-100", "is not FIRST-LAST"},
		{"1-100 ", "is not FIRST-LAST"},
		{"+1-100", "is not FIRST-LAST"},
		{"1-+100", "is not FIRST-LAST"},
		{"1--100", "is not FIRST-LAST"},
		{"1-100-200", "is not FIRST-LAST"},
		{"0x10-0x100", "is not FIRST-LAST"},
		{"1,100", "is not FIRST-LAST"},
		{"100-1", "the first uid is above the last"},
		{"0-100", "includes uid 0"},
		{"0-0", "includes uid 0"},
		{"1-15", "has 15 uids; at least 16 are needed"},
		{"7-7", "has 1 uids"},
		{"4294967280-4294967295", "goes above uid 4294967294"},
		{"1-99999999999999999999999", "goes above uid 4294967294"},
		{"99999999999999999999999-1", "goes above uid 4294967294"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		unsigned long first = 1234, last = 5678;
		struct err e = {0};
		if (runuid_parse_range(cases[i].v, &first, &last, &e) != -1)
			fail_msg("'%s' was accepted", cases[i].v);
		if (strncmp(e.msg, "CELLOS_CELL_UID_RANGE: ", 23) != 0 || !strstr(e.msg, cases[i].needle))
			fail_msg("'%s': '%s' does not name the variable or say '%s'", cases[i].v, e.msg, cases[i].needle);
		assert_int_equal(first, 1234); /* untouched */
		assert_int_equal(last, 5678);
	}
}

/* ---- allocation ---- */

static void two_runs_get_different_uids(void **state)
{
	/* The same run id even: both searches start at the same place. */
	struct runuid a, b;
	alloc_ok(RUN, &a);
	alloc_ok(RUN, &b);
	assert_int_not_equal(a.uid, b.uid);
	runuid_release(&a);
	runuid_release(&b);
	assert_int_equal(a.fd, -1);
}

static void alloc_refuses_what_is_not_a_range(void **state)
{
	static const unsigned long bad[][2] = {{0, 100}, {10, 5}, {1, 4294967295UL}};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct runuid u;
		struct err e = {0};
		assert_int_equal(runuid_alloc(bad[i][0], bad[i][1], RUN, &u, &e), -1);
		assert_non_null(strstr(e.msg, "CELLOS_CELL_UID_RANGE"));
		assert_int_equal(u.fd, -1);
	}
}

static void searches_start_where_the_run_id_says(void **state)
{
	/* Spread over the default range: a search from its first uid would give
	 * these two runs neighbouring uids. */
	struct runuid a, b;
	struct err e = {0};
	assert_int_equal(runuid_alloc(RUNUID_FIRST_DEFAULT, RUNUID_LAST_DEFAULT, RUN, &a, &e), 0);
	assert_int_equal(runuid_alloc(RUNUID_FIRST_DEFAULT, RUNUID_LAST_DEFAULT, "other-run", &b, &e), 0);
	unsigned long d = a.uid > b.uid ? a.uid - b.uid : b.uid - a.uid;
	assert_true(d > 1);
	runuid_release(&a);
	runuid_release(&b);
}

static void a_released_uid_is_used_again(void **state)
{
	struct runuid a, b;
	alloc_ok(RUN, &a);
	uid_t uid = a.uid;
	runuid_release(&a);
	struct stat st;
	assert_int_equal(stat(a.path, &st), -1); /* nothing left behind */
	alloc_ok(RUN, &b);
	assert_int_equal(b.uid, uid);
	runuid_release(&b);
}

static void all_in_use_names_the_variable(void **state)
{
	struct runuid u[LAST - FIRST + 1], extra;
	bool seen[LAST - FIRST + 1] = {false};
	/* Every uid of the range, whatever uid the search started at: it wraps. */
	for (size_t i = 0; i < LAST - FIRST + 1; i++) {
		alloc_ok(RUN, &u[i]);
		assert_false(seen[u[i].uid - FIRST]);
		seen[u[i].uid - FIRST] = true;
	}
	struct err e = {0};
	assert_int_equal(runuid_alloc(FIRST, LAST, RUN, &extra, &e), -1);
	assert_string_equal(e.msg, "CELLOS_CELL_UID_RANGE: all 16 uids of 5000-5015 are in use by live runs");
	assert_int_equal(extra.fd, -1);
	/* One comes back: that one is given out next. */
	uid_t freed = u[7].uid;
	runuid_release(&u[7]);
	alloc_ok("another-run", &extra);
	assert_int_equal(extra.uid, freed);
	runuid_release(&extra);
	for (size_t i = 0; i < LAST - FIRST + 1; i++)
		runuid_release(&u[i]);
}

/* A supervisor that took a uid and died (its lock died with it; the file stays). */
static void dead_holder_is_reclaimed(void **state)
{
	int pfd[2];
	assert_int_equal(pipe(pfd), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct runuid u;
		struct err e = {0};
		if (runuid_alloc(FIRST, LAST, RUN, &u, &e) < 0)
			_exit(1);
		_exit(write(pfd[1], &u.uid, sizeof u.uid) == sizeof u.uid ? 0 : 2);
	}
	close(pfd[1]);
	uid_t dead_uid = (uid_t)-1;
	ssize_t n = read(pfd[0], &dead_uid, sizeof dead_uid);
	close(pfd[0]);
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	assert_int_equal(n, sizeof dead_uid);
	char path[128];
	snprintf(path, sizeof path, "%s/%lu.lock", dir, (unsigned long)dead_uid);
	struct stat sb;
	assert_int_equal(stat(path, &sb), 0); /* left behind */

	struct runuid u;
	alloc_ok(RUN, &u);
	assert_int_equal(u.uid, dead_uid);
	runuid_release(&u);
}

/* Many processes at once, all starting their search at the same uid. */
static void concurrent_processes_get_different_uids(void **state)
{
	enum { N = 12 };
	int out[2], hold[2];
	assert_int_equal(pipe(out), 0);
	assert_int_equal(pipe(hold), 0);
	pid_t pids[N];
	int forked = 0;
	for (; forked < N; forked++) {
		pids[forked] = fork();
		if (pids[forked] < 0)
			break;
		if (pids[forked] == 0) {
			close(hold[1]);
			close(out[0]);
			struct runuid u;
			struct err e = {0};
			if (runuid_alloc(FIRST, LAST, RUN, &u, &e) < 0)
				_exit(1);
			if (write(out[1], &u.uid, sizeof u.uid) != sizeof u.uid)
				_exit(2);
			close(out[1]);
			/* Hold the uid until the parent has heard from everyone. */
			char ch;
			while (read(hold[0], &ch, 1) > 0)
				;
			runuid_release(&u);
			_exit(0);
		}
	}
	close(out[1]);
	close(hold[0]);
	/* Every answer first (EOF once every child has answered or died), then
	 * let the children go, then judge: a failed assertion never leaves a
	 * child waiting. */
	uid_t got[N];
	int n = 0;
	while (n < N && read(out[0], &got[n], sizeof got[n]) == sizeof got[n])
		n++;
	close(out[0]);
	close(hold[1]);
	bool all_ok = true;
	for (int i = 0; i < forked; i++) {
		int st;
		all_ok &= waitpid(pids[i], &st, 0) == pids[i] && WIFEXITED(st) && WEXITSTATUS(st) == 0;
	}
	assert_int_equal(forked, N);
	assert_true(all_ok);
	assert_int_equal(n, N);
	bool seen[LAST - FIRST + 1] = {false};
	for (int i = 0; i < N; i++) {
		assert_true(got[i] >= FIRST && got[i] <= LAST);
		if (seen[got[i] - FIRST])
			fail_msg("uid %lu given to two live runs", (unsigned long)got[i]);
		seen[got[i] - FIRST] = true;
	}
}

/* The race: run B's search opens U's file while run A holds U; A releases U
 * (unlink, close) and run C takes U (a new file under the name); then B's flock
 * succeeds, on A's unlinked file. B must not take U: C has it. */
static struct runuid a, c;
static bool c_failed;

static void a_releases_c_allocates(void)
{
	runuid_release(&a);
	struct err e = {0};
	c_failed = runuid_alloc(FIRST, LAST, RUN, &c, &e) < 0;
}

static void a_uid_released_while_locking_is_not_shared(void **state)
{
	alloc_ok(RUN, &a);
	uid_t u = a.uid;
	c_failed = false;
	before_nb_flock = a_releases_c_allocates;
	struct runuid b;
	alloc_ok(RUN, &b); /* same run id: B's search starts at U */
	assert_null(before_nb_flock); /* the interleaving did happen */
	assert_false(c_failed);
	assert_int_equal(c.uid, u);
	assert_int_not_equal(b.uid, u);
	/* C still holds U's file under its name. */
	struct stat named, held;
	assert_int_equal(stat(c.path, &named), 0);
	assert_int_equal(fstat(c.fd, &held), 0);
	assert_true(named.st_ino == held.st_ino);
	runuid_release(&b);
	runuid_release(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(parse_ranges),
		cmocka_unit_test(parse_errors),
		cmocka_unit_test_setup_teardown(two_runs_get_different_uids, setup, teardown),
		cmocka_unit_test_setup_teardown(alloc_refuses_what_is_not_a_range, setup, teardown),
		cmocka_unit_test_setup_teardown(searches_start_where_the_run_id_says, setup, teardown),
		cmocka_unit_test_setup_teardown(a_released_uid_is_used_again, setup, teardown),
		cmocka_unit_test_setup_teardown(all_in_use_names_the_variable, setup, teardown),
		cmocka_unit_test_setup_teardown(dead_holder_is_reclaimed, setup, teardown),
		cmocka_unit_test_setup_teardown(concurrent_processes_get_different_uids, setup, teardown),
		cmocka_unit_test_setup_teardown(a_uid_released_while_locking_is_not_shared, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
