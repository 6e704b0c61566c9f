/* Unit tests for src/policy.c: the name matcher of SPEC §6.4, CIDR containment,
 * and each rule's verdict on hand-made cells (the black-box suite runs them
 * through the supervisor: tests/blackbox/test_policy_pack.py). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "policy.h"

static void test_name_matcher(void **state)
{
	(void)state;
	assert_true(policy_name_matches("example.com", "example.com"));
	assert_true(policy_name_matches("example.com", "EXAMPLE.com"));
	assert_false(policy_name_matches("example.com", "a.example.com"));
	assert_true(policy_name_matches("*.example.com", "a.example.com"));
	assert_true(policy_name_matches("*.example.com", "a.b.Example.COM"));
	assert_false(policy_name_matches("*.example.com", "example.com"));     /* never the apex */
	assert_false(policy_name_matches("*.example.com", "badexample.com"));  /* whole labels */
	assert_true(policy_name_matches("*.example.com", "*.a.example.com"));   /* a narrower wildcard */
	assert_true(policy_name_matches("*.example.com", "*.example.com"));
	assert_false(policy_name_matches("a.example.com", "*.example.com"));   /* a wider one */
	assert_false(policy_name_matches("*.a.example.com", "*.example.com"));
}

static void test_cidr_within(void **state)
{
	(void)state;
	assert_true(policy_cidr_within("10.1.2.3", "10.0.0.0/8"));
	assert_true(policy_cidr_within("10.1.0.0/16", "10.0.0.0/8"));
	assert_true(policy_cidr_within("10.0.0.0/8", "10.0.0.0/8"));
	assert_false(policy_cidr_within("10.0.0.0/7", "10.0.0.0/8"));          /* wider than the item */
	assert_false(policy_cidr_within("11.0.0.1", "10.0.0.0/8"));
	assert_true(policy_cidr_within("192.0.2.130", "192.0.2.128/25"));
	assert_false(policy_cidr_within("192.0.2.127", "192.0.2.128/25"));
	assert_true(policy_cidr_within("192.0.2.7", "192.0.2.7"));              /* an address item is a /32 */
	assert_false(policy_cidr_within("192.0.2.8", "192.0.2.7"));
	assert_true(policy_cidr_within("10.9.9.9/8", "10.0.0.0/8"));            /* host bits tolerated */
	assert_true(policy_cidr_within("2001:db8::1", "2001:db8::/32"));
	assert_false(policy_cidr_within("2001:db9::1", "2001:db8::/32"));
	assert_false(policy_cidr_within("10.0.0.1", "::/0"));                   /* families never mix */
	assert_true(policy_cidr_within("1.2.3.4", "0.0.0.0/0"));
	assert_false(policy_cidr_within("example.com", "0.0.0.0/0"));
}

static char *write_pack(const char *rules)
{
	static char path[] = "/tmp/cellos-test-policy-XXXXXX";
	strcpy(path, "/tmp/cellos-test-policy-XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	FILE *f = fdopen(fd, "w");
	fprintf(f, "{\"apiVersion\": \"cellos.io/v1\", \"kind\": \"PolicyPack\", "
		   "\"spec\": {\"id\": \"p\", \"version\": \"1\", \"rules\": %s}}", rules);
	fclose(f);
	return path;
}

static void test_rules_on_a_cell(void **state)
{
	(void)state;
	struct policy_pack p;
	struct problems probs = {0};
	char *path = write_pack("{\"maxLifetimeTtlSeconds\": 100, \"requireResourceLimits\": true, "
				"\"allowedEgressHosts\": [\"*.example.com\", \"192.0.2.0/24\"], "
				"\"secretRefAllowlist\": [\"A\"], \"allowedBackends\": [\"host\"], "
				"\"requireSignedEvents\": true}");
	assert_int_equal(policy_load(&p, path, &probs), 0);
	unlink(path);
	assert_int_equal(probs.n, 0);

	struct config cfg = {.backend = BACKEND_STUB, .signing = SIGN_ED25519};
	struct egress_rule eg[] = {{.host = "a.example.com", .port = 443}, {.host = "192.0.2.9", .port = 53}};
	const char *refs[] = {"A"};
	struct spec s = {.id = "c", .ttl_seconds = 100, .has_run = true, .memory_max_bytes = 1,
			 .cpu_quota_micros = 1, .pids_max = 1, .egress = eg, .n_egress = 2,
			 .secret_refs = refs, .n_secret_refs = 1};
	assert_int_equal(policy_check(&p, &cfg, &s, &probs), 0);

	/* Every rule broken at once: every violation, in the order of the rules. */
	struct egress_rule bad_eg[] = {{.host = "example.com", .port = 443}, {.host = "192.0.3.1", .port = 1}};
	const char *bad_refs[] = {"A", "B"};
	struct spec bad = {.id = "c", .ttl_seconds = 101, .has_run = true, .egress = bad_eg, .n_egress = 2,
			   .secret_refs = bad_refs, .n_secret_refs = 2};
	cfg.backend = BACKEND_GVISOR;
	cfg.signing = SIGN_OFF;
	assert_int_equal(policy_check(&p, &cfg, &bad, &probs), 7);
	const char *want[] = {"policy.maxLifetimeTtlSeconds: ", "policy.requireResourceLimits: ",
			      "policy.allowedEgressHosts: spec.authority.egressRules[0]",
			      "policy.allowedEgressHosts: spec.authority.egressRules[1]",
			      "policy.secretRefAllowlist: spec.authority.secretRefs[1] B",
			      "policy.allowedBackends: CELLOS_CELL_BACKEND=gvisor", "policy.requireSignedEvents: "};
	for (size_t i = 0; i < 7; i++)
		if (strncmp(probs.items[i], want[i], strlen(want[i])) != 0)
			fail_msg("violation %zu: '%s' does not start with '%s'", i, probs.items[i], want[i]);
	problems_free(&probs);
	policy_free(&p);
}

static void test_unknown_rule_never_fails_open(void **state)
{
	(void)state;
	struct policy_pack p;
	struct problems probs = {0};
	char *path = write_pack("{\"maxLifetimeTTLSeconds\": 10}");
	assert_int_equal(policy_load(&p, path, &probs), -1);
	unlink(path);
	assert_int_equal(probs.n, 1);
	assert_non_null(strstr(probs.items[0], "spec.rules.maxLifetimeTTLSeconds: unknown rule"));
	assert_non_null(strstr(probs.items[0], "CELLOS_POLICY_PACK: /tmp/cellos-test-policy-"));
	problems_free(&probs);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_name_matcher),
		cmocka_unit_test(test_cidr_within),
		cmocka_unit_test(test_rules_on_a_cell),
		cmocka_unit_test(test_unknown_rule_never_fails_open),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
