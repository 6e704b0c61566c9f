/* Resolving a DNS-name egress host to IPv4 addresses at network_scope (SPEC
 * §6.4): through a given resolver (the document's declared one, or
 * CELLOS_DNS_UPSTREAM), with ldns, or else through the host's resolver
 * (getaddrinfo). These lookups are the supervisor's own: no dns_query event. */
#ifndef CELLOS_RESOLVE_H
#define CELLOS_RESOLVE_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

/* How long a resolver is given to answer, and how often it is asked. */
#define RESOLVE_TIMEOUT_MS 2000
#define RESOLVE_TRIES 2

/* The A records of `name` (network order, appended to *out), asked of
 * `server` ("ip", port `port`) or, when server is NULL, the host's resolver.
 * A name that does not exist or has no A record yields none and succeeds; a
 * resolver that does not answer is an error. */
int resolve_a(const char *name, const char *server, int port, uint32_t **out, size_t *n, struct err *e);

/* "ip:port" or "[ipv6]:port" into ip (size >= 46) and *port; -1 if not one. */
int resolve_split_addr(const char *s, char *ip, size_t size, int *port);

#endif
