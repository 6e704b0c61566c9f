/* Tests of the run registry (src/isolate/runreg.c) in a temporary directory.
 *
 * Three functions are wrapped by the linker (-Wl,--wrap, see the Makefile):
 * flock, to act out an interleaving of two supervisors at the sweeper's
 * non-blocking flock; cgroup_remove_stale, to record which leaves the sweeper
 * would remove instead of touching this host's cgroups; log_msg, to record what
 * the sweeper says. A dead supervisor is a forked child that registers and exits
 * without releasing (its lock goes with it, as with SIGKILL). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "isolate/runreg.h"
#include "util/log.h"

/* ---- the wrapped functions ---- */

int __real_flock(int fd, int op);
void __real_log_msg(enum log_level lvl, const char *fmt, ...);

/* Run once, just before the next non-blocking flock (the sweeper's). */
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

static char removed[16][256]; /* leaves the sweeper removed, in order */
static size_t n_removed;
static bool fail_removal;     /* the leaves cannot be removed */

int __wrap_cgroup_remove_stale(const char *path, struct err *e)
{
	if (fail_removal)
		return err_set(e, "stale cgroup leaf %s: cannot remove: Device or resource busy", path);
	if (n_removed < 16)
		snprintf(removed[n_removed++], sizeof removed[0], "%s", path);
	return 0;
}

static char logged[8192]; /* every log line, one per line */

void __wrap_log_msg(enum log_level lvl, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	size_t len = strlen(logged);
	snprintf(logged + len, sizeof logged - len, "%s\n", line);
	__real_log_msg(lvl, "%s", line);
}

/* ---- fixture ---- */

static char dir[64];

static int setup(void **state)
{
	snprintf(dir, sizeof dir, "/tmp/cellos-unit-runreg-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	runreg_set_dir(dir);
	before_nb_flock = NULL;
	n_removed = 0;
	fail_removal = false;
	logged[0] = '\0';
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* Two runs with the same name (same cell id and run id) have the same leaves;
 * these say which run a registration's text came from. */
#define NAME "cellos-c1-0123abcd"
static const char *const leaves_a[] = {"/sys/fs/cgroup/unified/" NAME, "/sys/fs/cgroup/memory/" NAME};
static const char *const leaves_b[] = {"/sys/fs/cgroup/" NAME};

static char *read_text(const char *path)
{
	static char buf[1024];
	FILE *f = fopen(path, "re");
	if (!f)
		return NULL;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static char *reg_path(void)
{
	static char p[128];
	snprintf(p, sizeof p, "%s/%s.lock", dir, NAME);
	return p;
}

/* The registration under NAME is the file `r` holds, with run B's leaves. */
static void assert_b_registered(const struct runreg *r)
{
	struct stat named, held;
	assert_int_equal(stat(reg_path(), &named), 0);
	assert_int_equal(fstat(r->fd, &held), 0);
	assert_true(named.st_ino == held.st_ino && named.st_dev == held.st_dev);
	assert_string_equal(read_text(reg_path()), "/sys/fs/cgroup/" NAME "\n");
}

/* A supervisor that registers run A and dies without releasing. */
static void dead_run_a(void)
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct runreg r;
		_exit(runreg_register(&r, NAME, leaves_a, 2, NULL) < 0 ? 1 : 0);
	}
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	assert_non_null(read_text(reg_path()));
}

/* ---- tests ---- */

static void dead_run_is_cleaned_up(void **state)
{
	dead_run_a();
	runreg_sweep();
	/* The v2 leaf first: its cgroup.kill empties the v1 ones too. */
	assert_int_equal(n_removed, 2);
	assert_string_equal(removed[0], leaves_a[0]);
	assert_string_equal(removed[1], leaves_a[1]);
	assert_int_equal(access(reg_path(), F_OK), -1);
	assert_non_null(strstr(logged, "cleaning up after dead run " NAME));
}

static void leaves_that_stay_keep_the_registration(void **state)
{
	dead_run_a();
	fail_removal = true;
	runreg_sweep();
	assert_non_null(read_text(reg_path()));
	/* The next sweep retries. */
	fail_removal = false;
	runreg_sweep();
	assert_int_equal(n_removed, 2);
	assert_int_equal(access(reg_path(), F_OK), -1);
}

static void live_run_is_left_alone(void **state)
{
	struct runreg b;
	struct err e = {0};
	assert_int_equal(runreg_register(&b, NAME, leaves_b, 1, &e), 0);
	runreg_sweep();
	assert_int_equal(n_removed, 0);
	assert_b_registered(&b);
	assert_null(strstr(logged, "dead run"));
	runreg_release(&b);
	assert_int_equal(access(reg_path(), F_OK), -1);
}

/* The race: a sweeper opens run A's registration; A finishes (unlink, close:
 * the lock is free); run B, same cell id and run id, registers the same name;
 * then the sweeper's flock succeeds, on A's unlinked file. That is no dead run:
 * B's registration and leaves must survive, and nothing may be said about a
 * dead run. */
static struct runreg a, b;

static void a_finishes_b_registers(void)
{
	runreg_release(&a);
	struct err e = {0};
	if (runreg_register(&b, NAME, leaves_b, 1, &e) < 0)
		fail_msg("run B: %s", e.msg);
}

static void sweeper_spares_a_run_that_reused_the_name(void **state)
{
	struct err e = {0};
	assert_int_equal(runreg_register(&a, NAME, leaves_a, 2, &e), 0);
	b.fd = -1;
	before_nb_flock = a_finishes_b_registers;
	runreg_sweep();
	assert_null(before_nb_flock); /* the interleaving did happen */
	assert_true(b.fd >= 0);
	assert_b_registered(&b);
	assert_int_equal(n_removed, 0);
	assert_null(strstr(logged, "dead run"));
	runreg_release(&b);
}

/* The benign variant: A finishes between the sweeper's open and its flock and
 * nobody takes the name. Nothing to do, and nothing to say. */
static void a_finishes(void) { runreg_release(&a); }

static void sweeper_is_silent_about_a_run_that_just_finished(void **state)
{
	struct err e = {0};
	assert_int_equal(runreg_register(&a, NAME, leaves_a, 2, &e), 0);
	before_nb_flock = a_finishes;
	runreg_sweep();
	assert_null(before_nb_flock);
	assert_int_equal(n_removed, 0);
	assert_null(strstr(logged, "dead run"));
	assert_int_equal(access(reg_path(), F_OK), -1);
}

static void live_name_is_not_taken(void **state)
{
	struct runreg r1, r2;
	struct err e = {0};
	assert_int_equal(runreg_register(&r1, NAME, leaves_b, 1, &e), 0);
	assert_int_equal(runreg_register(&r2, NAME, leaves_a, 2, &e), RUNREG_LIVE);
	assert_non_null(strstr(e.msg, reg_path()));
	assert_non_null(strstr(e.msg, "a live run"));
	assert_int_equal(r2.fd, -1);
	assert_int_equal(n_removed, 0);
	/* The first run's registration is untouched, and nothing was left behind. */
	assert_b_registered(&r1);
	runreg_release(&r1);
	char cmd[160];
	snprintf(cmd, sizeof cmd, "test -z \"$(ls -A %s)\"", dir);
	assert_int_equal(system(cmd), 0);
}

static void dead_name_is_reclaimed(void **state)
{
	dead_run_a();
	/* No sweep first: registering finds the dead run's file and cleans up. */
	struct err e = {0};
	assert_int_equal(runreg_register(&b, NAME, leaves_b, 1, &e), 0);
	assert_int_equal(n_removed, 2);
	assert_string_equal(removed[0], leaves_a[0]);
	assert_b_registered(&b);
	runreg_release(&b);
}

/* Another supervisor is sweeping the dead run's registration (it holds the
 * lock while it removes the leaves) just when a new run wants the name. */
static void dead_name_being_swept_elsewhere_is_waited_for(void **state)
{
	dead_run_a();
	int ready[2];
	assert_int_equal(pipe(ready), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(ready[0]);
		int fd = open(reg_path(), O_RDWR | O_CLOEXEC);
		if (fd < 0 || __real_flock(fd, LOCK_EX | LOCK_NB) < 0 || write(ready[1], "L", 1) != 1)
			_exit(1);
		usleep(300 * 1000); /* removing the leaves */
		unlink(reg_path());
		_exit(0);
	}
	close(ready[1]);
	char c = 0;
	ssize_t n = read(ready[0], &c, 1);
	close(ready[0]);
	struct err e = {0};
	int rc = runreg_register(&b, NAME, leaves_b, 1, &e);
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(n == 1 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
	if (rc < 0)
		fail_msg("%s", e.msg);
	assert_b_registered(&b);
	runreg_release(&b);
}

static void dead_name_that_cannot_be_cleaned_is_an_error(void **state)
{
	dead_run_a();
	fail_removal = true;
	struct err e = {0};
	assert_true(runreg_register(&b, NAME, leaves_b, 1, &e) < 0);
	assert_non_null(strstr(e.msg, reg_path()));
	assert_int_equal(b.fd, -1);
	assert_string_equal(read_text(reg_path()), "/sys/fs/cgroup/unified/" NAME "\n/sys/fs/cgroup/memory/" NAME "\n");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(dead_run_is_cleaned_up, setup, teardown),
		cmocka_unit_test_setup_teardown(leaves_that_stay_keep_the_registration, setup, teardown),
		cmocka_unit_test_setup_teardown(live_run_is_left_alone, setup, teardown),
		cmocka_unit_test_setup_teardown(sweeper_spares_a_run_that_reused_the_name, setup, teardown),
		cmocka_unit_test_setup_teardown(sweeper_is_silent_about_a_run_that_just_finished, setup, teardown),
		cmocka_unit_test_setup_teardown(live_name_is_not_taken, setup, teardown),
		cmocka_unit_test_setup_teardown(dead_name_is_reclaimed, setup, teardown),
		cmocka_unit_test_setup_teardown(dead_name_being_swept_elsewhere_is_waited_for, setup, teardown),
		cmocka_unit_test_setup_teardown(dead_name_that_cannot_be_cleaned_is_an_error, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
