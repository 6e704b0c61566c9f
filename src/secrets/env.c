/* `env` broker: CELLOS_SECRET_<KEY> from the supervisor's environment. */
#include <sodium.h>
#include <string.h>
#include <sys/prctl.h>

#include "secrets/broker.h"

int secrets_resolve(const struct config *cfg, const struct spec *spec, struct secrets *out, struct err *e)
{
	memset(out, 0, sizeof *out);
	if (spec->n_secret_refs == 0)
		return 0;
	out->items = calloc(spec->n_secret_refs, sizeof *out->items);
	if (!out->items)
		return err_set(e, "secrets: out of memory");
	/* No core dump or ptrace-by-same-uid may see the values while we hold them. */
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	for (size_t i = 0; i < spec->n_secret_refs; i++) {
		const char *name = spec->secret_refs[i];
		char *value = config_secret_env(name);
		if (!value) {
			secrets_revoke(out);
			char var[160];
			config_secret_var(name, var, sizeof var);
			return err_set(e, "secret %s: not found (env broker: %s is not set)", name, var);
		}
		size_t nl = strlen(name), vl = strlen(value);
		char *entry = sodium_malloc(nl + 1 + vl + 1);
		if (!entry) {
			secrets_revoke(out);
			return err_set(e, "secret %s: cannot allocate locked memory", name);
		}
		memcpy(entry, name, nl);
		entry[nl] = '=';
		memcpy(entry + nl + 1, value, vl + 1);
		/* The copy is the only one we keep: wipe the value in our environment so
		 * it no longer shows in /proc/<pid>/environ or a later memory image. */
		sodium_memzero(value, vl);
		out->items[out->n++] = (struct secret){.name = name, .env_entry = entry, .len = nl + 1 + vl};
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
