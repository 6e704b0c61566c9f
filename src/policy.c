/* The admission policy pack: see policy.h. */
#include "policy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/escape.h"

#define PACK_MAX_BYTES (1024 * 1024)

/* The backends a pack may name: those of CELLOS_CELL_BACKEND, built here or
 * not (a pack is shared by hosts whose builds differ). */
static const char *const backend_names[] = {"stub", "host", "gvisor", "oci", "firecracker", "qemu"};

/* ---- the matcher (SPEC §6.4) ---- */

bool policy_name_matches(const char *pattern, const char *name)
{
	if (strcasecmp(pattern, name) == 0)
		return true;
	if (strncmp(pattern, "*.", 2) != 0)
		return false;
	/* "*.example.com" covers "a.example.com", "a.b.example.com" and
	 * "*.a.example.com", never "example.com". */
	const char *suffix = pattern + 1; /* ".example.com" */
	size_t sl = strlen(suffix), nl = strlen(name);
	return nl > sl && strcasecmp(name + nl - sl, suffix) == 0;
}

/* "addr" or "addr/prefix" into its family's bytes and prefix length. */
static int parse_net(const char *s, unsigned char addr[16], int *family, int *prefix)
{
	char buf[INET6_ADDRSTRLEN + 8];
	if (strlen(s) >= sizeof buf)
		return -1;
	strcpy(buf, s);
	char *slash = strchr(buf, '/');
	if (slash)
		*slash = '\0';
	if (inet_pton(AF_INET, buf, addr) == 1)
		*family = 4;
	else if (inet_pton(AF_INET6, buf, addr) == 1)
		*family = 6;
	else
		return -1;
	int max = *family == 4 ? 32 : 128;
	*prefix = max;
	if (slash) {
		char *end;
		errno = 0;
		long v = strtol(slash + 1, &end, 10);
		if (errno || end == slash + 1 || *end || v < 0 || v > max)
			return -1;
		*prefix = (int)v;
	}
	return 0;
}

bool policy_cidr_within(const char *host, const char *net)
{
	unsigned char h[16], n[16];
	int hf, hp, nf, np;
	if (parse_net(host, h, &hf, &hp) < 0 || parse_net(net, n, &nf, &np) < 0 || hf != nf || hp < np)
		return false;
	/* The first np bits agree (host bits after a prefix are tolerated, as in
	 * the document: 10.0.0.1/8 is 10.0.0.0/8). */
	int full = np / 8, rest = np % 8;
	if (memcmp(h, n, (size_t)full) != 0)
		return false;
	if (rest) {
		unsigned char mask = (unsigned char)(0xff << (8 - rest));
		return (h[full] & mask) == (n[full] & mask);
	}
	return true;
}

/* ---- loading ---- */

struct loader {
	const char *path;
	struct problems *probs;
	int bad;
};

static void bad(struct loader *l, const char *field, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void bad(struct loader *l, const char *field, const char *fmt, ...)
{
	char msg[512], shown[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	escape_controls(shown, sizeof shown, l->path, strlen(l->path));
	if (field)
		problems_add(l->probs, "CELLOS_POLICY_PACK: %s: %s: %s", shown, field, msg);
	else
		problems_add(l->probs, "CELLOS_POLICY_PACK: %s: %s", shown, msg);
	l->bad++;
}

static const char *type_name(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "an object";
	case JSON_ARRAY: return "an array";
	case JSON_STRING: return "a string";
	case JSON_INTEGER: return "an integer";
	case JSON_REAL: return "a number";
	case JSON_TRUE:
	case JSON_FALSE: return "a boolean";
	case JSON_NULL: return "null";
	}
	return "?";
}

/* Every key of `o` must be one of `known` (NULL-terminated). */
static void known_keys(struct loader *l, json_t *o, const char *at, const char *const *known, const char *what)
{
	const char *k;
	json_t *v;
	json_object_foreach(o, k, v) {
		bool ok = false;
		for (const char *const *p = known; *p && !ok; p++)
			ok = strcmp(*p, k) == 0;
		if (!ok) {
			char field[256], key[128];
			escape_controls(key, sizeof key, k, strlen(k));
			snprintf(field, sizeof field, "%s%s%s", at, *at ? "." : "", key);
			bad(l, field, "unknown %s (a misspelled rule must never fail open)", what);
		}
	}
	(void)v;
}

static char *required_id(struct loader *l, json_t *spec, const char *key)
{
	char field[64];
	snprintf(field, sizeof field, "spec.%s", key);
	json_t *v = json_object_get(spec, key);
	if (!v) {
		bad(l, field, "required");
		return NULL;
	}
	if (!json_is_string(v) || !spec_is_portable_id(json_string_value(v))) {
		bad(l, field, "must be a string matching [A-Za-z0-9][A-Za-z0-9._-]{0,127} without '..'");
		return NULL;
	}
	return strdup(json_string_value(v));
}

static void rule_bool(struct loader *l, json_t *rules, const char *name, bool *out)
{
	json_t *v = json_object_get(rules, name);
	if (!v)
		return;
	char field[96];
	snprintf(field, sizeof field, "spec.rules.%s", name);
	if (!json_is_boolean(v)) {
		bad(l, field, "must be true or false, not %s", type_name(v));
		return;
	}
	*out = json_is_true(v);
}

static void rule_max(struct loader *l, json_t *rules, const char *name, long long *out)
{
	json_t *v = json_object_get(rules, name);
	if (!v)
		return;
	char field[96];
	snprintf(field, sizeof field, "spec.rules.%s", name);
	if (!json_is_integer(v) || json_integer_value(v) < 1) {
		bad(l, field, "must be a positive integer, not %s", json_is_integer(v) ? "0 or less" : type_name(v));
		return;
	}
	*out = json_integer_value(v);
}

/* An array of strings, each accepted by `valid` (whose rule `expect` names). */
static void rule_list(struct loader *l, json_t *rules, const char *name, struct policy_list *out,
		      bool (*valid)(const char *), const char *expect)
{
	json_t *v = json_object_get(rules, name);
	if (!v)
		return;
	char field[128];
	snprintf(field, sizeof field, "spec.rules.%s", name);
	if (!json_is_array(v)) {
		bad(l, field, "must be an array of strings, not %s", type_name(v));
		return;
	}
	out->set = true;
	out->items = calloc(json_array_size(v) + 1, sizeof *out->items);
	if (!out->items) {
		bad(l, field, "out of memory");
		return;
	}
	size_t i;
	json_t *item;
	json_array_foreach(v, i, item) {
		snprintf(field, sizeof field, "spec.rules.%s[%zu]", name, i);
		if (!json_is_string(item)) {
			bad(l, field, "must be a string, not %s", type_name(item));
			continue;
		}
		const char *s = json_string_value(item);
		if (!valid(s)) {
			char shown[300];
			escape_controls(shown, sizeof shown, s, strlen(s));
			bad(l, field, "'%s' is not %s", shown, expect);
			continue;
		}
		if (!(out->items[out->n] = strdup(s))) {
			bad(l, field, "out of memory");
			return;
		}
		out->n++;
	}
}

static bool valid_host(const char *s) { return spec_host_family(s) > 0 || spec_is_dns_name(s); }

static bool valid_backend(const char *s)
{
	for (size_t i = 0; i < sizeof backend_names / sizeof backend_names[0]; i++)
		if (strcmp(s, backend_names[i]) == 0)
			return true;
	return false;
}

/* The file: a regular file of at most PACK_MAX_BYTES, read whole. */
static char *read_pack(struct loader *l, size_t *len)
{
	int fd = open(l->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		bad(l, NULL, "%s", strerror(errno));
		return NULL;
	}
	struct stat st;
	char *buf = NULL;
	if (fstat(fd, &st) < 0) {
		bad(l, NULL, "%s", strerror(errno));
	} else if (!S_ISREG(st.st_mode)) {
		bad(l, NULL, "not a regular file");
	} else if (st.st_size > PACK_MAX_BYTES) {
		bad(l, NULL, "larger than %d bytes", PACK_MAX_BYTES);
	} else if ((buf = malloc((size_t)st.st_size + 1))) {
		size_t got = 0;
		while (got < (size_t)st.st_size) {
			ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				bad(l, NULL, "%s", n < 0 ? strerror(errno) : "shorter than its size");
				free(buf);
				buf = NULL;
				break;
			}
			got += (size_t)n;
		}
		*len = got;
	} else {
		bad(l, NULL, "out of memory");
	}
	close(fd);
	return buf;
}

int policy_load(struct policy_pack *p, const char *path, struct problems *probs)
{
	memset(p, 0, sizeof *p);
	struct loader l = {.path = path, .probs = probs};
	size_t len = 0;
	char *buf = read_pack(&l, &len);
	if (!buf)
		return -1;
	json_error_t je;
	json_t *doc = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
	free(buf);
	if (!doc) {
		bad(&l, NULL, "not valid JSON: line %d column %d: %s", je.line, je.column, je.text);
		return -1;
	}
	if (!json_is_object(doc)) {
		bad(&l, NULL, "must be a JSON object, not %s", type_name(doc));
		json_decref(doc);
		return -1;
	}
	static const char *const top[] = {"apiVersion", "kind", "spec", NULL};
	static const char *const spec_keys[] = {"id", "version", "rules", NULL};
	static const char *const rule_names[] = {
		"maxLifetimeTtlSeconds", "maxMemoryMaxBytes", "maxRunTimeoutMs", "requireResourceLimits",
		"requireEgressDeclared", "forbidOutboundEgressRules", "allowedEgressHosts",
		"requireRuntimeSecretDelivery", "secretRefAllowlist", "allowedBackends", "requireSignedEvents", NULL};
	known_keys(&l, doc, "", top, "key");
	json_t *v = json_object_get(doc, "apiVersion");
	if (!json_is_string(v) || strcmp(json_string_value(v), "cellos.io/v1") != 0)
		bad(&l, "apiVersion", "must be \"cellos.io/v1\"");
	v = json_object_get(doc, "kind");
	if (!json_is_string(v) || strcmp(json_string_value(v), "PolicyPack") != 0)
		bad(&l, "kind", "must be \"PolicyPack\"");
	json_t *spec = json_object_get(doc, "spec");
	if (!json_is_object(spec)) {
		bad(&l, "spec", spec ? "must be an object" : "required");
		goto out;
	}
	known_keys(&l, spec, "spec", spec_keys, "key");
	p->id = required_id(&l, spec, "id");
	p->version = required_id(&l, spec, "version");
	json_t *rules = json_object_get(spec, "rules");
	if (!json_is_object(rules)) {
		bad(&l, "spec.rules", rules ? "must be an object" : "required (an object of rules, {} for none)");
		goto out;
	}
	known_keys(&l, rules, "spec.rules", rule_names, "rule");
	rule_max(&l, rules, "maxLifetimeTtlSeconds", &p->max_ttl_seconds);
	rule_max(&l, rules, "maxMemoryMaxBytes", &p->max_memory_bytes);
	rule_max(&l, rules, "maxRunTimeoutMs", &p->max_timeout_ms);
	rule_bool(&l, rules, "requireResourceLimits", &p->require_limits);
	rule_bool(&l, rules, "requireEgressDeclared", &p->require_egress);
	rule_bool(&l, rules, "forbidOutboundEgressRules", &p->forbid_egress);
	rule_bool(&l, rules, "requireRuntimeSecretDelivery", &p->require_runtime_secrets);
	rule_bool(&l, rules, "requireSignedEvents", &p->require_signed_events);
	rule_list(&l, rules, "allowedEgressHosts", &p->egress_hosts, valid_host,
		  "a DNS name (one leading *. allowed), an IP address or a CIDR");
	rule_list(&l, rules, "secretRefAllowlist", &p->secret_refs, spec_is_secret_name,
		  "a secret name ([A-Za-z_][A-Za-z0-9_.-]{0,127})");
	rule_list(&l, rules, "allowedBackends", &p->backends, valid_backend,
		  "a backend (stub, host, gvisor, oci, firecracker, qemu)");
out:
	json_decref(doc);
	if (l.bad) {
		policy_free(p);
		return -1;
	}
	return 0;
}

static void list_free(struct policy_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->items[i]);
	free(l->items);
	*l = (struct policy_list){0};
}

void policy_free(struct policy_pack *p)
{
	free(p->id);
	free(p->version);
	list_free(&p->egress_hosts);
	list_free(&p->secret_refs);
	list_free(&p->backends);
	memset(p, 0, sizeof *p);
}

/* ---- the rules ---- */

static bool host_allowed(const struct policy_list *l, const char *host)
{
	bool is_net = spec_host_family(host) > 0;
	for (size_t i = 0; i < l->n; i++) {
		bool item_net = spec_host_family(l->items[i]) > 0;
		if (is_net ? item_net && policy_cidr_within(host, l->items[i])
			   : !item_net && policy_name_matches(l->items[i], host))
			return true;
	}
	return false;
}

static bool in_list(const struct policy_list *l, const char *s)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->items[i], s) == 0)
			return true;
	return false;
}

/* "a, b, c" (or "none") into buf. */
static const char *joined(const struct policy_list *l, char *buf, size_t size)
{
	size_t n = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < l->n && n < size; i++)
		n += (size_t)snprintf(buf + n, size - n, "%s%s", i ? ", " : "", l->items[i]);
	return l->n ? buf : "none";
}

size_t policy_check(const struct policy_pack *p, const struct config *cfg, const struct spec *s,
		    struct problems *probs)
{
	size_t before = probs->n;
	char list[1024];
#define VIOLATION(rule, ...) problems_add(probs, "policy." rule ": " __VA_ARGS__)
	if (p->max_ttl_seconds && s->ttl_seconds > p->max_ttl_seconds)
		VIOLATION("maxLifetimeTtlSeconds", "spec.lifetime.ttlSeconds is %lld, the pack allows at most %lld",
			  s->ttl_seconds, p->max_ttl_seconds);
	/* The rules on what runs apply to a cell that runs something: an
	 * export-only cell has no process to limit, time or hand secrets to. */
	if (s->has_run) {
		if (p->max_memory_bytes && !s->memory_max_bytes)
			VIOLATION("maxMemoryMaxBytes", "spec.run.limits.memoryMaxBytes is not set, the pack requires one "
				  "of at most %lld", p->max_memory_bytes);
		else if (p->max_memory_bytes && s->memory_max_bytes > p->max_memory_bytes)
			VIOLATION("maxMemoryMaxBytes", "spec.run.limits.memoryMaxBytes is %lld, the pack allows at most %lld",
				  s->memory_max_bytes, p->max_memory_bytes);
		if (p->max_timeout_ms && !s->timeout_ms)
			VIOLATION("maxRunTimeoutMs", "spec.run.timeoutMs is not set, the pack requires one of at most %lld",
				  p->max_timeout_ms);
		else if (p->max_timeout_ms && s->timeout_ms > p->max_timeout_ms)
			VIOLATION("maxRunTimeoutMs", "spec.run.timeoutMs is %lld, the pack allows at most %lld", s->timeout_ms,
				  p->max_timeout_ms);
		if (p->require_limits && (!s->memory_max_bytes || !s->cpu_quota_micros || !s->pids_max))
			VIOLATION("requireResourceLimits", "spec.run.limits must set memoryMaxBytes, cpuMax and pidsMax; "
				  "missing:%s%s%s",
				  s->memory_max_bytes ? "" : " memoryMaxBytes", s->cpu_quota_micros ? "" : " cpuMax",
				  s->pids_max ? "" : " pidsMax");
		if (p->require_runtime_secrets && s->n_secret_refs && s->delivery == DELIVERY_ENV)
			VIOLATION("requireRuntimeSecretDelivery", "spec.run.secretDelivery is env, the pack requires "
				  "runtime delivery (file) for the cell's secrets");
	}
	if (p->require_egress && !s->n_egress)
		VIOLATION("requireEgressDeclared", "spec.authority.egressRules declares no rule, the pack requires at "
			  "least one");
	if (p->forbid_egress && s->n_egress)
		VIOLATION("forbidOutboundEgressRules", "spec.authority.egressRules declares %zu rule(s), the pack "
			  "forbids any", s->n_egress);
	for (size_t i = 0; p->egress_hosts.set && i < s->n_egress; i++)
		if (!host_allowed(&p->egress_hosts, s->egress[i].host))
			VIOLATION("allowedEgressHosts", "spec.authority.egressRules[%zu].host %s is not allowed (the pack "
				  "allows: %s)", i, s->egress[i].host, joined(&p->egress_hosts, list, sizeof list));
	for (size_t i = 0; p->secret_refs.set && i < s->n_secret_refs; i++)
		if (!in_list(&p->secret_refs, s->secret_refs[i]))
			VIOLATION("secretRefAllowlist", "spec.authority.secretRefs[%zu] %s is not in the pack's allowlist",
				  i, s->secret_refs[i]);
	if (p->backends.set) {
		const char *b = config_backend_name(cfg->backend);
		/* `host` is this build's name for `stub` too (CELLOS_CELL_BACKEND). */
		bool ok = in_list(&p->backends, b) || (cfg->backend == BACKEND_STUB && in_list(&p->backends, "host"));
		if (!ok)
			VIOLATION("allowedBackends", "CELLOS_CELL_BACKEND=%s is not one of the pack's backends (%s)", b,
				  joined(&p->backends, list, sizeof list));
	}
	if (p->require_signed_events && cfg->signing == SIGN_OFF)
		VIOLATION("requireSignedEvents", "events are not signed (CELLOS_EVENT_SIGNING), the pack requires "
			  "signed events");
#undef VIOLATION
	return probs->n - before;
}
