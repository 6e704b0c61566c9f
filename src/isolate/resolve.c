/* Name resolution at network_scope: see resolve.h. */
#include "isolate/resolve.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "isolate/ldns_dl.h"

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
	/* ldns is loaded on first use (ldns_dl.h): a supervisor that resolves
	 * nothing this way never loads it, nor libssl/libcrypto with it. */
	const struct ldns_api *L = ldns_api_load(e);
	if (!L)
		return err_prefix(e, "resolving %s", name);
	unsigned char a6[16];
	bool v6 = inet_pton(AF_INET6, server, a6) == 1;
	ldns_resolver *res = L->resolver_new();
	ldns_rdf *ns = L->rdf_new_frm_str(v6 ? LDNS_RDF_TYPE_AAAA : LDNS_RDF_TYPE_A, server);
	ldns_rdf *dname = L->dname_new_frm_str(name);
	int rc = 0;
	if (!res || !ns || !dname || L->resolver_push_nameserver(res, ns) != LDNS_STATUS_OK) {
		rc = err_set(e, "resolving %s: cannot set up a query to %s", name, server);
		goto out;
	}
	L->resolver_set_port(res, (uint16_t)port);
	L->resolver_set_timeout(res, (struct timeval){RESOLVE_TIMEOUT_MS / 1000, (RESOLVE_TIMEOUT_MS % 1000) * 1000});
	L->resolver_set_retry(res, RESOLVE_TRIES);
	L->resolver_set_recursive(res, true);
	L->resolver_set_random(res, false);
	ldns_pkt *p = NULL;
	ldns_status st = L->resolver_query_status(&p, res, dname, LDNS_RR_TYPE_A, LDNS_RR_CLASS_IN, LDNS_RD);
	if (st != LDNS_STATUS_OK || !p) {
		rc = err_set(e, "resolving %s through %s port %d: %s", name, server, port, L->get_errorstr_by_id(st));
		goto out;
	}
	ldns_rr_list *rrs = L->pkt_rr_list_by_type(p, LDNS_RR_TYPE_A, LDNS_SECTION_ANSWER);
	for (size_t i = 0; rrs && i < L->rr_list_rr_count(rrs) && rc == 0; i++) {
		ldns_rdf *rd = L->rr_a_address(L->rr_list_rr(rrs, i));
		uint32_t a;
		if (rd && L->rdf_size(rd) == 4) {
			memcpy(&a, L->rdf_data(rd), 4);
			if (push(out, n, a) < 0)
				rc = err_set(e, "out of memory");
		}
	}
	L->rr_list_deep_free(rrs);
	L->pkt_free(p);
out:
	if (dname)
		L->rdf_deep_free(dname);
	if (res)
		L->resolver_deep_free(res); /* frees the pushed nameserver's copy */
	if (ns)
		L->rdf_deep_free(ns);
	return rc;
}
