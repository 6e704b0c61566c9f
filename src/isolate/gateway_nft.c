/* The run's host table (SPEC §6.4): see gateway.h for its chains. Every rule is
 * matched on the cell's host interface, and every chain's policy is accept, so
 * nothing here touches another cell's (or the host's own) traffic. */
#include "isolate/gateway_nft.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <linux/netfilter.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nf_tables.h>

#include "isolate/nft_build.h"

#define TCPOPT_FASTOPEN 34 /* RFC 7413 */

#define CELL_TABLE "cellos" /* the cell's own table (nft_netlink.c) */

/* A rule of chain `chain`: the expressions come from a chain of nftx_* calls
 * joined by ||, evaluated by the caller into `fail`. */
#define RULE(b, gw, chain, what, exprs)                                     \
	do {                                                                \
		struct nftnl_rule *r_ = nftb_rule_new((gw)->table, chain);  \
		if (r_ && (exprs)) {                                        \
			nftnl_rule_free(r_);                                \
			r_ = NULL;                                          \
		}                                                           \
		nftb_rule(b, r_, what);                                     \
	} while (0)

/* tcp sport <port> (host order) */
static int tcp_sport(struct nftnl_rule *r, uint16_t port)
{
	static const uint8_t tcp = IPPROTO_TCP;
	uint16_t p = htons(port);
	return nftx_meta(r, NFT_META_L4PROTO) || nftx_cmp(r, NFT_CMP_EQ, &tcp, 1) ||
	       nftx_payload(r, NFT_PAYLOAD_TRANSPORT_HEADER, 0, 2) || nftx_cmp(r, NFT_CMP_EQ, &p, 2);
}

/* Whether rule g's flows are decided on the queue (gw->l7_queue): TLS on
 * 443, HTTP/1 on 80. */
static bool queued(const struct gateway *gw, const struct nft_egress *g)
{
	return gw->l7_queue && g->set && !g->udp && (g->port == 443 || g->port == 80) && g->family == 4 &&
	       !g->quiet;
}

/* The SNI/Host check on the queue (l7queue.h): a TLS or HTTP flow of a
 * DNS-name rule is decided on its first segments, which wait in nfnetlink_queue
 * gw->l7_queue until the supervisor has read the ClientHello (or the request's
 * Host) and set the flow's conntrack
 * mark; from then on these rules no longer match it and the kernel forwards
 * it. The SYN is not queued: it goes on to the declared-egress accept below
 * (after the denied CIDRs). A verdict's accept resumes after this table's
 * chain, so only established flows, whose SYN passed all the rules, are
 * queued. */
static void queue_rules(struct nftb *b, struct gateway *gw, const uint32_t *set_ids, bool reply)
{
	const char *c = "forward", *x = gw->host_if;
	const uint8_t flags = 0x01 | 0x02 | 0x04 | 0x10, syn = 0x02; /* FIN SYN RST ACK; SYN */
	for (size_t i = 0; i < gw->n_rules; i++) {
		const struct nft_egress *g = &gw->rules[i];
		if (!queued(gw, g))
			continue;
		uint32_t id = set_ids[i];
		/* The port before the set: most packets through here belong to
		 * other flows (a transfer's every segment and ACK passes these
		 * rules before the established accept), and a compare is cheaper
		 * than a set lookup. */
#define TOWARDS(r) (nftx_ifname(r, true, true, x) || nftx_l4port(r, IPPROTO_TCP, g->port) || \
		    nftx_ip4_load(r, true) || nftx_lookup(r, g->set, id))
		if (reply) {
			/* The server's packets before the decision: only the
			 * supervisor lets them in (the handshake, no payload). */
			RULE(b, gw, c, "add rule: SNI check, replies before the decision",
			     nftx_ifname(r_, false, true, x) || tcp_sport(r_, g->port) || nftx_ip4_load(r_, false) ||
				     nftx_lookup(r_, g->set, id) || nftx_established(r_) ||
				     nftx_ct_mark(r_, NFT_CMP_NEQ, GATEWAY_CT_ALLOW) || nftx_nfqueue(r_, gw->l7_queue));
			continue;
		}
		/* TCP Fast Open: a SYN's data would reach the server before the
		 * ClientHello is read (the SYN is not queued). Dropped, the client
		 * retries without it. */
		RULE(b, gw, c, "add rule: SNI check, fast open",
		     TOWARDS(r_) || nftx_tcp_flags(r_, syn, NFT_CMP_EQ, syn) || nftx_tcpopt_present(r_, TCPOPT_FASTOPEN) ||
			     nftx_counter(r_) || nftx_verdict(r_, NF_DROP));
		RULE(b, gw, c, "add rule: SNI check, untracked",
		     TOWARDS(r_) || nftx_ct_state_any(r_, NF_CT_STATE_INVALID_BIT) || nftx_counter(r_) ||
			     nftx_verdict(r_, NF_DROP));
		RULE(b, gw, c, "add rule: SNI check, denied flow",
		     TOWARDS(r_) || nftx_ct_mark(r_, NFT_CMP_EQ, GATEWAY_CT_DENY) || nftx_counter(r_) ||
			     nftx_reject_rst(r_));
		RULE(b, gw, c, "add rule: SNI check, undecided flow",
		     TOWARDS(r_) || nftx_established(r_) || nftx_ct_mark(r_, NFT_CMP_NEQ, GATEWAY_CT_ALLOW) ||
			     nftx_nfqueue(r_, gw->l7_queue));
		/* A new flow that does not start with a SYN (conntrack picks a
		 * connection up mid-stream) would skip the queue. */
		RULE(b, gw, c, "add rule: SNI check, not a SYN",
		     TOWARDS(r_) || nftx_ct_mark(r_, NFT_CMP_NEQ, GATEWAY_CT_ALLOW) ||
			     nftx_tcp_flags(r_, flags, NFT_CMP_NEQ, syn) || nftx_counter(r_) || nftx_verdict(r_, NF_DROP));
#undef TOWARDS
	}
}

static void forward_chain(struct nftb *b, struct gateway *gw, const uint32_t *set_ids)
{
	const char *c = "forward", *x = gw->host_if;
	uint32_t cell = gw->cell_addr.s_addr;
	queue_rules(b, gw, set_ids, true);
	/* Replies into the cell; nothing else enters it. */
	RULE(b, gw, c, "add rule: replies to the cell", nftx_ifname(r_, false, true, x) || nftx_established(r_) ||
								nftx_verdict(r_, NF_ACCEPT));
	RULE(b, gw, c, "add rule: nothing else into the cell",
	     nftx_ifname(r_, false, true, x) || nftx_counter(r_) || nftx_verdict(r_, NF_DROP));
	/* From the cell: only its own address. */
	RULE(b, gw, c, "add rule: spoofed source",
	     nftx_ifname(r_, true, true, x) || nftx_ip4(r_, false, NFT_CMP_NEQ, cell, 32) || nftx_counter(r_) ||
		     nftx_verdict(r_, NF_DROP));
	queue_rules(b, gw, set_ids, false);
	/* The rest of a flow whose first packet the rules below accepted (a
	 * dropped packet never makes a conntrack entry established): the bulk of
	 * a transfer's packets from the cell (its ACKs) then skip the denied CIDRs
	 * and the sets. */
	RULE(b, gw, c, "add rule: the cell's established flows",
	     nftx_ifname(r_, true, true, x) || nftx_established(r_) || nftx_verdict(r_, NF_ACCEPT));
	/* CELLOS_EGRESS_DENY_CIDRS before any accept: whatever a set holds. */
	for (size_t i = 0; i < gw->n_deny; i++)
		RULE(b, gw, c, "add rule: denied CIDR",
		     nftx_ifname(r_, true, true, x) ||
			     nftx_ip4(r_, true, NFT_CMP_EQ, htonl(gw->deny[i].addr), gw->deny[i].prefix) ||
			     nftx_counter(r_) || nftx_verdict(r_, NF_DROP));
	for (size_t i = 0; i < gw->n_rules; i++) {
		const struct nft_egress *g = &gw->rules[i];
		if (g->family != 4 || g->quiet)
			continue; /* IPv6 is not routed (SPEC §6.4) */
		struct cidr4 d = {0, 32};
		if (!g->set) {
			char host[INET_ADDRSTRLEN] = "";
			const char *slash = strchr(g->addr, '/');
			size_t hl = slash ? (size_t)(slash - g->addr) : strlen(g->addr);
			struct in_addr a;
			if (hl < sizeof host)
				memcpy(host, g->addr, hl), host[hl] = '\0';
			if (inet_pton(AF_INET, host, &a) != 1) {
				b->oom = true; /* cannot happen: admission checked it */
				continue;
			}
			d.addr = a.s_addr;
			d.prefix = slash ? (uint32_t)atoi(slash + 1) : 32;
		}
		uint8_t l4 = g->udp ? IPPROTO_UDP : IPPROTO_TCP;
		RULE(b, gw, c, "add rule: declared egress",
		     nftx_ifname(r_, true, true, x) ||
			     (g->set ? nftx_ip4_load(r_, true) || nftx_lookup(r_, g->set, set_ids[i])
				     : nftx_ip4(r_, true, NFT_CMP_EQ, d.addr, d.prefix)) ||
			     nftx_l4port(r_, l4, (uint16_t)g->port) || nftx_counter(r_) || nftx_verdict(r_, NF_ACCEPT));
	}
	RULE(b, gw, c, "add rule: undeclared egress",
	     nftx_ifname(r_, true, true, x) || nftx_counter(r_) || nftx_verdict(r_, NF_DROP));
}

static void input_chain(struct nftb *b, struct gateway *gw)
{
	const char *c = "input", *x = gw->host_if;
	uint32_t gwa = gw->host_addr.s_addr;
	static const uint8_t protos[] = {IPPROTO_UDP, IPPROTO_TCP};
	for (size_t i = 0; i < 2; i++)
		RULE(b, gw, c, "add rule: the DNS proxy",
		     nftx_ifname(r_, true, true, x) || nftx_ip4(r_, true, NFT_CMP_EQ, gwa, 32) ||
			     nftx_l4port(r_, protos[i], GATEWAY_DNS_PORT) || nftx_verdict(r_, NF_ACCEPT));
	if (gw->l7_port)
		RULE(b, gw, c, "add rule: the SNI/Host check",
		     nftx_ifname(r_, true, true, x) || nftx_ip4(r_, true, NFT_CMP_EQ, gwa, 32) ||
			     nftx_l4port(r_, IPPROTO_TCP, gw->l7_port) || nftx_verdict(r_, NF_ACCEPT));
	/* sshd, brokers, metrics: any other address or port of the host. */
	RULE(b, gw, c, "add rule: the host's own services",
	     nftx_ifname(r_, true, true, x) || nftx_counter(r_) || nftx_verdict(r_, NF_DROP));
}

/* tcp 443/80 flows of DNS-name rules to the SNI/Host check on the gateway. */
static void prerouting_chain(struct nftb *b, struct gateway *gw, const uint32_t *set_ids)
{
	uint16_t port = htons(gw->l7_port);
	for (size_t i = 0; i < gw->n_rules; i++) {
		const struct nft_egress *g = &gw->rules[i];
		if (!g->set || g->udp || (g->port != 443 && g->port != 80) || queued(gw, g))
			continue;
		RULE(b, gw, "prerouting", "add rule: redirect to the SNI/Host check",
		     nftx_ifname(r_, true, true, gw->host_if) || nftx_ip4_load(r_, true) ||
			     nftx_lookup(r_, g->set, set_ids[i]) || nftx_l4port(r_, IPPROTO_TCP, (uint16_t)g->port) ||
			     nftx_imm(r_, NFT_REG_1, &gw->host_addr.s_addr, 4) || nftx_imm(r_, NFT_REG_2, &port, 2) ||
			     nftx_dnat4(r_));
	}
}

int gateway_nft_apply(struct gateway *gw, struct err *e)
{
	cleanup_free uint32_t *set_ids = calloc(gw->n_rules ? gw->n_rules : 1, sizeof *set_ids);
	if (!set_ids)
		return err_set(e, "out of memory");
	struct nftb b;
	nftb_init(&b);
	nftb_table(&b, gw->table, true);
	nftb_chain(&b, gw->table, "input", "filter", NF_INET_LOCAL_IN, 0, NF_ACCEPT);
	nftb_chain(&b, gw->table, "forward", "filter", NF_INET_FORWARD, 0, NF_ACCEPT);
	nftb_chain(&b, gw->table, "postrouting", "nat", NF_INET_POST_ROUTING, 100, NF_ACCEPT);
	if (gw->l7_port)
		nftb_chain(&b, gw->table, "prerouting", "nat", NF_INET_PRE_ROUTING, -100, NF_ACCEPT);
	uint32_t id = 0;
	for (size_t i = 0; i < gw->n_rules; i++)
		if (gw->rules[i].set) {
			set_ids[i] = ++id;
			nftb_set(&b, gw->table, gw->rules[i].set, id);
			nftb_set_elems(&b, gw->table, gw->rules[i].set, gw->rules[i].elems, gw->rules[i].n_elems);
		}
	input_chain(&b, gw);
	forward_chain(&b, gw, set_ids);
	if (gw->l7_port)
		prerouting_chain(&b, gw, set_ids);
	/* ip saddr <cell> oifname != <host_if> masquerade */
	RULE(&b, gw, "postrouting", "add rule: masquerade",
	     nftx_ip4(r_, false, NFT_CMP_EQ, gw->cell_addr.s_addr, 32) || nftx_ifname(r_, false, false, gw->host_if) ||
		     nftx_masq(r_));
	int rc = -1;
	gw->nl_host = nftb_open(e);
	if (gw->nl_host)
		rc = nftb_send(gw->nl_host, &b, e);
	nftb_free(&b);
	if (rc < 0)
		err_prefix(e, "gateway table inet %s", gw->table);
	return rc;
}

int gateway_nft_delete(const char *table, struct err *e)
{
	struct nftb b;
	nftb_init(&b);
	nftb_del_table(&b, table);
	struct mnl_socket *nl = nftb_open(e);
	int rc = nl ? nftb_send(nl, &b, e) : -1;
	if (nl)
		mnl_socket_close(nl);
	nftb_free(&b);
	return rc;
}

struct mnl_socket *gateway_nft_socket(struct err *e) { return nftb_open(e); }

int gateway_nft_add_elems(struct gateway *gw, const char *set, const uint32_t *elems, size_t n, struct err *e)
{
	if (n == 0)
		return 0;
	struct {
		struct mnl_socket *nl;
		const char *table;
	} to[] = {{gw->nl_host, gw->table}, {gw->nl_cell, CELL_TABLE}};
	for (size_t i = 0; i < 2; i++) {
		if (!to[i].nl)
			continue;
		struct nftb b;
		nftb_init(&b);
		nftb_set_elems(&b, to[i].table, set, elems, n);
		int rc = nftb_send(to[i].nl, &b, e);
		nftb_free(&b);
		if (rc < 0)
			return err_prefix(e, "gateway: set %s", set);
	}
	return 0;
}
