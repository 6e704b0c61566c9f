/* Tests of the nftables egress filter: the text rendering, and the kernel side
 * in a fresh network namespace per test (these tests run as root, here and in
 * CI; without the privilege they fail rather than skip). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "isolate/nft.h"

/* The rules below are written positionally ({family, addr, port, udp}); the
 * gateway's fields after those stay zero. */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#define HEAD "table inet cellos {\n" \
	     "\tchain output {\n" \
	     "\t\ttype filter hook output priority 0; policy drop;\n" \
	     "\t\toifname \"lo\" accept\n" \
	     "\t\tct state established,related accept\n"
#define TAIL "\t\tcounter drop\n" \
	     "\t}\n" \
	     "}\n"

static void assert_render(const struct nft_egress *rules, size_t n, const char *want)
{
	char *text = nft_render(rules, n);
	assert_non_null(text);
	assert_string_equal(text, want);
	free(text);
}

static void render_zero_rules(void **state)
{
	assert_render(NULL, 0, HEAD TAIL);
}

static void render_tcp_v4(void **state)
{
	const struct nft_egress r[] = { { 4, "192.0.2.7", 8443, 0 } };
	assert_render(r, 1, HEAD "\t\tip daddr 192.0.2.7 tcp dport 8443 counter accept\n" TAIL);
}

static void render_udp_v6_cidr(void **state)
{
	const struct nft_egress r[] = { { 6, "2001:db8::/32", 53, 1 } };
	assert_render(r, 1, HEAD "\t\tip6 daddr 2001:db8::/32 udp dport 53 counter accept\n" TAIL);
}

static void render_keeps_order(void **state)
{
	const struct nft_egress r[] = {
		{ 4, "10.0.0.0/8", 53, 1 },
		{ 6, "2001:db8::7", 443, 0 },
		{ 4, "192.0.2.7", 1, 0 },
	};
	assert_render(r, 3, HEAD
		      "\t\tip daddr 10.0.0.0/8 udp dport 53 counter accept\n"
		      "\t\tip6 daddr 2001:db8::7 tcp dport 443 counter accept\n"
		      "\t\tip daddr 192.0.2.7 tcp dport 1 counter accept\n" TAIL);
}

/* ---- kernel side, each test in a fresh netns ---- */

static int netns_enter(void **state)
{
	int fd = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (fd < 0 || unshare(CLONE_NEWNET) < 0) {
		print_error("cannot enter a fresh netns (run as root): %s\n", strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	*state = (void *)(intptr_t)fd;
	return 0;
}

static int netns_leave(void **state)
{
	int fd = (int)(intptr_t)*state;
	int rc = setns(fd, CLONE_NEWNET);
	close(fd);
	return rc;
}

static struct nft_counter *read_counters(size_t *n)
{
	struct err e = { 0 };
	struct nft_counter *c = NULL;
	if (nft_read_counters(&c, n, &e) < 0)
		fail_msg("nft_read_counters: %s", e.msg);
	return c;
}

static void apply(const struct nft_egress *rules, size_t n)
{
	struct err e = { 0 };
	if (nft_apply(rules, n, &e) < 0)
		fail_msg("nft_apply: %s", e.msg);
}

static void apply_and_read_back(void **state)
{
	const struct nft_egress r[] = {
		{ 4, "192.0.2.7", 8443, 0 },
		{ 6, "2001:db8::/32", 53, 1 },
	};
	apply(r, 2);
	size_t n;
	struct nft_counter *c = read_counters(&n);
	assert_int_equal(n, 3);
	assert_string_equal(c[0].rule, "ip daddr 192.0.2.7 tcp dport 8443 accept");
	assert_string_equal(c[1].rule, "ip6 daddr 2001:db8::/32 udp dport 53 accept");
	assert_string_equal(c[2].rule, "drop");
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(c[i].packets, 0);
		assert_int_equal(c[i].bytes, 0);
	}
	nft_counters_free(c, n);
}

/* Under the gateway a DNS-name rule is one rule over a set of its addresses
 * (SPEC §6.4); infrastructure rules (the DNS proxy) are not counted. */
static void apply_with_set(void **state)
{
	uint32_t elems[2];
	inet_pton(AF_INET, "192.0.2.8", &elems[0]);
	inet_pton(AF_INET, "192.0.2.9", &elems[1]);
	const struct nft_egress r[] = {
		{ 4, "100.96.0.1", 53, 1, .quiet = 1 },
		{ 4, NULL, 443, 0, .set = "egress_3", .host = "example.test", .rule = 3, .elems = elems, .n_elems = 2 },
		{ 4, "192.0.2.7", 8443, 0 },
	};
	apply(r, 3);
	size_t n;
	struct nft_counter *c = read_counters(&n);
	assert_int_equal(n, 3);
	assert_string_equal(c[0].rule, "ip daddr @egress_3 tcp dport 443 accept");
	assert_string_equal(c[1].rule, "ip daddr 192.0.2.7 tcp dport 8443 accept");
	assert_string_equal(c[2].rule, "drop");
	nft_counters_free(c, n);
	/* nft itself sees the set and its elements. */
	FILE *p = popen("nft list set inet cellos egress_3 2>&1", "r");
	char out[4096] = "";
	size_t got = fread(out, 1, sizeof out - 1, p);
	out[got] = '\0';
	pclose(p);
	if (!strstr(out, "192.0.2.8") || !strstr(out, "192.0.2.9") || !strstr(out, "ipv4_addr"))
		fail_msg("nft list set: %s", out);
}

static void apply_no_egress_rules(void **state)
{
	apply(NULL, 0);
	size_t n;
	struct nft_counter *c = read_counters(&n);
	assert_int_equal(n, 1);
	assert_string_equal(c[0].rule, "drop");
	nft_counters_free(c, n);
}

/* A tun device with addr/24 and IPv6 off (so that the kernel sends nothing by
 * itself): a route out of the netns that is not lo, whose packets the test can
 * read back from the returned fd. */
static int tun_up(const char *name, const char *addr)
{
	int fd = open("/proc/sys/net/ipv6/conf/default/disable_ipv6", O_WRONLY | O_CLOEXEC);
	if (fd >= 0) {
		assert_int_equal(write(fd, "1", 1), 1);
		close(fd);
	} else {
		assert_int_equal(errno, ENOENT); /* a kernel without IPv6 */
	}

	struct ifreq ifr = { .ifr_flags = IFF_TUN | IFF_NO_PI };
	strcpy(ifr.ifr_name, name);
	int tun = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	assert_true(tun >= 0);
	assert_int_equal(ioctl(tun, TUNSETIFF, &ifr), 0);

	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(s >= 0);
	struct sockaddr_in *sin = (struct sockaddr_in *)&ifr.ifr_addr;
	*sin = (struct sockaddr_in){ .sin_family = AF_INET };
	assert_int_equal(inet_pton(AF_INET, addr, &sin->sin_addr), 1);
	assert_int_equal(ioctl(s, SIOCSIFADDR, &ifr), 0);
	assert_int_equal(inet_pton(AF_INET, "255.255.255.0", &sin->sin_addr), 1);
	assert_int_equal(ioctl(s, SIOCSIFNETMASK, &ifr), 0);
	assert_int_equal(ioctl(s, SIOCGIFFLAGS, &ifr), 0);
	ifr.ifr_flags |= IFF_UP;
	assert_int_equal(ioctl(s, SIOCSIFFLAGS, &ifr), 0);
	close(s);
	return tun;
}

static struct sockaddr_in ipv4(const char *addr, int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	assert_int_equal(inet_pton(AF_INET, addr, &sa.sin_addr), 1);
	return sa;
}

/* Real packets move the counters: a denied UDP datagram is dropped (sendto
 * says EPERM) and counted by the final drop; an allowed TCP SYN leaves through
 * the tun device and is counted by its rule, byte for byte. */
static void counters_count_packets(void **state)
{
	int tun = tun_up("cellos-t0", "192.0.2.1");
	const struct nft_egress r[] = { { 4, "192.0.2.7", 8443, 0 } };
	apply(r, 1);

	int u = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in denied = ipv4("192.0.2.9", 9);
	assert_int_equal(sendto(u, "ping", 4, 0, (struct sockaddr *)&denied, sizeof denied), -1);
	assert_int_equal(errno, EPERM);
	close(u);

	int t = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	struct sockaddr_in allowed = ipv4("192.0.2.7", 8443);
	assert_int_equal(connect(t, (struct sockaddr *)&allowed, sizeof allowed), -1);
	assert_int_equal(errno, EINPROGRESS);

	/* The SYN is the one packet that got out. */
	unsigned char pkt[2048];
	ssize_t len = read(tun, pkt, sizeof pkt);
	assert_true(len >= (ssize_t)(sizeof(struct iphdr) + sizeof(struct tcphdr)));
	const struct iphdr *ip = (const void *)pkt;
	assert_int_equal(ip->protocol, IPPROTO_TCP);
	assert_int_equal(ip->daddr, allowed.sin_addr.s_addr);
	const struct tcphdr *tcp = (const void *)(pkt + ip->ihl * 4);
	assert_int_equal(ntohs(tcp->dest), 8443);
	assert_true(tcp->syn);
	assert_int_equal(read(tun, pkt, sizeof pkt), -1);
	assert_int_equal(errno, EAGAIN);

	size_t n;
	struct nft_counter *c = read_counters(&n);
	assert_int_equal(n, 2);
	assert_string_equal(c[0].rule, "ip daddr 192.0.2.7 tcp dport 8443 accept");
	assert_int_equal(c[0].packets, 1);
	assert_int_equal(c[0].bytes, len);
	assert_string_equal(c[1].rule, "drop");
	assert_int_equal(c[1].packets, 1);
	assert_int_equal(c[1].bytes, sizeof(struct iphdr) + 8 + 4); /* IPv4 + UDP + "ping" */
	nft_counters_free(c, n);
	close(t);
	close(tun);
}

/* Output of a shell command, which must succeed. */
static char *run(const char *fmt, ...)
{
	char cmd[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof cmd, fmt, ap);
	va_end(ap);
	FILE *p = popen(cmd, "r");
	assert_non_null(p);
	char *out = NULL;
	size_t size = 0;
	FILE *m = open_memstream(&out, &size);
	char buf[4096];
	size_t k;
	while ((k = fread(buf, 1, sizeof buf, p)) > 0)
		fwrite(buf, 1, k, m);
	fclose(m);
	if (pclose(p) != 0)
		fail_msg("`%s` failed; output:\n%s", cmd, out);
	return out;
}

#define NFT "PATH=/usr/sbin:/sbin:$PATH nft"

/* The rules as the nft tool itself lists them (its counted lines, counter
 * statement cut out) are what nft_read_counters returns; and the kernel holds
 * the same ruleset whether nft_apply installs it or `nft -f` loads
 * nft_render's text. Address forms nft rewrites are included on purpose. */
static void listing_matches_nft(void **state)
{
	const struct nft_egress r[] = {
		{ 4, "192.0.2.7", 8443, 0 },
		{ 4, "10.1.2.3/8", 53, 1 },
		{ 4, "10.1.0.0/20", 443, 0 },
		{ 4, "0.0.0.0/0", 443, 0 },
		{ 4, "198.51.100.0/31", 65535, 1 },
		{ 6, "2001:DB8:0:0:0:0:0:1", 443, 0 },
		{ 6, "2001:db8::/32", 53, 1 },
		{ 6, "2001:db8::/33", 53, 1 },
		{ 6, "fe80::/10", 1, 0 },
		{ 6, "::ffff:1.2.3.4", 80, 0 },
		{ 6, "::/0", 123, 1 },
	};
	const size_t nr = sizeof r / sizeof *r;
	const char *want[] = {
		"ip daddr 192.0.2.7 tcp dport 8443 accept",
		"ip daddr 10.0.0.0/8 udp dport 53 accept",
		"ip daddr 10.1.0.0/20 tcp dport 443 accept",
		"ip daddr 0.0.0.0/0 tcp dport 443 accept",
		"ip daddr 198.51.100.0/31 udp dport 65535 accept",
		"ip6 daddr 2001:db8::1 tcp dport 443 accept",
		"ip6 daddr 2001:db8::/32 udp dport 53 accept",
		"ip6 daddr 2001:db8::/33 udp dport 53 accept",
		"ip6 daddr fe80::/10 tcp dport 1 accept",
		"ip6 daddr ::ffff:1.2.3.4 tcp dport 80 accept",
		"ip6 daddr ::/0 udp dport 123 accept",
		"drop",
	};
	apply(r, nr);
	size_t n;
	struct nft_counter *c = read_counters(&n);
	assert_int_equal(n, nr + 1);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(c[i].rule, want[i]);

	char *listed = run(NFT " list ruleset");
	size_t i = 0;
	for (char *save, *line = strtok_r(listed, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *counter = strstr(line, "counter packets 0 bytes 0 ");
		if (!counter)
			continue;
		memmove(counter, counter + strlen("counter packets 0 bytes 0 "),
			strlen(counter + strlen("counter packets 0 bytes 0 ")) + 1);
		assert_true(i < n);
		assert_string_equal(line + strspn(line, "\t"), c[i].rule);
		i++;
	}
	assert_int_equal(i, n);
	free(listed);
	nft_counters_free(c, n);

	/* nft_render's text, loaded by nft, gives the same ruleset. */
	char *ours = run(NFT " list ruleset");
	char *text = nft_render(r, nr);
	char path[] = "/tmp/test_nft.XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	free(run(NFT " flush ruleset && " NFT " -f %s", path));
	unlink(path);
	char *theirs = run(NFT " list ruleset");
	assert_string_equal(ours, theirs);
	free(ours);
	free(theirs);
	free(text);
}

/* Long egress lists take a batch larger than the default socket buffers and a
 * dump that spans several messages. */
static void many_rules(void **state)
{
	enum { N = 2000 };
	struct nft_egress *r = calloc(N, sizeof *r);
	char (*addr)[INET_ADDRSTRLEN] = calloc(N, sizeof *addr);
	assert_non_null(r);
	assert_non_null(addr);
	for (int i = 0; i < N; i++) {
		snprintf(addr[i], sizeof addr[i], "10.%d.%d.0/24", i / 256, i % 256);
		r[i] = (struct nft_egress){ 4, addr[i], 1 + i, i % 2 };
	}
	apply(r, N);
	size_t n;
	struct nft_counter *c = read_counters(&n);
	assert_int_equal(n, N + 1);
	for (int i = 0; i < N; i++) {
		char want[64];
		snprintf(want, sizeof want, "ip daddr %s %s dport %d accept", addr[i],
			 i % 2 ? "udp" : "tcp", 1 + i);
		assert_string_equal(c[i].rule, want);
	}
	assert_string_equal(c[N].rule, "drop");
	nft_counters_free(c, n);
	free(addr);
	free(r);
}

static void apply_twice_fails(void **state)
{
	const struct nft_egress r[] = { { 4, "192.0.2.7", 8443, 0 } };
	apply(r, 1);
	struct err e = { 0 };
	assert_int_equal(nft_apply(r, 1, &e), -1);
	assert_string_equal(e.msg, "nftables: add table inet cellos: File exists");
	assert_int_equal(e.status, 125);
	/* The failed transaction changed nothing. */
	size_t n;
	struct nft_counter *c = read_counters(&n);
	assert_int_equal(n, 2);
	nft_counters_free(c, n);
}

static void apply_rejects_bad_rules(void **state)
{
	static const struct {
		struct nft_egress rule;
		const char *msg;
	} cases[] = {
		{ { 4, "192.0.2.300", 1, 0 }, "address 192.0.2.300 is not an IPv4 literal" },
		{ { 4, "2001:db8::1", 1, 0 }, "address 2001:db8::1 is not an IPv4 literal" },
		{ { 6, "192.0.2.1", 1, 0 }, "address 192.0.2.1 is not an IPv6 literal" },
		{ { 4, "10.0.0.0/33", 1, 0 }, "address 10.0.0.0/33 has a bad prefix length" },
		{ { 4, "10.0.0.0/", 1, 0 }, "address 10.0.0.0/ has a bad prefix length" },
		{ { 6, "::/-1", 1, 0 }, "address ::/-1 has a bad prefix length" },
		{ { 4, "192.0.2.1", 0, 0 }, "port 0 is out of range" },
		{ { 4, "192.0.2.1", 65536, 1 }, "port 65536 is out of range" },
		{ { 5, "192.0.2.1", 1, 0 }, "family 5 is neither 4 nor 6" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		const struct nft_egress r[] = { { 4, "192.0.2.7", 8443, 0 }, cases[i].rule };
		struct err e = { 0 };
		char want[256];
		snprintf(want, sizeof want, "nftables: egress rule 2: %s", cases[i].msg);
		assert_int_equal(nft_apply(r, 2, &e), -1);
		assert_string_equal(e.msg, want);
	}
	/* Nothing reached the kernel. */
	struct err e = { 0 };
	struct nft_counter *c;
	size_t n;
	assert_int_equal(nft_read_counters(&c, &n, &e), -1);
	assert_string_equal(e.msg, "nftables: no chain inet cellos output");
	assert_null(c);
	assert_int_equal(n, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(render_zero_rules),
		cmocka_unit_test(render_tcp_v4),
		cmocka_unit_test(render_udp_v6_cidr),
		cmocka_unit_test(render_keeps_order),
		cmocka_unit_test_setup_teardown(apply_and_read_back, netns_enter, netns_leave),
		cmocka_unit_test_setup_teardown(apply_no_egress_rules, netns_enter, netns_leave),
		cmocka_unit_test_setup_teardown(apply_with_set, netns_enter, netns_leave),
		cmocka_unit_test_setup_teardown(counters_count_packets, netns_enter, netns_leave),
		cmocka_unit_test_setup_teardown(listing_matches_nft, netns_enter, netns_leave),
		cmocka_unit_test_setup_teardown(many_rules, netns_enter, netns_leave),
		cmocka_unit_test_setup_teardown(apply_twice_fails, netns_enter, netns_leave),
		cmocka_unit_test_setup_teardown(apply_rejects_bad_rules, netns_enter, netns_leave),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
