/* Tests of the workload's containment primitives that need no cell: the seccomp
 * policy file parser and the baseline (docs/seccomp.md), the compiled filter's
 * behaviour in a forked child, capability dropping, and the argv[0] prefix check
 * (CELLOS_RUN_ARGV0_ALLOW_PREFIXES). */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <pthread.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "isolate/argv0.h"
#include "isolate/caps.h"
#include "isolate/seccomp.h"

static int nr(const char *name) { return seccomp_syscall_resolve_name(name); }

/* The rules of `p` for `name`; *n receives how many. */
static const struct seccomp_rule *rules_for(const struct seccomp_policy *p, const char *name, size_t *n)
{
	const struct seccomp_rule *first = NULL;
	*n = 0;
	for (size_t i = 0; i < p->n; i++)
		if (p->rules[i].nr == nr(name)) {
			if (!first)
				first = &p->rules[i];
			(*n)++;
		}
	return first;
}

static int parse(struct seccomp_policy *p, const char *text, struct err *e)
{
	return seccomp_policy_parse(p, text, strlen(text), "f.sc", e);
}

/* ---- the baseline ---- */

static void baseline_content(void **state)
{
	struct seccomp_policy p;
	struct err e = {0};
	assert_int_equal(seccomp_policy_baseline(&p, &e), 0);
	assert_int_equal(p.default_act, SECCOMP_ACT_ALLOW);
	static const char *const denied[] = {
		"bpf", "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "mount",
		"umount2", "pivot_root", "unshare", "setns", "ptrace", "process_vm_readv", "process_vm_writev",
		"keyctl", "add_key", "request_key", "userfaultfd", "perf_event_open", "open_by_handle_at", "reboot",
		"swapon", "swapoff", "io_uring_setup", "open_tree", "move_mount", "fsopen",
	};
	size_t n;
	for (size_t i = 0; i < sizeof denied / sizeof denied[0]; i++) {
		const struct seccomp_rule *r = rules_for(&p, denied[i], &n);
		assert_non_null(r);
		assert_int_equal(n, 1);
		assert_int_equal(r->act, SECCOMP_ACT_ERRNO);
		assert_int_equal(r->errnum, EPERM);
		assert_int_equal(r->mask, 0);
	}
	const struct seccomp_rule *r = rules_for(&p, "clone3", &n);
	assert_non_null(r);
	assert_int_equal(r->errnum, ENOSYS);
	/* clone: one conditional rule per CLONE_NEW* flag. */
	r = rules_for(&p, "clone", &n);
	assert_int_equal(n, 7);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(r[i].arg, 0);
		assert_true(r[i].mask == r[i].value);
	}
	/* ioctl: TIOCSTI, TIOCLINUX and TIOCSETD, on the low 32 bits only. */
	r = rules_for(&p, "ioctl", &n);
	assert_int_equal(n, 3);
	static const unsigned long tioc[] = {TIOCSTI, TIOCLINUX, TIOCSETD};
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(r[i].arg, 1);
		assert_int_equal(r[i].mask, 0xffffffffu);
		assert_int_equal(r[i].value, tioc[i]);
		assert_int_equal(r[i].errnum, EPERM);
	}
	/* socket and socketpair: AF_VSOCK (the family, an int) is no family here. */
	static const char *const sock_calls[] = {"socket", "socketpair"};
	for (size_t i = 0; i < 2; i++) {
		r = rules_for(&p, sock_calls[i], &n);
		assert_int_equal(n, 1);
		assert_int_equal(r->arg, 0);
		assert_int_equal(r->mask, 0xffffffffu);
		assert_int_equal(r->value, AF_VSOCK);
		assert_int_equal(r->errnum, EAFNOSUPPORT);
	}
	assert_null(rules_for(&p, "read", &n));
	seccomp_policy_free(&p);
}

/* ---- the file format ---- */

static void parse_rules_and_actions(void **state)
{
	struct seccomp_policy p;
	struct err e = {0};
	const char *text = "# a comment\n"
			   "\n"
			   "   \t\n"
			   "bpf\n"
			   "ptrace errno\n"
			   "mount errno EACCES   # trailing comment\n"
			   "reboot errno 13\n"
			   "personality kill\n"
			   "uname log\r\n"
			   "getpid allow\n"
			   "\tsetns\terrno\tENOSYS";
	assert_int_equal(parse(&p, text, &e), 0);
	assert_int_equal(p.default_act, SECCOMP_ACT_ALLOW);
	assert_int_equal(p.n, 8);
	size_t n;
	const struct seccomp_rule *r = rules_for(&p, "bpf", &n);
	assert_int_equal(r->act, SECCOMP_ACT_ERRNO);
	assert_int_equal(r->errnum, EPERM);
	assert_int_equal(r->line, 4);
	assert_int_equal(rules_for(&p, "ptrace", &n)->errnum, EPERM);
	assert_int_equal(rules_for(&p, "mount", &n)->errnum, EACCES);
	assert_int_equal(rules_for(&p, "reboot", &n)->errnum, 13);
	assert_int_equal(rules_for(&p, "personality", &n)->act, SECCOMP_ACT_KILL);
	assert_int_equal(rules_for(&p, "uname", &n)->act, SECCOMP_ACT_LOG);
	assert_int_equal(rules_for(&p, "getpid", &n)->act, SECCOMP_ACT_ALLOW);
	r = rules_for(&p, "setns", &n);
	assert_int_equal(r->errnum, ENOSYS);
	assert_int_equal(r->line, 11);
	seccomp_policy_free(&p);
}

static void parse_default_and_baseline(void **state)
{
	struct seccomp_policy p;
	struct err e = {0};
	/* An allow list: kill by default. */
	assert_int_equal(parse(&p, "@default kill\nread allow\nwrite allow\nexit_group allow\n", &e), 0);
	assert_int_equal(p.default_act, SECCOMP_ACT_KILL);
	assert_int_equal(p.n, 3);
	seccomp_policy_free(&p);

	assert_int_equal(parse(&p, "@default errno ENOSYS\n", &e), 0);
	assert_int_equal(p.default_act, SECCOMP_ACT_ERRNO);
	assert_int_equal(p.default_errno, ENOSYS);
	seccomp_policy_free(&p);

	/* The baseline plus one's own rules; a file rule replaces the baseline's
	 * rules for that call (here the conditional clone rules), wherever the
	 * @baseline line is. */
	assert_int_equal(parse(&p, "clone allow\n@baseline\npersonality kill\nbpf errno ENOSYS\n", &e), 0);
	struct seccomp_policy base;
	assert_int_equal(seccomp_policy_baseline(&base, &e), 0);
	size_t n;
	const struct seccomp_rule *r = rules_for(&p, "clone", &n);
	assert_int_equal(n, 1);
	assert_int_equal(r->act, SECCOMP_ACT_ALLOW);
	r = rules_for(&p, "bpf", &n);
	assert_int_equal(n, 1);
	assert_int_equal(r->errnum, ENOSYS);
	assert_int_equal(rules_for(&p, "ptrace", &n)->errnum, EPERM);
	assert_int_equal(rules_for(&p, "clone3", &n)->errnum, ENOSYS);
	assert_non_null(rules_for(&p, "personality", &n));
	/* Every baseline rule but bpf's and the 7 clone ones, plus the file's 3. */
	assert_int_equal(p.n, base.n - 8 + 3);
	seccomp_policy_free(&base);
	seccomp_policy_free(&p);

	/* An empty file is an allow-everything policy. */
	assert_int_equal(parse(&p, "", &e), 0);
	assert_int_equal(p.n, 0);
	seccomp_policy_free(&p);
}

static void parse_errors(void **state)
{
	static const struct {
		const char *text, *needle;
	} cases[] = {
		{"bpf\nno_such_call\n", "f.sc line 2: unknown system call 'no_such_call'"},
		{"BPF\n", "f.sc line 1: 'BPF' is not a system call name"},
		{"open/at\n", "is not a system call name"},
		{"bpf deny\n", "f.sc line 1: unknown action 'deny'"},
		{"bpf errno EFOO\n", "unknown errno 'EFOO'"},
		{"bpf errno 0\n", "unknown errno '0'"},
		{"bpf errno 4096\n", "unknown errno '4096'"},
		{"bpf errno EPERM now\n", "unexpected 'now' after the action"},
		{"bpf allow kill\n", "unexpected 'kill' after the action"},
		{"bpf\n\nbpf kill\n", "f.sc line 3: second rule for 'bpf' (first on line 1)"},
		{"@default kill\n@default allow\n", "line 2: @default given twice"},
		{"@default\n", "line 1: @default needs an action"},
		{"@default maybe\n", "unknown action 'maybe'"},
		{"@baseline\n@baseline\n", "line 2: @baseline given twice"},
		{"@baseline strict\n", "@baseline takes no argument"},
		{"@include other.sc\n", "unknown directive '@include'"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct seccomp_policy p;
		struct err e = {0};
		if (parse(&p, cases[i].text, &e) != -1)
			fail_msg("case %zu: '%s' parsed", i, cases[i].text);
		if (!strstr(e.msg, cases[i].needle))
			fail_msg("case %zu: '%s' not in '%s'", i, cases[i].needle, e.msg);
		assert_null(p.rules);
	}
	/* A NUL byte inside the text, and a line longer than the parser's buffer. */
	struct seccomp_policy p;
	struct err e = {0};
	assert_int_equal(seccomp_policy_parse(&p, "bpf\nptr\0ace\n", 12, "f.sc", &e), -1);
	assert_non_null(strstr(e.msg, "line 2: NUL byte"));
	char big[2048];
	memset(big, 'a', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	assert_int_equal(parse(&p, big, &e), -1);
	assert_non_null(strstr(e.msg, "line too long"));
}

static char tmpdir[64];

static int make_tmpdir(void **state)
{
	snprintf(tmpdir, sizeof tmpdir, "/tmp/cellos-unit-seccomp-XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int remove_tmpdir(void **state)
{
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static void write_file(const char *path, const char *text, size_t len)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, len, f), len);
	fclose(f);
}

/* fstat, failing on demand: this binary is linked with -Wl,--wrap=fstat
 * (Makefile). A failed fstat writes nothing, so the caller's buffer keeps
 * whatever was on its stack: here, what looks like a huge regular file. */
int __real_fstat(int fd, struct stat *st);
int __wrap_fstat(int fd, struct stat *st);
static int fstat_fails; /* the errno to fail with; 0: the real call */

int __wrap_fstat(int fd, struct stat *st)
{
	if (!fstat_fails)
		return __real_fstat(fd, st);
	memset(st, 0, sizeof *st);
	st->st_mode = S_IFREG | 0644;
	st->st_size = 1 << 30;
	errno = fstat_fails;
	return -1;
}

static void load_file(void **state)
{
	char path[128];
	struct seccomp_policy p;
	struct err e = {0};
	snprintf(path, sizeof path, "%s/ok.sc", tmpdir);
	write_file(path, "@baseline\npersonality kill\n", 27);
	assert_int_equal(seccomp_policy_load_file(&p, path, &e), 0);
	size_t n;
	assert_non_null(rules_for(&p, "personality", &n));
	assert_non_null(rules_for(&p, "bpf", &n));
	seccomp_policy_free(&p);

	/* Messages name the file (and the line). */
	snprintf(path, sizeof path, "%s/bad.sc", tmpdir);
	write_file(path, "bpf\nfrobnicate\n", 15);
	assert_int_equal(seccomp_policy_load_file(&p, path, &e), -1);
	char want[256];
	snprintf(want, sizeof want, "%s line 2: unknown system call 'frobnicate'", path);
	assert_string_equal(e.msg, want);

	snprintf(path, sizeof path, "%s/missing.sc", tmpdir);
	assert_int_equal(seccomp_policy_load_file(&p, path, &e), -1);
	assert_non_null(strstr(e.msg, path));
	assert_non_null(strstr(e.msg, "No such file or directory"));

	assert_int_equal(seccomp_policy_load_file(&p, tmpdir, &e), -1);
	assert_non_null(strstr(e.msg, "not a regular file"));

	snprintf(path, sizeof path, "%s/huge.sc", tmpdir);
	size_t len = (1 << 20) + 1;
	char *huge = malloc(len);
	assert_non_null(huge);
	memset(huge, '\n', len);
	write_file(path, huge, len);
	free(huge);
	assert_int_equal(seccomp_policy_load_file(&p, path, &e), -1);
	assert_non_null(strstr(e.msg, "larger than 1 MiB"));

	/* A failed fstat is reported as that, not judged by its buffer. */
	snprintf(path, sizeof path, "%s/ok.sc", tmpdir);
	fstat_fails = EIO;
	int rc = seccomp_policy_load_file(&p, path, &e);
	fstat_fails = 0;
	assert_int_equal(rc, -1);
	snprintf(want, sizeof want, "cannot read %s: Input/output error", path);
	assert_string_equal(e.msg, want);
	/* Not a regular file is said so, whatever errno held before. */
	errno = ENOENT;
	assert_int_equal(seccomp_policy_load_file(&p, "/dev/null", &e), -1);
	assert_string_equal(e.msg, "/dev/null: not a regular file");
}

/* ---- the compiled filter, in a child ---- */

static void compile_policies(void **state)
{
	struct seccomp_policy p;
	struct sock_fprog prog;
	struct err e = {0};
	assert_int_equal(seccomp_policy_baseline(&p, &e), 0);
	assert_int_equal(seccomp_policy_compile(&p, &prog, &e), 0);
	assert_non_null(prog.filter);
	assert_true(prog.len > 10 && prog.len < 512);
	free(prog.filter);
	seccomp_policy_free(&p);

	/* A rule that repeats the default, and a call that does not exist on this
	 * architecture, are accepted and simply have nothing to add. */
	assert_int_equal(parse(&p, "@default errno EPERM\nbpf errno EPERM\nsocketcall allow\nread allow\n", &e), 0);
	assert_int_equal(seccomp_policy_compile(&p, &prog, &e), 0);
	free(prog.filter);
	seccomp_policy_free(&p);
}

/* The build compiles the baseline once (src/isolate/gen/); what it embedded must
 * be exactly what libseccomp makes of the baseline now, and of a file that says
 * only "@baseline". */
static void baseline_precompiled_matches_libseccomp(void **state)
{
	assert_true(seccomp_baseline_precompiled());
	struct seccomp_policy p, f;
	struct sock_fprog fast, slow, file;
	struct err e = {0};
	assert_int_equal(seccomp_policy_baseline(&p, &e), 0);
	assert_int_equal(seccomp_policy_compile(&p, &fast, &e), 0);
	assert_int_equal(seccomp_policy_compile_libseccomp(&p, &slow, &e), 0);
	assert_int_equal(parse(&f, "@baseline\n", &e), 0);
	assert_false(f.baseline);
	assert_int_equal(seccomp_policy_compile(&f, &file, &e), 0);
	assert_int_equal(fast.len, slow.len);
	assert_memory_equal(fast.filter, slow.filter, fast.len * sizeof *fast.filter);
	assert_int_equal(file.len, slow.len);
	assert_memory_equal(file.filter, slow.filter, slow.len * sizeof *slow.filter);
	free(fast.filter);
	free(slow.filter);
	free(file.filter);
	seccomp_policy_free(&p);
	seccomp_policy_free(&f);
}

static void *thread_fn(void *arg) { return arg; }

/* Each probe runs in the filtered child; returns 0 when the call behaved as
 * the baseline promises, else a code saying which probe failed. */
static int probe_baseline(void)
{
	errno = 0;
	if (syscall(SYS_bpf, 0, NULL, 0) != -1 || errno != EPERM)
		return 1;
	struct clone_args ca = {.exit_signal = SIGCHLD};
	if (syscall(SYS_clone3, &ca, sizeof ca) != -1 || errno != ENOSYS)
		return 2;
	if (unshare(CLONE_NEWUSER) != -1 || errno != EPERM)
		return 3;
	if (mount("none", "/tmp", "tmpfs", 0, NULL) != -1 || errno != EPERM)
		return 4;
	if (syscall(SYS_clone, CLONE_NEWNET | SIGCHLD, NULL, NULL, NULL, 0) != -1 || errno != EPERM)
		return 5;
	if (syscall(SYS_ptrace, 0 /* PTRACE_TRACEME */, 0, 0, 0) != -1 || errno != EPERM)
		return 6;
	char c = 'x';
	/* High bits set in the request must not slip past the filter. */
	if (syscall(SYS_ioctl, 0, 0xdead000000000000ul | TIOCSTI, &c) != -1 || errno != EPERM)
		return 7;
	/* vsock ignores network namespaces: no such family in a cell. */
	if (socket(AF_VSOCK, SOCK_STREAM, 0) != -1 || errno != EAFNOSUPPORT)
		return 11;
	int sv[2];
	if (socketpair(AF_VSOCK, SOCK_STREAM, 0, sv) != -1 || errno != EAFNOSUPPORT)
		return 12;
	if (syscall(SYS_socket, 0x1234ul << 32 | AF_VSOCK, SOCK_STREAM, 0) != -1 || errno != EAFNOSUPPORT)
		return 13;
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd < 0)
		return 14;
	close(fd);
	/* Line discipline changes: EPERM before the kernel looks at the fd
	 * (without the filter this one is EBADF). */
	int ldisc = 0;
	if (syscall(SYS_ioctl, -1, 0xdead000000000000ul | TIOCSETD, &ldisc) != -1 || errno != EPERM)
		return 15;
	/* Ordinary work goes on: threads (glibc falls back from clone3 to clone),
	 * fork, plain calls. */
	pthread_t t;
	if (pthread_create(&t, NULL, thread_fn, NULL) != 0 || pthread_join(t, NULL) != 0)
		return 8;
	pid_t pid = fork();
	if (pid == 0)
		_exit(0);
	int st;
	if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st))
		return 9;
	if (getpid() <= 0)
		return 10;
	return 0;
}

/* In a forked child, the default action for the signals a faulting call raises.
 * cmocka (and ASan) catch them to report a crashed test: a child would then go
 * on running the test runner in the parent's place instead of dying of the
 * signal the parent wants to see. */
static void default_fault_signals(void)
{
	static const int sigs[] = {SIGSEGV, SIGSYS, SIGBUS, SIGILL, SIGFPE};
	for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
		signal(sigs[i], SIG_DFL);
}

/* Fork; the child runs `fn` without any filter. Returns the child's wait status. */
static int run_unfiltered(int (*fn)(void))
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		default_fault_signals();
		_exit(fn());
	}
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	return st;
}

/* Fork; the child installs `p` and runs `fn`. Returns the child's wait status. */
static int run_filtered(const struct seccomp_policy *p, int (*fn)(void))
{
	struct sock_fprog prog;
	struct err e = {0};
	assert_int_equal(seccomp_policy_compile(p, &prog, &e), 0);
	pid_t pid = fork();
	if (pid == 0) {
		default_fault_signals();
		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || seccomp_install(&prog, &e) < 0)
			_exit(100);
		_exit(fn());
	}
	free(prog.filter);
	assert_true(pid > 0);
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	return st;
}

static void baseline_behaviour(void **state)
{
	struct seccomp_policy p;
	struct err e = {0};
	assert_int_equal(seccomp_policy_baseline(&p, &e), 0);
	int st = run_filtered(&p, probe_baseline);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	seccomp_policy_free(&p);
}

static int int80_getpid(void)
{
	long r;
	/* The i386 ABI from a 64-bit process: getpid is 20 there. */
	__asm__ volatile("int $0x80" : "=a"(r) : "a"(20L) : "memory");
	return r > 0 ? 0 : 1;
}

/* 0: the call ran; 2: the kernel has no x32 ABI (ENOSYS); 1: anything else. */
static int x32_getpid(void)
{
	long r;
	__asm__ volatile("syscall" : "=a"(r) : "a"(0x40000000L | 39L) : "rcx", "r11", "memory");
	return r > 0 ? 0 : r == -ENOSYS ? 2 : 1;
}

static void expect_signal(int st, int sig, const char *what)
{
	if (!WIFSIGNALED(st) || WTERMSIG(st) != sig)
		fail_msg("%s: wait status %#x, expected death by signal %d (%s)", what, st, sig, strsignal(sig));
}

/* Kernels differ on the i386 ABI: most run `int $0x80` from a 64-bit process;
 * one built without IA32 emulation, or booted with it off, refuses the whole ABI
 * with SIGSEGV before any seccomp filter sees the call. The control without a
 * filter says which kind this is, and the filter is held to it: SIGSYS where the
 * kernel would run the call (a SIGSEGV there would mean the filter did nothing),
 * SIGSEGV where the kernel refuses it. */
static void foreign_abis_are_killed(void **state)
{
	int st = run_unfiltered(int80_getpid);
	bool kernel_runs_i386 = WIFEXITED(st) && WEXITSTATUS(st) == 0;
	if (!kernel_runs_i386 && !(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV))
		fail_msg("int $0x80 without a filter neither ran nor was refused: wait status %#x", st);
	/* x32 calls come through the 64-bit entry, where the filter sees them before
	 * the kernel looks at the ABI: without the filter they return (a pid, or
	 * ENOSYS where the kernel has no x32), so a SIGSYS is the filter's doing. */
	st = run_unfiltered(x32_getpid);
	if (!WIFEXITED(st) || (WEXITSTATUS(st) != 0 && WEXITSTATUS(st) != 2))
		fail_msg("an x32 call without a filter: wait status %#x", st);

	/* Even an allow-everything policy kills a call through another ABI. */
	struct seccomp_policy p;
	struct err e = {0};
	assert_int_equal(parse(&p, "", &e), 0);
	st = run_filtered(&p, int80_getpid);
	expect_signal(st, kernel_runs_i386 ? SIGSYS : SIGSEGV,
		      kernel_runs_i386 ? "int $0x80 under the filter (this kernel runs i386 calls)"
				       : "int $0x80 under the filter (this kernel refuses i386 calls)");
	st = run_filtered(&p, x32_getpid);
	expect_signal(st, SIGSYS, "an x32 call under the filter");
	seccomp_policy_free(&p);
}

static int call_personality(void) { return (int)syscall(SYS_personality, 0xffffffff) < 0 ? 1 : 0; }
static int call_uname_errno(void)
{
	errno = 0;
	return syscall(SYS_getppid) == -1 && errno == 42 ? 0 : 1;
}

static void file_actions(void **state)
{
	struct seccomp_policy p;
	struct err e = {0};
	assert_int_equal(parse(&p, "personality kill\ngetppid errno 42\n", &e), 0);
	int st = run_filtered(&p, call_personality);
	assert_true(WIFSIGNALED(st));
	assert_int_equal(WTERMSIG(st), SIGSYS);
	st = run_filtered(&p, call_uname_errno);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	seccomp_policy_free(&p);
}

/* ---- capabilities ---- */

static long status_field(const char *name)
{
	FILE *f = fopen("/proc/self/status", "re");
	char line[256];
	long v = -1;
	size_t n = strlen(name);
	while (f && fgets(line, sizeof line, f))
		if (strncmp(line, name, n) == 0 && line[n] == ':')
			v = strtol(line + n + 1, NULL, 16);
	if (f)
		fclose(f);
	return v;
}

static void caps_in_two_halves(void **state)
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct err e = {0};
		if (caps_drop_bounding(&e) < 0)
			_exit(1);
		/* Still privileged (the init goes on mounting), but nothing to gain. */
		if (status_field("CapBnd") != 0 || status_field("CapEff") == 0)
			_exit(2);
		if (caps_drop_all(&e) < 0)
			_exit(3);
		if (status_field("CapEff") != 0 || status_field("CapPrm") != 0 || status_field("NoNewPrivs") != 1)
			_exit(4);
		_exit(0);
	}
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

static void caps_are_all_gone(void **state)
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct err e = {0};
		if (caps_drop_all(&e) < 0)
			_exit(1);
		if (status_field("CapEff") != 0 || status_field("CapPrm") != 0 || status_field("CapInh") != 0)
			_exit(2);
		if (status_field("CapBnd") != 0 || status_field("CapAmb") != 0)
			_exit(3);
		if (status_field("NoNewPrivs") != 1)
			_exit(4);
		/* Not even uid 0 gets them back. */
		if (prctl(PR_SET_SECUREBITS, 0, 0, 0, 0) != -1)
			_exit(5);
		_exit(0);
	}
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

/* ---- CELLOS_RUN_ARGV0_ALLOW_PREFIXES ---- */

static void argv0_normalisation(void **state)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{"/", "/"}, {"//", "/"}, {"/usr/bin/env", "/usr/bin/env"}, {"/usr//bin/./env", "/usr/bin/env"},
		{"/usr/bin/../../tmp/x", "/tmp/x"}, {"/../../etc", "/etc"}, {"/usr/bin/", "/usr/bin"},
		{"/a/b/..", "/a"}, {"/a/..", "/"},
	};
	char out[64];
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		assert_true(argv0_normalize(cases[i].in, out, sizeof out));
		assert_string_equal(out, cases[i].out);
	}
	assert_false(argv0_normalize("usr/bin", out, sizeof out));
	assert_false(argv0_normalize("./x", out, sizeof out));
	assert_false(argv0_normalize("/a/very/long/path/that/does/not/fit/in/sixteen", out, 16));
}

static void argv0_prefixes(void **state)
{
	char *prefixes[] = {"/usr/bin", "/opt/tools/", NULL};
	assert_true(argv0_allowed("/usr/bin/env", prefixes));
	assert_true(argv0_allowed("/usr/bin/sub/dir/x", prefixes));
	assert_true(argv0_allowed("/opt/tools/run", prefixes));
	assert_true(argv0_allowed("/usr//bin/./env", prefixes));
	assert_false(argv0_allowed("/usr/bin2/x", prefixes));
	assert_false(argv0_allowed("/usr/bin", prefixes));
	assert_false(argv0_allowed("/usr/bin/../../tmp/evil", prefixes));
	assert_false(argv0_allowed("/tmp/x", prefixes));
	assert_false(argv0_allowed("relative/usr/bin/x", prefixes));
	assert_false(argv0_allowed("./x", prefixes));
	char *root[] = {"/", NULL};
	assert_true(argv0_allowed("/anything/at/all", root));
	assert_false(argv0_allowed("relative", root));
	assert_true(argv0_allowed("relative", NULL));
	char *none[] = {NULL};
	assert_false(argv0_allowed("/usr/bin/env", none));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(baseline_content),
		cmocka_unit_test(parse_rules_and_actions),
		cmocka_unit_test(parse_default_and_baseline),
		cmocka_unit_test(parse_errors),
		cmocka_unit_test_setup_teardown(load_file, make_tmpdir, remove_tmpdir),
		cmocka_unit_test(compile_policies),
		cmocka_unit_test(baseline_precompiled_matches_libseccomp),
		cmocka_unit_test(baseline_behaviour),
		cmocka_unit_test(foreign_abis_are_killed),
		cmocka_unit_test(file_actions),
		cmocka_unit_test(caps_are_all_gone),
		cmocka_unit_test(caps_in_two_halves),
		cmocka_unit_test(argv0_normalisation),
		cmocka_unit_test(argv0_prefixes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
