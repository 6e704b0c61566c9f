/* ldns (the DNS library of NLnet Labs), loaded when first needed: the DNS
 * proxy's first query, or a DNS-name egress rule resolved at network_scope
 * through a given resolver (resolve.c).
 *
 * libldns links libssl and libcrypto (for DNSSEC, which the proxy does not
 * use), and loading those at every start would cost each supervisor more than a
 * whole isolated cell's start-up (bench/README.md). Only a cell that resolves a
 * name pays for it, once. */
#ifndef CELLOS_LDNS_DL_H
#define CELLOS_LDNS_DL_H

#include <ldns/ldns.h>

#include "util/err.h"

struct ldns_api {
	ldns_status (*wire2pkt)(ldns_pkt **p, const uint8_t *data, size_t len);
	ldns_status (*pkt2wire)(uint8_t **dest, const ldns_pkt *p, size_t *size);
	void (*pkt_free)(ldns_pkt *p);
	uint16_t (*pkt_id)(const ldns_pkt *p);
	bool (*pkt_qr)(const ldns_pkt *p);
	ldns_pkt_opcode (*pkt_get_opcode)(const ldns_pkt *p);
	ldns_pkt_rcode (*pkt_get_rcode)(const ldns_pkt *p);
	uint16_t (*pkt_qdcount)(const ldns_pkt *p);
	ldns_rr_list *(*pkt_question)(const ldns_pkt *p);
	ldns_rr_list *(*pkt_answer)(const ldns_pkt *p);
	void (*pkt_set_qr)(ldns_pkt *p, bool b);
	void (*pkt_set_aa)(ldns_pkt *p, bool b);
	void (*pkt_set_ra)(ldns_pkt *p, bool b);
	void (*pkt_set_rcode)(ldns_pkt *p, uint8_t c);
	size_t (*rr_list_rr_count)(const ldns_rr_list *l);
	ldns_rr *(*rr_list_rr)(const ldns_rr_list *l, size_t i);
	ldns_rdf *(*rr_owner)(const ldns_rr *rr);
	ldns_rr_type (*rr_get_type)(const ldns_rr *rr);
	ldns_rr_class (*rr_get_class)(const ldns_rr *rr);
	ldns_rdf *(*rr_rdf)(const ldns_rr *rr, size_t i);
	size_t (*rdf_size)(const ldns_rdf *rd);
	uint8_t *(*rdf_data)(const ldns_rdf *rd);
	char *(*rdf2str)(const ldns_rdf *rd);
	char *(*rr_type2str)(ldns_rr_type t);
	int (*dname_compare)(const ldns_rdf *a, const ldns_rdf *b);
	/* The stub resolver, for network_scope's lookups (resolve.c). */
	ldns_resolver *(*resolver_new)(void);
	ldns_rdf *(*rdf_new_frm_str)(ldns_rdf_type type, const char *str);
	ldns_rdf *(*dname_new_frm_str)(const char *str);
	ldns_status (*resolver_push_nameserver)(ldns_resolver *r, const ldns_rdf *n);
	void (*resolver_set_port)(ldns_resolver *r, uint16_t port);
	void (*resolver_set_timeout)(ldns_resolver *r, struct timeval tv);
	void (*resolver_set_retry)(ldns_resolver *r, uint8_t re);
	void (*resolver_set_recursive)(ldns_resolver *r, bool b);
	void (*resolver_set_random)(ldns_resolver *r, bool b);
	ldns_status (*resolver_query_status)(ldns_pkt **answer, ldns_resolver *r, const ldns_rdf *name, ldns_rr_type t,
					     ldns_rr_class c, uint16_t flags);
	const char *(*get_errorstr_by_id)(ldns_status err);
	ldns_rr_list *(*pkt_rr_list_by_type)(const ldns_pkt *p, ldns_rr_type t, ldns_pkt_section s);
	ldns_rdf *(*rr_a_address)(const ldns_rr *r);
	void (*rr_list_deep_free)(ldns_rr_list *l);
	void (*rdf_deep_free)(ldns_rdf *rd);
	void (*resolver_deep_free)(ldns_resolver *r);
};

/* Load libldns (once) and return its entry points, or NULL with *e set. */
const struct ldns_api *ldns_api_load(struct err *e);

#endif
