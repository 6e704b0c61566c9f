/* nftables egress filter of a cell (SPEC §6.1): nft_render() in nft.c, the
 * kernel side through nf_tables netlink (libnftnl, libmnl) in nft_netlink.c.
 *
 * All functions act on the network namespace of the calling thread: the caller
 * setns()es into the cell's netns first. */
#ifndef CELLOS_NFT_H
#define CELLOS_NFT_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

/* One resolved egress rule: an address (literal or CIDR) of one family, or
 * (under the gateway, SPEC §6.4) an IPv4 set a DNS name's addresses go into. */
struct nft_egress {
	int family;             /* 4 or 6 */
	const char *addr;       /* "192.0.2.7", "10.0.0.0/8", "2001:db8::/32"; with `set`: NULL */
	int port;
	int udp;                /* 0 tcp, 1 udp */
	/* A DNS-name rule under the gateway: matched as `ip daddr @<set>` (a set
	 * of type ipv4_addr, created by nft_apply with `elems`), family 4. */
	const char *set;        /* "egress_<rule>", or NULL */
	const char *host;       /* the declared name ("*.example.com" too) */
	size_t rule;            /* index in authority.egressRules */
	const uint32_t *elems;  /* IPv4 addresses, network order, resolved at network_scope */
	size_t n_elems;
	int quiet;              /* no counter: infrastructure (the DNS proxy), not a declared rule */
};

struct nft_counter {
	char *rule;             /* rule as `nft list ruleset` prints it, without counter */
	uint64_t packets;
	uint64_t bytes;
};

/* Render the ruleset text (table inet cellos). Pure; malloc'd result. */
char *nft_render(const struct nft_egress *rules, size_t n);

/* Install the ruleset in the current netns, as one transaction (all or
 * nothing). Fails if table inet cellos already exists. */
int nft_apply(const struct nft_egress *rules, size_t n, struct err *e);
/* The same, replacing the table inet cellos that is there (a warm cell's base
 * ruleset, SPEC §11), in the same transaction. */
int nft_replace(const struct nft_egress *rules, size_t n, struct err *e);

/* The base chain of the ruleset: the cell's own output (its processes are in
 * the netns), or what enters the netns from a microVM's TAP (prerouting: the
 * guest's packets are not local output of the netns). Same rules either way. */
enum nft_hook { NFT_HOOK_OUTPUT = 0, NFT_HOOK_PREROUTING };
int nft_apply_at(const struct nft_egress *rules, size_t n, enum nft_hook hook, struct err *e);
int nft_read_counters_at(enum nft_hook hook, struct nft_counter **out, size_t *n, struct err *e);

/* Read back the counted rules of table inet cellos, chain output, in order:
 * the egress rules, then "drop". Fails if there is no such chain. */
int nft_read_counters(struct nft_counter **out, size_t *n, struct err *e);
void nft_counters_free(struct nft_counter *c, size_t n);

#endif
