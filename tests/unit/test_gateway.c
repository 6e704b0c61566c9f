/* Tests of the network gateway (isolate/gateway.h): the variables' grammar, the
 * denied CIDRs, and, in fresh network namespaces (root, as in CI), the /30
 * allocator, the host table and gateway_allow_name()'s set extension. The
 * allocator's lock files go to a temporary directory, not /run/cellos. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libmnl/libmnl.h>

#include "isolate/gateway.h"

#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

static uint32_t ip(const char *s)
{
	struct in_addr a;
	inet_pton(AF_INET, s, &a);
	return ntohl(a.s_addr);
}

static void subnet_grammar(void **state)
{
	struct cidr4 c;
	struct err e = {0};
	assert_int_equal(gateway_parse_subnet("100.96.0.0/16", &c, &e), 0);
	assert_int_equal(c.addr, ip("100.96.0.0"));
	assert_int_equal(c.prefix, 16);
	assert_int_equal(gateway_parse_subnet("10.1.2.3/29", &c, &e), 0);
	assert_int_equal(c.addr, ip("10.1.2.0"));
	assert_int_equal(gateway_parse_subnet("10.0.0.0/8", &c, &e), -1);
	assert_string_equal(e.msg, "CELLOS_CELL_SUBNET: '10.0.0.0/8' has a /8 prefix; it must be /16 to /29");
	assert_int_equal(gateway_parse_subnet("10.0.0.0/30", &c, &e), -1);
	assert_int_equal(gateway_parse_subnet("10.0.0.1", &c, &e), -1);
	assert_int_equal(gateway_parse_subnet("fd00::/64", &c, &e), -1);
	assert_non_null(strstr(e.msg, "not an IPv4 CIDR"));
}

static void deny_list(void **state)
{
	struct cidr4 *d = NULL;
	size_t n = 0;
	struct err e = {0};
	assert_int_equal(gateway_parse_cidrs("127.0.0.0/8, 10.1.0.0/16,fd00::/8 ,192.0.2.7", &d, &n, &e), 0);
	assert_int_equal(n, 3); /* the IPv6 entry is accepted and not routed anyway */
	assert_true(gateway_cidr_denied(d, n, ip("127.0.0.1"), 32));
	assert_true(gateway_cidr_denied(d, n, ip("10.1.2.0"), 24));   /* inside */
	assert_false(gateway_cidr_denied(d, n, ip("10.0.0.0"), 8));   /* only overlaps */
	assert_false(gateway_cidr_denied(d, n, 0, 0));                /* 0.0.0.0/0 overlaps all */
	assert_true(gateway_cidr_denied(d, n, ip("192.0.2.7"), 32));
	assert_false(gateway_cidr_denied(d, n, ip("192.0.2.8"), 32));
	free(d);
	assert_int_equal(gateway_parse_cidrs("10.0.0.0/8,bogus", &d, &n, &e), -1);
	assert_string_equal(e.msg, "CELLOS_EGRESS_DENY_CIDRS: 'bogus' is not an IP address or CIDR");
	assert_null(d);

	struct cidr4 sub = {ip("100.96.0.0"), 16};
	d = NULL;
	n = 0;
	assert_int_equal(gateway_default_deny(&sub, &d, &n, &e), 0);
	assert_true(gateway_cidr_denied(d, n, ip("169.254.169.254"), 32));
	assert_true(gateway_cidr_denied(d, n, ip("127.0.0.53"), 32));
	assert_true(gateway_cidr_denied(d, n, ip("239.1.2.3"), 32));
	assert_true(gateway_cidr_denied(d, n, ip("100.96.7.8"), 32));
	assert_false(gateway_cidr_denied(d, n, ip("192.0.2.1"), 32));
	free(d);
}

/* ---- kernel side: a fresh "host" netns per test, and a "cell" netns ---- */

struct ctx {
	int home;       /* the test's own netns */
	int cell;       /* a cell's netns (fd) */
	char dir[64];   /* the allocator's lock files */
};

static int world_up(void **state)
{
	struct ctx *c = calloc(1, sizeof *c);
	c->home = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	int host = -1;
	if (c->home < 0 || unshare(CLONE_NEWNET) < 0 || (host = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC)) < 0 ||
	    unshare(CLONE_NEWNET) < 0 || (c->cell = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC)) < 0 ||
	    setns(host, CLONE_NEWNET) < 0) {
		print_error("cannot make network namespaces (run as root): %s\n", strerror(errno));
		return -1;
	}
	close(host);
	snprintf(c->dir, sizeof c->dir, "/tmp/cellos-gwtest-%d", (int)getpid());
	gateway_set_dir(c->dir);
	*state = c;
	return 0;
}

static int world_down(void **state)
{
	struct ctx *c = *state;
	int rc = setns(c->home, CLONE_NEWNET);
	close(c->home);
	close(c->cell);
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", c->dir);
	rc |= system(cmd);
	free(c);
	return rc;
}

static char *sh_out(const char *cmd)
{
	static char out[8192];
	FILE *p = popen(cmd, "r");
	size_t got = p ? fread(out, 1, sizeof out - 1, p) : 0;
	out[got] = '\0';
	if (p)
		pclose(p);
	return out;
}

static void allocates_distinct_links_and_cleans_up(void **state)
{
	struct ctx *c = *state;
	struct cidr4 sub = {ip("10.9.0.0"), 29}; /* two /30s */
	const struct nft_egress rules[] = {{4, "192.0.2.7", 443, 0}};
	struct gateway a = {0}, b = {0}, x = {0};
	struct err e = {0};
	assert_int_equal(gateway_up(&a, "cellos-a-11111111", &sub, rules, 1, NULL, 0, c->cell, &e), 0);
	/* b's peer would collide with a's eth0 in the same cell netns: give it its own. */
	int self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	assert_int_equal(unshare(CLONE_NEWNET), 0);
	int cell2 = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	assert_int_equal(setns(self, CLONE_NEWNET), 0);
	close(self);
	assert_int_equal(gateway_up(&b, "cellos-b-22222222", &sub, rules, 1, NULL, 0, cell2, &e), 0);
	assert_int_not_equal(a.net.s_addr, b.net.s_addr);
	assert_int_equal(ntohl(a.host_addr.s_addr), ntohl(a.net.s_addr) + 1);
	assert_int_equal(ntohl(a.cell_addr.s_addr), ntohl(a.net.s_addr) + 2);
	assert_string_not_equal(a.host_if, b.host_if);
	assert_string_equal(a.table, "cellos-gw-a-11111111");
	/* all /30s in use: an error naming the variable */
	assert_int_equal(gateway_up(&x, "cellos-x-33333333", &sub, rules, 1, NULL, 0, cell2, &e), -1);
	assert_non_null(strstr(e.msg, "CELLOS_CELL_SUBNET"));
	assert_non_null(strstr(sh_out("nft list tables"), "cellos-gw-a-11111111"));
	assert_non_null(strstr(sh_out("ip -o link"), a.host_if));
	gateway_down(&a);
	gateway_down(&b);
	close(cell2);
	assert_null(strstr(sh_out("nft list tables"), "cellos-gw"));
	assert_null(strstr(sh_out("ip -o link"), "cellos-"));
	char ls[128];
	snprintf(ls, sizeof ls, "ls %s", c->dir);
	assert_string_equal(sh_out(ls), "");
}

static void dead_allocation_is_reclaimed(void **state)
{
	struct ctx *c = *state;
	struct cidr4 sub = {ip("10.9.0.0"), 30}; /* /29 is the minimum of the variable; one /30 here */
	struct gateway a = {0};
	struct err e = {0};
	assert_int_equal(gateway_up(&a, "cellos-dead-44444444", &sub, NULL, 0, NULL, 0, c->cell, &e), 0);
	/* "SIGKILL": the lock is dropped, nothing is removed. */
	close(a.lock_fd);
	assert_non_null(strstr(sh_out("nft list tables"), "cellos-gw-dead-44444444"));
	gateway_sweep();
	assert_null(strstr(sh_out("nft list tables"), "cellos-gw-dead-44444444"));
	assert_null(strstr(sh_out("ip -o link"), a.host_if));
	char ls[128];
	snprintf(ls, sizeof ls, "ls %s", c->dir);
	assert_string_equal(sh_out(ls), "");
	if (a.nl_host)
		mnl_socket_close(a.nl_host);
}

/* A dead run's longer record is replaced whole by the next run's (written over,
 * then cut to length: the allocation file is never truncated to zero). */
static void longer_dead_record_is_replaced(void **state)
{
	struct ctx *c = *state;
	struct cidr4 sub = {ip("10.9.0.0"), 30};
	struct gateway a = {0}, b = {0};
	struct err e = {0};
	assert_int_equal(gateway_up(&a, "cellos-a-much-longer-cell-name-of-a-dead-run-66666666", &sub, NULL, 0, NULL, 0,
				    c->cell, &e), 0);
	close(a.lock_fd); /* "SIGKILL" */
	if (a.nl_host)
		mnl_socket_close(a.nl_host);
	assert_int_equal(gateway_up(&b, "cellos-b-77777777", &sub, NULL, 0, NULL, 0, c->cell, &e), 0);
	char path[128], want[256];
	snprintf(path, sizeof path, "%s/10.9.0.0.lock", c->dir);
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	char got[512] = {0};
	size_t n = fread(got, 1, sizeof got - 1, f);
	fclose(f);
	struct stat st;
	assert_int_equal(stat("/proc/self/ns/net", &st), 0);
	snprintf(want, sizeof want, "netns=%llu:%llu\ntable=cellos-gw-b-77777777\nif=%s\n", (unsigned long long)st.st_dev,
		 (unsigned long long)st.st_ino, b.host_if);
	assert_int_equal(n, strlen(want));
	assert_string_equal(got, want);
	/* The dead run's table went with the takeover. */
	assert_null(strstr(sh_out("nft list tables"), "much-longer"));
	gateway_down(&b);
	char ls[128];
	snprintf(ls, sizeof ls, "ls %s", c->dir);
	assert_string_equal(sh_out(ls), "");
}

static void names_extend_sets(void **state)
{
	struct ctx *c = *state;
	struct cidr4 sub = {ip("10.9.0.0"), 29};
	struct cidr4 deny[] = {{ip("127.0.0.0"), 8}};
	const struct nft_egress rules[] = {
		{4, NULL, 443, 0, .set = "egress_0", .host = "api.example.test", .rule = 0},
		{4, NULL, 443, 0, .set = "egress_1", .host = "*.cdn.example.test", .rule = 1},
	};
	struct gateway g = {0};
	struct err e = {0};
	assert_int_equal(gateway_up(&g, "cellos-n-55555555", &sub, rules, 2, deny, 1, c->cell, &e), 0);
	struct in_addr addrs[2];
	inet_pton(AF_INET, "192.0.2.10", &addrs[0]);
	inet_pton(AF_INET, "127.0.0.1", &addrs[1]); /* a rebinding answer */
	size_t rejected = 0;
	assert_int_equal(gateway_allow_name(&g, "API.example.test.", addrs, 2, &rejected, &e), 1);
	assert_int_equal(rejected, 1);
	assert_int_equal(gateway_allow_name(&g, "cdn.example.test", addrs, 1, NULL, &e), 0); /* apex: no */
	inet_pton(AF_INET, "192.0.2.11", &addrs[0]);
	assert_int_equal(gateway_allow_name(&g, "a.b.cdn.example.test", addrs, 1, NULL, &e), 1);
	char cmd[160];
	snprintf(cmd, sizeof cmd, "nft list set inet %s egress_0", g.table);
	char *out = sh_out(cmd);
	assert_non_null(strstr(out, "192.0.2.10"));
	assert_null(strstr(out, "127.0.0.1"));
	snprintf(cmd, sizeof cmd, "nft list set inet %s egress_1", g.table);
	assert_non_null(strstr(sh_out(cmd), "192.0.2.11"));
	assert_true(gateway_addr_denied(&g, addrs[1]));
	assert_false(gateway_addr_denied(&g, addrs[0]));
	assert_int_equal(gateway_allow_addrs(&g, 7, addrs, 1, NULL, &e), -1);
	gateway_down(&g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(subnet_grammar),
		cmocka_unit_test(deny_list),
		cmocka_unit_test_setup_teardown(allocates_distinct_links_and_cleans_up, world_up, world_down),
		cmocka_unit_test_setup_teardown(dead_allocation_is_reclaimed, world_up, world_down),
		cmocka_unit_test_setup_teardown(longer_dead_record_is_replaced, world_up, world_down),
		cmocka_unit_test_setup_teardown(names_extend_sets, world_up, world_down),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
