/* The secret-broker port (SPEC §5) and the memory that holds secret values.
 *
 * Values live in sodium_malloc'd memory (guard pages, mlock'd, excluded from core
 * dumps) and are wiped at revoke. While any is held the supervisor is not
 * dumpable. Values are never formatted into messages: errors name the secret. */
#ifndef CELLOS_BROKER_H
#define CELLOS_BROKER_H

#include <stddef.h>

#include "config.h"
#include "spec/spec.h"
#include "util/err.h"

struct secret {
	const char *name;   /* the secretRef (borrowed from the spec) */
	char *env_entry;    /* "NAME=value", NUL-terminated, in locked memory */
	size_t len;         /* strlen(env_entry) */
};

struct secrets {
	struct secret *items;
	size_t n;
};

/* Resolve every secretRef through the configured broker. On failure nothing is
 * held and the message names the missing secret and where it was looked up. */
int secrets_resolve(const struct config *cfg, const struct spec *spec, struct secrets *out, struct err *e);
/* Wipe and free every value (revoke). Safe to call twice. */
void secrets_revoke(struct secrets *s);

#endif
