/* The SNI/Host check of a gateway cell's TLS and HTTP/1 flows (SPEC §6.4)
 * without terminating TCP: the gateway's host table (gateway.h, l7_queue)
 * sends the segments of a flow to a DNS-name rule's address on 443 or 80 to
 * an nfnetlink_queue while the flow's conntrack mark is neither
 * GATEWAY_CT_ALLOW nor GATEWAY_CT_DENY. This module is that queue's listener:
 * segments without payload (the handshake's ACK) pass at once; payload
 * segments are held (no verdict) and their bytes gathered in sequence order
 * until the ClientHello (or the request's Host) names the server (l7peek.h),
 * or a limit is reached. Allow: the flow's conntrack mark is set to ALLOW
 * (ctnetlink), then the held segments are accepted in order, and from then on
 * the kernel forwards the flow without the supervisor. Deny: mark DENY (the
 * table then answers the flow with a TCP reset), the held segments dropped,
 * and a FIN sent to the cell at once (carrying a 403 for HTTP, as the proxy
 * answers). The server's payload before the decision is dropped. One
 * l7_egress_decision event per connection, through the policy's hooks, as the
 * proxy (l7proxy.h) emits it.
 *
 * Fail closed: the queue rule has no bypass, so without this listener (a
 * SIGKILLed supervisor) the flow's segments are dropped.
 *
 * Like the proxy, it runs in the caller's thread: l7queue_fd() is readable
 * whenever l7queue_pump() has work. */
#ifndef CELLOS_L7QUEUE_H
#define CELLOS_L7QUEUE_H

#include <netinet/in.h>
#include <stdint.h>

#include "isolate/netpolicy.h"
#include "util/err.h"

/* The queue numbers a run may bind: the kernel lets one listener bind a number
 * (per network namespace), so the first free one tried is this run's. */
#define L7QUEUE_FIRST 32768
#define L7QUEUE_LAST 49151
/* Numbers tried before the proxy takes over (all taken by live cells). */
#define L7QUEUE_TRIES 64

struct l7queue;

/* Bind a free queue number in the calling thread's netns (its gateway table's).
 * Fails when the kernel has no nfnetlink_queue or ctnetlink (the caller then
 * uses the proxy). `np` is borrowed and outlives the queue. */
int l7queue_open(struct l7queue **out, struct netpolicy *np, int peek_timeout_ms, struct err *e);
uint16_t l7queue_num(const struct l7queue *q);
/* Once the gateway is up: segments are taken only from `cell` through `host_if`. */
int l7queue_start(struct l7queue *q, const char *host_if, struct in_addr cell, struct err *e);
int l7queue_fd(const struct l7queue *q);
void l7queue_pump(struct l7queue *q);
/* Unbind and close (segments still held are dropped). NULL is fine. */
void l7queue_close(struct l7queue *q);

#endif
