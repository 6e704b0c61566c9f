/* What the DNS proxy and the SNI/Host check of a gateway cell (SPEC §6.4) decide
 * by: the names the cell may resolve (dnsAuthority.hostnameAllowlist and the
 * egress rules' hosts), the DNS-name rules with the addresses known for each
 * (resolved at network_scope, then learned from every answer the proxy
 * relays), and how they report (one event per query, per connection).
 *
 * The gateway's side (nft sets, denied CIDRs) and the events are the caller's,
 * reached through the hooks, so this layer needs neither. One thread. */
#ifndef CELLOS_NETPOLICY_H
#define CELLOS_NETPOLICY_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

/* One dns_query event (SPEC §8.1). */
struct dns_event {
	const char *query_name;         /* without the root's trailing '.'; "" when unreadable */
	const char *query_type;         /* "A", "AAAA", "TYPE65", ...; "" when unreadable */
	const char *decision;           /* permitted, refused, servfail, malformed */
	const char *reason;             /* reasonCode */
	const char *upstream_id;        /* resolverId of the upstream asked, or NULL */
	int answer_count;               /* answers relayed, -1: none relayed */
};

/* One l7_egress_decision event (SPEC §8.1). */
struct l7_event {
	const char *destination;        /* "ip:port" */
	const char *server_name;        /* NULL when none was read */
	const char *protocol;           /* tls, http */
	const char *decision;           /* allow, deny */
	const char *reason;             /* l7_sni_allowlist_match, ... */
};

struct netpolicy_hooks {
	/* Whether an address of a relayed answer lies in the denied CIDRs. */
	bool (*denied)(void *ctx, struct in_addr a);
	/* Make `a` reachable for DNS-name rule `rule` (its nft sets). */
	int (*allow)(void *ctx, size_t rule, const struct in_addr *a, size_t n, struct err *e);
	void (*dns_event)(void *ctx, const struct dns_event *ev);
	void (*l7_event)(void *ctx, const struct l7_event *ev);
	void *ctx;
};

struct np_rule {
	size_t index;                   /* in authority.egressRules */
	const char *host;               /* a DNS name, "*." allowed (borrowed) */
	int port;
	bool udp;
	struct in_addr *addrs;          /* known addresses of the name */
	size_t n_addrs, cap;
};

struct netpolicy {
	const char *const *allow;       /* hostnameAllowlist (borrowed) */
	size_t n_allow;
	struct np_rule *rules;          /* the DNS-name rules only */
	size_t n_rules;
	struct netpolicy_hooks hooks;
};

/* `allow`, and every `host` passed to netpolicy_add_rule, must outlive `np`. */
void netpolicy_init(struct netpolicy *np, const char *const *allow, size_t n_allow, const struct netpolicy_hooks *h);
/* A DNS-name egress rule and the addresses it resolved to at network_scope
 * (IPv4, network order). */
int netpolicy_add_rule(struct netpolicy *np, size_t index, const char *host, int port, bool udp,
		       const uint32_t *addrs, size_t n, struct err *e);
void netpolicy_free(struct netpolicy *np);

/* The name may be resolved: it matches the allowlist or an egress rule's host. */
bool netpolicy_name_allowed(const struct netpolicy *np, const char *name);
/* The IPv4 addresses of an answer for `qname`: each one outside the denied
 * CIDRs joins every DNS-name rule whose host matches (its sets through the
 * hook, and the addresses known here). Returns how many were denied. */
size_t netpolicy_learn(struct netpolicy *np, const char *qname, const struct in_addr *a, size_t n);
/* A TCP connection to `dst`:`port` that names `name` is allowed: a TCP
 * DNS-name rule for that port matches the name, and `dst` is one of its
 * addresses. */
bool netpolicy_l7_allowed(const struct netpolicy *np, const char *name, struct in_addr dst, int port);

#endif
