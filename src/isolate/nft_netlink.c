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
#include "isolate/nft_build.h"
#include "util/vec.h"

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
/* The base chain the rules go in (nft.h, enum nft_hook). */
static const struct { const char *name; uint32_t hooknum; } chains[] = {
	[NFT_HOOK_OUTPUT] = {"output", NF_INET_LOCAL_OUT},
	[NFT_HOOK_PREROUTING] = {"prerouting", NF_INET_PRE_ROUTING},
};

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
	const char *set;        /* a DNS-name rule's set (gateway), or NULL */
	uint32_t set_id;
	bool quiet;             /* no counter */
};

static int parse_dest(const struct nft_egress *g, struct dest *d, struct err *e)
{
	if (g->family != 4 && g->family != 6)
		return err_set(e, "family %d is neither 4 nor 6", g->family);
	if (g->port < 1 || g->port > 65535)
		return err_set(e, "port %d is out of range", g->port);
	*d = (struct dest){
		.nfproto = g->family == 4 ? NFPROTO_IPV4 : NFPROTO_IPV6,
		.l4proto = g->udp ? IPPROTO_UDP : IPPROTO_TCP,
		.port = htons((uint16_t)g->port),
		.len = g->family == 4 ? 4 : 16,
		.quiet = g->quiet != 0,
	};
	d->prefix = d->len * 8;
	if (g->set) {
		if (g->family != 4)
			return err_set(e, "set %s is not of IPv4 addresses", g->set);
		d->set = g->set;
		return 0;
	}

	char host[INET6_ADDRSTRLEN];
	const char *addr = g->addr ? g->addr : "";
	const char *slash = strchr(addr, '/');
	size_t hlen = slash ? (size_t)(slash - addr) : strlen(addr);
	if (hlen >= sizeof host)
		return err_set(e, "address %s is not an IPv%d literal", addr, g->family);
	memcpy(host, addr, hlen);
	host[hlen] = '\0';
	if (inet_pton(g->family == 4 ? AF_INET : AF_INET6, host, d->addr) != 1)
		return err_set(e, "address %s is not an IPv%d literal", addr, g->family);
	if (slash) {
		char *end;
		errno = 0;
		unsigned long p = strtoul(slash + 1, &end, 10);
		if (slash[1] < '0' || slash[1] > '9' || *end || errno || p > d->prefix)
			return err_set(e, "address %s has a bad prefix length", addr);
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

/* oifname "lo" accept */
static int exprs_lo(struct nftnl_rule *r, const struct dest *unused)
{
	static const char lo[IFNAMSIZ] = "lo";
	return nftx_meta(r, NFT_META_OIFNAME) || nftx_cmp(r, NFT_CMP_EQ, lo, sizeof lo) ||
	       nftx_verdict(r, NF_ACCEPT);
}

/* ct state established,related accept */
static int exprs_established(struct nftnl_rule *r, const struct dest *unused)
{
	return nftx_established(r) || nftx_verdict(r, NF_ACCEPT);
}

/* ip daddr 10.0.0.0/8 tcp dport 443 counter accept (or ip daddr @egress_3 under
 * the gateway). The meta nfproto and l4proto matches are the dependencies nft
 * adds (and hides when listing). A prefix is a full-length load and a mask, as
 * nft emits for /20 (it shortens the load for byte-aligned prefixes instead;
 * both list the same). */
static int exprs_egress(struct nftnl_rule *r, const struct dest *d)
{
	uint32_t daddr = d->nfproto == NFPROTO_IPV4 ? 16 : 24; /* offsetof(iphdr/ipv6hdr, daddr) */
	int rc = nftx_meta(r, NFT_META_NFPROTO) || nftx_cmp(r, NFT_CMP_EQ, &d->nfproto, 1) ||
		 nftx_payload(r, NFT_PAYLOAD_NETWORK_HEADER, daddr, d->len);
	if (d->set)
		rc = rc || nftx_lookup(r, d->set, d->set_id);
	else
		rc = rc || (d->prefix < d->len * 8 && nftx_mask(r, d->mask, d->len)) ||
		     nftx_cmp(r, NFT_CMP_EQ, d->addr, d->len);
	return rc || nftx_meta(r, NFT_META_L4PROTO) || nftx_cmp(r, NFT_CMP_EQ, &d->l4proto, 1) ||
	       nftx_payload(r, NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2) || /* dport */
	       nftx_cmp(r, NFT_CMP_EQ, &d->port, 2) || (!d->quiet && nftx_counter(r)) ||
	       nftx_verdict(r, NF_ACCEPT);
}

/* counter drop */
static int exprs_drop(struct nftnl_rule *r, const struct dest *unused)
{
	return nftx_counter(r) || nftx_verdict(r, NF_DROP);
}

static void add_rule(struct nftb *b, enum nft_hook hook, int (*exprs)(struct nftnl_rule *, const struct dest *),
		     const struct dest *d, size_t n)
{
	struct nftnl_rule *r = nftb_rule_new(TABLE, chains[hook].name);
	char what[64];
	snprintf(what, sizeof what, "add rule %zu of inet " TABLE " %s", n, chains[hook].name);
	if (r && exprs(r, d)) {
		nftnl_rule_free(r);
		r = NULL;
	}
	nftb_rule(b, r, what);
}

int nft_apply(const struct nft_egress *rules, size_t n, struct err *e)
{
	return nft_apply_at(rules, n, NFT_HOOK_OUTPUT, e);
}

static int apply(const struct nft_egress *rules, size_t n, enum nft_hook hook, bool replace, struct err *e);

int nft_apply_at(const struct nft_egress *rules, size_t n, enum nft_hook hook, struct err *e)
{
	return apply(rules, n, hook, false, e);
}

int nft_replace(const struct nft_egress *rules, size_t n, struct err *e)
{
	return apply(rules, n, NFT_HOOK_OUTPUT, true, e);
}

static int apply(const struct nft_egress *rules, size_t n, enum nft_hook hook, bool replace, struct err *e)
{
	cleanup_free struct dest *dests = calloc(n ? n : 1, sizeof *dests);
	if (!dests)
		return err_set(e, "nftables: out of memory");
	for (size_t i = 0; i < n; i++)
		if (parse_dest(&rules[i], &dests[i], e) < 0)
			return err_prefix(e, "nftables: egress rule %zu", i + 1);

	struct nftb b;
	nftb_init(&b);
	/* One transaction: the old ruleset is never gone without the new one. */
	if (replace)
		nftb_del_table(&b, TABLE);
	/* EXCL: applying twice is a bug, not a reason to double the rules. */
	nftb_table(&b, TABLE, true);
	nftb_chain(&b, TABLE, chains[hook].name, "filter", chains[hook].hooknum, 0, NF_DROP);
	uint32_t set_id = 0;
	for (size_t i = 0; i < n; i++)
		if (dests[i].set) {
			dests[i].set_id = ++set_id;
			nftb_set(&b, TABLE, dests[i].set, set_id);
			nftb_set_elems(&b, TABLE, dests[i].set, rules[i].elems, rules[i].n_elems);
		}
	size_t k = 0;
	add_rule(&b, hook, exprs_lo, NULL, ++k);
	add_rule(&b, hook, exprs_established, NULL, ++k);
	for (size_t i = 0; i < n; i++)
		add_rule(&b, hook, exprs_egress, &dests[i], ++k);
	add_rule(&b, hook, exprs_drop, NULL, ++k);

	struct mnl_socket *nl = nftb_open(e);
	int rc = nl ? nftb_send(nl, &b, e) : -1;
	if (nl)
		mnl_socket_close(nl);
	nftb_free(&b);
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
	} else if (!strcmp(name, "lookup")) {
		/* ip daddr @egress_3: a DNS-name rule's set (gateway) */
		const char *set = nftnl_expr_get_str(x, NFTNL_EXPR_LOOKUP_SET);
		known = d->load == LOAD_DADDR && set && d->nfproto == NFPROTO_IPV4;
		if (known)
			say(d, "ip daddr @%s", set);
		d->load = LOAD_NONE;
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
	const char *chain;
};

static int dump_push(struct dump *dump, const struct decoder *d)
{
	if (vec_reserve(&dump->c, dump->n, &dump->cap, sizeof *dump->c, 8) < 0)
		return -1;
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
		return err_set(dump->e, "nftables: rule handle %llu of inet " TABLE " %s has an unexpected %s expression",
			       (unsigned long long)nftnl_rule_get_u64(r, NFTNL_RULE_HANDLE), dump->chain, d.unknown);
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
		err_sys(dump->e, errno, "nftables: parsing a rule of inet " TABLE " %s", dump->chain);
	else
		rc = dump_rule(dump, r);
	if (r)
		nftnl_rule_free(r);
	dump->failed = rc < 0;
	return rc < 0 ? MNL_CB_ERROR : MNL_CB_OK;
}

int nft_read_counters(struct nft_counter **out, size_t *n, struct err *e)
{
	return nft_read_counters_at(NFT_HOOK_OUTPUT, out, n, e);
}

int nft_read_counters_at(enum nft_hook hook, struct nft_counter **out, size_t *n, struct err *e)
{
	*out = NULL;
	*n = 0;
	cleanup_free char *buf = malloc(DUMP_BUF);
	struct nftnl_rule *filter = nftb_rule_new(TABLE, chains[hook].name);
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

	struct mnl_socket *nl = nftb_open(e);
	if (!nl)
		return -1;
	struct dump dump = { .e = e, .chain = chains[hook].name };
	int rc = mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0 ? MNL_CB_ERROR : MNL_CB_OK;
	while (rc == MNL_CB_OK) {
		ssize_t len = mnl_socket_recvfrom(nl, buf, DUMP_BUF);
		rc = len < 0 ? MNL_CB_ERROR :
		     mnl_cb_run(buf, (size_t)len, seq, mnl_socket_get_portid(nl), dump_cb, &dump);
	}
	if (rc == MNL_CB_ERROR && !dump.failed)
		err_sys(e, errno, "nftables: listing chain inet " TABLE " %s", chains[hook].name);
	mnl_socket_close(nl);
	/* The chain always ends with the counted drop: no counted rule means there
	 * is no such chain (a filtered dump does not say ENOENT). */
	if (rc != MNL_CB_ERROR && dump.n == 0)
		rc = err_set(e, "nftables: no chain inet " TABLE " %s", chains[hook].name);
	if (rc < 0) {
		nft_counters_free(dump.c, dump.n);
		return -1;
	}
	*out = dump.c;
	*n = dump.n;
	return 0;
}
