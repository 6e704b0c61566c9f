/* The DNS proxy of a gateway cell (SPEC §6.4): UDP and TCP port 53 on the
 * cell's gateway address. A query for a name the policy allows (netpolicy.h) is
 * forwarded as it came to the upstream resolver and the upstream's answer
 * relayed as it came (same transaction id); any other name is answered REFUSED
 * without asking upstream; an upstream silent for `timeout_ms` gives SERVFAIL;
 * a query that is not one (unparseable, a response, not QUERY, not exactly one
 * question) is dropped. The IPv4 addresses of each relayed answer go to the
 * policy (netpolicy_learn: the nft sets, unless denied: rebind_rejected). One
 * dns_query event per query, through the policy's hooks.
 *
 * Single-threaded: dnsproxy_fd() is readable whenever dnsproxy_pump() has work
 * (a query, an answer, a deadline); the supervisor polls it in its wait loop. */
#ifndef CELLOS_DNSPROXY_H
#define CELLOS_DNSPROXY_H

#include <netinet/in.h>
#include <stdint.h>
#include <sys/socket.h>

#include "isolate/netpolicy.h"
#include "util/err.h"

/* How long the upstream may take before the cell gets SERVFAIL (SPEC §6.4). */
#define DNSPROXY_TIMEOUT_MS 2000

struct dnsproxy_cfg {
	struct in_addr listen;          /* the gateway address */
	uint16_t port;                  /* 53 */
	struct sockaddr_storage upstream;
	socklen_t upstream_len;         /* 0: none known (every allowed name gets SERVFAIL) */
	const char *upstream_id;        /* dnsAuthority.resolvers[0].resolverId, or NULL */
	int timeout_ms;
	struct netpolicy *np;           /* borrowed; outlives the proxy */
};

struct dnsproxy;

/* Bind both listeners; nothing is read until the first pump. */
int dnsproxy_open(struct dnsproxy **out, const struct dnsproxy_cfg *cfg, struct err *e);
int dnsproxy_fd(const struct dnsproxy *p);
void dnsproxy_pump(struct dnsproxy *p);
/* Load the DNS library now rather than at the first query, which would wait
 * for it (ldns brings libssl and libcrypto: ~3.5 ms on this host kind). A
 * failure is left for the first query to report. */
void dnsproxy_preload(void);
/* Close everything; a query still waiting for its upstream is reported as
 * servfail (reasonCode cell_ended). NULL is fine. */
void dnsproxy_close(struct dnsproxy *p);

#endif
