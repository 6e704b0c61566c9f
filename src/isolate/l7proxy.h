/* The SNI/Host check of a gateway cell (SPEC §6.4): TCP flows to ports 443 and
 * 80 of DNS-name rules are redirected (nat, in the gateway's host table) to
 * this listener. For each connection it reads the first bytes (l7peek.h: the
 * TLS ClientHello's server_name, or the HTTP/1 Host), and connects on to the
 * original destination (SO_ORIGINAL_DST) only when a rule allows that name for
 * that address and port (netpolicy_l7_allowed). TLS is never terminated: the
 * bytes read are sent on unchanged, then the two sockets are joined with
 * splice(2) through a pipe per direction, no copy through userspace, each
 * direction in a thread of its own. A miss is closed; HTTP gets a 403 first. One
 * l7_egress_decision event per connection, through the policy's hooks.
 *
 * The decisions are made in the caller's thread, like the DNS proxy's:
 * l7proxy_fd() is readable whenever l7proxy_pump() has work (a connection, a
 * deadline, a relay whose threads have finished). l7proxy_close() ends and joins
 * every relay. */
#ifndef CELLOS_L7PROXY_H
#define CELLOS_L7PROXY_H

#include <netinet/in.h>
#include <stdint.h>

#include "isolate/netpolicy.h"
#include "util/err.h"

/* How long a connection may take to name its server before it is closed
 * (reasonCode l7_peek_timeout). */
#define L7PROXY_PEEK_TIMEOUT_MS 10000

struct l7proxy;

/* The listener's port, chosen now (bound, not yet listening), because the
 * gateway's redirect rule needs it before the gateway's address exists.
 * `np` is borrowed and outlives the proxy. */
int l7proxy_open(struct l7proxy **out, struct netpolicy *np, int peek_timeout_ms, struct err *e);
uint16_t l7proxy_port(const struct l7proxy *p);
/* Once the gateway is up: accept connections only through `host_if` (the
 * gateway's side of the cell's veth) and only from `cell`. */
int l7proxy_listen(struct l7proxy *p, const char *host_if, struct in_addr cell, struct err *e);
int l7proxy_fd(const struct l7proxy *p);
void l7proxy_pump(struct l7proxy *p);
/* Close every connection. NULL is fine. */
void l7proxy_close(struct l7proxy *p);

#endif
