/* ldns (the DNS message library of NLnet Labs), loaded when the DNS proxy sees
 * its first query.
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
};

/* Load libldns (once) and return its entry points, or NULL with *e set. */
const struct ldns_api *ldns_api_load(struct err *e);

#endif
