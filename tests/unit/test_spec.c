/* Unit tests for src/spec/: the ExecutionCell document (SPEC §2).
 *
 * Documents are written with single quotes for readability and turned into JSON
 * by q(); field tests start from the SPEC's full example and change one member
 * through doc_with(), so each case shows exactly what it breaks. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spec/spec.h"

/* The example document of SPEC §2, verbatim. */
static const char FULL[] =
	"{'apiVersion': 'cellos.io/v1', 'kind': 'ExecutionCell', 'spec': {"
	" 'id': 'ci-build-42',"
	" 'correlation': {'correlationId': 'gh-run-123', 'tenantId': 'acme', 'labels': {'team': 'ci'}},"
	" 'authority': {"
	"  'secretRefs': ['GITHUB_TOKEN'],"
	"  'egressRules': [{'host': '192.0.2.10', 'port': 443, 'protocol': 'tcp'}],"
	"  'dnsAuthority': {'hostnameAllowlist': ['*.github.com'], 'resolvers': [{'resolverId': 'corp', "
	"'protocol': 'do53-udp', 'address': '10.0.0.53:53'}]}},"
	" 'lifetime': {'ttlSeconds': 900},"
	" 'run': {"
	"  'argv': ['/usr/bin/make', 'test'],"
	"  'secretDelivery': 'env',"
	"  'workingDirectory': '/work',"
	"  'env': {'CI': '1'},"
	"  'timeoutMs': 600000,"
	"  'limits': {'memoryMaxBytes': 2147483648, 'cpuMax': {'quotaMicros': 200000, 'periodMicros': 100000}, "
	"'pidsMax': 512, 'gracefulShutdownSeconds': 5}},"
	" 'export': {"
	"  'artifacts': [{'name': 'report.xml', 'path': '/work/report.xml', 'target': 'results'}],"
	"  'targets': [{'name': 'results', 'kind': 's3', 'bucket': 'ci', 'keyPrefix': 'runs'}]},"
	" 'policy': {'packId': 'default-ci', 'packVersion': '1.0.0'},"
	" 'identity': {'audience': 'sts.example.com'},"
	" 'placement': {'poolId': 'linux-small'}}}";

static const char MINIMAL[] =
	"{'apiVersion': 'cellos.io/v1', 'kind': 'ExecutionCell', 'spec': {"
	" 'id': 'min', 'authority': {'secretRefs': []}, 'lifetime': {'ttlSeconds': 60}}}";

/* ---- helpers ----------------------------------------------------------------- */

/* Single quotes to double quotes (no test document needs a literal '). */
static char *q(const char *s)
{
	char *d = strdup(s);
	assert_non_null(d);
	for (char *p = d; *p; p++)
		if (*p == '\'')
			*p = '"';
	return d;
}

static json_t *load_json(const char *text)
{
	char *t = q(text);
	json_error_t e;
	json_t *v = json_loads(t, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
	if (!v)
		fail_msg("bad test JSON %s: %s", t, e.text);
	free(t);
	return v;
}

/* Walks "a.b[2].c" to the parent of its last step; *key / *index name that step
 * (index -1: a key). */
static json_t *walk(json_t *root, char *path, char **key, long *index)
{
	json_t *cur = root;
	char *seg = path;
	for (;;) {
		char *dot = strchr(seg, '.');
		if (dot)
			*dot = '\0';
		char *br = strchr(seg, '[');
		long idx = -1;
		if (br) {
			*br = '\0';
			idx = strtol(br + 1, NULL, 10);
		}
		if (!dot) {
			if (idx < 0) {
				*key = seg;
				*index = -1;
				return cur;
			}
			cur = json_object_get(cur, seg);
			*key = NULL;
			*index = idx;
			return cur;
		}
		cur = json_object_get(cur, seg);
		if (idx >= 0)
			cur = json_array_get(cur, (size_t)idx);
		assert_non_null(cur);
		seg = dot + 1;
	}
}

/* `base` with the member at `path` replaced by the JSON `value`, or removed when
 * value is NULL. Returns malloc'd JSON text. */
static char *doc_with(const char *base, const char *path, const char *value)
{
	json_t *root = load_json(base);
	char *p = strdup(path), *key;
	long index;
	json_t *parent = walk(root, p, &key, &index);
	assert_non_null(parent);
	if (key && value)
		assert_int_equal(json_object_set_new(parent, key, load_json(value)), 0);
	else if (key)
		json_object_del(parent, key);
	else if (value)
		assert_int_equal(json_array_set_new(parent, (size_t)index, load_json(value)), 0);
	else
		json_array_remove(parent, (size_t)index);
	char *text = json_dumps(root, JSON_COMPACT);
	assert_non_null(text);
	free(p);
	json_decref(root);
	return text;
}

static bool model_is_empty(const struct spec *s)
{
	static const struct spec zero;
	return memcmp(s, &zero, sizeof zero) == 0;
}

static void dump_problems(const struct problems *p)
{
	for (size_t i = 0; i < p->n; i++)
		print_error("  problem: %s\n", p->items[i]);
}

/* Parses raw text and expects failure with `want` among the problems. */
static void expect_problem_raw(const char *text, size_t len, bool strict, const char *want)
{
	struct spec s;
	struct problems p = {0};
	memset(&s, 0xa5, sizeof s); /* spec_parse must clear it */
	int rc = spec_parse(text, len, strict, &s, &p);
	bool found = false;
	for (size_t i = 0; i < p.n; i++)
		found = found || strcmp(p.items[i], want) == 0;
	if (rc != -1 || !found) {
		dump_problems(&p);
		fail_msg("rc %d; expected problem: %s", rc, want);
	}
	assert_true(model_is_empty(&s));
	problems_free(&p);
}

static void expect_problem(const char *doc, bool strict, const char *want)
{
	char *t = q(doc);
	expect_problem_raw(t, strlen(t), strict, want);
	free(t);
}

/* JSON text that must give exactly this one problem. */
static void expect_only(const char *text, const char *want)
{
	struct spec s;
	struct problems p = {0};
	int rc = spec_parse(text, strlen(text), false, &s, &p);
	if (rc != -1 || p.n != 1 || strcmp(p.items[0], want) != 0) {
		dump_problems(&p);
		fail_msg("%s: rc %d, expected exactly: %s", text, rc, want);
	}
	assert_true(model_is_empty(&s));
	problems_free(&p);
}

/* FULL with one member changed must give exactly this one problem. */
static void expect_bad(const char *path, const char *value, const char *want)
{
	char *t = doc_with(FULL, path, value);
	expect_only(t, want);
	free(t);
}

/* Parses `text` (JSON, not q()-quoted) and expects success. */
static void parse_ok_text(const char *text, bool strict, struct spec *s)
{
	struct problems p = {0}, w = {0}; /* warnings (unknown keys) are tested on their own */
	int rc = spec_parse_ex(text, strlen(text), strict, s, &p, &w);
	if (rc != 0 || p.n != 0) {
		dump_problems(&p);
		fail_msg("expected a valid document: %s", text);
	}
	problems_free(&p);
	problems_free(&w);
}

/* FULL with one member changed must still be valid. */
static void expect_good(const char *path, const char *value)
{
	char *t = doc_with(FULL, path, value);
	struct spec s;
	parse_ok_text(t, false, &s);
	spec_free(&s);
	free(t);
}

/* ---- valid documents --------------------------------------------------------- */

static void test_full_document(void **state)
{
	(void)state;
	char *t = q(FULL);
	struct spec s;
	parse_ok_text(t, false, &s);
	free(t);

	assert_non_null(s.root);
	assert_string_equal(s.id, "ci-build-42");
	assert_non_null(s.correlation);
	assert_string_equal(json_string_value(json_object_get(s.correlation, "correlationId")), "gh-run-123");
	assert_string_equal(s.tenant_id, "acme");

	assert_int_equal(s.n_secret_refs, 1);
	assert_string_equal(s.secret_refs[0], "GITHUB_TOKEN");
	assert_int_equal(s.n_egress, 1);
	assert_string_equal(s.egress[0].host, "192.0.2.10");
	assert_int_equal(s.egress[0].port, 443);
	assert_int_equal(s.egress[0].proto, PROTO_TCP);
	assert_non_null(s.dns_authority);
	assert_string_equal(json_string_value(json_array_get(json_object_get(s.dns_authority, "hostnameAllowlist"), 0)),
			    "*.github.com");

	assert_int_equal(s.ttl_seconds, 900);

	assert_true(s.has_run);
	assert_int_equal(s.argc, 2);
	assert_string_equal(s.argv[0], "/usr/bin/make");
	assert_string_equal(s.argv[1], "test");
	assert_null(s.argv[2]);
	assert_int_equal(s.delivery, DELIVERY_ENV);
	assert_string_equal(s.working_directory, "/work");
	assert_int_equal(s.n_env, 1);
	assert_string_equal(s.env[0].key, "CI");
	assert_string_equal(s.env[0].value, "1");
	assert_int_equal(s.timeout_ms, 600000);
	assert_int_equal(s.memory_max_bytes, 2147483648LL);
	assert_int_equal(s.cpu_quota_micros, 200000);
	assert_int_equal(s.cpu_period_micros, 100000);
	assert_int_equal(s.pids_max, 512);
	assert_int_equal(s.graceful_shutdown_seconds, 5);

	assert_int_equal(s.n_artifacts, 1);
	assert_string_equal(s.artifacts[0].name, "report.xml");
	assert_string_equal(s.artifacts[0].path, "/work/report.xml");
	assert_string_equal(s.artifacts[0].target, "results");
	assert_int_equal(s.n_targets, 1);
	assert_string_equal(s.targets[0].name, "results");
	assert_string_equal(s.targets[0].kind, "s3");
	assert_string_equal(s.targets[0].bucket, "ci");
	assert_string_equal(s.targets[0].key_prefix, "runs");

	assert_string_equal(json_string_value(json_object_get(s.policy, "packId")), "default-ci");
	assert_string_equal(json_string_value(json_object_get(s.policy, "packVersion")), "1.0.0");
	assert_string_equal(json_string_value(json_object_get(s.identity, "audience")), "sts.example.com");
	assert_string_equal(json_string_value(json_object_get(s.placement, "poolId")), "linux-small");

	spec_free(&s);
	assert_true(model_is_empty(&s));
	spec_free(&s); /* idempotent */
}

static void test_full_document_strict(void **state)
{
	(void)state;
	char *t = q(FULL);
	struct spec s;
	parse_ok_text(t, true, &s);
	spec_free(&s);
	free(t);
}

static void test_minimal_document(void **state)
{
	(void)state;
	char *t = q(MINIMAL);
	struct spec s;
	parse_ok_text(t, true, &s);
	free(t);
	assert_string_equal(s.id, "min");
	assert_int_equal(s.ttl_seconds, 60);
	assert_int_equal(s.n_secret_refs, 0);
	assert_null(s.secret_refs);
	assert_int_equal(s.n_egress, 0);
	assert_null(s.correlation);
	assert_null(s.tenant_id);
	assert_null(s.dns_authority);
	assert_false(s.has_run);
	assert_null(s.argv);
	assert_int_equal(s.argc, 0);
	assert_int_equal(s.n_artifacts, 0);
	assert_int_equal(s.n_targets, 0);
	assert_null(s.policy);
	assert_null(s.identity);
	assert_null(s.placement);
	/* defaults */
	assert_int_equal(s.delivery, DELIVERY_ENV);
	assert_int_equal(s.cpu_period_micros, 100000);
	assert_int_equal(s.graceful_shutdown_seconds, 2);
	assert_int_equal(s.timeout_ms, 0);
	assert_int_equal(s.cpu_quota_micros, 0);
	spec_free(&s);
}

/* The shape of the upstream seed tests: a bare run, an egress rule without
 * protocol (tcp by default) and one with udp. */
static void test_run_defaults(void **state)
{
	(void)state;
	char *t = doc_with(MINIMAL, "spec.run", "{'secretDelivery': 'file', 'argv': ['true'], 'limits': {'cpuMax': "
						"{'quotaMicros': 5000}}}");
	char *t2 = doc_with(t, "spec.authority.egressRules",
			    "[{'host': '10.0.0.1', 'port': 443, 'protocol': 'tcp'}, {'host': '10.0.0.2', 'port': 80},"
			    " {'host': '2001:db8::/32', 'port': 53, 'protocol': 'udp'}]");
	struct spec s;
	parse_ok_text(t2, false, &s);
	assert_true(s.has_run);
	assert_int_equal(s.argc, 1);
	assert_string_equal(s.argv[0], "true");
	assert_null(s.argv[1]);
	assert_int_equal(s.delivery, DELIVERY_FILE);
	assert_null(s.working_directory);
	assert_int_equal(s.n_env, 0);
	assert_int_equal(s.cpu_quota_micros, 5000);
	assert_int_equal(s.cpu_period_micros, 100000);
	assert_int_equal(s.graceful_shutdown_seconds, 2);
	assert_int_equal(s.n_egress, 3);
	assert_int_equal(s.egress[1].proto, PROTO_TCP);
	assert_int_equal(s.egress[1].port, 80);
	assert_int_equal(s.egress[2].proto, PROTO_UDP);
	assert_string_equal(s.egress[2].host, "2001:db8::/32");
	spec_free(&s);
	free(t);
	free(t2);
}

/* null is "absent" for optional members (serde Option<T>), "missing" for required. */
static void test_null_is_absent(void **state)
{
	(void)state;
	expect_good("spec.correlation", "null");
	expect_good("spec.run.workingDirectory", "null");
	expect_good("spec.run.limits.cpuMax.periodMicros", "null");
	expect_bad("spec.id", "null", "spec.id: required string");
	expect_bad("spec.authority.secretRefs", "null", "spec.authority.secretRefs: required array");
}

/* ---- document-level failures ------------------------------------------------- */

static void test_duplicate_keys(void **state)
{
	(void)state;
	expect_problem("{'apiVersion': 'cellos.io/v1', 'apiVersion': 'cellos.io/v1'}", false,
		       "document: duplicate object key near '\"apiVersion\"' at line 1 column 43");
	/* deep inside, e.g. an env var smuggled twice */
	char *t = q(FULL);
	char *at = strstr(t, "\"CI\": \"1\"");
	assert_non_null(at);
	size_t n = strlen(t);
	char *dup = malloc(n + 32);
	assert_non_null(dup);
	size_t head = (size_t)(at - t);
	memcpy(dup, t, head);
	strcpy(dup + head, "\"CI\": \"2\", ");
	strcat(dup, at);
	struct spec s;
	struct problems p = {0};
	assert_int_equal(spec_parse(dup, strlen(dup), false, &s, &p), -1);
	assert_int_equal(p.n, 1);
	assert_non_null(strstr(p.items[0], "document: duplicate object key near '\"CI\"' at line 1 column"));
	assert_true(model_is_empty(&s));
	problems_free(&p);
	free(dup);
	free(t);
}

static void test_invalid_utf8(void **state)
{
	(void)state;
	const char doc[] = "{\"apiVersion\": \"cellos.io/v1\xff\"}";
	expect_problem_raw(doc, strlen(doc), false, "document: unable to decode byte 0xff near '\"cellos.io/v1' at "
						     "line 1 column 28");
	/* an overlong encoding of '/' and a lone continuation byte */
	const char overlong[] = "{\"a\": \"\xc0\xaf\"}";
	struct spec s;
	struct problems p = {0};
	assert_int_equal(spec_parse(overlong, strlen(overlong), false, &s, &p), -1);
	assert_int_equal(p.n, 1);
	assert_non_null(strstr(p.items[0], "document: unable to decode byte 0xc0"));
	problems_free(&p);
	const char lone[] = "{\"a\": \"\x80\"}";
	assert_int_equal(spec_parse(lone, strlen(lone), false, &s, &p), -1);
	assert_int_equal(p.n, 1);
	/* the message stays printable ASCII even though jansson quotes the input */
	for (const char *c = p.items[0]; *c; c++)
		assert_true(*c >= 0x20 && *c < 0x7f);
	problems_free(&p);
}

static void test_syntax_errors(void **state)
{
	(void)state;
	expect_problem_raw("", 0, false, "document: '[' or '{' expected near end of file at line 1 column 0");
	expect_problem("{'a': }", false, "document: unexpected token near '}' at line 1 column 7");
	expect_problem("{'a': 1} x", false, "document: end of file expected near 'x' at line 1 column 10");
	expect_problem("{'a': 1e400}", false, "document: real number overflow near '1e400' at line 1 column 11");
	expect_problem("{'a': 99999999999999999999}", false,
		       "document: too big integer near '99999999999999999999' at line 1 column 26");
	/* parse errors stop there: one problem, no validation */
	struct spec s;
	struct problems p = {0};
	assert_int_equal(spec_parse("[", 1, false, &s, &p), -1);
	assert_int_equal(p.n, 1);
	problems_free(&p);
}

static void test_not_an_object(void **state)
{
	(void)state;
	expect_problem("[1, 2]", false, "document: must be a JSON object");
	expect_problem("{}", false, "apiVersion: required, must be \"cellos.io/v1\"");
	expect_problem("{}", false, "kind: required, must be \"ExecutionCell\"");
	expect_problem("{}", false, "spec: required object");
	expect_bad("apiVersion", "'cellos.io/v2'", "apiVersion: must be \"cellos.io/v1\"");
	expect_bad("apiVersion", "1", "apiVersion: must be a string");
	expect_bad("kind", "'Cell'", "kind: must be \"ExecutionCell\"");
	expect_bad("spec", "[]", "spec: must be an object");
}

static void test_too_large(void **state)
{
	(void)state;
	/* exactly 1 MiB is allowed: the example padded with trailing whitespace */
	char *t = q(FULL);
	char *big = malloc(SPEC_MAX_BYTES + 1);
	assert_non_null(big);
	memset(big, ' ', SPEC_MAX_BYTES + 1);
	memcpy(big, t, strlen(t));
	struct spec s;
	struct problems p = {0};
	assert_int_equal(spec_parse(big, SPEC_MAX_BYTES, false, &s, &p), 0);
	spec_free(&s);
	assert_int_equal(spec_parse(big, SPEC_MAX_BYTES + 1, false, &s, &p), -1);
	assert_int_equal(p.n, 1);
	assert_string_equal(p.items[0], "document: larger than 1 MiB");
	assert_true(model_is_empty(&s));
	problems_free(&p);
	free(big);
	free(t);
}

/* MINIMAL plus an unknown member holding `levels` nested arrays (the top-level
 * object is one more level). */
static char *nested_doc(int levels)
{
	char *t = q(MINIMAL);
	size_t n = strlen(t);
	char *d = malloc(n + 2 * (size_t)levels + 16);
	assert_non_null(d);
	memcpy(d, t, n - 1); /* drop the final '}' */
	size_t o = n - 1;
	memcpy(d + o, ",\"x\":", 5);
	o += 5;
	for (int i = 0; i < levels; i++)
		d[o++] = '[';
	for (int i = 0; i < levels; i++)
		d[o++] = ']';
	d[o++] = '}';
	d[o] = '\0';
	free(t);
	return d;
}

static void test_depth(void **state)
{
	(void)state;
	struct spec s;
	char *ok = nested_doc(SPEC_MAX_DEPTH - 1); /* 64 levels in all */
	parse_ok_text(ok, false, &s);
	spec_free(&s);
	free(ok);

	char *deep = nested_doc(SPEC_MAX_DEPTH); /* 65 */
	expect_problem_raw(deep, strlen(deep), false, "document: nested deeper than 64 levels");
	free(deep);

	/* a million brackets: refused by the scan, cheaply */
	size_t n = SPEC_MAX_BYTES;
	char *huge = malloc(n);
	assert_non_null(huge);
	memset(huge, '[', n);
	expect_problem_raw(huge, n, false, "document: nested deeper than 64 levels");
	free(huge);

	/* brackets inside strings (even after escaped quotes) are not nesting */
	char *t = q(MINIMAL);
	char pad[512];
	memset(pad, '[', 200);
	pad[200] = '\0';
	size_t len = strlen(t);
	char *d = malloc(len + 512);
	assert_non_null(d);
	memcpy(d, t, len - 1);
	sprintf(d + len - 1, ",\"y\":\"\\\\\\\"%s\"}", pad);
	parse_ok_text(d, false, &s);
	spec_free(&s);
	free(d);
	free(t);
}

/* ---- field rules ------------------------------------------------------------- */

#define PORTABLE "must match [A-Za-z0-9][A-Za-z0-9._-]{0,127} and must not contain '..'"

static void test_id(void **state)
{
	(void)state;
	expect_good("spec.id", "'a'");
	expect_good("spec.id", "'A.b_c-9'");
	expect_good("spec.id", "'a23456789012345678901234567890123456789012345678901234567890123456789012345678901234567890"
			       "12345678901234567890123456789012345678'"); /* 128 */
	expect_bad("spec.id",
		   "'a23456789012345678901234567890123456789012345678901234567890123456789012345678901234567890"
		   "123456789012345678901234567890123456789'",
		   "spec.id: " PORTABLE); /* 129 */
	expect_bad("spec.id", "''", "spec.id: " PORTABLE);
	expect_bad("spec.id", "'-a'", "spec.id: " PORTABLE);
	expect_bad("spec.id", "'.a'", "spec.id: " PORTABLE);
	expect_bad("spec.id", "'a..b'", "spec.id: " PORTABLE);
	expect_bad("spec.id", "'a/b'", "spec.id: " PORTABLE);
	expect_bad("spec.id", "'a b'", "spec.id: " PORTABLE);
	expect_bad("spec.id", "'caf\\u00e9'", "spec.id: " PORTABLE);
	expect_bad("spec.id", NULL, "spec.id: required string");
	expect_bad("spec.id", "42", "spec.id: must be a string");
}

static void test_correlation(void **state)
{
	(void)state;
	const char *tenant = "spec.correlation.tenantId: must be non-empty without '.', '*', '>' or whitespace (it is "
			     "a NATS subject token)";
	expect_good("spec.correlation",
		    "{'correlationId': 'c', 'tenantId': 't-1_x', 'platform': 'gh', 'externalRunId': '1', "
		    "'externalJobId': '2', 'labels': {}}");
	expect_bad("spec.correlation.tenantId", "'a.b'", tenant);
	expect_bad("spec.correlation.tenantId", "'a*'", tenant);
	expect_bad("spec.correlation.tenantId", "'>'", tenant);
	expect_bad("spec.correlation.tenantId", "'a b'", tenant);
	expect_bad("spec.correlation.tenantId", "'a\\tb'", tenant);
	expect_bad("spec.correlation.tenantId", "''", tenant);
	expect_bad("spec.correlation.tenantId", "7", "spec.correlation.tenantId: must be a string");
	expect_bad("spec.correlation.correlationId", "[]", "spec.correlation.correlationId: must be a string");
	expect_bad("spec.correlation.platform", "1", "spec.correlation.platform: must be a string");
	expect_bad("spec.correlation.externalRunId", "1", "spec.correlation.externalRunId: must be a string");
	expect_bad("spec.correlation.externalJobId", "1", "spec.correlation.externalJobId: must be a string");
	expect_bad("spec.correlation.labels", "[]", "spec.correlation.labels: must be an object");
	expect_bad("spec.correlation.labels.team", "1", "spec.correlation.labels.team: must be a string");
	expect_bad("spec.correlation", "'x'", "spec.correlation: must be an object");
}

static void test_secret_refs(void **state)
{
	(void)state;
	const char *name = "must match [A-Za-z_][A-Za-z0-9_.-]{0,127}";
	char want[256];
	expect_good("spec.authority.secretRefs", "['_a', 'A_b9', 'x']");
	expect_good("spec.authority.secretRefs", "[]");
	expect_bad("spec.authority.secretRefs", "['A', 'B', 'A']", "spec.authority.secretRefs[2]: duplicate name \"A\"");
	snprintf(want, sizeof want, "spec.authority.secretRefs[0]: %s", name);
	expect_bad("spec.authority.secretRefs", "['1A']", want);
	expect_bad("spec.authority.secretRefs", "['-A']", want);
	expect_bad("spec.authority.secretRefs", "['A B']", want);
	expect_bad("spec.authority.secretRefs", "['']", want);
	expect_bad("spec.authority.secretRefs", "[5]", "spec.authority.secretRefs[0]: must be a string");
	expect_bad("spec.authority.secretRefs", "'A'", "spec.authority.secretRefs: must be an array");
	expect_bad("spec.authority.secretRefs", NULL, "spec.authority.secretRefs: required array");
	expect_bad("spec.authority", NULL, "spec.authority: required object");
	expect_bad("spec.authority", "[]", "spec.authority: must be an object");
}

/* FULL with these secretRefs, run.secretDelivery (NULL: absent) and run.env. */
static char *doc_secrets(const char *refs, const char *delivery, const char *env)
{
	char *a = doc_with(FULL, "spec.authority.secretRefs", refs);
	char *b = doc_with(a, "spec.run.secretDelivery", delivery);
	char *c = doc_with(b, "spec.run.env", env);
	free(a);
	free(b);
	return c;
}

static void secrets_good(const char *refs, const char *delivery, const char *env)
{
	char *t = doc_secrets(refs, delivery, env);
	struct spec s;
	parse_ok_text(t, false, &s);
	spec_free(&s);
	free(t);
}

static void secrets_bad(const char *refs, const char *delivery, const char *env, const char *want)
{
	char *t = doc_secrets(refs, delivery, env);
	expect_only(t, want);
	free(t);
}

/* SPEC §2: with env delivery a secretRef is an environment name; file delivery
 * names files, where '-' and '.' are fine. */
static void test_secret_refs_env_delivery(void **state)
{
	(void)state;
	const char *why = "is not an environment variable name ([A-Za-z_][A-Za-z0-9_]*), which spec.run.secretDelivery "
			  "\"env\" needs (rename it, or use \"file\")";
	char want[512];
	secrets_good("['_a', 'A_b9', 'x']", "'env'", NULL);
	secrets_good("['_a', 'A.b-c_9', 'db-pass']", "'file'", NULL);
	snprintf(want, sizeof want, "spec.authority.secretRefs[1]: \"db-pass\" %s", why);
	secrets_bad("['OK', 'db-pass']", "'env'", NULL, want);
	secrets_bad("['OK', 'db-pass']", NULL, NULL, want); /* env is the default */
	snprintf(want, sizeof want, "spec.authority.secretRefs[0]: \"a.b\" %s", why);
	secrets_bad("['a.b']", "'env'", NULL, want);
	/* A name that breaks the general rule gets that message only. */
	secrets_bad("['1A']", "'env'", NULL, "spec.authority.secretRefs[0]: must match [A-Za-z_][A-Za-z0-9_.-]{0,127}");
	/* Nothing is delivered without a run. */
	char *t = doc_with(MINIMAL, "spec.authority.secretRefs", "['db-pass']");
	struct spec s;
	parse_ok_text(t, false, &s);
	spec_free(&s);
	free(t);
}

/* Two refs that name one broker variable: the env broker wipes a value once it
 * has read it, so the second would get an empty one. */
static void test_secret_refs_one_broker_variable(void **state)
{
	(void)state;
	secrets_bad("['db-pass', 'DB_PASS']", "'file'", NULL,
		    "spec.authority.secretRefs[1]: \"DB_PASS\" maps to the same broker variable CELLOS_SECRET_DB_PASS as "
		    "\"db-pass\"");
	secrets_bad("['db_pass', 'X', 'DB_PASS']", "'env'", NULL,
		    "spec.authority.secretRefs[2]: \"DB_PASS\" maps to the same broker variable CELLOS_SECRET_DB_PASS as "
		    "\"db_pass\"");
	/* Every later one names the first. */
	char *t = doc_secrets("['a.b', 'a-b', 'A_B']", "'file'", NULL);
	expect_problem(t, false,
		       "spec.authority.secretRefs[1]: \"a-b\" maps to the same broker variable CELLOS_SECRET_A_B as \"a.b\"");
	expect_problem(t, false,
		       "spec.authority.secretRefs[2]: \"A_B\" maps to the same broker variable CELLOS_SECRET_A_B as \"a.b\"");
	free(t);
	/* Both problems of one document at once. */
	t = doc_secrets("['db-pass', 'DB_PASS']", "'env'", NULL);
	expect_problem(t, false,
		       "spec.authority.secretRefs[0]: \"db-pass\" is not an environment variable name "
		       "([A-Za-z_][A-Za-z0-9_]*), which spec.run.secretDelivery \"env\" needs (rename it, or use \"file\")");
	expect_problem(t, false,
		       "spec.authority.secretRefs[1]: \"DB_PASS\" maps to the same broker variable CELLOS_SECRET_DB_PASS as "
		       "\"db-pass\"");
	free(t);
	/* Same letters, different variables: fine. */
	secrets_good("['AB', 'A_B', 'A__B']", "'env'", NULL);
}

/* run.env may not set what the supervisor sets, nor a secret (SPEC §2). */
static void test_env_reserved_names(void **state)
{
	(void)state;
	static const char *const mine[] = {"CELLOS_CELL_ID", "CELLOS_RUN_ID", "CELLOS_SECRETS_DIR"};
	for (size_t i = 0; i < sizeof mine / sizeof mine[0]; i++) {
		char env[128], want[256];
		snprintf(env, sizeof env, "{'%s': 'x'}", mine[i]);
		snprintf(want, sizeof want, "spec.run.env.%s: is set by the supervisor; run.env may not set it", mine[i]);
		expect_bad("spec.run.env", env, want);
		secrets_bad("[]", "'file'", env, want);
	}
	const char *secret = "spec.run.env.GITHUB_TOKEN: names a secret of spec.authority.secretRefs, whose value only "
			     "the broker may set";
	expect_bad("spec.run.env", "{'CI': '1', 'GITHUB_TOKEN': 'x'}", secret);
	secrets_bad("['GITHUB_TOKEN']", "'file'", "{'GITHUB_TOKEN': 'x'}", secret);
	/* Names are case-sensitive; near misses are the user's. */
	expect_good("spec.run.env", "{'cellos_cell_id': '1', 'GITHUB_TOKEN_X': '2', 'CELLOS_SECRETS': '3'}");
}

static void test_egress_hosts(void **state)
{
	(void)state;
	static const char *const good[] = {
		"192.0.2.10", "0.0.0.0/0", "10.0.0.0/8", "10.0.0.1/32", "::1", "2001:db8::/32", "::/0",
		"2001:db8::1/128", "::ffff:192.0.2.1", "example.com", "localhost", "*.github.com", "a-b.c0",
		"xn--bcher-kva.example", "EXAMPLE.COM", "1a.example",
	};
	static const char *const bad[] = {
		"", "192.0.2.300", "1.2.3", "10.0.0.0/33", "10.0.0.0/", "10.0.0.0/-1", "10.0.0.0/08", "10.0.0.0/8/8",
		"2001:db8::/129", "example.com/8", "fe80::1%eth0", "-a.com", "a-.com", "a..com", ".a.com", "a.com.",
		"*", "*.", "a.*.com", "**.a.com", "*.*.a.com", "a_b.com", "a b", "caf\\u00e9.com", "1.2.3.4:80",
		"[::1]", "http://a.com",
		"a234567890123456789012345678901234567890123456789012345678901234.com", /* 64-char label */
	};
	for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
		char v[300];
		snprintf(v, sizeof v, "'%s'", good[i]);
		expect_good("spec.authority.egressRules[0].host", v);
	}
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		char v[300];
		snprintf(v, sizeof v, "'%s'", bad[i]);
		expect_bad("spec.authority.egressRules[0].host", v,
			   "spec.authority.egressRules[0].host: must be an IPv4/IPv6 address, a CIDR or a DNS name");
	}
	/* 253 bytes in all is the most a name may have */
	char name[300], v[310];
	memset(name, 'a', 253);
	for (int i = 63; i < 253; i += 64)
		name[i] = '.';
	name[253] = '\0';
	snprintf(v, sizeof v, "'%s'", name);
	expect_good("spec.authority.egressRules[0].host", v);
	name[252] = '.';
	strcpy(name + 253, "b");
	snprintf(v, sizeof v, "'%s'", name);
	expect_bad("spec.authority.egressRules[0].host", v,
		   "spec.authority.egressRules[0].host: must be an IPv4/IPv6 address, a CIDR or a DNS name");
}

static void test_egress_rules(void **state)
{
	(void)state;
	expect_bad("spec.authority.egressRules", "[{'host': 'a.b', 'port': 443}, {'host': 'x', 'port': 0}]",
		   "spec.authority.egressRules[1].port: must be an integer 1-65535");
	expect_bad("spec.authority.egressRules[0].port", "65536",
		   "spec.authority.egressRules[0].port: must be an integer 1-65535");
	expect_bad("spec.authority.egressRules[0].port", "443.0",
		   "spec.authority.egressRules[0].port: must be an integer 1-65535");
	expect_bad("spec.authority.egressRules[0].port", "'443'",
		   "spec.authority.egressRules[0].port: must be an integer 1-65535");
	expect_bad("spec.authority.egressRules[0].port", "true",
		   "spec.authority.egressRules[0].port: must be an integer 1-65535");
	expect_bad("spec.authority.egressRules[0].port", NULL,
		   "spec.authority.egressRules[0].port: required integer 1-65535");
	expect_good("spec.authority.egressRules[0].port", "65535");
	expect_good("spec.authority.egressRules[0].port", "1");
	expect_bad("spec.authority.egressRules[0].host", NULL, "spec.authority.egressRules[0].host: required string");
	expect_bad("spec.authority.egressRules[0].protocol", "'icmp'",
		   "spec.authority.egressRules[0].protocol: must be \"tcp\" or \"udp\"");
	expect_bad("spec.authority.egressRules[0].protocol", "'TCP'",
		   "spec.authority.egressRules[0].protocol: must be \"tcp\" or \"udp\"");
	expect_good("spec.authority.egressRules[0].protocol", "'udp'");
	expect_bad("spec.authority.egressRules", "['192.0.2.1:443']",
		   "spec.authority.egressRules[0]: must be an object");
	expect_bad("spec.authority.egressRules", "{}", "spec.authority.egressRules: must be an array");
	expect_good("spec.authority.egressRules", "[]");
	expect_good("spec.authority.egressRules", NULL);
}

static void test_dns_authority(void **state)
{
	(void)state;
	const char *R = "spec.authority.dnsAuthority.resolvers[0]";
	char want[256];
	expect_good("spec.authority.dnsAuthority", "{}");
	expect_good("spec.authority.dnsAuthority.hostnameAllowlist", "['a.com', '*.b.org', 'LOCALHOST']");
	expect_good("spec.authority.dnsAuthority.resolvers[0].address", "'[2001:db8::53]:5353'");
	expect_good("spec.authority.dnsAuthority.resolvers[0].address", "'127.0.0.1:65535'");
	expect_bad("spec.authority.dnsAuthority.hostnameAllowlist", "['a.com', '*.*.b']",
		   "spec.authority.dnsAuthority.hostnameAllowlist[1]: must be a DNS name (a single leading '*.' "
		   "allowed)");
	expect_bad("spec.authority.dnsAuthority.hostnameAllowlist", "['10.0.0.0/8']",
		   "spec.authority.dnsAuthority.hostnameAllowlist[0]: must be a DNS name (a single leading '*.' "
		   "allowed)");
	expect_bad("spec.authority.dnsAuthority.hostnameAllowlist", "[1]",
		   "spec.authority.dnsAuthority.hostnameAllowlist[0]: must be a string");
	expect_bad("spec.authority.dnsAuthority.hostnameAllowlist", "'a.com'",
		   "spec.authority.dnsAuthority.hostnameAllowlist: must be an array");
	snprintf(want, sizeof want, "%s.protocol: must be \"do53-udp\"", R);
	expect_bad("spec.authority.dnsAuthority.resolvers[0].protocol", "'doh'", want);
	snprintf(want, sizeof want, "%s.protocol: required string", R);
	expect_bad("spec.authority.dnsAuthority.resolvers[0].protocol", NULL, want);
	snprintf(want, sizeof want, "%s.resolverId: required string", R);
	expect_bad("spec.authority.dnsAuthority.resolvers[0].resolverId", NULL, want);
	snprintf(want, sizeof want, "%s.resolverId: must not be empty", R);
	expect_bad("spec.authority.dnsAuthority.resolvers[0].resolverId", "''", want);
	static const char *const bad_addr[] = {"10.0.0.53", "10.0.0.53:0", "10.0.0.53:65536", "10.0.0.53:053",
					       "::1:53", "[::1]53", "[10.0.0.53]:53", "dns.example:53", ":53",
					       "[::1]:", "10.0.0.53:5x"};
	snprintf(want, sizeof want, "%s.address: must be ip:port (IPv6 as [addr]:port), port 1-65535", R);
	for (size_t i = 0; i < sizeof bad_addr / sizeof *bad_addr; i++) {
		char v[64];
		snprintf(v, sizeof v, "'%s'", bad_addr[i]);
		expect_bad("spec.authority.dnsAuthority.resolvers[0].address", v, want);
	}
	expect_bad("spec.authority.dnsAuthority.resolvers", "['x']",
		   "spec.authority.dnsAuthority.resolvers[0]: must be an object");
	expect_bad("spec.authority.dnsAuthority", "[]", "spec.authority.dnsAuthority: must be an object");
}

static void test_lifetime(void **state)
{
	(void)state;
	const char *range = "spec.lifetime.ttlSeconds: must be an integer 1-2147483647";
	expect_good("spec.lifetime.ttlSeconds", "1");
	expect_good("spec.lifetime.ttlSeconds", "2147483647");
	expect_bad("spec.lifetime.ttlSeconds", "0", range);
	expect_bad("spec.lifetime.ttlSeconds", "-5", range);
	expect_bad("spec.lifetime.ttlSeconds", "2147483648", range);
	expect_bad("spec.lifetime.ttlSeconds", "900.0", range);
	expect_bad("spec.lifetime.ttlSeconds", "1.5", range);
	expect_bad("spec.lifetime.ttlSeconds", "'900'", range);
	expect_bad("spec.lifetime.ttlSeconds", "false", range);
	expect_bad("spec.lifetime.ttlSeconds", NULL, "spec.lifetime.ttlSeconds: required integer 1-2147483647");
	expect_bad("spec.lifetime", NULL, "spec.lifetime.ttlSeconds: required integer 1-2147483647");
	expect_bad("spec.lifetime", "900", "spec.lifetime: must be an object");
}

static void test_argv(void **state)
{
	(void)state;
	expect_good("spec.run.argv", "['make']");
	expect_good("spec.run.argv", "['make', '']"); /* empty arguments are fine */
	expect_bad("spec.run.argv", "[]", "spec.run.argv: must not be empty");
	expect_bad("spec.run.argv", "['']", "spec.run.argv[0]: must not be empty");
	expect_bad("spec.run.argv", "[1]", "spec.run.argv[0]: must be a string");
	expect_bad("spec.run.argv", "['a', null]", "spec.run.argv[1]: must be a string");
	expect_bad("spec.run.argv", "'make test'", "spec.run.argv: must be an array");
	expect_bad("spec.run.argv", NULL, "spec.run.argv: required array");
	expect_bad("spec.run.argv", "['a\\u0000b']", "spec.run.argv[0]: must not contain NUL characters");
	expect_bad("spec.run", "[]", "spec.run: must be an object");
	expect_good("spec.run", NULL); /* export-only cell */

	/* 4096 entries allowed, 4097 not */
	json_t *arr = json_array();
	for (int i = 0; i < 4096; i++)
		json_array_append_new(arr, json_string("a"));
	char *text = json_dumps(arr, JSON_COMPACT);
	expect_good("spec.run.argv", text);
	free(text);
	json_array_append_new(arr, json_string("a"));
	text = json_dumps(arr, JSON_COMPACT);
	expect_bad("spec.run.argv", text, "spec.run.argv: must have at most 4096 entries");
	free(text);
	json_decref(arr);

	/* 256 KiB in all, counting each terminator as execve does */
	char *chunk = malloc(65536);
	assert_non_null(chunk);
	memset(chunk, 'x', 65535);
	chunk[65535] = '\0';
	arr = json_array();
	for (int i = 0; i < 4; i++)
		json_array_append_new(arr, json_string(chunk)); /* 4 * 65536 = 256 KiB exactly */
	text = json_dumps(arr, JSON_COMPACT);
	expect_good("spec.run.argv", text);
	free(text);
	json_array_append_new(arr, json_string("y"));
	text = json_dumps(arr, JSON_COMPACT);
	expect_bad("spec.run.argv", text, "spec.run.argv: must total at most 262144 bytes (256 KiB)");
	free(text);
	json_decref(arr);
	free(chunk);
}

static void test_secret_delivery(void **state)
{
	(void)state;
	expect_good("spec.run.secretDelivery", "'file'");
	expect_good("spec.run.secretDelivery", NULL);
	expect_bad("spec.run.secretDelivery", "'runtimeBroker'",
		   "spec.run.secretDelivery: \"runtimeBroker\" is not supported");
	expect_bad("spec.run.secretDelivery", "'runtimeLeasedBroker'",
		   "spec.run.secretDelivery: \"runtimeLeasedBroker\" is not supported");
	expect_bad("spec.run.secretDelivery", "'ENV'", "spec.run.secretDelivery: must be \"env\" or \"file\"");
	expect_bad("spec.run.secretDelivery", "1", "spec.run.secretDelivery: must be a string");
}

static void test_paths(void **state)
{
	(void)state;
	const char *wd = "spec.run.workingDirectory: must be an absolute path without '..' components";
	const char *ap = "spec.export.artifacts[0].path: must be an absolute path without '..' components";
	expect_good("spec.run.workingDirectory", "'/'");
	expect_good("spec.run.workingDirectory", "'/a/./b//c/'");
	expect_good("spec.run.workingDirectory", "'/a/..b/c..'");
	expect_bad("spec.run.workingDirectory", "'work'", wd);
	expect_bad("spec.run.workingDirectory", "''", wd);
	expect_bad("spec.run.workingDirectory", "'/work/../etc'", wd);
	expect_bad("spec.run.workingDirectory", "'/..'", wd);
	expect_bad("spec.run.workingDirectory", "'/a/b/..'", wd);
	expect_bad("spec.run.workingDirectory", "'/a\\u0000b'",
		   "spec.run.workingDirectory: must not contain NUL characters");
	char *longpath = malloc(4200);
	assert_non_null(longpath);
	longpath[0] = '\'';
	memset(longpath + 1, 'a', 4096);
	longpath[1] = '/';
	strcpy(longpath + 4097, "'");
	expect_bad("spec.run.workingDirectory", longpath, wd); /* PATH_MAX bytes: too long */
	free(longpath);
	expect_good("spec.export.artifacts[0].path", "'/out/x'");
	expect_bad("spec.export.artifacts[0].path", "'out/x'", ap);
	expect_bad("spec.export.artifacts[0].path", "'/work/../../etc/shadow'", ap);
	expect_bad("spec.export.artifacts[0].path", NULL, "spec.export.artifacts[0].path: required string");
}

static void test_env(void **state)
{
	(void)state;
	expect_good("spec.run.env", "{'_': '', 'PATH': '/bin', 'a1_B': 'x=y'}");
	expect_good("spec.run.env", "{}");
	expect_bad("spec.run.env", "{'1X': 'a'}", "spec.run.env.1X: name must match [A-Za-z_][A-Za-z0-9_]*");
	expect_bad("spec.run.env", "{'A-B': 'a'}", "spec.run.env.A-B: name must match [A-Za-z_][A-Za-z0-9_]*");
	expect_bad("spec.run.env", "{'A=B': 'a'}", "spec.run.env.A=B: name must match [A-Za-z_][A-Za-z0-9_]*");
	expect_bad("spec.run.env", "{'': 'a'}", "spec.run.env.: name must match [A-Za-z_][A-Za-z0-9_]*");
	expect_bad("spec.run.env", "{'X': 1}", "spec.run.env.X: must be a string");
	expect_bad("spec.run.env", "{'X': 'a\\u0000b'}", "spec.run.env.X: must not contain NUL characters");
	expect_bad("spec.run.env", "['X=1']", "spec.run.env: must be an object");

	struct spec s;
	char *t = doc_with(FULL, "spec.run.env", "{'B': '2', 'A': '1'}");
	parse_ok_text(t, false, &s);
	assert_int_equal(s.n_env, 2);
	assert_string_equal(s.env[0].key, "B"); /* document order */
	assert_string_equal(s.env[1].value, "1");
	spec_free(&s);
	free(t);
}

static void test_timeout_and_limits(void **state)
{
	(void)state;
	expect_good("spec.run.timeoutMs", "2147483647000");
	expect_bad("spec.run.timeoutMs", "0", "spec.run.timeoutMs: must be an integer 1-2147483647000");
	expect_bad("spec.run.timeoutMs", "2147483647001", "spec.run.timeoutMs: must be an integer 1-2147483647000");
	expect_bad("spec.run.timeoutMs", "1e3", "spec.run.timeoutMs: must be an integer 1-2147483647000");
	expect_good("spec.run.limits", "{}");
	expect_good("spec.run.limits.memoryMaxBytes", "9223372036854775807");
	expect_bad("spec.run.limits.memoryMaxBytes", "0", "spec.run.limits.memoryMaxBytes: must be an integer >= 1");
	expect_bad("spec.run.limits.memoryMaxBytes", "'2G'",
		   "spec.run.limits.memoryMaxBytes: must be an integer >= 1");
	expect_good("spec.run.limits.cpuMax", "{'quotaMicros': 1}");
	expect_bad("spec.run.limits.cpuMax", "{}", "spec.run.limits.cpuMax.quotaMicros: required integer 1-17592186044415");
	expect_bad("spec.run.limits.cpuMax.quotaMicros", "0",
		   "spec.run.limits.cpuMax.quotaMicros: must be an integer 1-17592186044415");
	expect_bad("spec.run.limits.cpuMax.quotaMicros", "17592186044416",
		   "spec.run.limits.cpuMax.quotaMicros: must be an integer 1-17592186044415");
	expect_good("spec.run.limits.cpuMax.periodMicros", "1000");
	expect_good("spec.run.limits.cpuMax.periodMicros", "1000000");
	expect_bad("spec.run.limits.cpuMax.periodMicros", "999",
		   "spec.run.limits.cpuMax.periodMicros: must be an integer 1000-1000000");
	expect_bad("spec.run.limits.cpuMax.periodMicros", "1000001",
		   "spec.run.limits.cpuMax.periodMicros: must be an integer 1000-1000000");
	expect_bad("spec.run.limits.cpuMax", "'200000 100000'", "spec.run.limits.cpuMax: must be an object");
	expect_good("spec.run.limits.pidsMax", "4194304");
	expect_bad("spec.run.limits.pidsMax", "0", "spec.run.limits.pidsMax: must be an integer 1-4194304");
	expect_bad("spec.run.limits.pidsMax", "4194305", "spec.run.limits.pidsMax: must be an integer 1-4194304");
	expect_good("spec.run.limits.gracefulShutdownSeconds", "0");
	expect_bad("spec.run.limits.gracefulShutdownSeconds", "-1",
		   "spec.run.limits.gracefulShutdownSeconds: must be an integer 0-2147483647");
	expect_bad("spec.run.limits", "1", "spec.run.limits: must be an object");

	struct spec s;
	char *t = doc_with(FULL, "spec.run.limits.gracefulShutdownSeconds", "0");
	parse_ok_text(t, false, &s);
	assert_int_equal(s.graceful_shutdown_seconds, 0);
	spec_free(&s);
	free(t);
}

static void test_export(void **state)
{
	(void)state;
	expect_good("spec.export", "{}");
	expect_good("spec.export.artifacts[0].target", NULL);
	expect_good("spec.export.targets", "[{'name': 'results', 'kind': 'local'}, {'name': 'h', 'kind': 'http'}]");
	expect_bad("spec.export.artifacts[0].target", "'nope'",
		   "spec.export.artifacts[0].target: must name a target declared in spec.export.targets");
	expect_bad("spec.export.targets", NULL,
		   "spec.export.artifacts[0].target: must name a target declared in spec.export.targets");
	expect_bad("spec.export.artifacts[0].name", "'../x'", "spec.export.artifacts[0].name: " PORTABLE);
	expect_bad("spec.export.artifacts[0].name", NULL, "spec.export.artifacts[0].name: required string");
	expect_bad("spec.export.artifacts",
		   "[{'name': 'a', 'path': '/a'}, {'name': 'a', 'path': '/b'}]",
		   "spec.export.artifacts[1].name: duplicate artifact name \"a\"");
	expect_bad("spec.export.targets",
		   "[{'name': 'results', 'kind': 's3'}, {'name': 'results', 'kind': 'http'}]",
		   "spec.export.targets[1].name: duplicate target name \"results\"");
	expect_bad("spec.export.targets[0].kind", "'ftp'",
		   "spec.export.targets[0].kind: must be \"local\", \"http\" or \"s3\"");
	expect_bad("spec.export.targets[0].kind", NULL, "spec.export.targets[0].kind: required string");
	/* a malformed target name is reported once, not again by its artifact */
	char *bad_name = doc_with(FULL, "spec.export.targets[0].name", "'a b'");
	char *bad_ref = doc_with(bad_name, "spec.export.artifacts[0].target", "'a b'");
	expect_only(bad_ref, "spec.export.targets[0].name: " PORTABLE);
	free(bad_name);
	free(bad_ref);
	expect_bad("spec.export.targets[0].bucket", "1", "spec.export.targets[0].bucket: must be a string");
	expect_bad("spec.export.targets[0].keyPrefix", "{}", "spec.export.targets[0].keyPrefix: must be a string");
	expect_bad("spec.export.artifacts", "[[]]", "spec.export.artifacts[0]: must be an object");
	expect_bad("spec.export.targets", "{}", "spec.export.targets: must be an array");
	expect_bad("spec.export.targets", "['results']", "spec.export.targets[0]: must be an object");
	expect_bad("spec.export.targets[0].name", NULL, "spec.export.targets[0].name: required string");
	expect_bad("spec.export", "[]", "spec.export: must be an object");

	struct spec s;
	char *t = doc_with(FULL, "spec.export.targets[0]", "{'name': 'results', 'kind': 'local'}");
	char *t2 = doc_with(t, "spec.export.artifacts[0].target", NULL);
	parse_ok_text(t2, false, &s);
	assert_null(s.artifacts[0].target);
	assert_null(s.targets[0].bucket);
	assert_null(s.targets[0].key_prefix);
	spec_free(&s);
	free(t);
	free(t2);
}

static void test_string_maps(void **state)
{
	(void)state;
	expect_good("spec.policy", "{}");
	expect_bad("spec.policy.packVersion", "1", "spec.policy.packVersion: must be a string");
	expect_bad("spec.policy", "'default'", "spec.policy: must be an object");
	expect_bad("spec.identity.audience", "['a']", "spec.identity.audience: must be a string");
	expect_bad("spec.identity", "[]", "spec.identity: must be an object");
	expect_bad("spec.placement.poolId", "{}", "spec.placement.poolId: must be a string");
	expect_bad("spec.placement.poolId", "'a\\u0000'", "spec.placement.poolId: must not contain NUL characters");
	expect_bad("spec.placement", "true", "spec.placement: must be an object");
}

/* ---- reporting --------------------------------------------------------------- */

static void test_multiple_problems(void **state)
{
	(void)state;
	static const char doc[] =
		"{'apiVersion': 'cellos.io/v2', 'kind': 'ExecutionCell', 'spec': {"
		" 'id': 'bad..id',"
		" 'authority': {'secretRefs': ['OK', 'OK'], 'egressRules': [{'host': 'a.com', 'port': 443}, "
		"{'host': '10.0.0.1', 'port': 70000}]},"
		" 'lifetime': {},"
		" 'run': {'argv': ['/bin/true', 7], 'secretDelivery': 'runtimeBroker'}}}";
	static const char *const want[] = {
		"apiVersion: must be \"cellos.io/v1\"",
		("spec.id: " PORTABLE),
		"spec.authority.secretRefs[1]: duplicate name \"OK\"",
		"spec.authority.egressRules[1].port: must be an integer 1-65535",
		"spec.lifetime.ttlSeconds: required integer 1-2147483647",
		"spec.run.argv[1]: must be a string",
		"spec.run.secretDelivery: \"runtimeBroker\" is not supported",
	};
	char *t = q(doc);
	struct spec s;
	struct problems p = {0};
	assert_int_equal(spec_parse(t, strlen(t), false, &s, &p), -1);
	if (p.n != sizeof want / sizeof *want)
		dump_problems(&p);
	assert_int_equal(p.n, sizeof want / sizeof *want);
	for (size_t i = 0; i < p.n; i++)
		assert_string_equal(p.items[i], want[i]);
	assert_true(model_is_empty(&s));
	problems_free(&p);
	free(t);
}

/* Problems are appended to whatever the list already holds. */
static void test_problems_append(void **state)
{
	(void)state;
	struct problems p = {0};
	problems_add(&p, "first: %d", 1);
	char *t = doc_with(FULL, "spec.id", "''");
	struct spec s;
	assert_int_equal(spec_parse(t, strlen(t), false, &s, &p), -1);
	assert_int_equal(p.n, 2);
	assert_string_equal(p.items[0], "first: 1");
	assert_string_equal(p.items[1], "spec.id: " PORTABLE);
	problems_free(&p);
	assert_int_equal(p.n, 0);
	assert_null(p.items);
	problems_free(&p);
	free(t);
}

static void test_problem_flood_capped(void **state)
{
	(void)state;
	json_t *arr = json_array();
	for (int i = 0; i < 1000; i++)
		json_array_append_new(arr, json_integer(i));
	char *v = json_dumps(arr, JSON_COMPACT);
	char *t = doc_with(FULL, "spec.authority.secretRefs", v);
	struct spec s;
	struct problems p = {0};
	assert_int_equal(spec_parse(t, strlen(t), false, &s, &p), -1);
	assert_int_equal(p.n, 101);
	assert_string_equal(p.items[0], "spec.authority.secretRefs[0]: must be a string");
	assert_string_equal(p.items[99], "spec.authority.secretRefs[99]: must be a string");
	assert_string_equal(p.items[100], "document: 900 more problems not shown");
	problems_free(&p);
	free(t);
	free(v);
	json_decref(arr);
}

static void test_strict_unknown_fields(void **state)
{
	(void)state;
	static const char *const where[] = {
		"",
		"spec.",
		"spec.correlation.",
		"spec.authority.",
		"spec.authority.egressRules[0].",
		"spec.authority.dnsAuthority.",
		"spec.authority.dnsAuthority.resolvers[0].",
		"spec.lifetime.",
		"spec.run.",
		"spec.run.limits.",
		"spec.run.limits.cpuMax.",
		"spec.export.",
		"spec.export.artifacts[0].",
		"spec.export.targets[0].",
	};
	for (size_t i = 0; i < sizeof where / sizeof *where; i++) {
		char path[128], want[160];
		snprintf(path, sizeof path, "%sfoo", where[i]);
		snprintf(want, sizeof want, "%sfoo: unknown key", where[i]);
		char *t = doc_with(FULL, path, "1");
		struct spec s;
		parse_ok_text(t, false, &s); /* ignored by default */
		spec_free(&s);
		expect_problem_raw(t, strlen(t), true, want);
		free(t);
	}
	/* free-form maps have no unknown keys */
	char *t = doc_with(FULL, "spec.policy.anything", "'x'");
	struct spec s;
	parse_ok_text(t, true, &s);
	spec_free(&s);
	free(t);

	/* every unknown key is listed */
	t = doc_with(FULL, "spec.a", "1");
	char *t2 = doc_with(t, "spec.run.b", "null");
	struct problems p = {0};
	assert_int_equal(spec_parse(t2, strlen(t2), true, &s, &p), -1);
	assert_int_equal(p.n, 2);
	assert_string_equal(p.items[0], "spec.a: unknown key");
	assert_string_equal(p.items[1], "spec.run.b: unknown key");
	problems_free(&p);
	free(t);
	free(t2);
}

/* ---- unknown keys: warnings and "did you mean" ------------------------------- */

/* FULL with `path` set to `value`, parsed with spec_parse_ex: the document must
 * be valid unless `strict`, and exactly one warning (non-strict) or problem
 * (strict) must come back, equal to `want`. */
static void expect_unknown(const char *path, const char *value, bool strict, const char *want)
{
	char *t = doc_with(FULL, path, value);
	struct spec s;
	struct problems p = {0}, w = {0};
	int rc = spec_parse_ex(t, strlen(t), strict, &s, &p, &w);
	const struct problems *got = strict ? &p : &w;
	if (rc != (strict ? -1 : 0) || got->n != 1 || strcmp(got->items[0], want) != 0 || (strict ? w.n : p.n) != 0) {
		dump_problems(&p);
		dump_problems(&w);
		fail_msg("%s=%s (strict %d): rc %d, expected exactly: %s", path, value, strict, rc, want);
	}
	if (rc == 0)
		spec_free(&s);
	problems_free(&p);
	problems_free(&w);
	free(t);
}

static void test_unknown_keys_warned(void **state)
{
	(void)state;
	/* issue 14: a key at the wrong level was silently ignored */
	expect_unknown("spec.authority.secretDelivery", "'file'", false,
		       "spec.authority.secretDelivery: unknown key, ignored; did you mean spec.run.secretDelivery?");
	expect_unknown("spec.authority.secretDelivery", "'file'", true,
		       "spec.authority.secretDelivery: unknown key; did you mean spec.run.secretDelivery?");
	/* a typo of a key of the same object */
	expect_unknown("spec.run.secretDelivry", "'file'", false,
		       "spec.run.secretDelivry: unknown key, ignored; did you mean \"secretDelivery\"?");
	expect_unknown("spec.run.Argv", "['/bin/true']", false,
		       "spec.run.Argv: unknown key, ignored; did you mean \"argv\"?");
	expect_unknown("spec.run.timeout", "5", false,
		       "spec.run.timeout: unknown key, ignored; did you mean \"timeoutMs\"?");
	/* a key the user shortened */
	expect_unknown("spec.run.limits.memory", "5", false,
		       "spec.run.limits.memory: unknown key, ignored; did you mean \"memoryMaxBytes\"?");
	expect_unknown("spec.lifetime.ttl", "5", false,
		       "spec.lifetime.ttl: unknown key, ignored; did you mean \"ttlSeconds\"?");
	/* valid elsewhere: every place is named, array members with [] */
	expect_unknown("spec.ttlSeconds", "60", false,
		       "spec.ttlSeconds: unknown key, ignored; did you mean spec.lifetime.ttlSeconds?");
	expect_unknown("spec.export.name", "'x'", false,
		       "spec.export.name: unknown key, ignored; did you mean spec.export.artifacts[].name or "
		       "spec.export.targets[].name?");
	expect_unknown("spec.kind", "'x'", false,
		       "spec.kind: unknown key, ignored; did you mean \"kind\" at the top level or "
		       "spec.export.targets[].kind?");
	expect_unknown("spec.authority.egressRules[0].address", "'x'", false,
		       "spec.authority.egressRules[0].address: unknown key, ignored; did you mean "
		       "spec.authority.dnsAuthority.resolvers[].address?");
	/* a typo of a key that belongs elsewhere */
	expect_unknown("spec.run.secretRef", "['A']", false,
		       "spec.run.secretRef: unknown key, ignored; did you mean spec.authority.secretRefs?");
	/* nothing close: no guess */
	expect_unknown("spec.run.niceness", "5", false, "spec.run.niceness: unknown key, ignored");
	expect_unknown("futureTopLevel", "{}", false, "futureTopLevel: unknown key, ignored");
}

static void test_unknown_keys_warned_everywhere(void **state)
{
	(void)state;
	/* Every object with a fixed set of keys; free-form maps have no unknown keys. */
	char *t = doc_with(FULL, "zzz1", "1");
	static const char *const where[] = {
		"spec", "spec.correlation", "spec.authority", "spec.authority.egressRules[0]",
		"spec.authority.dnsAuthority", "spec.authority.dnsAuthority.resolvers[0]", "spec.lifetime",
		"spec.run", "spec.run.limits", "spec.run.limits.cpuMax", "spec.export", "spec.export.artifacts[0]",
		"spec.export.targets[0]",
	};
	for (size_t i = 0; i < sizeof where / sizeof *where; i++) {
		char path[128];
		snprintf(path, sizeof path, "%s.zzz%zu", where[i], i + 2);
		char *next = doc_with(t, path, "1");
		free(t);
		t = next;
	}
	char *u = doc_with(t, "spec.policy.anything", "'x'");
	free(t);
	t = doc_with(u, "spec.correlation.labels.anything", "'x'");
	free(u);
	struct spec s;
	struct problems p = {0}, w = {0};
	assert_int_equal(spec_parse_ex(t, strlen(t), false, &s, &p, &w), 0);
	assert_int_equal(p.n, 0);
	if (w.n != 1 + sizeof where / sizeof *where)
		dump_problems(&w);
	assert_int_equal(w.n, 1 + sizeof where / sizeof *where);
	assert_string_equal(w.items[0], "zzz1: unknown key, ignored");
	assert_string_equal(w.items[1], "spec.zzz2: unknown key, ignored");
	/* targets are read before artifacts (artifacts refer to them) */
	assert_string_equal(w.items[w.n - 1], "spec.export.artifacts[0].zzz13: unknown key, ignored");
	spec_free(&s);
	problems_free(&w);

	/* strict: every one of them is a problem, all at once, and no warning */
	assert_int_equal(spec_parse_ex(t, strlen(t), true, &s, &p, &w), -1);
	assert_int_equal(p.n, 1 + sizeof where / sizeof *where);
	assert_string_equal(p.items[3], "spec.authority.zzz4: unknown key");
	assert_int_equal(w.n, 0);
	problems_free(&p);
	free(t);
}

/* Warnings come back with an invalid document too (the JSON report lists both),
 * in document order, appended to what the list holds, and capped like problems. */
static void test_unknown_keys_with_problems(void **state)
{
	(void)state;
	char *t = doc_with(FULL, "spec.lifetime.ttlSeconds", "0");
	char *t2 = doc_with(t, "spec.lifetime.ttlSecond", "60");
	struct spec s;
	struct problems p = {0}, w = {0};
	problems_add(&w, "earlier: %d", 1);
	assert_int_equal(spec_parse_ex(t2, strlen(t2), false, &s, &p, &w), -1);
	assert_int_equal(p.n, 1);
	assert_string_equal(p.items[0], "spec.lifetime.ttlSeconds: must be an integer 1-2147483647");
	assert_int_equal(w.n, 2);
	assert_string_equal(w.items[0], "earlier: 1");
	assert_string_equal(w.items[1], "spec.lifetime.ttlSecond: unknown key, ignored; did you mean \"ttlSeconds\"?");
	assert_true(model_is_empty(&s));
	problems_free(&p);
	problems_free(&w);
	free(t);
	free(t2);

	json_t *root = load_json(FULL);
	json_t *spec = json_object_get(root, "spec");
	for (int i = 0; i < 150; i++) {
		char key[16];
		snprintf(key, sizeof key, "x%03d", i);
		json_object_set_new(spec, key, json_integer(i));
	}
	t = json_dumps(root, JSON_COMPACT);
	json_decref(root);
	assert_int_equal(spec_parse_ex(t, strlen(t), false, &s, &p, &w), 0);
	assert_int_equal(w.n, 101);
	assert_string_equal(w.items[0], "spec.x000: unknown key, ignored");
	assert_string_equal(w.items[100], "document: 50 more warnings not shown");
	spec_free(&s);
	problems_free(&w);
	free(t);
}

/* spec_parse is spec_parse_ex with the warnings logged: same result. */
static void test_parse_without_warning_list(void **state)
{
	(void)state;
	char *t = doc_with(FULL, "spec.authority.secretDelivery", "'file'");
	struct spec s;
	struct problems p = {0};
	assert_int_equal(spec_parse(t, strlen(t), false, &s, &p), 0);
	assert_int_equal(p.n, 0);
	assert_int_equal(s.delivery, DELIVERY_ENV); /* ignored, as the warning says */
	spec_free(&s);
	free(t);
}

/* Keys come from the document: a message must stay one printable line. */
static void test_hostile_keys_escaped(void **state)
{
	(void)state;
	expect_problem("{'apiVersion': 'cellos.io/v1', 'kind': 'ExecutionCell', 'spec': {'id': 'x', "
		       "'authority': {'secretRefs': []}, 'lifetime': {'ttlSeconds': 1}, 'a\\nb\\u001b[31m': 1}}",
		       true, "spec.a\\x0ab\\x1b[31m: unknown key");
	expect_bad("spec.run.env", "{'caf\\u00e9': '1'}",
		   "spec.run.env.caf\xc3\xa9: name must match [A-Za-z_][A-Za-z0-9_]*");
	/* a very long key is cut */
	char key[1000], doc[1200];
	memset(key, 'k', sizeof key - 1);
	key[sizeof key - 1] = '\0';
	snprintf(doc, sizeof doc, "{'%s': 1}", key);
	char *t = q(doc);
	struct spec s;
	struct problems p = {0};
	assert_int_equal(spec_parse(t, strlen(t), true, &s, &p), -1);
	bool cut = false;
	for (size_t i = 0; i < p.n; i++)
		if (strstr(p.items[i], "k...: unknown key") && strlen(p.items[i]) < 200)
			cut = true;
	assert_true(cut);
	problems_free(&p);
	free(t);
}

static void test_nul_in_strings(void **state)
{
	(void)state;
	expect_bad("spec.id", "'a\\u0000'", "spec.id: must not contain NUL characters");
	expect_bad("spec.authority.secretRefs", "['A\\u0000B']",
		   "spec.authority.secretRefs[0]: must not contain NUL characters");
	expect_bad("spec.authority.egressRules[0].host", "'a.com\\u0000.evil'",
		   "spec.authority.egressRules[0].host: must not contain NUL characters");
	expect_bad("spec.correlation.labels.team", "'\\u0000'",
		   "spec.correlation.labels.team: must not contain NUL characters");
	/* NUL in a key is jansson's to refuse */
	expect_problem("{'a\\u0000b': 1}", false,
		       "document: NUL byte in object key not supported near '\"a\\u0000b\"' at line 1 column 11");
	/* a NUL in an ignored member does no harm */
	expect_good("spec.whatever", "'\\u0000'");
}

/* ---- spec_load --------------------------------------------------------------- */

static char *write_temp(const char *data, size_t len)
{
	char *path = strdup("/tmp/test_spec_XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	size_t off = 0;
	while (off < len) {
		ssize_t w = write(fd, data + off, len - off);
		assert_true(w > 0);
		off += (size_t)w;
	}
	close(fd);
	return path;
}

static void test_load_file(void **state)
{
	(void)state;
	char *t = q(FULL);
	char *path = write_temp(t, strlen(t));
	struct spec s;
	struct problems p = {0};
	assert_int_equal(spec_load(path, true, &s, &p), 0);
	assert_int_equal(p.n, 0);
	assert_string_equal(s.id, "ci-build-42");
	spec_free(&s);
	unlink(path);
	free(path);
	free(t);
}

static void test_load_stdin(void **state)
{
	(void)state;
	char *t = q(MINIMAL);
	char *path = write_temp(t, strlen(t));
	int saved = dup(STDIN_FILENO);
	int fd = open(path, O_RDONLY);
	assert_true(saved >= 0 && fd >= 0);
	assert_int_equal(dup2(fd, STDIN_FILENO), STDIN_FILENO);
	close(fd);
	struct spec s;
	struct problems p = {0};
	int rc = spec_load("-", false, &s, &p);
	assert_int_equal(dup2(saved, STDIN_FILENO), STDIN_FILENO);
	close(saved);
	assert_int_equal(rc, 0);
	assert_string_equal(s.id, "min");
	spec_free(&s);
	unlink(path);
	free(path);
	free(t);
}

static void test_load_errors(void **state)
{
	(void)state;
	struct spec s;
	struct problems p = {0};
	assert_int_equal(spec_load("/nonexistent/spec.json", false, &s, &p), -1);
	assert_int_equal(p.n, 1);
	assert_string_equal(p.items[0], "document: cannot open /nonexistent/spec.json: No such file or directory");
	assert_true(model_is_empty(&s));
	problems_free(&p);

	assert_int_equal(spec_load("/tmp", false, &s, &p), -1);
	assert_int_equal(p.n, 1);
	assert_string_equal(p.items[0], "document: cannot read /tmp: Is a directory");
	problems_free(&p);

	/* a path with a newline is shown escaped */
	assert_int_equal(spec_load("/nonexistent/a\nb", false, &s, &p), -1);
	assert_string_equal(p.items[0], "document: cannot open /nonexistent/a\\x0ab: No such file or directory");
	problems_free(&p);

	/* more than 1 MiB: refused after reading one byte past the limit */
	char *big = malloc(SPEC_MAX_BYTES + 100);
	assert_non_null(big);
	memset(big, ' ', SPEC_MAX_BYTES + 100);
	char *path = write_temp(big, SPEC_MAX_BYTES + 100);
	assert_int_equal(spec_load(path, false, &s, &p), -1);
	assert_int_equal(p.n, 1);
	assert_string_equal(p.items[0], "document: larger than 1 MiB");
	problems_free(&p);
	unlink(path);
	free(path);

	/* exactly 1 MiB of valid document is read whole */
	char *t = q(MINIMAL);
	memcpy(big, t, strlen(t));
	path = write_temp(big, SPEC_MAX_BYTES);
	assert_int_equal(spec_load(path, false, &s, &p), 0);
	spec_free(&s);
	unlink(path);
	free(path);
	free(t);
	free(big);
}

/* ---- shared helpers ---------------------------------------------------------- */

/* run.mounts (SPEC §2): the document's rules; the host's (allow prefixes, RW,
 * profile, mount namespace) are admission's. */
static void test_mounts(void **state)
{
	(void)state;
	const char *P = "spec.run.mounts";
	expect_good(P, "[]");
	expect_good(P, NULL);
	expect_good(P, "[{'source': '/srv/ci/checkout', 'target': '/src'}, "
		       "{'source': '/srv/ci/sub', 'target': '/src/sub', 'readOnly': true}, "
		       "{'source': '/srv/ci/out', 'target': '/work/out', 'readOnly': false}, "
		       "{'source': '/srv/ci/f.conf', 'target': '/etc/app.conf'}]");
	char *t = doc_with(FULL, P, "[{'source': '/srv/ci/a', 'target': '/src/./x/'}, "
				   "{'source': '/srv/ci/b', 'target': '/y', 'readOnly': false}]");
	struct spec s;
	parse_ok_text(t, false, &s);
	assert_int_equal(s.n_mounts, 2);
	assert_string_equal(s.mounts[0].source, "/srv/ci/a");
	assert_string_equal(s.mounts[0].target, "/src/./x/");
	assert_true(s.mounts[0].read_only); /* the default */
	assert_false(s.mounts[1].read_only);
	spec_free(&s);
	free(t);

	expect_bad(P, "{}", "spec.run.mounts: must be an array");
	expect_bad(P, "[1]", "spec.run.mounts[0]: must be an object");
	expect_bad(P, "[{'target': '/src'}]", "spec.run.mounts[0].source: required string");
	expect_bad(P, "[{'source': '/s'}]", "spec.run.mounts[0].target: required string");
	expect_bad(P, "[{'source': 's', 'target': '/src'}]",
		   "spec.run.mounts[0].source: must be an absolute path without '..' components");
	expect_bad(P, "[{'source': '/srv/ci/../etc', 'target': '/src'}]",
		   "spec.run.mounts[0].source: must be an absolute path without '..' components");
	expect_bad(P, "[{'source': '/s', 'target': 'src'}]",
		   "spec.run.mounts[0].target: must be an absolute path without '..' components");
	expect_bad(P, "[{'source': '/s', 'target': '/a/../etc'}]",
		   "spec.run.mounts[0].target: must be an absolute path without '..' components");
	expect_bad(P, "[{'source': '/s', 'target': '//./'}]", "spec.run.mounts[0].target: must not be / (the cell's root)");
	const char *const under[][2] = {{"/proc", "/proc"}, {"/proc/sys", "/proc"}, {"/sys/fs", "/sys"},
					{"/dev", "/dev"}, {"/dev/shm/x", "/dev"}, {"/run/cellos", "/run/cellos"},
					{"/run/cellos/secrets", "/run/cellos"}};
	for (size_t i = 0; i < sizeof under / sizeof under[0]; i++) {
		char v[128], want[256];
		snprintf(v, sizeof v, "[{'source': '/s', 'target': '%s'}]", under[i][0]);
		snprintf(want, sizeof want,
			 "spec.run.mounts[0].target: must not be %s or lie under it (the cell's %s belongs to the supervisor)",
			 under[i][1], under[i][1]);
		expect_bad(P, v, want);
	}
	/* Whole components: these are not under a forbidden path. */
	expect_good(P, "[{'source': '/s', 'target': '/procfs'}, {'source': '/t', 'target': '/run/cellos2'}, "
		       "{'source': '/u', 'target': '/devel'}, {'source': '/v', 'target': '/run/x'}]");
	expect_bad(P, "[{'source': '/s', 'target': '/run/'}]",
		   "spec.run.mounts[0].target: must not be /run: the cell's /run/cellos lies beneath it");
	expect_bad(P, "[{'source': '/s', 'target': '/etc//resolv.conf'}]",
		   "spec.run.mounts[0].target: must not be /etc/resolv.conf (the cell's resolver configuration belongs to "
		   "the supervisor)");
	expect_bad(P, "[{'source': '/s', 'target': '/src'}, {'source': '/t', 'target': '/src/'}]",
		   "spec.run.mounts[1].target: /src/ is already the target of spec.run.mounts[0]: no two mounts on one "
		   "target");
	expect_bad(P, "[{'source': '/s', 'target': '/work/'}]",
		   "spec.run.mounts[0].target: /work/ is run.workingDirectory, the cell's fresh workspace: mount inside "
		   "it instead");
	expect_good(P, "[{'source': '/s', 'target': '/work/in'}]");
	expect_bad(P, "[{'source': '/s', 'target': '/x', 'readOnly': 'yes'}]",
		   "spec.run.mounts[0].readOnly: must be a boolean");
	expect_bad(P, "[{'source': '/s', 'target': '/x', 'readOnly': 0}]", "spec.run.mounts[0].readOnly: must be a boolean");
	/* Every problem at once. */
	t = doc_with(FULL, P, "[{'source': 'rel', 'target': '/proc/x'}, {'target': '/dev'}, "
			      "{'source': '/a', 'target': '/x', 'readOnly': 1}]");
	struct problems p = {0};
	assert_int_equal(spec_parse(t, strlen(t), false, &s, &p), -1);
	assert_int_equal(p.n, 5);
	problems_free(&p);
	free(t);
	/* At most SPEC_MOUNTS_MAX entries. */
	char *many = malloc(64 * (SPEC_MOUNTS_MAX + 1) + 8);
	assert_non_null(many);
	size_t n = (size_t)sprintf(many, "[");
	for (int i = 0; i <= SPEC_MOUNTS_MAX; i++)
		n += (size_t)sprintf(many + n, "%s{'source': '/s', 'target': '/t%d'}", i ? "," : "", i);
	sprintf(many + n, "]");
	expect_bad(P, many, "spec.run.mounts: must have at most 64 entries");
	free(many);
	/* Strict mode knows the keys. */
	t = doc_with(FULL, P, "[{'source': '/s', 'target': '/x', 'readonly': false}]");
	expect_problem_raw(t, strlen(t), true, "spec.run.mounts[0].readonly: unknown key; did you mean \"readOnly\"?");
	free(t);
}

static void test_helpers(void **state)
{
	(void)state;
	assert_true(spec_is_portable_id("a.b-c_d"));
	assert_false(spec_is_portable_id("a..b"));
	assert_false(spec_is_portable_id("_a"));
	assert_false(spec_is_portable_id(NULL));
	assert_true(spec_is_secret_name("_a.b-c"));
	assert_false(spec_is_secret_name("1a"));
	assert_false(spec_is_secret_name(NULL));
	assert_true(spec_is_dns_name("*.a.b"));
	assert_false(spec_is_dns_name("*.a.123"));
	assert_int_equal(spec_host_family("192.0.2.1"), 4);
	assert_int_equal(spec_host_family("10.0.0.0/8"), 4);
	assert_int_equal(spec_host_family("::1"), 6);
	assert_int_equal(spec_host_family("2001:db8::/32"), 6);
	assert_int_equal(spec_host_family("a.example"), 0);
	assert_int_equal(spec_host_family("a.example/8"), -1);
	assert_int_equal(spec_host_family(""), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full_document),
		cmocka_unit_test(test_full_document_strict),
		cmocka_unit_test(test_minimal_document),
		cmocka_unit_test(test_run_defaults),
		cmocka_unit_test(test_null_is_absent),
		cmocka_unit_test(test_duplicate_keys),
		cmocka_unit_test(test_invalid_utf8),
		cmocka_unit_test(test_syntax_errors),
		cmocka_unit_test(test_not_an_object),
		cmocka_unit_test(test_too_large),
		cmocka_unit_test(test_depth),
		cmocka_unit_test(test_id),
		cmocka_unit_test(test_correlation),
		cmocka_unit_test(test_secret_refs),
		cmocka_unit_test(test_secret_refs_env_delivery),
		cmocka_unit_test(test_secret_refs_one_broker_variable),
		cmocka_unit_test(test_env_reserved_names),
		cmocka_unit_test(test_egress_hosts),
		cmocka_unit_test(test_egress_rules),
		cmocka_unit_test(test_dns_authority),
		cmocka_unit_test(test_lifetime),
		cmocka_unit_test(test_argv),
		cmocka_unit_test(test_secret_delivery),
		cmocka_unit_test(test_paths),
		cmocka_unit_test(test_env),
		cmocka_unit_test(test_timeout_and_limits),
		cmocka_unit_test(test_export),
		cmocka_unit_test(test_string_maps),
		cmocka_unit_test(test_multiple_problems),
		cmocka_unit_test(test_problems_append),
		cmocka_unit_test(test_problem_flood_capped),
		cmocka_unit_test(test_strict_unknown_fields),
		cmocka_unit_test(test_unknown_keys_warned),
		cmocka_unit_test(test_unknown_keys_warned_everywhere),
		cmocka_unit_test(test_unknown_keys_with_problems),
		cmocka_unit_test(test_parse_without_warning_list),
		cmocka_unit_test(test_hostile_keys_escaped),
		cmocka_unit_test(test_nul_in_strings),
		cmocka_unit_test(test_load_file),
		cmocka_unit_test(test_load_stdin),
		cmocka_unit_test(test_load_errors),
		cmocka_unit_test(test_mounts),
		cmocka_unit_test(test_helpers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
