/* JetStream event sink: which of the two does the work. See nats.h. */
#include "sink/nats.h"

#include <string.h>

#include "sink/nats_impl.h"
#include "util/nats_subject.h"

int nats_subject_of(const char *tpl, const char *tenant, const char *cell, const char *type, char *out, size_t size,
		    struct err *e)
{
	const char *ev = strncmp(type, NATS_TYPE_PREFIX, strlen(NATS_TYPE_PREFIX)) == 0 ? type + strlen(NATS_TYPE_PREFIX)
											 : type;
	/* The event part spans tokens; only whitespace, wildcards and controls
	 * are replaced there (the catalogue's types never have them). */
	char evs[200];
	size_t k = 0;
	for (const char *p = ev; *p && k + 1 < sizeof evs; p++)
		evs[k++] = (*p == '*' || *p == '>' || (unsigned char)*p <= 0x20) ? '_' : *p;
	evs[k] = '\0';
	if (nats_subject_expand(tpl, tenant, cell, evs, out, size) < 0)
		return err_set(e, "CELLOS_NATS_SUBJECT: the subject is too long");
	return 0;
}

bool nats_sink_needs_libnats(const struct nats_conn_opts *o)
{
	/* Through the relay, TLS and credentials are the agent's. */
	if (o->relay)
		return false;
	if (o->creds || o->tls_ca || o->tls_cert)
		return true;
	for (char *const *u = o->urls; *u; u++)
		if (strncmp(*u, "tls://", 6) == 0)
			return true;
	return false;
}

struct sink *sink_nats_open(const struct nats_sink_params *p, struct err *e)
{
	return nats_sink_needs_libnats(p->conn) ? nats_sync_open(p, e) : nats_async_open(p, e);
}
