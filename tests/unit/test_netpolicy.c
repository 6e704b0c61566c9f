/* Unit tests for src/isolate/netpolicy.c: which names the DNS proxy answers,
 * which answer addresses join which rule (and reach the gateway's hook), the
 * rebinding guard, and the SNI/Host check's "this name for this destination". */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <string.h>

#include "isolate/netpolicy.h"

struct seen {
	size_t rules[16];
	struct in_addr addrs[16];
	size_t n;
};

static bool denied(void *ctx, struct in_addr a)
{
	uint32_t h = ntohl(a.s_addr);
	return (h >> 24) == 127 || (h >> 16) == 0xa9fe; /* loopback, link-local */
}

static int allow(void *ctx, size_t rule, const struct in_addr *a, size_t n, struct err *e)
{
	struct seen *s = ctx;
	for (size_t i = 0; i < n && s->n < 16; i++) {
		s->rules[s->n] = rule;
		s->addrs[s->n++] = a[i];
	}
	return 0;
}

static struct in_addr ip(const char *s)
{
	struct in_addr a;
	inet_pton(AF_INET, s, &a);
	return a;
}

static void setup_policy(struct netpolicy *np, struct seen *s)
{
	static const char *const allowlist[] = {"listed.example"};
	struct netpolicy_hooks h = {.denied = denied, .allow = allow, .ctx = s};
	netpolicy_init(np, allowlist, 1, &h);
	uint32_t a1 = ip("192.0.2.1").s_addr;
	assert_int_equal(netpolicy_add_rule(np, 0, "a.example", 443, false, &a1, 1, NULL), 0);
	assert_int_equal(netpolicy_add_rule(np, 2, "*.cdn.example", 443, false, NULL, 0, NULL), 0);
	assert_int_equal(netpolicy_add_rule(np, 3, "b.example", 80, false, NULL, 0, NULL), 0);
	assert_int_equal(netpolicy_add_rule(np, 4, "u.example", 443, true, NULL, 0, NULL), 0);
}

static void test_names(void **state)
{
	struct netpolicy np;
	struct seen s = {0};
	setup_policy(&np, &s);
	assert_true(netpolicy_name_allowed(&np, "a.example"));
	assert_true(netpolicy_name_allowed(&np, "LISTED.example."));
	assert_true(netpolicy_name_allowed(&np, "x.cdn.example"));
	assert_false(netpolicy_name_allowed(&np, "cdn.example"));
	assert_false(netpolicy_name_allowed(&np, "evil.example"));
	netpolicy_free(&np);
}

static void test_learn(void **state)
{
	struct netpolicy np;
	struct seen s = {0};
	setup_policy(&np, &s);
	struct in_addr ans[] = {ip("127.0.0.1"), ip("198.51.100.7"), ip("169.254.169.254"), ip("198.51.100.7")};
	/* Two denied; the public address joins the matching rule once. */
	assert_int_equal(netpolicy_learn(&np, "x.cdn.example", ans, 4), 2);
	assert_int_equal(s.n, 1);
	assert_int_equal(s.rules[0], 2);
	assert_int_equal(s.addrs[0].s_addr, ip("198.51.100.7").s_addr);
	/* Known already: the hook is not called again. */
	assert_int_equal(netpolicy_learn(&np, "y.cdn.example", ans + 1, 1), 0);
	assert_int_equal(s.n, 1);
	/* A name no rule matches (allowlist only) extends nothing. */
	assert_int_equal(netpolicy_learn(&np, "listed.example", ans + 1, 1), 0);
	assert_int_equal(s.n, 1);
	netpolicy_free(&np);
}

static void test_l7(void **state)
{
	struct netpolicy np;
	struct seen s = {0};
	setup_policy(&np, &s);
	/* Resolved at network_scope. */
	assert_true(netpolicy_l7_allowed(&np, "a.example", ip("192.0.2.1"), 443));
	assert_true(netpolicy_l7_allowed(&np, "A.EXAMPLE", ip("192.0.2.1"), 443));
	assert_false(netpolicy_l7_allowed(&np, "a.example", ip("192.0.2.1"), 80));   /* not that port */
	assert_false(netpolicy_l7_allowed(&np, "a.example", ip("192.0.2.9"), 443));  /* not its address */
	assert_false(netpolicy_l7_allowed(&np, "evil.example", ip("192.0.2.1"), 443)); /* a shared address */
	/* b.example is declared, but on port 80 and with no address yet. */
	assert_false(netpolicy_l7_allowed(&np, "b.example", ip("192.0.2.1"), 443));
	struct in_addr b = ip("192.0.2.1");
	netpolicy_learn(&np, "b.example", &b, 1);
	assert_true(netpolicy_l7_allowed(&np, "b.example", ip("192.0.2.1"), 80));
	assert_false(netpolicy_l7_allowed(&np, "b.example", ip("192.0.2.1"), 443));
	/* A UDP rule never admits a TCP connection. */
	struct in_addr u = ip("198.51.100.9");
	netpolicy_learn(&np, "u.example", &u, 1);
	assert_false(netpolicy_l7_allowed(&np, "u.example", u, 443));
	/* The wildcard's addresses are learned per rule. */
	struct in_addr c = ip("198.51.100.7");
	assert_false(netpolicy_l7_allowed(&np, "x.cdn.example", c, 443));
	netpolicy_learn(&np, "x.cdn.example", &c, 1);
	assert_true(netpolicy_l7_allowed(&np, "z.cdn.example", c, 443));
	assert_false(netpolicy_l7_allowed(&np, "cdn.example", c, 443));
	netpolicy_free(&np);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_learn),
		cmocka_unit_test(test_l7),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
