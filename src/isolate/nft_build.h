/* Building and sending nf_tables netlink transactions (libnftnl, libmnl):
 * shared by the cell's egress filter (nft_netlink.c) and the gateway's host
 * table (gateway_nft.c). A batch is a growing buffer of messages numbered from 1
 * (the batch begin); each message keeps a short description, so that the
 * kernel's complaint about one names what it was ("add table inet cellos"). */
#ifndef CELLOS_NFT_BUILD_H
#define CELLOS_NFT_BUILD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libmnl/libmnl.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>

#include "util/err.h"

struct nftb {
	char *buf;
	size_t len, cap;
	size_t last;            /* offset of the last message added */
	uint32_t seq;           /* of the next message */
	char (*what)[96];       /* description of message seq (index seq - 1) */
	size_t n_what;
	bool oom;               /* sticky: some step ran out of memory */
};

/* Start a batch (its begin message). Out of memory is reported by nftb_send. */
void nftb_init(struct nftb *b);
void nftb_free(struct nftb *b);

/* Messages; family NFPROTO_INET. `excl`: fail if the table exists. */
void nftb_table(struct nftb *b, const char *table, bool excl);
void nftb_del_table(struct nftb *b, const char *table);
/* A base chain: `type` "filter"/"nat", `hook` NF_INET_*, `policy` NF_ACCEPT/NF_DROP. */
void nftb_chain(struct nftb *b, const char *table, const char *chain, const char *type, uint32_t hook, int prio,
		int policy);
/* A set of IPv4 addresses (type ipv4_addr), `id` its number in this batch. */
void nftb_set(struct nftb *b, const char *table, const char *set, uint32_t id);
/* Add addresses (network order) to a set; n == 0 adds nothing. */
void nftb_set_elems(struct nftb *b, const char *table, const char *set, const uint32_t *elems, size_t n);
/* A rule: r (from nftb_rule_new, expressions added) is appended and freed. A
 * NULL r (out of memory) marks the batch failed. */
struct nftnl_rule *nftb_rule_new(const char *table, const char *chain);
void nftb_rule(struct nftb *b, struct nftnl_rule *r, const char *what);

/* nf_tables netlink socket of the calling thread's netns. */
struct mnl_socket *nftb_open(struct err *e);
/* End the batch, send it, wait for the kernel's verdict on the whole
 * transaction. The message the kernel refused is named in the error. */
int nftb_send(struct mnl_socket *nl, struct nftb *b, struct err *e);

/* Expressions (register 1 unless said); each returns non-zero when out of
 * memory, so a rule is a chain of them joined by ||. */
int nftx_meta(struct nftnl_rule *r, uint32_t key);
int nftx_ct_state(struct nftnl_rule *r);
int nftx_payload(struct nftnl_rule *r, uint32_t base, uint32_t offset, uint32_t len);
int nftx_mask(struct nftnl_rule *r, const void *mask, uint32_t len);
int nftx_cmp(struct nftnl_rule *r, uint32_t op, const void *data, uint32_t len);
int nftx_counter(struct nftnl_rule *r);
int nftx_verdict(struct nftnl_rule *r, int verdict);
int nftx_lookup(struct nftnl_rule *r, const char *set, uint32_t set_id);
int nftx_imm(struct nftnl_rule *r, uint32_t reg, const void *data, uint32_t len);
int nftx_masq(struct nftnl_rule *r);
/* dnat ip to <reg1 addr>:<reg2 port> */
int nftx_dnat4(struct nftnl_rule *r);

/* Composite matches. */
int nftx_ifname(struct nftnl_rule *r, bool in, bool eq, const char *name);     /* [io]ifname [!=] name */
/* meta nfproto ipv4, ip [sd]addr into register 1 */
int nftx_ip4_load(struct nftnl_rule *r, bool dst);
int nftx_ip4(struct nftnl_rule *r, bool dst, uint32_t eq_op, uint32_t addr, uint32_t prefix); /* net order */
int nftx_l4port(struct nftnl_rule *r, uint8_t l4proto, uint16_t port);         /* host order port */
int nftx_established(struct nftnl_rule *r);
/* ct mark <op> mark (host order, as nft prints it) */
int nftx_ct_mark(struct nftnl_rule *r, uint32_t op, uint32_t mark);
/* ct state & bits != 0 (NF_CT_STATE_BIT(...), NF_CT_STATE_INVALID_BIT) */
int nftx_ct_state_any(struct nftnl_rule *r, uint32_t bits);
/* tcp flags & mask <op> value (after nftx_l4port's tcp match) */
int nftx_tcp_flags(struct nftnl_rule *r, uint8_t mask, uint32_t op, uint8_t value);
/* tcp option <kind> exists */
int nftx_tcpopt_present(struct nftnl_rule *r, uint8_t kind);
/* reject with tcp reset */
int nftx_reject_rst(struct nftnl_rule *r);
/* queue to nfnetlink_queue `num`, through nft_compat's xt NFQUEUE target
 * (revision 3) where the kernel has no nft queue expression; never bypassed. */
int nftx_nfqueue(struct nftnl_rule *r, uint16_t num);

#endif
