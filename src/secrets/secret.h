/* Secret values as the supervisor holds them once a broker has fetched them
 * (SPEC §5): the vocabulary shared by the brokers (broker.h), the lifecycle and
 * whoever delivers them into the cell (isolate/secretfs.c, the environment).
 * Data only; includes nothing of ours, so any layer may read a value it is
 * handed without depending on the brokers. */
#ifndef CELLOS_SECRET_H
#define CELLOS_SECRET_H

#include <stddef.h>
#include <string.h>

struct secret {
	const char *name;   /* the secretRef (borrowed from the spec) */
	char *env_entry;    /* "NAME=value", NUL-terminated, in locked memory */
	size_t len;         /* bytes of env_entry before the final NUL (a file value may hold NULs) */
};

struct secrets {
	struct secret *items;
	size_t n;
};

/* The value part of s->env_entry ("<name>=<value>") and its length. */
static inline const char *secret_value(const struct secret *s, size_t *vlen)
{
	size_t nl = strlen(s->name) + 1;
	*vlen = s->len - nl;
	return s->env_entry + nl;
}

#endif
