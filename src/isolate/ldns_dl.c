#include "isolate/ldns_dl.h"

#include <dlfcn.h>
#include <stddef.h>

/* Process-wide by nature: the library stays loaded once loaded. */
static struct ldns_api api;
static int loaded;

const struct ldns_api *ldns_api_load(struct err *e)
{
	if (loaded)
		return &api;
	void *h = dlopen("libldns.so.3", RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		err_set(e, "libldns: %s", dlerror());
		return NULL;
	}
#define SYM(f) {"ldns_" #f, offsetof(struct ldns_api, f)}
	static const struct { const char *name; size_t off; } syms[] = {
		SYM(wire2pkt),      SYM(pkt2wire),      SYM(pkt_free),       SYM(pkt_id),
		SYM(pkt_qr),        SYM(pkt_get_opcode), SYM(pkt_get_rcode), SYM(pkt_qdcount),
		SYM(pkt_question),  SYM(pkt_answer),    SYM(pkt_set_qr),     SYM(pkt_set_aa),
		SYM(pkt_set_ra),    SYM(pkt_set_rcode), SYM(rr_list_rr_count), SYM(rr_list_rr),
		SYM(rr_owner),      SYM(rr_get_type),   SYM(rr_get_class),   SYM(rr_rdf),
		SYM(rdf_size),      SYM(rdf_data),      SYM(rdf2str),        SYM(rr_type2str),
		SYM(dname_compare),
		SYM(resolver_new), SYM(rdf_new_frm_str), SYM(dname_new_frm_str), SYM(resolver_push_nameserver),
		SYM(resolver_set_port), SYM(resolver_set_timeout), SYM(resolver_set_retry), SYM(resolver_set_recursive),
		SYM(resolver_set_random), SYM(resolver_query_status), SYM(get_errorstr_by_id), SYM(pkt_rr_list_by_type),
		SYM(rr_a_address), SYM(rr_list_deep_free), SYM(rdf_deep_free), SYM(resolver_deep_free),
	};
#undef SYM
	for (size_t i = 0; i < sizeof syms / sizeof syms[0]; i++) {
		void *f = dlsym(h, syms[i].name);
		if (!f) {
			err_set(e, "libldns: missing symbol %s", syms[i].name);
			dlclose(h);
			return NULL;
		}
		*(void **)((char *)&api + syms[i].off) = f;
	}
	loaded = 1;
	return &api;
}
