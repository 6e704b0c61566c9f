/* The secret-broker port (SPEC §5) and the memory that holds secret values.
 *
 * Values live in sodium_malloc'd memory (guard pages, mlock'd, excluded from core
 * dumps) and are wiped at revoke. While any is held the supervisor is not
 * dumpable. Values are never formatted into messages: errors name the secret. */
#ifndef CELLOS_BROKER_H
#define CELLOS_BROKER_H

#include <stddef.h>

#include "config.h"
#include "secrets/secret.h"
#include "spec/spec.h"
#include "util/err.h"

/* The port: one broker per CELLOS_BROKER value. */
struct secret_broker {
	const char *name;
	/* Validation (nothing will run): could fetch find `ref` now? Never reads
	 * or holds a value; fails with the message fetch would give. */
	int (*probe)(const char *ref, struct err *e);
	/* Fill *out for `ref` (out->env_entry from secret_entry_alloc). On failure
	 * nothing is held and the message names the secret and where it was looked
	 * up, never any part of a value. */
	int (*fetch)(const char *ref, struct secret *out, struct err *e);
};

extern const struct secret_broker broker_env;  /* env.c: CELLOS_SECRET_<KEY> */
extern const struct secret_broker broker_file; /* file.c: CELLOS_SECRET_FILE_<KEY> */

/* Variable naming (names.c). The env broker's variable for `ref`
 * (CELLOS_SECRET_<KEY>) and its live value in our environment (writable, so that
 * it can be wiped), NULL when unset; the file broker's variable
 * (CELLOS_SECRET_FILE_<KEY>) and the path it holds, NULL when unset or empty. */
void secret_env_var(const char *ref, char *buf, size_t size);
char *secret_env_value(const char *ref);
void secret_file_var(const char *ref, char *buf, size_t size);
const char *secret_file_path(const char *ref);

/* For brokers: locked memory for "<ref>=" followed by `vlen` value bytes and a
 * NUL; the prefix and the NUL are written, the value is the caller's. */
char *secret_entry_alloc(const char *ref, size_t vlen);

/* Admission (before any event): what the configuration and the document ask of
 * the secrets can be done (file delivery needs a mount namespace). */
int secrets_admit(const struct config *cfg, const struct spec *spec, struct err *e);
/* Validation: every secretRef the configured broker cannot see is one problem
 * ("spec.authority.secretRefs[i]: <why>"), values are never read. Returns -1
 * when there was any. A run does not call this: its secrets phase finds a
 * missing secret and records it in a lifecycle.v1.failed event (SPEC §4). */
int secrets_probe(const struct config *cfg, const struct spec *spec, struct problems *probs);
/* Resolve every secretRef through the configured broker. On failure nothing is
 * held and the message names the missing secret and where it was looked up. */
int secrets_resolve(const struct config *cfg, const struct spec *spec, struct secrets *out, struct err *e);
/* Wipe and free every value (revoke). Safe to call twice. */
void secrets_revoke(struct secrets *s);

#endif
