/* `env` broker: CELLOS_SECRET_<KEY> from the supervisor's environment. */
#include <sodium.h>
#include <string.h>

#include "secrets/broker.h"

static int not_found(const char *ref, struct err *e)
{
	char var[176];
	secret_env_var(ref, var, sizeof var);
	return err_set(e, "secret %s: not found (env broker: %s is not set)", ref, var);
}

static int env_probe(const char *ref, struct err *e)
{
	return secret_env_value(ref) ? 0 : not_found(ref, e);
}

static int env_fetch(const char *ref, struct secret *out, struct err *e)
{
	char *value = secret_env_value(ref);
	if (!value)
		return not_found(ref, e);
	size_t vl = strlen(value);
	char *entry = secret_entry_alloc(ref, vl);
	if (!entry)
		return err_set(e, "secret %s: cannot allocate locked memory", ref);
	size_t nl = strlen(ref);
	memcpy(entry + nl + 1, value, vl);
	/* The copy is the only one we keep: wipe the value in our environment so
	 * it no longer shows in /proc/<pid>/environ or a later memory image. */
	sodium_memzero(value, vl);
	*out = (struct secret){.name = ref, .env_entry = entry, .len = nl + 1 + vl};
	return 0;
}

const struct secret_broker broker_env = {.name = "env", .probe = env_probe, .fetch = env_fetch};
