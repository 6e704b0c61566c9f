/* The admission policy pack (SPEC §12, CELLOS_POLICY_PACK): an operator's
 * document of rules every cell must meet, checked at admission (admission.c)
 * by runs, `--validate` and `cellctl validate` alike.
 *
 *   {"apiVersion": "cellos.io/v1", "kind": "PolicyPack",
 *    "spec": {"id": "...", "version": "...", "rules": {...}}}
 *
 * Parsed like a cell document (duplicate keys rejected, at most 1 MiB), except
 * that an unknown key or rule is always an error: a misspelled rule must never
 * fail open. Every rule is optional; absent (or false) means no restriction.
 * Every violation of a cell is reported, each one line "policy.<rule>: ...". */
#ifndef CELLOS_POLICY_H
#define CELLOS_POLICY_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "spec/spec.h"

struct policy_list {
	bool set;                      /* the rule is present ([] restricts to nothing) */
	char **items;
	size_t n;
};

struct policy_pack {
	char *id, *version;
	long long max_ttl_seconds;     /* 0: no rule */
	long long max_memory_bytes;    /* 0: no rule */
	long long max_timeout_ms;      /* 0: no rule */
	bool require_limits;
	bool require_egress;
	bool forbid_egress;
	bool require_runtime_secrets;
	bool require_signed_events;
	struct policy_list egress_hosts;   /* allowedEgressHosts: name patterns, addresses, CIDRs */
	struct policy_list secret_refs;    /* secretRefAllowlist */
	struct policy_list backends;       /* allowedBackends */
};

/* Read and check the pack at `path`. On any problem: -1, and one line per
 * problem in *probs, each "CELLOS_POLICY_PACK: <path>: <field>: <problem>"
 * (the file's own problems, e.g. unreadable or not JSON, without a field). */
int policy_load(struct policy_pack *p, const char *path, struct problems *probs);
void policy_free(struct policy_pack *p);

/* Every rule against a cell: one line per violation into *probs; returns how
 * many there were. */
size_t policy_check(const struct policy_pack *p, const struct config *cfg, const struct spec *spec,
		    struct problems *probs);

/* The name matcher of SPEC §6.4: exact, or one leading "*." that matches one
 * or more labels in front of the rest but never the rest alone (the apex);
 * case-insensitive. A `name` that is itself a wildcard matches a pattern that
 * covers every name it stands for. */
bool policy_name_matches(const char *pattern, const char *name);

/* Whether an address or CIDR `host` lies inside the address or CIDR `net`
 * (same family; an address is a /32 or /128). */
bool policy_cidr_within(const char *host, const char *net);

#endif
