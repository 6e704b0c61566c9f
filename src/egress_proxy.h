/* The supervisor's side of a gateway cell's DNS proxy and SNI/Host check (SPEC
 * §6.4): the policy taken from the document (dnsAuthority, the DNS-name egress
 * rules as network_scope resolved them), the upstream resolver, the hooks into
 * the gateway's sets and into the event stream, and the descriptors the
 * supervisor's wait loop polls. The proxies themselves are in isolate/
 * (dnsproxy.h, l7proxy.h); they run in the supervisor's own thread. */
#ifndef CELLOS_EGRESS_PROXY_H
#define CELLOS_EGRESS_PROXY_H

#include <poll.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "events/event.h"
#include "isolate/dnsproxy.h"
#include "isolate/gateway.h"
#include "isolate/l7proxy.h"
#include "isolate/l7queue.h"
#include "isolate/netpolicy.h"
#include "spec/spec.h"

#define EGRESS_PROXY_POLLFDS 3

struct egress_proxy {
	bool prepared;
	struct netpolicy np;
	const char **allow;             /* hostnameAllowlist, borrowed from the document */
	struct gateway *gw;             /* borrowed, from start to stop */
	struct event_stream *es;
	struct dnsproxy *dns;
	struct l7proxy *l7;
	struct l7queue *l7q;            /* the SNI check of 443 on the queue, when the kernel has it */
	struct dnsproxy_cfg dcfg;
	bool names;                     /* DNS-name rules or a hostnameAllowlist: the cell will resolve */
};

/* Before create, for a cell that will have the gateway: the policy, and the SNI/
 * Host check's listener when a TCP 443/80 DNS-name rule needs it (*l7_port for
 * the gateway's redirect, else 0), and for a 443 rule its nfnetlink_queue
 * (*l7_queue, 0 when the kernel has none: then the proxy checks 443 too). The upstream resolver is
 * dnsAuthority.resolvers[0], else CELLOS_DNS_UPSTREAM, else the first
 * nameserver of the host's /etc/resolv.conf. */
int egress_proxy_prepare(struct egress_proxy *p, const struct config *cfg, const struct spec *spec,
			 const struct nft_egress *egress, size_t n_egress, struct event_stream *es, uint16_t *l7_port,
			 uint16_t *l7_queue, struct err *e);
/* After create, once the gateway is up: listen on its address. */
int egress_proxy_start(struct egress_proxy *p, struct gateway *gw, struct err *e);
/* Once the workload is launched: for a cell that will resolve names, the DNS
 * proxy's library is loaded now, while the workload starts (its own start and
 * its resolver's take longer), instead of delaying the first query by the
 * load (~3.5 ms here: dnsproxy_preload). A cell with address rules only is
 * left alone: it would pay the load for nothing. */
void egress_proxy_preload(const struct egress_proxy *p);
/* The descriptors to poll (POLLIN), -1 where none: EGRESS_PROXY_POLLFDS entries. */
void egress_proxy_pollfds(const struct egress_proxy *p, struct pollfd *fds);
/* After poll: the work of whichever is readable. */
void egress_proxy_pump(struct egress_proxy *p, const struct pollfd *fds);
/* Close both (idempotent; safe on a zeroed struct). */
void egress_proxy_stop(struct egress_proxy *p);

#endif
