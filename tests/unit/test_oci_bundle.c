/* Unit tests for src/backend/oci_bundle.c: the OCI bundle (config.json) of a cell. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

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

static void test_relative_paths_are_refused(void **state)
{
	struct fixture *f = *state;
	struct oci_bundle_args a = {.cell = &f->cell, .root = "rootfs", .cwd = "/"};
	struct err e = {0};
	assert_null(oci_bundle_config(&a, &e));
	assert_non_null(strstr(e.msg, "absolute"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_process, setup, teardown),
		cmocka_unit_test_setup_teardown(test_root_hostname_mounts_namespaces, setup, teardown),
		cmocka_unit_test_setup_teardown(test_resources_and_nproc, setup, teardown),
		cmocka_unit_test_setup_teardown(test_relative_paths_are_refused, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
