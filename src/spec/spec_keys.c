/* The known keys of the document's objects: an unknown key is a warning (a
 * problem when strict), with a did-you-mean suggestion when one is close. */
#include "spec/spec_internal.h"

#include <stdio.h>
#include <string.h>

/* The keys of every object of the document that has a fixed set of them (the
 * free-form maps labels, env, policy, identity and placement have none). A key
 * not listed for its object is unknown: warned about, or a problem when strict
 * (SPEC §2). They are kept in one table so that a key typed at the wrong level can
 * be pointed to the object it belongs to. schema/execution-cell.schema.json lists
 * the same keys, and tests/blackbox/test_schema.py checks the two agree. */
const char *const spec_known_top[] = {"apiVersion", "kind", "spec", NULL};
const char *const spec_known_spec[] = {"id", "correlation", "authority", "lifetime", "run", "export",
					"policy", "identity", "placement", NULL};
const char *const spec_known_correlation[] = {"correlationId", "tenantId", "platform", "externalRunId",
					       "externalJobId", "labels", NULL};
const char *const spec_known_authority[] = {"secretRefs", "egressRules", "dnsAuthority", NULL};
const char *const spec_known_egress_rule[] = {"host", "port", "protocol", NULL};
const char *const spec_known_dns_authority[] = {"hostnameAllowlist", "resolvers", NULL};
const char *const spec_known_resolver[] = {"resolverId", "protocol", "address", NULL};
const char *const spec_known_lifetime[] = {"ttlSeconds", NULL};
const char *const spec_known_run[] = {"argv", "secretDelivery", "workingDirectory", "env", "timeoutMs",
				       "limits", "mounts", NULL};
const char *const spec_known_mount[] = {"source", "target", "readOnly", NULL};
const char *const spec_known_limits[] = {"memoryMaxBytes", "cpuMax", "pidsMax", "gracefulShutdownSeconds",
					  NULL};
const char *const spec_known_cpu_max[] = {"quotaMicros", "periodMicros", NULL};
const char *const spec_known_export[] = {"artifacts", "targets", NULL};
const char *const spec_known_artifact[] = {"name", "path", "target", NULL};
const char *const spec_known_target[] = {"name", "kind", "bucket", "keyPrefix", NULL};

/* Where each list applies, as a suggestion names it ("[]": any entry). */
static const struct {
	const char *path;
	const char *const *keys;
} key_places[] = {
	{"", spec_known_top},
	{"spec", spec_known_spec},
	{"spec.correlation", spec_known_correlation},
	{"spec.authority", spec_known_authority},
	{"spec.authority.egressRules[]", spec_known_egress_rule},
	{"spec.authority.dnsAuthority", spec_known_dns_authority},
	{"spec.authority.dnsAuthority.resolvers[]", spec_known_resolver},
	{"spec.lifetime", spec_known_lifetime},
	{"spec.run", spec_known_run},
	{"spec.run.limits", spec_known_limits},
	{"spec.run.limits.cpuMax", spec_known_cpu_max},
	{"spec.run.mounts[]", spec_known_mount},
	{"spec.export", spec_known_export},
	{"spec.export.artifacts[]", spec_known_artifact},
	{"spec.export.targets[]", spec_known_target},
};
#define N_KEY_PLACES (sizeof key_places / sizeof key_places[0])

static bool in_list(const char *const *list, const char *key)
{
	for (; *list; list++)
		if (strcmp(*list, key) == 0)
			return true;
	return false;
}

static char lower(char ch) { return ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch; }

#define KEY_CMP_MAX 64 /* longer keys are no typo of ours: none is half as long */

/* How far a typed key is from a known one: the edit distance (insert, delete,
 * substitute, swap two neighbours), ignoring case. A key that is a prefix of the
 * known one, at least 3 characters long ("ttl", "memory"), counts as close: the
 * user shortened it. Returns -1 when the two are not close at all. */
static int key_distance(const char *typed, const char *known)
{
	size_t n = strlen(typed), m = strlen(known);
	if (n > KEY_CMP_MAX || m > KEY_CMP_MAX)
		return -1;
	int d[KEY_CMP_MAX + 1][KEY_CMP_MAX + 1];
	for (size_t i = 0; i <= n; i++)
		d[i][0] = (int)i;
	for (size_t j = 0; j <= m; j++)
		d[0][j] = (int)j;
	for (size_t i = 1; i <= n; i++)
		for (size_t j = 1; j <= m; j++) {
			int cost = lower(typed[i - 1]) != lower(known[j - 1]);
			int best = d[i - 1][j - 1] + cost;
			if (d[i - 1][j] + 1 < best)
				best = d[i - 1][j] + 1;
			if (d[i][j - 1] + 1 < best)
				best = d[i][j - 1] + 1;
			if (i > 1 && j > 1 && lower(typed[i - 1]) == lower(known[j - 2]) &&
			    lower(typed[i - 2]) == lower(known[j - 1]) && d[i - 2][j - 2] + 1 < best)
				best = d[i - 2][j - 2] + 1;
			d[i][j] = best;
		}
	/* One edit in a short key, two in a middling one, three in a long one:
	 * more would suggest unrelated keys. */
	size_t longer = n > m ? n : m;
	int allowed = longer <= 4 ? 1 : longer <= 8 ? 2 : 3;
	if (d[n][m] <= allowed)
		return d[n][m];
	if (n >= 3 && n < m) {
		size_t i = 0;
		while (i < n && lower(typed[i]) == lower(known[i]))
			i++;
		if (i == n)
			return (int)(m - n);
	}
	return -1;
}

/* The key of `list` closest to `typed` (ties: the first), or NULL. */
static const char *closest_key(const char *typed, const char *const *list, int *dist)
{
	const char *best = NULL;
	for (; *list; list++) {
		int d = key_distance(typed, *list);
		if (d >= 0 && (!best || d < *dist)) {
			best = *list;
			*dist = d;
		}
	}
	return best;
}

/* Appends one place of `key` to out ("spec.run.secretDelivery", or
 * "\"kind\" at the top level"), after " or " unless it is the first. */
static void add_place(char *out, size_t size, size_t *len, const char *place, const char *key)
{
	size_t n = *len < size ? size - *len : 0;
	int w = *place ? snprintf(out + *len, n, "%s%s.%s", *len ? " or " : "", place, key)
		       : snprintf(out + *len, n, "%s\"%s\" at the top level", *len ? " or " : "", key);
	if (w > 0)
		*len += (size_t)w;
}

/* "; did you mean ...?" for an unknown key of the object whose keys are `known`,
 * or "" when no guess is good enough. In order: the same key in other case here;
 * the places where this very key belongs (a key typed at the wrong level, e.g.
 * secretDelivery under authority); a close key here; a close key elsewhere. */
static void suggest(char *out, size_t size, const char *key, const char *const *known)
{
	int dist = 0;
	const char *here = closest_key(key, known, &dist);
	out[0] = '\0';
	if (here && dist == 0) {
		snprintf(out, size, "; did you mean \"%s\"?", here);
		return;
	}
	char places[400];
	size_t len = 0;
	for (size_t i = 0; i < N_KEY_PLACES; i++)
		if (key_places[i].keys != known && in_list(key_places[i].keys, key))
			add_place(places, sizeof places, &len, key_places[i].path, key);
	if (len) {
		snprintf(out, size, "; did you mean %s?", places);
		return;
	}
	if (here) {
		snprintf(out, size, "; did you mean \"%s\"?", here);
		return;
	}
	const char *best = NULL, *best_place = NULL;
	for (size_t i = 0; i < N_KEY_PLACES; i++) {
		int d = 0;
		const char *k = key_places[i].keys != known ? closest_key(key, key_places[i].keys, &d) : NULL;
		if (k && (!best || d < dist)) {
			best = k;
			best_place = key_places[i].path;
			dist = d;
		}
	}
	if (best) {
		add_place(places, sizeof places, &len, best_place, best);
		snprintf(out, size, "; did you mean %s?", places);
	}
}

/* Every member of obj not named in `known` (one of the lists above) is warned
 * about, or a problem in strict mode (CELLOS_STRICT_SPEC=1, hardened). */
void spec_check_known(struct vctx *c, json_t *obj, const char *path, const char *const *known)
{
	const char *key;
	json_t *v;
	json_object_foreach(obj, key, v) {
		if (in_list(known, key))
			continue;
		char p[PATH_LEN], hint[512];
		spec_at_key(p, path, key);
		suggest(hint, sizeof hint, key, known);
		if (c->strict)
			spec_fail(c, p, "unknown key%s", hint);
		else
			spec_warn(c, p, "unknown key, ignored%s", hint);
	}
}
