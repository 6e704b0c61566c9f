/* Unit tests for src/backend/oci_bundle.c: the OCI bundle (config.json) of a cell. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <sched.h>
#include <string.h>
#include <sys/ioctl.h>

#include "backend/oci_bundle.h"

static const char DOC[] =
	"{\"apiVersion\": \"cellos.io/v1\", \"kind\": \"ExecutionCell\", \"spec\": {"
	" \"id\": \"a-cell-whose-id-is-longer-than-sixty-four-bytes-so-the-hostname-is-cut-short-x\","
	" \"authority\": {\"secretRefs\": [\"TOKEN\"]}, \"lifetime\": {\"ttlSeconds\": 60},"
	" \"run\": {\"argv\": [\"/usr/bin/make\", \"test\"], \"workingDirectory\": \"/work/space\","
	"  \"limits\": {\"memoryMaxBytes\": 1048576, \"cpuMax\": {\"quotaMicros\": 50000}, \"pidsMax\": 16}}}}";

struct fixture {
	struct spec spec;
	struct cell cell;
};

static char *envp[] = {"PATH=/usr/bin:/bin", "CELLOS_CELL_ID=x", "TOKEN=s3cret", NULL};

static int setup(void **state)
{
	static struct fixture f;
	memset(&f, 0, sizeof f);
	struct problems probs = {0};
	assert_int_equal(spec_parse(DOC, strlen(DOC), false, &f.spec, &probs), 0);
	f.cell.spec = &f.spec;
	f.cell.envp = envp;
	f.cell.limits = (struct cgroup_limits){.memory_max = 1048576, .cpu_quota = 50000, .cpu_period = 100000,
					       .pids_max = 16};
	*state = &f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	spec_free(&f->spec);
	return 0;
}

static json_t *build(struct fixture *f, long long pids_rlimit, const struct oci_hook *pre)
{
	struct oci_bundle_args a = {.cell = &f->cell, .root = "/run/x/rootfs", .cwd = "/work/space",
				    .pids_rlimit = pids_rlimit, .prestart = pre};
	struct err e = {0};
	json_t *doc = oci_bundle_config(&a, &e);
	assert_non_null(doc);
	return doc;
}

static void test_process(void **state)
{
	json_t *doc = build(*state, 0, NULL);
	json_t *p = json_object_get(doc, "process");
	assert_string_equal(json_string_value(json_array_get(json_object_get(p, "args"), 0)), "/usr/bin/make");
	assert_int_equal(json_array_size(json_object_get(p, "args")), 2);
	/* The environment as given, secrets included, nothing added. */
	json_t *env = json_object_get(p, "env");
	assert_int_equal(json_array_size(env), 3);
	assert_string_equal(json_string_value(json_array_get(env, 2)), "TOKEN=s3cret");
	assert_string_equal(json_string_value(json_object_get(p, "cwd")), "/work/space");
	assert_true(json_is_true(json_object_get(p, "noNewPrivileges")));
	json_t *caps = json_object_get(p, "capabilities");
	const char *k;
	json_t *v;
	json_object_foreach(caps, k, v) assert_int_equal(json_array_size(v), 0);
	assert_int_equal(json_object_size(caps), 5);
	/* No RLIMIT_NPROC unless asked; RLIMIT_CORE 0 always. */
	json_t *rl = json_object_get(p, "rlimits");
	assert_int_equal(json_array_size(rl), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(rl, 1), "type")), "RLIMIT_CORE");
	assert_int_equal(json_integer_value(json_object_get(json_array_get(rl, 1), "hard")), 0);
	json_decref(doc);
}

static void test_root_hostname_mounts_namespaces(void **state)
{
	json_t *doc = build(*state, 0, NULL);
	json_t *root = json_object_get(doc, "root");
	assert_string_equal(json_string_value(json_object_get(root, "path")), "/run/x/rootfs");
	assert_true(json_is_true(json_object_get(root, "readonly")));
	assert_int_equal(strlen(json_string_value(json_object_get(doc, "hostname"))), 64);
	bool tmp = false, work = false;
	size_t i;
	json_t *m;
	json_array_foreach(json_object_get(doc, "mounts"), i, m) {
		const char *d = json_string_value(json_object_get(m, "destination"));
		tmp |= strcmp(d, "/tmp") == 0 && strcmp(json_string_value(json_object_get(m, "type")), "tmpfs") == 0;
		work |= strcmp(d, "/work/space") == 0 && strcmp(json_string_value(json_object_get(m, "type")), "tmpfs") == 0;
	}
	assert_true(tmp);
	assert_true(work);
	json_t *lin = json_object_get(doc, "linux");
	assert_int_equal(json_array_size(json_object_get(lin, "namespaces")), 5);
	assert_null(json_object_get(lin, "cgroupsPath"));
	assert_null(json_object_get(doc, "hooks"));
	json_decref(doc);
}

static void test_resources_and_nproc(void **state)
{
	static const char *const argv[] = {"/bin/sh", "-c", "exit 0", NULL};
	struct oci_hook pre = {argv, NULL};
	json_t *doc = build(*state, 16, &pre);
	json_t *r = json_object_get(json_object_get(doc, "linux"), "resources");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "memory"), "limit")), 1048576);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "cpu"), "quota")), 50000);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "cpu"), "period")), 100000);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "pids"), "limit")), 16);
	json_t *rl = json_object_get(json_object_get(doc, "process"), "rlimits");
	assert_string_equal(json_string_value(json_object_get(json_array_get(rl, 2), "type")), "RLIMIT_NPROC");
	json_t *hook = json_array_get(json_object_get(json_object_get(doc, "hooks"), "prestart"), 0);
	assert_string_equal(json_string_value(json_object_get(hook, "path")), "/bin/sh");
	assert_int_equal(json_array_size(json_object_get(hook, "args")), 3);
	json_decref(doc);
}

/* run.mounts as binds, interleaved with the workspace (/work/space) outermost
 * first: the runtime applies mounts in order. */
static void test_binds(void **state)
{
	struct fixture *f = *state;
	struct oci_bind binds[] = {{"/run/x/mounts/2", "/src", true},
				   {"/run/x/mounts/0", "/work/out", false},
				   {"/run/x/mounts/1", "/work/space/in", true}};
	struct oci_bundle_args a = {.cell = &f->cell, .root = "/run/x/rootfs", .cwd = "/", .binds = binds, .n_binds = 3};
	struct err e = {0};
	json_t *doc = oci_bundle_config(&a, &e);
	assert_non_null(doc);
	json_t *mounts = json_object_get(doc, "mounts");
	size_t n = json_array_size(mounts);
	assert_true(n >= 4);
	const char *want[] = {"/src", "/work/out", "/work/space", "/work/space/in"};
	for (size_t k = 0; k < 4; k++) {
		json_t *m = json_array_get(mounts, n - 4 + k);
		assert_string_equal(json_string_value(json_object_get(m, "destination")), want[k]);
	}
	json_t *src = json_array_get(mounts, n - 4), *out = json_array_get(mounts, n - 3);
	assert_string_equal(json_string_value(json_object_get(src, "type")), "bind");
	assert_string_equal(json_string_value(json_object_get(src, "source")), "/run/x/mounts/2");
	const char *ro[] = {"rbind", "ro", "nosuid", "nodev"}, *rw[] = {"rbind", "rw", "nosuid", "nodev"};
	for (size_t k = 0; k < 4; k++) {
		assert_string_equal(json_string_value(json_array_get(json_object_get(src, "options"), k)), ro[k]);
		assert_string_equal(json_string_value(json_array_get(json_object_get(out, "options"), k)), rw[k]);
	}
	json_decref(doc);
}

static void test_relative_paths_are_refused(void **state)
{
	struct fixture *f = *state;
	struct oci_bundle_args a = {.cell = &f->cell, .root = "rootfs", .cwd = "/"};
	struct err e = {0};
	assert_null(oci_bundle_config(&a, &e));
	assert_non_null(strstr(e.msg, "absolute"));
}

/* ---- linux.seccomp (backend/oci_seccomp.h, docs/seccomp.md) ---- */

/* The bundle of the fixture's cell with policy p in dialect d; NULL with *e set. */
static json_t *build_seccomp(struct fixture *f, const struct seccomp_policy *p, enum oci_seccomp_dialect d,
			     struct err *e)
{
	struct oci_bundle_args a = {.cell = &f->cell, .root = "/r", .cwd = "/", .seccomp = p, .seccomp_dialect = d};
	return oci_bundle_config(&a, e);
}

static json_t *seccomp_of(json_t *doc) { return json_object_get(json_object_get(doc, "linux"), "seccomp"); }

/* The syscalls[] entries naming `name`; *n receives how many (each names one call). */
static json_t *entries_for(json_t *sc, const char *name, size_t *n)
{
	json_t *first = NULL, *ent;
	size_t i;
	*n = 0;
	json_array_foreach(json_object_get(sc, "syscalls"), i, ent) {
		assert_int_equal(json_array_size(json_object_get(ent, "names")), 1);
		if (strcmp(json_string_value(json_array_get(json_object_get(ent, "names"), 0)), name) == 0) {
			if (!first)
				first = ent;
			(*n)++;
		}
	}
	return first;
}

static const char *action(json_t *ent) { return json_string_value(json_object_get(ent, "action")); }
static json_int_t errno_ret(json_t *ent) { return json_integer_value(json_object_get(ent, "errnoRet")); }

static void no_seccomp_without_a_policy(void **state)
{
	json_t *doc = build(*state, 0, NULL);
	assert_null(seccomp_of(doc));
	json_decref(doc);
}

/* The baseline as runc and crun get it: exactly the stub's filter. */
static void baseline_for_libseccomp_runtimes(void **state)
{
	struct seccomp_policy p;
	struct err e = {0};
	assert_int_equal(seccomp_policy_baseline(&p, &e), 0);
	json_t *doc = build_seccomp(*state, &p, OCI_SECCOMP_LIBSECCOMP, &e);
	assert_non_null(doc);
	json_t *sc = seccomp_of(doc);
	assert_string_equal(json_string_value(json_object_get(sc, "defaultAction")), "SCMP_ACT_ALLOW");
	assert_null(json_object_get(sc, "defaultErrnoRet"));
	/* The native ABI only: the runtime's bad-architecture action for the rest. */
	json_t *arch = json_object_get(sc, "architectures");
	assert_int_equal(json_array_size(arch), 1);
	assert_string_equal(json_string_value(json_array_get(arch, 0)), "SCMP_ARCH_X86_64");
	size_t n;
	static const char *const eperm[] = {"unshare", "mount", "setns", "ptrace", "keyctl", "bpf", "io_uring_setup",
					    "open_by_handle_at"};
	for (size_t i = 0; i < sizeof eperm / sizeof eperm[0]; i++) {
		json_t *ent = entries_for(sc, eperm[i], &n);
		assert_int_equal(n, 1);
		assert_string_equal(action(ent), "SCMP_ACT_ERRNO");
		assert_int_equal(errno_ret(ent), EPERM);
		assert_null(json_object_get(ent, "args"));
	}
	json_t *ent = entries_for(sc, "clone3", &n);
	assert_int_equal(n, 1);
	assert_string_equal(action(ent), "SCMP_ACT_ERRNO");
	assert_int_equal(errno_ret(ent), ENOSYS);
	/* clone: one entry per CLONE_NEW* flag, (flags & F) == F. */
	ent = entries_for(sc, "clone", &n);
	assert_int_equal(n, 7);
	bool newuser = false;
	size_t i;
	json_t *c;
	json_array_foreach(json_object_get(sc, "syscalls"), i, c) {
		if (strcmp(json_string_value(json_array_get(json_object_get(c, "names"), 0)), "clone") != 0)
			continue;
		json_t *args = json_object_get(c, "args");
		assert_int_equal(json_array_size(args), 1);
		json_t *a = json_array_get(args, 0);
		assert_int_equal(json_integer_value(json_object_get(a, "index")), 0);
		assert_string_equal(json_string_value(json_object_get(a, "op")), "SCMP_CMP_MASKED_EQ");
		assert_int_equal(json_integer_value(json_object_get(a, "value")),
				 json_integer_value(json_object_get(a, "valueTwo")));
		newuser |= json_integer_value(json_object_get(a, "value")) == CLONE_NEWUSER;
		assert_int_equal(errno_ret(c), EPERM);
	}
	assert_true(newuser);
	/* ioctl: the low 32 bits of the request, as the kernel reads it. */
	ent = entries_for(sc, "ioctl", &n);
	assert_int_equal(n, 3); /* TIOCSTI, TIOCLINUX, TIOCSETD */
	json_t *a = json_array_get(json_object_get(ent, "args"), 0);
	assert_int_equal(json_integer_value(json_object_get(a, "index")), 1);
	assert_int_equal(json_integer_value(json_object_get(a, "value")), 0xffffffff);
	assert_int_equal(json_integer_value(json_object_get(a, "valueTwo")), TIOCSTI);
	/* Every rule of the policy is there, nothing else. */
	assert_int_equal(json_array_size(json_object_get(sc, "syscalls")), p.n);
	json_decref(doc);
	seccomp_policy_free(&p);
}

/* runsc ignores errnoRet: ENOSYS is written as SCMP_ACT_TRACE (no tracer: ENOSYS;
 * none can exist, the baseline denies ptrace); EPERM stays. */
static void baseline_for_runsc(void **state)
{
	struct seccomp_policy p;
	struct err e = {0};
	assert_int_equal(seccomp_policy_baseline(&p, &e), 0);
	json_t *doc = build_seccomp(*state, &p, OCI_SECCOMP_RUNSC, &e);
	assert_non_null(doc);
	json_t *sc = seccomp_of(doc);
	size_t n;
	json_t *ent = entries_for(sc, "clone3", &n);
	assert_int_equal(n, 1);
	assert_string_equal(action(ent), "SCMP_ACT_TRACE");
	assert_null(json_object_get(ent, "errnoRet"));
	ent = entries_for(sc, "unshare", &n);
	assert_string_equal(action(ent), "SCMP_ACT_ERRNO");
	assert_int_equal(errno_ret(ent), EPERM);
	entries_for(sc, "clone", &n);
	assert_int_equal(n, 7);
	entries_for(sc, "ioctl", &n);
	assert_int_equal(n, 3);
	/* The baseline's EAFNOSUPPORT for AF_VSOCK cannot be said to runsc: it is
	 * denied with EPERM rather than refusing every gVisor cell (SPEC §3). */
	ent = entries_for(sc, "socket", &n);
	assert_int_equal(n, 1);
	assert_string_equal(action(ent), "SCMP_ACT_ERRNO");
	assert_int_equal(errno_ret(ent), EPERM);
	assert_int_equal(json_array_size(json_object_get(sc, "syscalls")), p.n);
	json_decref(doc);
	seccomp_policy_free(&p);
}

static const char FILE_POLICY[] = "@default errno EPERM\n"
				  "@baseline\n"
				  "read allow\n"
				  "personality kill\n"
				  "uname errno EACCES\n"
				  "getpid log\n"
				  "keyctl errno ENOSYS\n"
				  "unshare errno EPERM\n";

static void filter_file_for_libseccomp_runtimes(void **state)
{
	struct seccomp_policy p;
	struct err e = {0};
	assert_int_equal(seccomp_policy_parse(&p, FILE_POLICY, strlen(FILE_POLICY), "f.sc", &e), 0);
	json_t *doc = build_seccomp(*state, &p, OCI_SECCOMP_LIBSECCOMP, &e);
	assert_non_null(doc);
	json_t *sc = seccomp_of(doc);
	assert_string_equal(json_string_value(json_object_get(sc, "defaultAction")), "SCMP_ACT_ERRNO");
	assert_int_equal(json_integer_value(json_object_get(sc, "defaultErrnoRet")), EPERM);
	size_t n;
	assert_string_equal(action(entries_for(sc, "read", &n)), "SCMP_ACT_ALLOW");
	assert_string_equal(action(entries_for(sc, "personality", &n)), "SCMP_ACT_KILL_PROCESS");
	assert_string_equal(action(entries_for(sc, "getpid", &n)), "SCMP_ACT_LOG");
	json_t *ent = entries_for(sc, "uname", &n);
	assert_string_equal(action(ent), "SCMP_ACT_ERRNO");
	assert_int_equal(errno_ret(ent), EACCES);
	assert_int_equal(errno_ret(entries_for(sc, "keyctl", &n)), ENOSYS);
	/* A rule that repeats the default is left out (as libseccomp would have it). */
	entries_for(sc, "unshare", &n);
	assert_int_equal(n, 0);
	/* The baseline's conditions came along; its unconditional EPERM rules are the default's now. */
	entries_for(sc, "clone", &n);
	assert_int_equal(n, 0);
	assert_string_equal(action(entries_for(sc, "clone3", &n)), "SCMP_ACT_ERRNO");
	json_decref(doc);
	seccomp_policy_free(&p);
}

/* What runsc cannot enforce as written is refused, naming the line. */
static void filter_file_for_runsc(void **state)
{
	static const struct {
		const char *text, *msg;
	} refused[] = {
		{"uname errno EACCES\n", "line 1: errno EACCES cannot be enforced by runsc"},
		{"# audit\n\ngetpid log\n", "line 3: log cannot be enforced by runsc"},
		{"@default errno EACCES\nread allow\n", "@default: errno EACCES cannot be enforced by runsc"},
		/* ptrace allowed (the default): a tracer could let an ENOSYS call run. */
		{"clone3 errno ENOSYS\n", "line 1: errno ENOSYS cannot be enforced by runsc while the filter allows ptrace"},
		{"@baseline\nptrace allow\n", "errno ENOSYS cannot be enforced by runsc while the filter allows ptrace"},
	};
	for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
		struct seccomp_policy p;
		struct err e = {0};
		assert_int_equal(seccomp_policy_parse(&p, refused[i].text, strlen(refused[i].text), "f.sc", &e), 0);
		assert_null(build_seccomp(*state, &p, OCI_SECCOMP_RUNSC, &e));
		if (!strstr(e.msg, refused[i].msg))
			fail_msg("%s -> %s", refused[i].text, e.msg);
		/* runc and crun take every one of them. */
		json_t *doc = build_seccomp(*state, &p, OCI_SECCOMP_LIBSECCOMP, &e);
		assert_non_null(doc);
		json_decref(doc);
		seccomp_policy_free(&p);
	}

	static const char ok[] = "@default kill\nptrace errno EPERM\nkeyctl errno ENOSYS\nread allow\n";
	struct seccomp_policy p;
	struct err e = {0};
	assert_int_equal(seccomp_policy_parse(&p, ok, strlen(ok), "f.sc", &e), 0);
	json_t *doc = build_seccomp(*state, &p, OCI_SECCOMP_RUNSC, &e);
	assert_non_null(doc);
	json_t *sc = seccomp_of(doc);
	/* kill: SIGSYS to the caller (SCMP_ACT_KILL would end only the thread). */
	assert_string_equal(json_string_value(json_object_get(sc, "defaultAction")), "SCMP_ACT_TRAP");
	size_t n;
	assert_string_equal(action(entries_for(sc, "keyctl", &n)), "SCMP_ACT_TRACE");
	assert_string_equal(action(entries_for(sc, "ptrace", &n)), "SCMP_ACT_ERRNO");
	assert_string_equal(action(entries_for(sc, "read", &n)), "SCMP_ACT_ALLOW");
	json_decref(doc);
	seccomp_policy_free(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_process, setup, teardown),
		cmocka_unit_test_setup_teardown(test_root_hostname_mounts_namespaces, setup, teardown),
		cmocka_unit_test_setup_teardown(test_resources_and_nproc, setup, teardown),
		cmocka_unit_test_setup_teardown(test_binds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_relative_paths_are_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(no_seccomp_without_a_policy, setup, teardown),
		cmocka_unit_test_setup_teardown(baseline_for_libseccomp_runtimes, setup, teardown),
		cmocka_unit_test_setup_teardown(baseline_for_runsc, setup, teardown),
		cmocka_unit_test_setup_teardown(filter_file_for_libseccomp_runtimes, setup, teardown),
		cmocka_unit_test_setup_teardown(filter_file_for_runsc, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
