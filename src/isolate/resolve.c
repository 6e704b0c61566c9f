/* Name resolution at network_scope: see resolve.h. */
#include "isolate/resolve.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <ldns/ldns.h>

static int push(uint32_t **out, size_t *n, uint32_t a)
{
	for (size_t i = 0; i < *n; i++)
		if ((*out)[i] == a)
			return 0;
	uint32_t *nl = reallocarray(*out, *n + 1, sizeof *nl);
	if (!nl)
		return -1;
	*out = nl;
	nl[(*n)++] = a;
	return 0;
}

int resolve_split_addr(const char *s, char *ip, size_t size, int *port)
{
	const char *colon = s[0] == '[' ? strstr(s, "]:") : strrchr(s, ':');
	if (!colon)
		return -1;
	const char *host = s[0] == '[' ? s + 1 : s;
	size_t hl = (size_t)(colon - host);
	const char *ps = colon + (s[0] == '[' ? 2 : 1);
	if (hl == 0 || hl >= size)
		return -1;
	memcpy(ip, host, hl);
	ip[hl] = '\0';
	char *end;
	long p = strtol(ps, &end, 10);
	if (*ps < '0' || *ps > '9' || *end || p < 1 || p > 65535)
		return -1;
	*port = (int)p;
	return 0;
}

static int host_resolver(const char *name, uint32_t **out, size_t *n, struct err *e)
{
	struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res = NULL;
	int rc = getaddrinfo(name, NULL, &hints, &res);
	if (rc == EAI_NONAME || rc == EAI_NODATA)
		return 0;
	if (rc != 0)
		return err_set(e, "resolving %s through the host's resolver: %s", name, gai_strerror(rc));
	for (struct addrinfo *ai = res; ai && rc == 0; ai = ai->ai_next)
		if (push(out, n, ((struct sockaddr_in *)ai->ai_addr)->sin_addr.s_addr) < 0)
			rc = err_set(e, "out of memory");
	freeaddrinfo(res);
	return rc;
}

int resolve_a(const char *name, const char *server, int port, uint32_t **out, size_t *n, struct err *e)
{
	if (!server)
		return host_resolver(name, out, n, e);
	unsigned char a6[16];
	bool v6 = inet_pton(AF_INET6, server, a6) == 1;
	ldns_resolver *res = ldns_resolver_new();
	ldns_rdf *ns = ldns_rdf_new_frm_str(v6 ? LDNS_RDF_TYPE_AAAA : LDNS_RDF_TYPE_A, server);
	ldns_rdf *dname = ldns_dname_new_frm_str(name);
	int rc = 0;
	if (!res || !ns || !dname || ldns_resolver_push_nameserver(res, ns) != LDNS_STATUS_OK) {
		rc = err_set(e, "resolving %s: cannot set up a query to %s", name, server);
		goto out;
	}
	ldns_resolver_set_port(res, (uint16_t)port);
	ldns_resolver_set_timeout(res, (struct timeval){RESOLVE_TIMEOUT_MS / 1000, (RESOLVE_TIMEOUT_MS % 1000) * 1000});
	ldns_resolver_set_retry(res, RESOLVE_TRIES);
	ldns_resolver_set_recursive(res, true);
	ldns_resolver_set_random(res, false);
	ldns_pkt *p = NULL;
	ldns_status st = ldns_resolver_query_status(&p, res, dname, LDNS_RR_TYPE_A, LDNS_RR_CLASS_IN, LDNS_RD);
	if (st != LDNS_STATUS_OK || !p) {
		rc = err_set(e, "resolving %s through %s port %d: %s", name, server, port, ldns_get_errorstr_by_id(st));
		goto out;
	}
	ldns_rr_list *rrs = ldns_pkt_rr_list_by_type(p, LDNS_RR_TYPE_A, LDNS_SECTION_ANSWER);
	for (size_t i = 0; rrs && i < ldns_rr_list_rr_count(rrs) && rc == 0; i++) {
		ldns_rdf *rd = ldns_rr_a_address(ldns_rr_list_rr(rrs, i));
		uint32_t a;
		if (rd && ldns_rdf_size(rd) == 4) {
			memcpy(&a, ldns_rdf_data(rd), 4);
			if (push(out, n, a) < 0)
				rc = err_set(e, "out of memory");
		}
	}
	ldns_rr_list_deep_free(rrs);
	ldns_pkt_free(p);
out:
	if (dname)
		ldns_rdf_deep_free(dname);
	if (res)
		ldns_resolver_deep_free(res); /* frees the pushed nameserver's copy */
	if (ns)
		ldns_rdf_deep_free(ns);
	return rc;
}
