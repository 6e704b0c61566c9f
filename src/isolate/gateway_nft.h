/* The gateway's nftables side (SPEC §6.4): the run's host table and the sets of
 * DNS-name rules. Internal to gateway.c; the chains are described in gateway.h. */
#ifndef CELLOS_GATEWAY_NFT_H
#define CELLOS_GATEWAY_NFT_H

#include "isolate/gateway.h"

/* Install table inet gw->table in the calling thread's netns, one transaction. */
int gateway_nft_apply(struct gateway *gw, struct err *e);
/* Delete table inet `table` of the calling thread's netns. */
int gateway_nft_delete(const char *table, struct err *e);
/* An nf_tables socket of the calling thread's netns (kept for the sets). */
struct mnl_socket *gateway_nft_socket(struct err *e);
/* Add IPv4 addresses (network order) to set `set` of the host table and, when
 * the cell's socket is open, of the cell's table inet cellos. */
int gateway_nft_add_elems(struct gateway *gw, const char *set, const uint32_t *elems, size_t n, struct err *e);

#endif
