/* Kernel side of the egress filter (SPEC §6.1): nft_apply() sends the ruleset
 * as one nf_tables netlink transaction built with libnftnl, nft_read_counters()
 * reads the chain back with a rule dump.
 *
 * Why not libnftables: its context, cache fetch, parser and listing cost several
 * times the time and memory of this per cell (the figures: docs/DESIGN.md,
 * "Measured costs behind the code"). The expressions are the ones `nft` generates for
 * nft_render()'s text, so `nft list ruleset` in the cell shows exactly those
 * rules, and the read-back prints them the way nft does. */
#include "isolate/nft.h"

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/table.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>

#define TABLE "cellos"
#define CHAIN "output"

/* Upper bound of one batch message; the largest, an IPv6 prefix rule, takes
 * 572 bytes. */
#define MSG_MAX 1024
/* Receive buffer of a rule dump: the kernel sizes dump messages after it. */
#define DUMP_BUF 32768

/* One egress entry in wire form. */
struct dest {
	uint8_t nfproto;        /* NFPROTO_IPV4 / NFPROTO_IPV6 */
	uint8_t l4proto;        /* IPPROTO_TCP / IPPROTO_UDP */
	uint16_t port;          /* network order */
	uint32_t len;           /* address bytes: 4 or 16 */
	uint32_t prefix;        /* bits */
	uint8_t addr[16];       /* host bits cleared */
	uint8_t mask[16];       /* of the prefix */
};

static int parse_dest(const struct nft_egress *g, struct dest *d, struct err *e)
{
	if (g->family != 4 && g->family != 6)
		return err_set(e, "family %d is neither 4 nor 6", g->family);
	if (g->port < 1 || g->port > 65535)
		return err_set(e, "port %d is out of range", g->port);

	char host[INET6_ADDRSTRLEN];
	const char *slash = strchr(g->addr, '/');
	size_t hlen = slash ? (size_t)(slash - g->addr) : strlen(g->addr);
	if (hlen >= sizeof host)
		return err_set(e, "address %s is not an IPv%d literal", g->addr, g->family);
	memcpy(host, g->addr, hlen);
	host[hlen] = '\0';

	*d = (struct dest){
		.nfproto = g->family == 4 ? NFPROTO_IPV4 : NFPROTO_IPV6,
		.l4proto = g->udp ? IPPROTO_UDP : IPPROTO_TCP,
		.port = htons((uint16_t)g->port),
		.len = g->family == 4 ? 4 : 16,
	};
	d->prefix = d->len * 8;
	if (inet_pton(g->family == 4 ? AF_INET : AF_INET6, host, d->addr) != 1)
		return err_set(e, "address %s is not an IPv%d literal", g->addr, g->family);
	if (slash) {
		char *end;
		errno = 0;
		unsigned long p = strtoul(slash + 1, &end, 10);
		if (slash[1] < '0' || slash[1] > '9' || *end || errno || p > d->prefix)
			return err_set(e, "address %s has a bad prefix length", g->addr);
		d->prefix = (uint32_t)p;
	}
	/* nft clears host bits too (10.1.2.3/8 lists as 10.0.0.0/8). */
	for (uint32_t i = 0; i < d->len; i++) {
		uint32_t bits = d->prefix > i * 8 ? d->prefix - i * 8 : 0;
		d->mask[i] = bits >= 8 ? 0xff : (uint8_t)(0xff00 >> bits);
		d->addr[i] &= d->mask[i];
	}
	return 0;
}

/* ---- building the ruleset ---- */

/* The add_* helpers return non-zero when out of memory, so a rule is a chain of
 * them joined by ||. */
static struct nftnl_expr *add(struct nftnl_rule *r, const char *name)
{
	struct nftnl_expr *x = nftnl_expr_alloc(name);
	if (x)
		nftnl_rule_add_expr(r, x);
	return x;
}

static int add_meta(struct nftnl_rule *r, uint32_t key)
{
	struct nftnl_expr *x = add(r, "meta");
	if (!x)
		return -1;
	nftnl_expr_set_u32(x, NFTNL_EXPR_META_KEY, key);
	nftnl_expr_set_u32(x, NFTNL_EXPR_META_DREG, NFT_REG_1);
	return 0;
}

static int add_ct_state(struct nftnl_rule *r)
{
	struct nftnl_expr *x = add(r, "ct");
	if (!x)
		return -1;
	nftnl_expr_set_u32(x, NFTNL_EXPR_CT_KEY, NFT_CT_STATE);
	nftnl_expr_set_u32(x, NFTNL_EXPR_CT_DREG, NFT_REG_1);
	return 0;
}

static int add_payload(struct nftnl_rule *r, uint32_t base, uint32_t offset, uint32_t len)
{
	struct nftnl_expr *x = add(r, "payload");
	if (!x)
		return -1;
	nftnl_expr_set_u32(x, NFTNL_EXPR_PAYLOAD_BASE, base);
	nftnl_expr_set_u32(x, NFTNL_EXPR_PAYLOAD_OFFSET, offset);
	nftnl_expr_set_u32(x, NFTNL_EXPR_PAYLOAD_LEN, len);
	nftnl_expr_set_u32(x, NFTNL_EXPR_PAYLOAD_DREG, NFT_REG_1);
	return 0;
}

/* reg1 = reg1 & mask */
static int add_mask(struct nftnl_rule *r, const void *mask, uint32_t len)
{
	static const uint8_t zero[16];
	struct nftnl_expr *x = add(r, "bitwise");
	if (!x)
		return -1;
	nftnl_expr_set_u32(x, NFTNL_EXPR_BITWISE_SREG, NFT_REG_1);
	nftnl_expr_set_u32(x, NFTNL_EXPR_BITWISE_DREG, NFT_REG_1);
	nftnl_expr_set_u32(x, NFTNL_EXPR_BITWISE_LEN, len);
	return nftnl_expr_set(x, NFTNL_EXPR_BITWISE_MASK, mask, len) ||
	       nftnl_expr_set(x, NFTNL_EXPR_BITWISE_XOR, zero, len);
}

static int add_cmp(struct nftnl_rule *r, uint32_t op, const void *data, uint32_t len)
{
	struct nftnl_expr *x = add(r, "cmp");
	if (!x)
		return -1;
	nftnl_expr_set_u32(x, NFTNL_EXPR_CMP_SREG, NFT_REG_1);
	nftnl_expr_set_u32(x, NFTNL_EXPR_CMP_OP, op);
	return nftnl_expr_set(x, NFTNL_EXPR_CMP_DATA, data, len);
}

static int add_counter(struct nftnl_rule *r)
{
	return add(r, "counter") ? 0 : -1;
}

static int add_verdict(struct nftnl_rule *r, int verdict)
{
	struct nftnl_expr *x = add(r, "immediate");
	if (!x)
		return -1;
	nftnl_expr_set_u32(x, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
	nftnl_expr_set_u32(x, NFTNL_EXPR_IMM_VERDICT, (uint32_t)verdict);
	return 0;
}

/* oifname "lo" accept */
static int exprs_lo(struct nftnl_rule *r, const struct dest *unused)
{
	static const char lo[IFNAMSIZ] = "lo";
	return add_meta(r, NFT_META_OIFNAME) || add_cmp(r, NFT_CMP_EQ, lo, sizeof lo) ||
	       add_verdict(r, NF_ACCEPT);
}

/* ct state established,related accept */
static int exprs_established(struct nftnl_rule *r, const struct dest *unused)
{
	static const uint32_t states = NF_CT_STATE_BIT(IP_CT_ESTABLISHED) | NF_CT_STATE_BIT(IP_CT_RELATED);
	static const uint32_t none = 0;
	return add_ct_state(r) || add_mask(r, &states, sizeof states) ||
	       add_cmp(r, NFT_CMP_NEQ, &none, sizeof none) || add_verdict(r, NF_ACCEPT);
}

/* ip daddr 10.0.0.0/8 tcp dport 443 counter accept. The meta nfproto and
 * l4proto matches are the dependencies nft adds (and hides when listing). A
 * prefix is a full-length load and a mask, as nft emits for /20 (it shortens
 * the load for byte-aligned prefixes instead; both list the same). */
static int exprs_egress(struct nftnl_rule *r, const struct dest *d)
{
	uint32_t daddr = d->nfproto == NFPROTO_IPV4 ? 16 : 24; /* offsetof(iphdr/ipv6hdr, daddr) */
	return add_meta(r, NFT_META_NFPROTO) || add_cmp(r, NFT_CMP_EQ, &d->nfproto, 1) ||
	       add_payload(r, NFT_PAYLOAD_NETWORK_HEADER, daddr, d->len) ||
	       (d->prefix < d->len * 8 && add_mask(r, d->mask, d->len)) ||
	       add_cmp(r, NFT_CMP_EQ, d->addr, d->len) ||
	       add_meta(r, NFT_META_L4PROTO) || add_cmp(r, NFT_CMP_EQ, &d->l4proto, 1) ||
	       add_payload(r, NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2) || /* dport */
	       add_cmp(r, NFT_CMP_EQ, &d->port, 2) ||
	       add_counter(r) || add_verdict(r, NF_ACCEPT);
}

/* counter drop */
static int exprs_drop(struct nftnl_rule *r, const struct dest *unused)
{
	return add_counter(r) || add_verdict(r, NF_DROP);
}

static struct nftnl_rule *rule_new(void)
{
	struct nftnl_rule *r = nftnl_rule_alloc();
	if (!r)
		return NULL;
	nftnl_rule_set_u32(r, NFTNL_RULE_FAMILY, NFPROTO_INET);
	if (nftnl_rule_set_str(r, NFTNL_RULE_TABLE, TABLE) < 0 ||
	    nftnl_rule_set_str(r, NFTNL_RULE_CHAIN, CHAIN) < 0) {
		nftnl_rule_free(r);
		return NULL;
	}
	return r;
}

/* Consecutive netlink messages, numbered from 1 (the batch begin). */
struct batch {
	char *buf;
	size_t len;
	size_t last;            /* offset of the last message added */
	uint32_t seq;
};

static struct nlmsghdr *batch_msg(struct batch *b, uint16_t type, uint16_t flags)
{
	return nftnl_nlmsg_build_hdr(b->buf + b->len, type, NFPROTO_INET, flags, b->seq++);
}

static void batch_next(struct batch *b, struct nlmsghdr *nlh)
{
	b->last = b->len;
	b->len += nlh->nlmsg_len;
}

static int batch_table(struct batch *b)
{
	struct nftnl_table *t = nftnl_table_alloc();
	if (!t)
		return -1;
	nftnl_table_set_u32(t, NFTNL_TABLE_FAMILY, NFPROTO_INET);
	int rc = nftnl_table_set_str(t, NFTNL_TABLE_NAME, TABLE);
	if (rc == 0) {
		/* EXCL: applying twice is a bug, not a reason to double the rules. */
		struct nlmsghdr *nlh = batch_msg(b, NFT_MSG_NEWTABLE, NLM_F_CREATE | NLM_F_EXCL);
		nftnl_table_nlmsg_build_payload(nlh, t);
		batch_next(b, nlh);
	}
	nftnl_table_free(t);
	return rc;
}

static int batch_chain(struct batch *b)
{
	struct nftnl_chain *c = nftnl_chain_alloc();
	if (!c)
		return -1;
	nftnl_chain_set_u32(c, NFTNL_CHAIN_FAMILY, NFPROTO_INET);
	nftnl_chain_set_u32(c, NFTNL_CHAIN_HOOKNUM, NF_INET_LOCAL_OUT);
	nftnl_chain_set_s32(c, NFTNL_CHAIN_PRIO, 0);
	nftnl_chain_set_u32(c, NFTNL_CHAIN_POLICY, NF_DROP);
	int rc = nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, TABLE) ||
		 nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, CHAIN) ||
		 nftnl_chain_set_str(c, NFTNL_CHAIN_TYPE, "filter");
	if (rc == 0) {
		struct nlmsghdr *nlh = batch_msg(b, NFT_MSG_NEWCHAIN, NLM_F_CREATE);
		nftnl_chain_nlmsg_build_payload(nlh, c);
		batch_next(b, nlh);
	}
	nftnl_chain_free(c);
	return rc;
}

static int batch_rule(struct batch *b, int (*exprs)(struct nftnl_rule *, const struct dest *),
		      const struct dest *d)
{
	struct nftnl_rule *r = rule_new();
	if (!r)
		return -1;
	int rc = exprs(r, d);
	if (rc == 0) {
		struct nlmsghdr *nlh = batch_msg(b, NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND);
		nftnl_rule_nlmsg_build_payload(nlh, r);
		batch_next(b, nlh);
	}
	nftnl_rule_free(r);
	return rc;
}

/* What batch message `seq` (see nft_apply) creates, for error messages. */
static void batch_what(uint32_t seq, char *buf, size_t size)
{
	if (seq == 2)
		snprintf(buf, size, "add table inet " TABLE);
	else if (seq == 3)
		snprintf(buf, size, "add chain inet " TABLE " " CHAIN);
	else if (seq > 3)
		snprintf(buf, size, "add rule %u of inet " TABLE " " CHAIN, seq - 3);
	else
		snprintf(buf, size, "transaction");
}

static struct mnl_socket *nl_open(struct err *e)
{
	struct mnl_socket *nl = mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC);
	if (!nl) {
		err_sys(e, errno, "nftables: netlink socket");
		return NULL;
	}
	if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		err_sys(e, errno, "nftables: binding the netlink socket");
		mnl_socket_close(nl);
		return NULL;
	}
	return nl;
}

/* Sends the batch and waits for its outcome. The kernel commits or aborts the
 * whole transaction and reports every failed message, in order. Only the last
 * message asks for an ack, which ends a success: an ack per message would
 * overflow the receive buffer for long egress lists. */
static int batch_send(struct mnl_socket *nl, const struct batch *b, uint32_t last, struct err *e)
{
	/* One sendmsg must hold the whole batch: raise the send buffer for long
	 * egress lists, as nft does (best effort: sendto says EMSGSIZE if it is
	 * still too small). */
	if (b->len > 64 * 1024) {
		int size = (int)b->len;
		(void)setsockopt(mnl_socket_get_fd(nl), SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof size);
	}
	if (mnl_socket_sendto(nl, b->buf, b->len) < 0)
		return err_sys(e, errno, "nftables: sending the ruleset");

	char buf[8192];
	for (;;) {
		ssize_t got = mnl_socket_recvfrom(nl, buf, sizeof buf);
		if (got < 0)
			return err_sys(e, errno, "nftables: reading the kernel's reply");
		int len = (int)got;
		for (const struct nlmsghdr *nlh = (void *)buf; mnl_nlmsg_ok(nlh, len);
		     nlh = mnl_nlmsg_next(nlh, &len)) {
			if (nlh->nlmsg_type != NLMSG_ERROR)
				continue;
			const struct nlmsgerr *ack = mnl_nlmsg_get_payload(nlh);
			if (ack->error) {
				char what[64];
				batch_what(ack->msg.nlmsg_seq, what, sizeof what);
				return err_sys(e, -ack->error, "nftables: %s", what);
			}
			if (nlh->nlmsg_seq == last)
				return 0;
		}
	}
}

int nft_apply(const struct nft_egress *rules, size_t n, struct err *e)
{
	cleanup_free struct dest *dests = calloc(n ? n : 1, sizeof *dests);
	if (!dests)
		return err_set(e, "nftables: out of memory");
	for (size_t i = 0; i < n; i++)
		if (parse_dest(&rules[i], &dests[i], e) < 0)
			return err_prefix(e, "nftables: egress rule %zu", i + 1);

	/* begin, table, chain, lo, established, n egress rules, drop, end */
	cleanup_free char *buf = calloc(n + 7, MSG_MAX);
	if (!buf)
		return err_set(e, "nftables: out of memory");
	struct batch b = { .buf = buf, .seq = 1 };
	batch_next(&b, nftnl_batch_begin(b.buf, b.seq++));
	int oom = batch_table(&b) || batch_chain(&b) || batch_rule(&b, exprs_lo, NULL) ||
		  batch_rule(&b, exprs_established, NULL);
	for (size_t i = 0; i < n && !oom; i++)
		oom = batch_rule(&b, exprs_egress, &dests[i]);
	oom = oom || batch_rule(&b, exprs_drop, NULL);
	if (oom)
		return err_set(e, "nftables: out of memory");
	struct nlmsghdr *last = (void *)(b.buf + b.last);
	last->nlmsg_flags |= NLM_F_ACK;
	batch_next(&b, nftnl_batch_end(b.buf + b.len, b.seq++));

	struct mnl_socket *nl = nl_open(e);
	if (!nl)
		return -1;
	int rc = batch_send(nl, &b, last->nlmsg_seq, e);
	mnl_socket_close(nl);
	return rc;
}

/* ---- reading the counters back ---- */

/* What register 1 holds while a rule's expressions are walked. */
enum load { LOAD_NONE, LOAD_NFPROTO, LOAD_L4PROTO, LOAD_DADDR, LOAD_DPORT };

/* Prints a rule the way `nft list ruleset` does, without its counter. It knows
 * the expressions nft_apply() writes; any other makes the rule unprintable. */
struct decoder {
	enum load load;
	uint32_t load_len;      /* bytes loaded into register 1 */
	int prefix;             /* of the mask applied to register 1, -1 if none */
	uint8_t nfproto, l4proto;
	char text[160];
	size_t len;
	bool counted;
	uint64_t packets, bytes;
	const char *unknown;    /* first expression that could not be printed */
};

static void say(struct decoder *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(struct decoder *d, const char *fmt, ...)
{
	char word[96];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(word, sizeof word, fmt, ap);
	va_end(ap);
	size_t room = sizeof d->text - d->len;
	int k = snprintf(d->text + d->len, room, "%s%s", d->len ? " " : "", word);
	d->len += k < 0 ? 0 : (size_t)k < room ? (size_t)k : room - 1;
}

/* Leading one bits of a contiguous mask, -1 if it is not one. */
static int mask_prefix(const uint8_t *m, uint32_t len)
{
	int bits = 0;
	uint32_t i = 0;
	for (; i < len && m[i] == 0xff; i++)
		bits += 8;
	if (i < len) {
		uint8_t rest = m[i++];
		for (; rest & 0x80; rest = (uint8_t)(rest << 1))
			bits++;
		if (rest)
			return -1;
		for (; i < len; i++)
			if (m[i])
				return -1;
	}
	return bits;
}

/* A comparison with register 1: the meta matches are the protocol
 * dependencies nft hides; the payload ones print. */
static bool decode_cmp(struct decoder *d, struct nftnl_expr *x)
{
	uint32_t len;
	const uint8_t *data = nftnl_expr_get(x, NFTNL_EXPR_CMP_DATA, &len);
	enum load load = d->load;
	d->load = LOAD_NONE;
	if (nftnl_expr_get_u32(x, NFTNL_EXPR_CMP_OP) != NFT_CMP_EQ || !data)
		return false;

	if (load == LOAD_NFPROTO && len == 1) {
		d->nfproto = data[0];
	} else if (load == LOAD_L4PROTO && len == 1) {
		d->l4proto = data[0];
	} else if (load == LOAD_DADDR && len == d->load_len) {
		bool v4 = d->nfproto == NFPROTO_IPV4;
		uint8_t addr[16] = { 0 };
		char s[INET6_ADDRSTRLEN];
		memcpy(addr, data, len);
		inet_ntop(v4 ? AF_INET : AF_INET6, addr, s, sizeof s);
		/* Without a mask, a short load is nft's form of a byte-aligned prefix. */
		int prefix = d->prefix >= 0 ? d->prefix : (int)len * 8;
		if (prefix < (v4 ? 32 : 128))
			say(d, "%s daddr %s/%d", v4 ? "ip" : "ip6", s, prefix);
		else
			say(d, "%s daddr %s", v4 ? "ip" : "ip6", s);
	} else if (load == LOAD_DPORT && len == 2 &&
		   (d->l4proto == IPPROTO_TCP || d->l4proto == IPPROTO_UDP)) {
		uint16_t port;
		memcpy(&port, data, 2);
		say(d, "%s dport %u", d->l4proto == IPPROTO_TCP ? "tcp" : "udp", ntohs(port));
	} else {
		return false;
	}
	return true;
}

static enum load decode_payload(struct decoder *d, struct nftnl_expr *x)
{
	uint32_t base = nftnl_expr_get_u32(x, NFTNL_EXPR_PAYLOAD_BASE);
	uint32_t off = nftnl_expr_get_u32(x, NFTNL_EXPR_PAYLOAD_OFFSET);
	uint32_t len = nftnl_expr_get_u32(x, NFTNL_EXPR_PAYLOAD_LEN);
	d->load_len = len;
	d->prefix = -1;
	if (base == NFT_PAYLOAD_NETWORK_HEADER &&
	    ((d->nfproto == NFPROTO_IPV4 && off == 16 && len <= 4) ||
	     (d->nfproto == NFPROTO_IPV6 && off == 24 && len <= 16)))
		return LOAD_DADDR;
	if (base == NFT_PAYLOAD_TRANSPORT_HEADER && off == 2 && len == 2)
		return LOAD_DPORT;
	return LOAD_NONE;
}

static int decode_expr(struct nftnl_expr *x, void *data)
{
	struct decoder *d = data;
	const char *name = nftnl_expr_get_str(x, NFTNL_EXPR_NAME);
	bool known = true;
	if (!strcmp(name, "meta")) {
		uint32_t key = nftnl_expr_get_u32(x, NFTNL_EXPR_META_KEY);
		d->load = key == NFT_META_NFPROTO ? LOAD_NFPROTO :
			  key == NFT_META_L4PROTO ? LOAD_L4PROTO : LOAD_NONE;
		known = d->load != LOAD_NONE;
	} else if (!strcmp(name, "payload")) {
		d->load = decode_payload(d, x);
		known = d->load != LOAD_NONE;
	} else if (!strcmp(name, "bitwise")) {
		uint32_t len;
		const uint8_t *mask = nftnl_expr_get(x, NFTNL_EXPR_BITWISE_MASK, &len);
		if (mask && d->load == LOAD_DADDR && len == d->load_len)
			d->prefix = mask_prefix(mask, len);
		known = d->prefix >= 0;
	} else if (!strcmp(name, "cmp")) {
		known = decode_cmp(d, x);
	} else if (!strcmp(name, "counter")) {
		d->counted = true;
		d->packets = nftnl_expr_get_u64(x, NFTNL_EXPR_CTR_PACKETS);
		d->bytes = nftnl_expr_get_u64(x, NFTNL_EXPR_CTR_BYTES);
	} else if (!strcmp(name, "immediate")) {
		int verdict = (int)nftnl_expr_get_u32(x, NFTNL_EXPR_IMM_VERDICT);
		known = nftnl_expr_get_u32(x, NFTNL_EXPR_IMM_DREG) == NFT_REG_VERDICT &&
			(verdict == NF_ACCEPT || verdict == NF_DROP);
		if (known)
			say(d, "%s", verdict == NF_ACCEPT ? "accept" : "drop");
	} else {
		known = false;
	}
	if (!known && !d->unknown)
		d->unknown = name;
	return 0;
}

/* The counted rules of a dump, in chain order. */
struct dump {
	struct nft_counter *c;
	size_t n, cap;
	struct err *e;
	bool failed;            /* e is set */
};

static int dump_push(struct dump *dump, const struct decoder *d)
{
	if (dump->n == dump->cap) {
		size_t cap = dump->cap ? dump->cap * 2 : 8;
		struct nft_counter *c = reallocarray(dump->c, cap, sizeof *c);
		if (!c)
			return -1;
		dump->c = c;
		dump->cap = cap;
	}
	char *text = strndup(d->text, d->len);
	if (!text)
		return -1;
	dump->c[dump->n++] = (struct nft_counter){ text, d->packets, d->bytes };
	return 0;
}

static int dump_rule(struct dump *dump, struct nftnl_rule *r)
{
	struct decoder d = { .prefix = -1 };
	nftnl_expr_foreach(r, decode_expr, &d);
	if (!d.counted) /* only counted rules are reported (SPEC §8.1 ruleCounters) */
		return 0;
	if (d.unknown)
		return err_set(dump->e, "nftables: rule handle %llu of inet " TABLE " " CHAIN
			       " has an unexpected %s expression",
			       (unsigned long long)nftnl_rule_get_u64(r, NFTNL_RULE_HANDLE), d.unknown);
	if (dump_push(dump, &d) < 0)
		return err_set(dump->e, "nftables: out of memory");
	return 0;
}

static int dump_cb(const struct nlmsghdr *nlh, void *data)
{
	struct dump *dump = data;
	struct nftnl_rule *r = nftnl_rule_alloc();
	int rc = -1;
	if (!r)
		err_set(dump->e, "nftables: out of memory");
	else if (nftnl_rule_nlmsg_parse(nlh, r) < 0)
		err_sys(dump->e, errno, "nftables: parsing a rule of inet " TABLE " " CHAIN);
	else
		rc = dump_rule(dump, r);
	if (r)
		nftnl_rule_free(r);
	dump->failed = rc < 0;
	return rc < 0 ? MNL_CB_ERROR : MNL_CB_OK;
}

int nft_read_counters(struct nft_counter **out, size_t *n, struct err *e)
{
	*out = NULL;
	*n = 0;
	cleanup_free char *buf = malloc(DUMP_BUF);
	struct nftnl_rule *filter = rule_new();
	if (!buf || !filter) {
		if (filter)
			nftnl_rule_free(filter);
		return err_set(e, "nftables: out of memory");
	}
	const uint32_t seq = 1;
	struct nlmsghdr *nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETRULE, NFPROTO_INET,
						     NLM_F_DUMP, seq);
	nftnl_rule_nlmsg_build_payload(nlh, filter);
	nftnl_rule_free(filter);

	struct mnl_socket *nl = nl_open(e);
	if (!nl)
		return -1;
	struct dump dump = { .e = e };
	int rc = mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0 ? MNL_CB_ERROR : MNL_CB_OK;
	while (rc == MNL_CB_OK) {
		ssize_t len = mnl_socket_recvfrom(nl, buf, DUMP_BUF);
		rc = len < 0 ? MNL_CB_ERROR :
		     mnl_cb_run(buf, (size_t)len, seq, mnl_socket_get_portid(nl), dump_cb, &dump);
	}
	if (rc == MNL_CB_ERROR && !dump.failed)
		err_sys(e, errno, "nftables: listing chain inet " TABLE " " CHAIN);
	mnl_socket_close(nl);
	/* The chain always ends with the counted drop: no counted rule means there
	 * is no such chain (a filtered dump does not say ENOENT). */
	if (rc != MNL_CB_ERROR && dump.n == 0)
		rc = err_set(e, "nftables: no chain inet " TABLE " " CHAIN);
	if (rc < 0) {
		nft_counters_free(dump.c, dump.n);
		return -1;
	}
	*out = dump.c;
	*n = dump.n;
	return 0;
}
