/* Secrets of one run (SPEC §5): resolution through the configured broker, the
 * memory that holds them, and revoke. */
#include <sodium.h>
#include <string.h>
#include <sys/prctl.h>

#include "secrets/broker.h"

char *secret_entry_alloc(const char *ref, size_t vlen)
{
	size_t nl = strlen(ref);
	/* sodium_malloc: guard pages, mlock (never swapped out), MADV_DONTDUMP (never
	 * in a core dump); sodium_free zeroes it before unmapping. */
	char *entry = sodium_malloc(nl + 1 + vlen + 1);
	if (!entry)
		return NULL;
	memcpy(entry, ref, nl);
	entry[nl] = '=';
	entry[nl + 1 + vlen] = '\0';
	return entry;
}

int secrets_admit(const struct config *cfg, const struct spec *spec, struct err *e)
{
	if (!spec->has_run || spec->delivery != DELIVERY_FILE)
		return 0;
	/* The secrets directory is a tmpfs only the cell's mount namespace sees.
	 * Without one there is no private place for it, and falling back to env
	 * delivery would hand the secrets over in a way the document did not ask for. */
	if (cfg->backend == BACKEND_STUB && !(cfg->ns & NS_MNT))
		return err_set(e, "spec.run.secretDelivery: \"file\" needs a mount namespace for the cell's private "
				  "secrets directory (CELLOS_SUBPROCESS_UNSHARE with mnt, e.g. all); secrets are never "
				  "delivered by env instead");
	/* microVMs: the files are made inside the guest (cellos-init), in memory. */
	if (cfg->backend != BACKEND_STUB && cfg->backend != BACKEND_QEMU && cfg->backend != BACKEND_FIRECRACKER)
		return err_set(e, "spec.run.secretDelivery: \"file\" is not available with CELLOS_CELL_BACKEND=%s in "
				  "this build (use stub with a mount namespace, or env delivery)",
			       config_backend_name(cfg->backend));
	return 0;
}

static const struct secret_broker *broker_for(const struct config *cfg)
{
	return cfg->broker == BROKER_FILE ? &broker_file : &broker_env;
}

int secrets_probe(const struct config *cfg, const struct spec *spec, struct problems *probs)
{
	const struct secret_broker *b = broker_for(cfg);
	int rc = 0;
	for (size_t i = 0; i < spec->n_secret_refs; i++) {
		struct err e = {0};
		if (b->probe(spec->secret_refs[i], &e) < 0) {
			problems_add(probs, "spec.authority.secretRefs[%zu]: %s", i, e.msg);
			rc = -1;
		}
	}
	return rc;
}

int secrets_resolve(const struct config *cfg, const struct spec *spec, struct secrets *out, struct err *e)
{
	memset(out, 0, sizeof *out);
	if (spec->n_secret_refs == 0)
		return 0;
	const struct secret_broker *b = broker_for(cfg);
	out->items = calloc(spec->n_secret_refs, sizeof *out->items);
	if (!out->items)
		return err_set(e, "secrets: out of memory");
	/* No core dump or ptrace-by-same-uid may see the values while we hold them.
	 * It stays so until exit: the signing key and the export token are held
	 * that long anyway, and flipping it back would only open a window. */
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	for (size_t i = 0; i < spec->n_secret_refs; i++) {
		struct secret *s = &out->items[out->n];
		if (b->fetch(spec->secret_refs[i], s, e) < 0) {
			secrets_revoke(out);
			return -1;
		}
		out->n++;
		size_t vlen;
		const char *v = secret_value(s, &vlen);
		/* An environment entry ends at the first NUL: the workload would get a
		 * shortened value without anyone noticing. */
		if (spec->delivery == DELIVERY_ENV && memchr(v, '\0', vlen)) {
			secrets_revoke(out);
			return err_set(e, "secret %s: the value contains a NUL byte, which env delivery cannot carry "
					  "(use spec.run.secretDelivery \"file\")",
				       spec->secret_refs[i]);
		}
	}
	return 0;
}

void secrets_revoke(struct secrets *s)
{
	for (size_t i = 0; i < s->n; i++)
		sodium_free(s->items[i].env_entry); /* zeroes before unmapping */
	free(s->items);
	s->items = NULL;
	s->n = 0;
}
