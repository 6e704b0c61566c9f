/* nf_tables transactions: see nft_build.h. */
#include "isolate/nft_build.h"

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <libnftnl/chain.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nf_nat.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/x_tables.h>
#include <linux/netfilter/xt_NFQUEUE.h>

/* Room kept free for the next message; the largest rule (an IPv6 prefix)
 * takes 572 bytes. A set's elements get their own room on top. */
#define MSG_MAX 1024
/* nft's datatype number of ipv4_addr (what `nft list` prints a set key as). */
#define NFT_TYPE_IPADDR 7

static bool reserve(struct nftb *b, size_t room)
{
	if (b->oom)
		return false;
	if (b->cap - b->len >= room)
		return true;
	size_t cap = b->cap ? b->cap : 8 * MSG_MAX;
	while (cap - b->len < room)
		cap *= 2;
	/* Netlink messages must be 4-byte aligned: malloc'd memory is. */
	char *nb = realloc(b->buf, cap);
	if (!nb) {
		b->oom = true;
		return false;
	}
	memset(nb + b->cap, 0, cap - b->cap);
	b->buf = nb;
	b->cap = cap;
	return true;
}

/* A description slot for the next message. */
static char *describe(struct nftb *b)
{
	char (*nw)[96] = b->oom ? NULL : reallocarray(b->what, b->n_what + 1, sizeof *nw);
	if (!nw) {
		b->oom = true;
		return NULL;
	}
	b->what = nw;
	return b->what[b->n_what++];
}

/* Reserve room and a description for the next message. */
static struct nlmsghdr *msg(struct nftb *b, size_t room, uint16_t type, uint16_t flags, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
static struct nlmsghdr *msg(struct nftb *b, size_t room, uint16_t type, uint16_t flags, const char *fmt, ...)
{
	char *what;
	if (!reserve(b, room) || !(what = describe(b)))
		return NULL;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof b->what[0], fmt, ap);
	va_end(ap);
	return nftnl_nlmsg_build_hdr(b->buf + b->len, type, NFPROTO_INET, flags, b->seq++);
}

static void next(struct nftb *b, struct nlmsghdr *nlh)
{
	b->last = b->len;
	b->len += nlh->nlmsg_len;
}

void nftb_init(struct nftb *b)
{
	*b = (struct nftb){.seq = 1};
	char *what;
	if (!reserve(b, MSG_MAX) || !(what = describe(b)))
		return;
	snprintf(what, sizeof b->what[0], "transaction");
	next(b, nftnl_batch_begin(b->buf, b->seq++));
}

void nftb_free(struct nftb *b)
{
	free(b->buf);
	free(b->what);
	*b = (struct nftb){0};
}

/* Add or delete one inet table: the two messages differ only in type and flags. */
static void table_msg(struct nftb *b, const char *table, uint16_t type, uint16_t flags, const char *verb)
{
	struct nftnl_table *t = nftnl_table_alloc();
	struct nlmsghdr *nlh;
	if (!t || nftnl_table_set_str(t, NFTNL_TABLE_NAME, table) < 0 ||
	    !(nlh = msg(b, MSG_MAX, type, flags, "%s table inet %s", verb, table))) {
		b->oom = true;
	} else {
		nftnl_table_set_u32(t, NFTNL_TABLE_FAMILY, NFPROTO_INET);
		nftnl_table_nlmsg_build_payload(nlh, t);
		next(b, nlh);
	}
	if (t)
		nftnl_table_free(t);
}

void nftb_table(struct nftb *b, const char *table, bool excl)
{
	table_msg(b, table, NFT_MSG_NEWTABLE, NLM_F_CREATE | (excl ? NLM_F_EXCL : 0), "add");
}

void nftb_del_table(struct nftb *b, const char *table) { table_msg(b, table, NFT_MSG_DELTABLE, 0, "delete"); }

void nftb_chain(struct nftb *b, const char *table, const char *chain, const char *type, uint32_t hook, int prio,
		int policy)
{
	struct nftnl_chain *c = nftnl_chain_alloc();
	struct nlmsghdr *nlh;
	if (!c || nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, table) || nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, chain) ||
	    nftnl_chain_set_str(c, NFTNL_CHAIN_TYPE, type) ||
	    !(nlh = msg(b, MSG_MAX, NFT_MSG_NEWCHAIN, NLM_F_CREATE, "add chain inet %s %s", table, chain))) {
		b->oom = true;
	} else {
		nftnl_chain_set_u32(c, NFTNL_CHAIN_FAMILY, NFPROTO_INET);
		nftnl_chain_set_u32(c, NFTNL_CHAIN_HOOKNUM, hook);
		nftnl_chain_set_s32(c, NFTNL_CHAIN_PRIO, prio);
		nftnl_chain_set_u32(c, NFTNL_CHAIN_POLICY, (uint32_t)policy);
		nftnl_chain_nlmsg_build_payload(nlh, c);
		next(b, nlh);
	}
	if (c)
		nftnl_chain_free(c);
}

static struct nftnl_set *set_new(const char *table, const char *set)
{
	struct nftnl_set *s = nftnl_set_alloc();
	if (!s)
		return NULL;
	if (nftnl_set_set_str(s, NFTNL_SET_TABLE, table) < 0 || nftnl_set_set_str(s, NFTNL_SET_NAME, set) < 0) {
		nftnl_set_free(s);
		return NULL;
	}
	nftnl_set_set_u32(s, NFTNL_SET_FAMILY, NFPROTO_INET);
	return s;
}

void nftb_set(struct nftb *b, const char *table, const char *set, uint32_t id)
{
	struct nftnl_set *s = set_new(table, set);
	struct nlmsghdr *nlh;
	if (!s || !(nlh = msg(b, MSG_MAX, NFT_MSG_NEWSET, NLM_F_CREATE, "add set inet %s %s", table, set))) {
		b->oom = true;
	} else {
		nftnl_set_set_u32(s, NFTNL_SET_KEY_TYPE, NFT_TYPE_IPADDR);
		nftnl_set_set_u32(s, NFTNL_SET_KEY_LEN, 4);
		nftnl_set_set_u32(s, NFTNL_SET_ID, id);
		nftnl_set_nlmsg_build_payload(nlh, s);
		next(b, nlh);
	}
	if (s)
		nftnl_set_free(s);
}

void nftb_set_elems(struct nftb *b, const char *table, const char *set, const uint32_t *elems, size_t n)
{
	if (n == 0)
		return;
	struct nftnl_set *s = set_new(table, set);
	if (!s) {
		b->oom = true;
		return;
	}
	for (size_t i = 0; i < n; i++) {
		struct nftnl_set_elem *el = nftnl_set_elem_alloc();
		if (!el) {
			b->oom = true;
			break;
		}
		nftnl_set_elem_set(el, NFTNL_SET_ELEM_KEY, &elems[i], 4);
		nftnl_set_elem_add(s, el);
	}
	struct nlmsghdr *nlh;
	if (!b->oom && (nlh = msg(b, MSG_MAX + 64 * n, NFT_MSG_NEWSETELEM, NLM_F_CREATE, "add element inet %s %s",
				  table, set))) {
		nftnl_set_elems_nlmsg_build_payload(nlh, s);
		next(b, nlh);
	}
	nftnl_set_free(s);
}

struct nftnl_rule *nftb_rule_new(const char *table, const char *chain)
{
	struct nftnl_rule *r = nftnl_rule_alloc();
	if (!r)
		return NULL;
	nftnl_rule_set_u32(r, NFTNL_RULE_FAMILY, NFPROTO_INET);
	if (nftnl_rule_set_str(r, NFTNL_RULE_TABLE, table) < 0 || nftnl_rule_set_str(r, NFTNL_RULE_CHAIN, chain) < 0) {
		nftnl_rule_free(r);
		return NULL;
	}
	return r;
}

void nftb_rule(struct nftb *b, struct nftnl_rule *r, const char *what)
{
	struct nlmsghdr *nlh;
	if (!r || !(nlh = msg(b, MSG_MAX, NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND, "%s", what))) {
		b->oom = true;
	} else {
		nftnl_rule_nlmsg_build_payload(nlh, r);
		next(b, nlh);
	}
	if (r)
		nftnl_rule_free(r);
}

struct mnl_socket *nftb_open(struct err *e)
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

/* The kernel commits or aborts the whole transaction and reports every failed
 * message, in order. Only the last message asks for an ack, which ends a
 * success: an ack per message would overflow the receive buffer for long lists. */
int nftb_send(struct mnl_socket *nl, struct nftb *b, struct err *e)
{
	if (b->oom || !reserve(b, MSG_MAX))
		return err_set(e, "nftables: out of memory");
	struct nlmsghdr *last = (void *)(b->buf + b->last);
	last->nlmsg_flags |= NLM_F_ACK;
	uint32_t last_seq = last->nlmsg_seq;
	next(b, nftnl_batch_end(b->buf + b->len, b->seq++));
	/* One sendmsg must hold the whole batch: raise the send buffer for long
	 * lists, as nft does (best effort: sendto says EMSGSIZE if still too small). */
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
		for (const struct nlmsghdr *nlh = (void *)buf; mnl_nlmsg_ok(nlh, len); nlh = mnl_nlmsg_next(nlh, &len)) {
			if (nlh->nlmsg_type != NLMSG_ERROR)
				continue;
			const struct nlmsgerr *ack = mnl_nlmsg_get_payload(nlh);
			if (ack->error) {
				uint32_t s = ack->msg.nlmsg_seq;
				const char *what = s >= 1 && s <= b->n_what ? b->what[s - 1] : "transaction";
				return err_sys(e, -ack->error, "nftables: %s", what);
			}
			if (nlh->nlmsg_seq == last_seq)
				return 0;
		}
	}
}

/* ---- expressions ---- */

static struct nftnl_expr *add(struct nftnl_rule *r, const char *name)
{
	struct nftnl_expr *x = nftnl_expr_alloc(name);
	if (x)
		nftnl_rule_add_expr(r, x);
	return x;
}

int nftx_meta(struct nftnl_rule *r, uint32_t key)
{
	struct nftnl_expr *x = add(r, "meta");
	if (!x)
		return -1;
	nftnl_expr_set_u32(x, NFTNL_EXPR_META_KEY, key);
	nftnl_expr_set_u32(x, NFTNL_EXPR_META_DREG, NFT_REG_1);
	return 0;
}

int nftx_ct_state(struct nftnl_rule *r)
{
	struct nftnl_expr *x = add(r, "ct");
	if (!x)
		return -1;
	nftnl_expr_set_u32(x, NFTNL_EXPR_CT_KEY, NFT_CT_STATE);
	nftnl_expr_set_u32(x, NFTNL_EXPR_CT_DREG, NFT_REG_1);
	return 0;
}

int nftx_payload(struct nftnl_rule *r, uint32_t base, uint32_t offset, uint32_t len)
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

int nftx_mask(struct nftnl_rule *r, const void *mask, uint32_t len)
{
	static const uint8_t zero[16];
	struct nftnl_expr *x = add(r, "bitwise");
	if (!x)
		return -1;
	nftnl_expr_set_u32(x, NFTNL_EXPR_BITWISE_SREG, NFT_REG_1);
	nftnl_expr_set_u32(x, NFTNL_EXPR_BITWISE_DREG, NFT_REG_1);
	nftnl_expr_set_u32(x, NFTNL_EXPR_BITWISE_LEN, len);
	return nftnl_expr_set(x, NFTNL_EXPR_BITWISE_MASK, mask, len) || nftnl_expr_set(x, NFTNL_EXPR_BITWISE_XOR, zero, len);
}

int nftx_cmp(struct nftnl_rule *r, uint32_t op, const void *data, uint32_t len)
{
	struct nftnl_expr *x = add(r, "cmp");
	if (!x)
		return -1;
	nftnl_expr_set_u32(x, NFTNL_EXPR_CMP_SREG, NFT_REG_1);
	nftnl_expr_set_u32(x, NFTNL_EXPR_CMP_OP, op);
	return nftnl_expr_set(x, NFTNL_EXPR_CMP_DATA, data, len);
}

int nftx_counter(struct nftnl_rule *r) { return add(r, "counter") ? 0 : -1; }

int nftx_verdict(struct nftnl_rule *r, int verdict)
{
	struct nftnl_expr *x = add(r, "immediate");
	if (!x)
		return -1;
	nftnl_expr_set_u32(x, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
	nftnl_expr_set_u32(x, NFTNL_EXPR_IMM_VERDICT, (uint32_t)verdict);
	return 0;
}

int nftx_lookup(struct nftnl_rule *r, const char *set, uint32_t set_id)
{
	struct nftnl_expr *x = add(r, "lookup");
	if (!x)
		return -1;
	nftnl_expr_set_u32(x, NFTNL_EXPR_LOOKUP_SREG, NFT_REG_1);
	nftnl_expr_set_u32(x, NFTNL_EXPR_LOOKUP_SET_ID, set_id);
	return nftnl_expr_set_str(x, NFTNL_EXPR_LOOKUP_SET, set) < 0 ? -1 : 0;
}

int nftx_imm(struct nftnl_rule *r, uint32_t reg, const void *data, uint32_t len)
{
	struct nftnl_expr *x = add(r, "immediate");
	if (!x)
		return -1;
	nftnl_expr_set_u32(x, NFTNL_EXPR_IMM_DREG, reg);
	return nftnl_expr_set(x, NFTNL_EXPR_IMM_DATA, data, len) < 0 ? -1 : 0;
}

int nftx_masq(struct nftnl_rule *r) { return add(r, "masq") ? 0 : -1; }

int nftx_dnat4(struct nftnl_rule *r)
{
	struct nftnl_expr *x = add(r, "nat");
	if (!x)
		return -1;
	nftnl_expr_set_u32(x, NFTNL_EXPR_NAT_TYPE, NFT_NAT_DNAT);
	nftnl_expr_set_u32(x, NFTNL_EXPR_NAT_FAMILY, NFPROTO_IPV4);
	nftnl_expr_set_u32(x, NFTNL_EXPR_NAT_REG_ADDR_MIN, NFT_REG_1);
	nftnl_expr_set_u32(x, NFTNL_EXPR_NAT_REG_PROTO_MIN, NFT_REG_2);
	return 0;
}

int nftx_ifname(struct nftnl_rule *r, bool in, bool eq, const char *name)
{
	char buf[IFNAMSIZ] = {0};
	snprintf(buf, sizeof buf, "%s", name);
	return nftx_meta(r, in ? NFT_META_IIFNAME : NFT_META_OIFNAME) ||
	       nftx_cmp(r, eq ? NFT_CMP_EQ : NFT_CMP_NEQ, buf, sizeof buf);
}

int nftx_ip4_load(struct nftnl_rule *r, bool dst)
{
	static const uint8_t v4 = NFPROTO_IPV4;
	return nftx_meta(r, NFT_META_NFPROTO) || nftx_cmp(r, NFT_CMP_EQ, &v4, 1) ||
	       nftx_payload(r, NFT_PAYLOAD_NETWORK_HEADER, dst ? 16 : 12, 4);
}

int nftx_ip4(struct nftnl_rule *r, bool dst, uint32_t eq_op, uint32_t addr, uint32_t prefix)
{
	uint32_t mask = prefix ? htonl(~0u << (32 - prefix)) : 0;
	addr &= mask;
	return nftx_ip4_load(r, dst) || (prefix < 32 && nftx_mask(r, &mask, 4)) || nftx_cmp(r, eq_op, &addr, 4);
}

int nftx_l4port(struct nftnl_rule *r, uint8_t l4proto, uint16_t port)
{
	uint16_t p = htons(port);
	return nftx_meta(r, NFT_META_L4PROTO) || nftx_cmp(r, NFT_CMP_EQ, &l4proto, 1) ||
	       nftx_payload(r, NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2) || nftx_cmp(r, NFT_CMP_EQ, &p, 2);
}

int nftx_established(struct nftnl_rule *r)
{
	return nftx_ct_state_any(r, NF_CT_STATE_BIT(IP_CT_ESTABLISHED) | NF_CT_STATE_BIT(IP_CT_RELATED));
}

int nftx_ct_mark(struct nftnl_rule *r, uint32_t op, uint32_t mark)
{
	struct nftnl_expr *x = add(r, "ct");
	if (!x)
		return -1;
	nftnl_expr_set_u32(x, NFTNL_EXPR_CT_KEY, NFT_CT_MARK);
	nftnl_expr_set_u32(x, NFTNL_EXPR_CT_DREG, NFT_REG_1);
	return nftx_cmp(r, op, &mark, sizeof mark);
}

int nftx_ct_state_any(struct nftnl_rule *r, uint32_t bits)
{
	static const uint32_t none = 0;
	return nftx_ct_state(r) || nftx_mask(r, &bits, sizeof bits) || nftx_cmp(r, NFT_CMP_NEQ, &none, sizeof none);
}

int nftx_tcp_flags(struct nftnl_rule *r, uint8_t mask, uint32_t op, uint8_t value)
{
	return nftx_payload(r, NFT_PAYLOAD_TRANSPORT_HEADER, 13, 1) || nftx_mask(r, &mask, 1) ||
	       nftx_cmp(r, op, &value, 1);
}

int nftx_tcpopt_present(struct nftnl_rule *r, uint8_t kind)
{
	static const uint8_t yes = 1;
	struct nftnl_expr *x = add(r, "exthdr");
	if (!x)
		return -1;
	nftnl_expr_set_u32(x, NFTNL_EXPR_EXTHDR_DREG, NFT_REG_1);
	nftnl_expr_set_u8(x, NFTNL_EXPR_EXTHDR_TYPE, kind);
	nftnl_expr_set_u32(x, NFTNL_EXPR_EXTHDR_OFFSET, 0);
	nftnl_expr_set_u32(x, NFTNL_EXPR_EXTHDR_LEN, 1);
	nftnl_expr_set_u32(x, NFTNL_EXPR_EXTHDR_OP, NFT_EXTHDR_OP_TCPOPT);
	nftnl_expr_set_u32(x, NFTNL_EXPR_EXTHDR_FLAGS, NFT_EXTHDR_F_PRESENT);
	return nftx_cmp(r, NFT_CMP_EQ, &yes, 1);
}

int nftx_reject_rst(struct nftnl_rule *r)
{
	struct nftnl_expr *x = add(r, "reject");
	if (!x)
		return -1;
	nftnl_expr_set_u32(x, NFTNL_EXPR_REJECT_TYPE, NFT_REJECT_TCP_RST);
	nftnl_expr_set_u8(x, NFTNL_EXPR_REJECT_CODE, 0);
	return 0;
}

int nftx_nfqueue(struct nftnl_rule *r, uint16_t num)
{
	/* The kernel wants the target's info padded to its alignment (8 bytes
	 * here); libnftnl takes ownership of the buffer. */
	size_t len = XT_ALIGN(sizeof(struct xt_NFQ_info_v3));
	struct xt_NFQ_info_v3 *info = calloc(1, len);
	struct nftnl_expr *x = info ? add(r, "target") : NULL;
	if (!x) {
		free(info);
		return -1;
	}
	info->queuenum = num;
	info->queues_total = 1;
	info->flags = 0; /* no NFQ_FLAG_BYPASS: without a listener the packet is dropped */
	nftnl_expr_set_str(x, NFTNL_EXPR_TG_NAME, "NFQUEUE");
	nftnl_expr_set_u32(x, NFTNL_EXPR_TG_REV, 3);
	return nftnl_expr_set(x, NFTNL_EXPR_TG_INFO, info, (uint32_t)len) < 0 ? -1 : 0;
}
