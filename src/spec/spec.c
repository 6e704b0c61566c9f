/* The ExecutionCell document (SPEC §2): reading, parsing and validation.
 *
 * The validator walks the known schema once, records every problem it meets as
 * "field.path: message" and keeps going, so a user can fix a document in one round.
 * It fills a scratch struct spec on the way; only a fully valid document reaches
 * the caller, anything else is released before spec_parse returns.
 *
 * JSON null counts as "absent" for optional members: upstream deserialises with
 * serde, where `Option<T>` accepts null, and its documents must keep working. */
#include "spec/spec.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "util/log.h"
#include "util/path.h"

#define API_VERSION "cellos.io/v1"
#define KIND "ExecutionCell"

#define ARGV_MAX_ENTRIES 4096
#define ARGV_MAX_BYTES (256 * 1024)
/* Converting milliseconds to nanoseconds must not overflow int64, and a run can
 * never outlive lifetime.ttlSeconds anyway: cap at the largest TTL in ms. */
#define TIMEOUT_MS_MAX (2147483647LL * 1000)
/* cpu.max / cpu.cfs_*: the kernel accepts a period of 1 ms to 1 s and a quota up
 * to 2^44-1 us (max_cfs_runtime); beyond that the cgroup write fails with EINVAL,
 * so say it here, naming the field. The quota's lower bound is SPEC's (>= 1) even
 * though the kernel wants >= 1000: whoever writes cpu.max has to raise it. */
#define CPU_PERIOD_MIN 1000
#define CPU_PERIOD_MAX 1000000
#define CPU_QUOTA_MAX ((1LL << 44) - 1)
/* pids.max rejects values above PID_MAX_LIMIT (4M on 64-bit), same reasoning. */
#define PIDS_MAX_LIMIT (4 * 1024 * 1024)

/* A document with thousands of broken entries would otherwise print thousands of
 * lines; past this many the rest is counted, not listed. */
#define PROBLEMS_MAX 100

#define PATH_LEN 512   /* a field path such as spec.authority.egressRules[3].port */
#define SHOWN_KEY 100  /* display buffer for one user-supplied key */

#define PORTABLE_ID_MSG "must match [A-Za-z0-9][A-Za-z0-9._-]{0,127} and must not contain '..'"
#define SECRET_NAME_MSG "must match [A-Za-z_][A-Za-z0-9_.-]{0,127}"
#define ENV_NAME_RULE "[A-Za-z_][A-Za-z0-9_]*"
/* Supervisor-set workload variables run.env may not replace (SPEC §2). */
static const char *const supervisor_env[] = {"CELLOS_CELL_ID", "CELLOS_RUN_ID", "CELLOS_SECRETS_DIR"};

/* ---- problems ---------------------------------------------------------------- */

void problems_add(struct problems *p, const char *fmt, ...)
{
	/* Out of memory: the problem is dropped. The validator tracks failure on its
	 * own (vctx.bad), so a lost message never turns an invalid document valid. */
	if (p->n == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 8;
		char **items = realloc(p->items, cap * sizeof *items);
		if (!items)
			return;
		p->items = items;
		p->cap = cap;
	}
	char *s = NULL;
	va_list ap;
	va_start(ap, fmt);
	int r = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (r < 0)
		return;
	p->items[p->n++] = s;
}

void problems_free(struct problems *p)
{
	for (size_t i = 0; i < p->n; i++)
		free(p->items[i]);
	free(p->items);
	p->items = NULL;
	p->n = p->cap = 0;
}

/* ---- small character and syntax rules ---------------------------------------- */

/* ASCII classes by hand: <ctype.h> depends on the locale. */
static bool is_digit(char ch) { return ch >= '0' && ch <= '9'; }
static bool is_alpha(char ch) { return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z'); }
static bool is_alnum(char ch) { return is_alpha(ch) || is_digit(ch); }

bool spec_is_portable_id(const char *s)
{
	if (!s || !is_alnum(s[0]))
		return false;
	size_t n = 1;
	for (; s[n]; n++)
		if (!is_alnum(s[n]) && s[n] != '.' && s[n] != '_' && s[n] != '-')
			return false;
	return n <= 128 && !strstr(s, "..");
}

void spec_secret_key(const char *ref, char *buf, size_t size)
{
	size_t n = 0;
	for (const char *p = ref; *p && n + 1 < size; p++)
		buf[n++] = (*p == '-' || *p == '.') ? '_' : (char)toupper((unsigned char)*p);
	if (size)
		buf[n] = '\0';
}

bool spec_is_secret_name(const char *s)
{
	if (!s || !(is_alpha(s[0]) || s[0] == '_'))
		return false;
	size_t n = 1;
	for (; s[n]; n++)
		if (!is_alnum(s[n]) && s[n] != '_' && s[n] != '.' && s[n] != '-')
			return false;
	return n <= 128;
}

static bool is_env_name(const char *s)
{
	if (!(is_alpha(s[0]) || s[0] == '_'))
		return false;
	for (s++; *s; s++)
		if (!is_alnum(*s) && *s != '_')
			return false;
	return true;
}

/* A NATS subject token: the tenant id is spliced into subjects, where '.' splits
 * tokens, '*' and '>' are wildcards and whitespace ends the subject. Control bytes
 * and the empty string are refused for the same reason. */
static bool is_subject_token(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch <= 0x20 || ch == 0x7f || ch == '.' || ch == '*' || ch == '>')
			return false;
	}
	return true;
}

/* An absolute path without ".." components, shorter than PATH_MAX. ".." is refused
 * because these paths are resolved inside a scaffold (workingDirectory) or beneath
 * the workspace (artifacts): ".." could only ever mean "escape". */
static bool is_clean_abs_path(const char *s)
{
	if (s[0] != '/' || strlen(s) >= PATH_MAX)
		return false;
	for (const char *p = s; *p;) {
		while (*p == '/')
			p++;
		const char *end = strchrnul(p, '/');
		if (end - p == 2 && p[0] == '.' && p[1] == '.')
			return false;
		p = end;
	}
	return true;
}

/* Decimal without sign or leading zeros, value <= max. */
static bool parse_decimal(const char *s, long max, long *out)
{
	size_t n = strlen(s);
	if (n == 0 || n > 10 || (s[0] == '0' && n > 1))
		return false;
	long v = 0;
	for (size_t i = 0; i < n; i++) {
		if (!is_digit(s[i]))
			return false;
		v = v * 10 + (s[i] - '0');
	}
	if (v > max)
		return false;
	*out = v;
	return true;
}

/* 4 or 6 for an address literal of that family, 0 otherwise. */
static int ip_family(const char *s)
{
	unsigned char buf[sizeof(struct in6_addr)];
	if (inet_pton(AF_INET, s, buf) == 1)
		return 4;
	if (inet_pton(AF_INET6, s, buf) == 1)
		return 6;
	return 0;
}

/* Copies s[0..n) into a small buffer for inet_pton; false if it cannot fit. */
static bool copy_addr(char dst[INET6_ADDRSTRLEN], const char *s, size_t n)
{
	if (n == 0 || n >= INET6_ADDRSTRLEN)
		return false;
	memcpy(dst, s, n);
	dst[n] = '\0';
	return true;
}

bool spec_is_dns_name(const char *s)
{
	size_t total = strlen(s);
	if (total == 0 || total > 253)
		return false;
	if (s[0] == '*' && s[1] == '.')
		s += 2;
	size_t len = 0;
	bool all_digits = true;
	char prev = '\0';
	for (const char *p = s;; p++) {
		if (*p == '.' || *p == '\0') {
			if (len == 0 || len > 63 || prev == '-')
				return false;
			/* A final label of digits only is no host name but a mistyped
			 * address ("192.0.2.300"); no top-level domain is numeric. */
			if (*p == '\0')
				return !all_digits;
			len = 0;
			all_digits = true;
			prev = '.';
			continue;
		}
		if (!is_alnum(*p) && *p != '-')
			return false;
		if (len == 0 && *p == '-')
			return false;
		if (!is_digit(*p))
			all_digits = false;
		len++;
		prev = *p;
	}
}

int spec_host_family(const char *host)
{
	const char *slash = strchr(host, '/');
	if (!slash) {
		int fam = ip_family(host);
		if (fam)
			return fam;
		return spec_is_dns_name(host) ? 0 : -1;
	}
	/* CIDR. Host bits after the prefix are tolerated (10.0.0.1/8 means
	 * 10.0.0.0/8), as nft and ip(8) do. */
	char addr[INET6_ADDRSTRLEN];
	long prefix;
	if (!copy_addr(addr, host, (size_t)(slash - host)))
		return -1;
	int fam = ip_family(addr);
	if (!fam || !parse_decimal(slash + 1, fam == 4 ? 32 : 128, &prefix))
		return -1;
	return fam;
}

/* "ip:port", IPv6 in brackets ("[::1]:53"): without brackets its colons would be
 * ambiguous with the port separator. */
static bool is_ip_port(const char *s)
{
	char addr[INET6_ADDRSTRLEN];
	const char *colon;
	int want;
	long port;
	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (!close || close[1] != ':' || !copy_addr(addr, s + 1, (size_t)(close - s - 1)))
			return false;
		colon = close + 1;
		want = 6;
	} else {
		colon = strrchr(s, ':');
		if (!colon || !copy_addr(addr, s, (size_t)(colon - s)))
			return false;
		want = 4;
	}
	return ip_family(addr) == want && parse_decimal(colon + 1, 65535, &port) && port >= 1;
}

/* ---- messages and field paths ------------------------------------------------ */

/* Copies src into dst (size >= 8) for a one-line message: control bytes (with
 * ascii_only, every non-ASCII byte too) become \xNN and what does not fit ends in
 * "...", so a hostile key or file name can neither forge extra lines nor flood. */
static void show(char *dst, size_t size, const char *src, bool ascii_only)
{
	size_t o = 0, i = 0;
	while (src[i]) {
		unsigned char ch = (unsigned char)src[i];
		size_t in = 1;
		bool raw = ch >= 0x20 && ch != 0x7f;
		if (ch >= 0x80) {
			/* Keep a whole well-formed UTF-8 sequence or escape the byte. */
			raw = !ascii_only && ch >= 0xc2 && ch <= 0xf4;
			in = ch >= 0xf0 ? 4 : ch >= 0xe0 ? 3 : 2;
			for (size_t k = 1; raw && k < in; k++)
				if (((unsigned char)src[i + k] & 0xc0) != 0x80)
					raw = false;
			if (!raw)
				in = 1;
		}
		size_t out = raw ? in : 4;
		if (o + out + 4 > size)
			break;
		if (raw)
			memcpy(dst + o, src + i, in);
		else
			snprintf(dst + o, 5, "\\x%02x", ch);
		o += out;
		i += in;
	}
	if (src[i]) {
		memcpy(dst + o, "...", 3);
		o += 3;
	}
	dst[o] = '\0';
}

/* A path too long for its buffer (only possible through user-supplied keys) is
 * cut visibly rather than silently. */
static const char *mark_cut(char buf[PATH_LEN], int n)
{
	if (n >= PATH_LEN)
		memcpy(buf + PATH_LEN - 4, "...", 4);
	return buf;
}

/* parent.key (just key at the top level); keys come from the document, so they
 * are shown escaped. */
static const char *at_key(char buf[PATH_LEN], const char *parent, const char *key)
{
	char shown[SHOWN_KEY];
	show(shown, sizeof shown, key, false);
	return mark_cut(buf, snprintf(buf, PATH_LEN, "%s%s%s", parent, *parent ? "." : "", shown));
}

static const char *at_index(char buf[PATH_LEN], const char *parent, size_t i)
{
	return mark_cut(buf, snprintf(buf, PATH_LEN, "%s[%zu]", parent, i));
}

/* ---- validation context and typed accessors ---------------------------------- */

struct vctx {
	struct problems *probs;
	struct problems *warns;
	bool strict;
	bool bad;          /* set by every problem, even one that could not be stored */
	size_t count;      /* problems listed by this parse */
	size_t suppressed; /* problems past PROBLEMS_MAX */
	size_t warn_count, warn_suppressed; /* the same for warnings */
};

static void fail(struct vctx *c, const char *path, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fail(struct vctx *c, const char *path, const char *fmt, ...)
{
	c->bad = true;
	if (c->count >= PROBLEMS_MAX) {
		c->suppressed++;
		return;
	}
	c->count++;
	char msg[768];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	problems_add(c->probs, "%s: %s", path, msg);
}

static void oom(struct vctx *c) { fail(c, "document", "out of memory"); }

/* A warning: something the document may do but probably did not mean (an unknown
 * key). Capped like problems, and never makes the document invalid. */
static void warn(struct vctx *c, const char *path, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void warn(struct vctx *c, const char *path, const char *fmt, ...)
{
	if (c->warn_count >= PROBLEMS_MAX) {
		c->warn_suppressed++;
		return;
	}
	c->warn_count++;
	char msg[768];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	problems_add(c->warns, "%s: %s", path, msg);
}

/* ---- known keys ---------------------------------------------------------------- */

/* The keys of every object of the document that has a fixed set of them (the
 * free-form maps labels, env, policy, identity and placement have none). A key
 * not listed for its object is unknown: warned about, or a problem when strict
 * (SPEC §2). They are kept in one table so that a key typed at the wrong level can
 * be pointed to the object it belongs to. schema/execution-cell.schema.json lists
 * the same keys, and tests/blackbox/test_schema.py checks the two agree. */
static const char *const top_keys[] = {"apiVersion", "kind", "spec", NULL};
static const char *const spec_keys[] = {"id", "correlation", "authority", "lifetime", "run", "export",
					"policy", "identity", "placement", NULL};
static const char *const correlation_keys[] = {"correlationId", "tenantId", "platform", "externalRunId",
					       "externalJobId", "labels", NULL};
static const char *const authority_keys[] = {"secretRefs", "egressRules", "dnsAuthority", NULL};
static const char *const egress_rule_keys[] = {"host", "port", "protocol", NULL};
static const char *const dns_authority_keys[] = {"hostnameAllowlist", "resolvers", NULL};
static const char *const resolver_keys[] = {"resolverId", "protocol", "address", NULL};
static const char *const lifetime_keys[] = {"ttlSeconds", NULL};
static const char *const run_keys[] = {"argv", "secretDelivery", "workingDirectory", "env", "timeoutMs",
				       "limits", "mounts", NULL};
static const char *const mount_keys[] = {"source", "target", "readOnly", NULL};
static const char *const limits_keys[] = {"memoryMaxBytes", "cpuMax", "pidsMax", "gracefulShutdownSeconds",
					  NULL};
static const char *const cpu_max_keys[] = {"quotaMicros", "periodMicros", NULL};
static const char *const export_keys[] = {"artifacts", "targets", NULL};
static const char *const artifact_keys[] = {"name", "path", "target", NULL};
static const char *const target_keys[] = {"name", "kind", "bucket", "keyPrefix", NULL};

/* Where each list applies, as a suggestion names it ("[]": any entry). */
static const struct {
	const char *path;
	const char *const *keys;
} key_places[] = {
	{"", top_keys},
	{"spec", spec_keys},
	{"spec.correlation", correlation_keys},
	{"spec.authority", authority_keys},
	{"spec.authority.egressRules[]", egress_rule_keys},
	{"spec.authority.dnsAuthority", dns_authority_keys},
	{"spec.authority.dnsAuthority.resolvers[]", resolver_keys},
	{"spec.lifetime", lifetime_keys},
	{"spec.run", run_keys},
	{"spec.run.limits", limits_keys},
	{"spec.run.limits.cpuMax", cpu_max_keys},
	{"spec.run.mounts[]", mount_keys},
	{"spec.export", export_keys},
	{"spec.export.artifacts[]", artifact_keys},
	{"spec.export.targets[]", target_keys},
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
static void check_known(struct vctx *c, json_t *obj, const char *path, const char *const *known)
{
	const char *key;
	json_t *v;
	json_object_foreach(obj, key, v) {
		if (in_list(known, key))
			continue;
		char p[PATH_LEN], hint[512];
		at_key(p, path, key);
		suggest(hint, sizeof hint, key, known);
		if (c->strict)
			fail(c, p, "unknown key%s", hint);
		else
			warn(c, p, "unknown key, ignored%s", hint);
	}
}

static json_t *member(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);
	return json_is_null(v) ? NULL : v;
}

/* The string value of v, or NULL with a problem. The document is parsed with
 * JSON_ALLOW_NUL so that a "\u0000" gets a message naming its field; every string
 * the program uses must come through here, or a NUL would silently cut it. */
static const char *want_string(struct vctx *c, json_t *v, const char *path)
{
	if (!json_is_string(v)) {
		fail(c, path, "must be a string");
		return NULL;
	}
	const char *s = json_string_value(v);
	if (strlen(s) != json_string_length(v)) {
		fail(c, path, "must not contain NUL characters");
		return NULL;
	}
	return s;
}

static const char *member_string(struct vctx *c, json_t *obj, const char *path, const char *key, bool required)
{
	char p[PATH_LEN];
	json_t *v = member(obj, key);
	if (!v) {
		if (required)
			fail(c, at_key(p, path, key), "required string");
		return NULL;
	}
	return want_string(c, v, at_key(p, path, key));
}

static json_t *member_of_type(struct vctx *c, json_t *obj, const char *path, const char *key, bool required,
			      json_type type)
{
	char p[PATH_LEN];
	const char *what = type == JSON_OBJECT ? "object" : "array";
	json_t *v = member(obj, key);
	if (!v) {
		if (required)
			fail(c, at_key(p, path, key), "required %s", what);
		return NULL;
	}
	if (json_typeof(v) != type) {
		fail(c, at_key(p, path, key), "must be an %s", what);
		return NULL;
	}
	return v;
}

static json_t *member_object(struct vctx *c, json_t *obj, const char *path, const char *key, bool required)
{
	return member_of_type(c, obj, path, key, required, JSON_OBJECT);
}

static json_t *member_array(struct vctx *c, json_t *obj, const char *path, const char *key, bool required)
{
	return member_of_type(c, obj, path, key, required, JSON_ARRAY);
}

/* An integer member in [min, max]; *out is written only when valid, so it keeps
 * its default otherwise. Reals (even 5.0) and booleans are not integers. */
static bool member_int(struct vctx *c, json_t *obj, const char *path, const char *key, bool required,
		       long long min, long long max, long long *out)
{
	char p[PATH_LEN], range[64];
	if (max == LLONG_MAX)
		snprintf(range, sizeof range, "integer >= %lld", min);
	else
		snprintf(range, sizeof range, "integer %lld-%lld", min, max);
	json_t *v = member(obj, key);
	if (!v) {
		if (required)
			fail(c, at_key(p, path, key), "required %s", range);
		return false;
	}
	if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) {
		fail(c, at_key(p, path, key), "must be an %s", range);
		return false;
	}
	*out = json_integer_value(v);
	return true;
}

/* A required member that must equal `literal` (apiVersion, kind). */
static void member_literal(struct vctx *c, json_t *obj, const char *path, const char *key, const char *literal)
{
	char p[PATH_LEN];
	json_t *v = member(obj, key);
	if (!v) {
		fail(c, at_key(p, path, key), "required, must be \"%s\"", literal);
		return;
	}
	const char *s = want_string(c, v, at_key(p, path, key));
	if (s && strcmp(s, literal) != 0)
		fail(c, p, "must be \"%s\"", literal);
}

/* policy, identity, placement, labels: free-form objects whose values are strings. */
static json_t *member_string_map(struct vctx *c, json_t *obj, const char *path, const char *key)
{
	char base[PATH_LEN], p[PATH_LEN];
	json_t *map = member_object(c, obj, path, key, false);
	if (!map)
		return NULL;
	at_key(base, path, key);
	const char *k;
	json_t *v;
	json_object_foreach(map, k, v)
		want_string(c, v, at_key(p, base, k));
	return map;
}

/* Adds name to a set (a jansson object: its hash is seeded, so a document full of
 * colliding names cannot make this quadratic). False if it was there already. */
static bool first_use(struct vctx *c, json_t *set, const char *name)
{
	if (json_object_get(set, name))
		return false;
	if (json_object_set_new_nocheck(set, name, json_true()) < 0)
		oom(c);
	return true;
}

/* ---- sections of the document ------------------------------------------------ */

static void validate_correlation(struct vctx *c, json_t *o, struct spec *s)
{
	const char *P = "spec.correlation";
	check_known(c, o, P, correlation_keys);
	s->correlation = o;
	member_string(c, o, P, "correlationId", false);
	member_string(c, o, P, "platform", false);
	member_string(c, o, P, "externalRunId", false);
	member_string(c, o, P, "externalJobId", false);
	s->tenant_id = member_string(c, o, P, "tenantId", false);
	if (s->tenant_id && !is_subject_token(s->tenant_id))
		fail(c, "spec.correlation.tenantId",
		     "must be non-empty without '.', '*', '>' or whitespace (it is a NATS subject token)");
	member_string_map(c, o, P, "labels");
}

static void validate_secret_refs(struct vctx *c, json_t *arr, struct spec *s)
{
	size_t n = json_array_size(arr);
	if (n && !(s->secret_refs = calloc(n, sizeof *s->secret_refs))) {
		oom(c);
		return;
	}
	s->n_secret_refs = n;
	json_t *seen = json_object();
	if (!seen) {
		oom(c);
		return;
	}
	/* Broker variable -> the first ref that maps to it. Two refs of one variable
	 * would read one value (and the env broker wipes it once read, so the second
	 * would get an empty one). */
	json_t *vars = json_object();
	if (!vars) {
		json_decref(seen);
		oom(c);
		return;
	}
	size_t i;
	json_t *v;
	json_array_foreach(arr, i, v) {
		char p[PATH_LEN], key[160], var[176];
		const char *name = want_string(c, v, at_index(p, "spec.authority.secretRefs", i));
		if (!name)
			continue;
		s->secret_refs[i] = name;
		if (!spec_is_secret_name(name)) {
			fail(c, p, SECRET_NAME_MSG);
			continue;
		}
		if (!first_use(c, seen, name)) {
			fail(c, p, "duplicate name \"%s\"", name);
			continue;
		}
		spec_secret_key(name, key, sizeof key);
		snprintf(var, sizeof var, "CELLOS_SECRET_%s", key);
		json_t *first = json_object_get(vars, var);
		if (first)
			fail(c, p, "\"%s\" maps to the same broker variable %s as \"%s\"", name, var,
			     json_string_value(first));
		else if (json_object_set_new(vars, var, json_string(name)) < 0)
			oom(c);
	}
	json_decref(vars);
	json_decref(seen);
}

static void validate_egress_rule(struct vctx *c, json_t *r, const char *P, struct egress_rule *out)
{
	char p[PATH_LEN];
	long long port;
	if (!json_is_object(r)) {
		fail(c, P, "must be an object");
		return;
	}
	check_known(c, r, P, egress_rule_keys);
	out->host = member_string(c, r, P, "host", true);
	if (out->host && spec_host_family(out->host) < 0)
		fail(c, at_key(p, P, "host"), "must be an IPv4/IPv6 address, a CIDR or a DNS name");
	if (member_int(c, r, P, "port", true, 1, 65535, &port))
		out->port = (int)port;
	const char *proto = member_string(c, r, P, "protocol", false);
	if (!proto || strcmp(proto, "tcp") == 0)
		out->proto = PROTO_TCP;
	else if (strcmp(proto, "udp") == 0)
		out->proto = PROTO_UDP;
	else
		fail(c, at_key(p, P, "protocol"), "must be \"tcp\" or \"udp\"");
}

static void validate_egress_rules(struct vctx *c, json_t *arr, struct spec *s)
{
	size_t n = json_array_size(arr);
	if (n && !(s->egress = calloc(n, sizeof *s->egress))) {
		oom(c);
		return;
	}
	s->n_egress = n;
	size_t i;
	json_t *v;
	json_array_foreach(arr, i, v) {
		char p[PATH_LEN];
		validate_egress_rule(c, v, at_index(p, "spec.authority.egressRules", i), &s->egress[i]);
	}
}

static void validate_resolver(struct vctx *c, json_t *r, const char *P)
{
	char p[PATH_LEN];
	if (!json_is_object(r)) {
		fail(c, P, "must be an object");
		return;
	}
	check_known(c, r, P, resolver_keys);
	const char *id = member_string(c, r, P, "resolverId", true);
	if (id && !*id)
		fail(c, at_key(p, P, "resolverId"), "must not be empty");
	const char *proto = member_string(c, r, P, "protocol", true);
	if (proto && strcmp(proto, "do53-udp") != 0)
		fail(c, at_key(p, P, "protocol"), "must be \"do53-udp\"");
	const char *addr = member_string(c, r, P, "address", true);
	if (addr && !is_ip_port(addr))
		fail(c, at_key(p, P, "address"), "must be ip:port (IPv6 as [addr]:port), port 1-65535");
}

static void validate_dns_authority(struct vctx *c, json_t *o, struct spec *s)
{
	const char *P = "spec.authority.dnsAuthority";
	size_t i;
	json_t *v, *arr;
	check_known(c, o, P, dns_authority_keys);
	s->dns_authority = o;
	if ((arr = member_array(c, o, P, "hostnameAllowlist", false))) {
		json_array_foreach(arr, i, v) {
			char p[PATH_LEN];
			const char *name =
				want_string(c, v, at_index(p, "spec.authority.dnsAuthority.hostnameAllowlist", i));
			if (name && !spec_is_dns_name(name))
				fail(c, p, "must be a DNS name (a single leading '*.' allowed)");
		}
	}
	if ((arr = member_array(c, o, P, "resolvers", false))) {
		json_array_foreach(arr, i, v) {
			char p[PATH_LEN];
			validate_resolver(c, v, at_index(p, "spec.authority.dnsAuthority.resolvers", i));
		}
	}
}

static void validate_authority(struct vctx *c, json_t *o, struct spec *s)
{
	const char *P = "spec.authority";
	json_t *v;
	check_known(c, o, P, authority_keys);
	if ((v = member_array(c, o, P, "secretRefs", true)))
		validate_secret_refs(c, v, s);
	if ((v = member_array(c, o, P, "egressRules", false)))
		validate_egress_rules(c, v, s);
	if ((v = member_object(c, o, P, "dnsAuthority", false)))
		validate_dns_authority(c, v, s);
}

static void validate_argv(struct vctx *c, json_t *arr, struct spec *s)
{
	const char *P = "spec.run.argv";
	size_t n = json_array_size(arr);
	if (n == 0) {
		fail(c, P, "must not be empty");
		return;
	}
	/* Past the limit, per-entry messages would only bury this one. */
	if (n > ARGV_MAX_ENTRIES) {
		fail(c, P, "must have at most %d entries", ARGV_MAX_ENTRIES);
		return;
	}
	if (!(s->argv = calloc(n + 1, sizeof *s->argv))) {
		oom(c);
		return;
	}
	s->argc = n;
	size_t total = 0, i;
	json_t *v;
	json_array_foreach(arr, i, v) {
		char p[PATH_LEN];
		const char *a = want_string(c, v, at_index(p, P, i));
		if (!a)
			continue;
		/* execvp("") can only fail with ENOENT: say so now. */
		if (i == 0 && !*a)
			fail(c, p, "must not be empty");
		total += strlen(a) + 1; /* as execve counts it: with the terminator */
		s->argv[i] = a;
	}
	if (total > ARGV_MAX_BYTES)
		fail(c, P, "must total at most %d bytes (256 KiB)", ARGV_MAX_BYTES);
}

static bool is_supervisor_env(const char *name)
{
	for (size_t i = 0; i < sizeof supervisor_env / sizeof supervisor_env[0]; i++)
		if (strcmp(name, supervisor_env[i]) == 0)
			return true;
	return false;
}

/* secret_refs is filled by then: authority is validated before run. */
static bool is_secret_ref(const struct spec *s, const char *name)
{
	for (size_t i = 0; i < s->n_secret_refs; i++)
		if (s->secret_refs[i] && strcmp(s->secret_refs[i], name) == 0)
			return true;
	return false;
}

/* env delivery sets each secret under its ref's name: it must be one the
 * environment can carry (SPEC §2). Names that already broke the general rule
 * were reported once, not again here. */
static void check_env_delivery_names(struct vctx *c, const struct spec *s)
{
	for (size_t i = 0; i < s->n_secret_refs; i++) {
		const char *name = s->secret_refs[i];
		char p[PATH_LEN];
		if (name && spec_is_secret_name(name) && !is_env_name(name))
			fail(c, at_index(p, "spec.authority.secretRefs", i),
			     "\"%s\" is not an environment variable name (" ENV_NAME_RULE "), which "
			     "spec.run.secretDelivery \"env\" needs (rename it, or use \"file\")",
			     name);
	}
}

static void validate_env(struct vctx *c, json_t *o, struct spec *s)
{
	const char *P = "spec.run.env";
	size_t n = json_object_size(o), i = 0;
	if (n && !(s->env = calloc(n, sizeof *s->env))) {
		oom(c);
		return;
	}
	s->n_env = n;
	const char *key;
	json_t *v;
	json_object_foreach(o, key, v) {
		char p[PATH_LEN];
		at_key(p, P, key);
		if (!is_env_name(key))
			fail(c, p, "name must match " ENV_NAME_RULE);
		else if (is_supervisor_env(key))
			fail(c, p, "is set by the supervisor; run.env may not set it");
		else if (is_secret_ref(s, key))
			fail(c, p, "names a secret of spec.authority.secretRefs, whose value only the broker may set");
		s->env[i].key = key;
		s->env[i].value = want_string(c, v, p);
		i++;
	}
}

static void validate_limits(struct vctx *c, json_t *o, struct spec *s)
{
	const char *P = "spec.run.limits";
	check_known(c, o, P, limits_keys);
	member_int(c, o, P, "memoryMaxBytes", false, 1, LLONG_MAX, &s->memory_max_bytes);
	json_t *cpu = member_object(c, o, P, "cpuMax", false);
	if (cpu) {
		const char *CP = "spec.run.limits.cpuMax";
		check_known(c, cpu, CP, cpu_max_keys);
		member_int(c, cpu, CP, "quotaMicros", true, 1, CPU_QUOTA_MAX, &s->cpu_quota_micros);
		member_int(c, cpu, CP, "periodMicros", false, CPU_PERIOD_MIN, CPU_PERIOD_MAX, &s->cpu_period_micros);
	}
	member_int(c, o, P, "pidsMax", false, 1, PIDS_MAX_LIMIT, &s->pids_max);
	member_int(c, o, P, "gracefulShutdownSeconds", false, 0, INT32_MAX, &s->graceful_shutdown_seconds);
}

/* run.mounts (SPEC §2): the document's own rules, every problem reported.
 * Whether the host allows a source (CELLOS_HOST_MOUNT_ALLOW_PREFIXES, _RW, the
 * profile) and whether the cell can have mounts at all is the configuration's
 * question, answered at admission (hostmount/hostmount.h: mounts_admit). */
static char *const mount_target_forbidden[] = {"/proc", "/sys", "/dev", "/run/cellos", NULL};

static void check_mount_target(struct vctx *c, const char *P, const char *target, const char *workdir,
			       json_t *targets, size_t i)
{
	char clean[PATH_MAX], wd[PATH_MAX];
	if (!is_clean_abs_path(target) || path_clean(target, clean, sizeof clean) < 0) {
		fail(c, P, "must be an absolute path without '..' components");
		return;
	}
	if (!clean[0]) {
		fail(c, P, "must not be / (the cell's root)");
		return;
	}
	for (char *const *f = mount_target_forbidden; *f; f++) {
		char *const one[] = {*f, NULL};
		if (path_within_any(clean, one)) {
			fail(c, P, "must not be %s or lie under it (the cell's %s belongs to the supervisor)", *f, *f);
			return;
		}
	}
	/* Nor above one of them: only /run can be ("/" is refused), and the cell's
	 * /run/cellos (its secrets directory) is made beneath it after the mounts. */
	char *const here[] = {clean, NULL};
	if (path_within_any("/run/cellos", here)) {
		fail(c, P, "must not be %s: the cell's /run/cellos lies beneath it", clean);
		return;
	}
	if (strcmp(clean, "/etc/resolv.conf") == 0) {
		fail(c, P, "must not be /etc/resolv.conf (the cell's resolver configuration belongs to the supervisor)");
		return;
	}
	if (workdir && is_clean_abs_path(workdir) && path_clean(workdir, wd, sizeof wd) == 0 && strcmp(wd, clean) == 0) {
		fail(c, P, "%s is run.workingDirectory, the cell's fresh workspace: mount inside it instead", target);
		return;
	}
	json_t *first = json_object_get(targets, clean);
	if (first) {
		fail(c, P, "%s is already the target of spec.run.mounts[%lld]: no two mounts on one target", target,
		     (long long)json_integer_value(first));
		return;
	}
	if (json_object_set_new(targets, clean, json_integer((json_int_t)i)) < 0)
		oom(c);
}

static void validate_mounts(struct vctx *c, json_t *arr, struct spec *s)
{
	const char *P = "spec.run.mounts";
	size_t n = json_array_size(arr);
	if (n > SPEC_MOUNTS_MAX) {
		fail(c, P, "must have at most %d entries", SPEC_MOUNTS_MAX);
		return;
	}
	if (n && !(s->mounts = calloc(n, sizeof *s->mounts))) {
		oom(c);
		return;
	}
	s->n_mounts = n;
	json_t *targets = json_object(); /* clean target -> index of its first mount */
	if (!targets) {
		oom(c);
		return;
	}
	size_t i;
	json_t *m;
	json_array_foreach(arr, i, m) {
		char at[PATH_LEN], p[PATH_LEN];
		struct host_mount *out = &s->mounts[i];
		at_index(at, P, i);
		out->read_only = true;
		if (!json_is_object(m)) {
			fail(c, at, "must be an object");
			continue;
		}
		check_known(c, m, at, mount_keys);
		out->source = member_string(c, m, at, "source", true);
		if (out->source && !is_clean_abs_path(out->source))
			fail(c, at_key(p, at, "source"), "must be an absolute path without '..' components");
		out->target = member_string(c, m, at, "target", true);
		if (out->target)
			check_mount_target(c, at_key(p, at, "target"), out->target, s->working_directory, targets, i);
		json_t *ro = member(m, "readOnly");
		if (ro && !json_is_boolean(ro))
			fail(c, at_key(p, at, "readOnly"), "must be a boolean");
		else if (ro)
			out->read_only = json_is_true(ro);
	}
	json_decref(targets);
}

static void validate_run(struct vctx *c, json_t *o, struct spec *s)
{
	const char *P = "spec.run";
	json_t *v;
	check_known(c, o, P, run_keys);
	s->has_run = true;
	if ((v = member_array(c, o, P, "argv", true)))
		validate_argv(c, v, s);

	const char *d = member_string(c, o, P, "secretDelivery", false);
	if (!d || strcmp(d, "env") == 0) {
		s->delivery = DELIVERY_ENV;
		if (d || !member(o, "secretDelivery")) /* not after "must be a string" */
			check_env_delivery_names(c, s);
	} else if (strcmp(d, "file") == 0)
		s->delivery = DELIVERY_FILE;
	else if (strcmp(d, "runtimeBroker") == 0 || strcmp(d, "runtimeLeasedBroker") == 0)
		fail(c, "spec.run.secretDelivery", "\"%s\" is not supported", d);
	else
		fail(c, "spec.run.secretDelivery", "must be \"env\" or \"file\"");

	s->working_directory = member_string(c, o, P, "workingDirectory", false);
	if (s->working_directory && !is_clean_abs_path(s->working_directory))
		fail(c, "spec.run.workingDirectory", "must be an absolute path without '..' components");
	if ((v = member_object(c, o, P, "env", false)))
		validate_env(c, v, s);
	member_int(c, o, P, "timeoutMs", false, 1, TIMEOUT_MS_MAX, &s->timeout_ms);
	if ((v = member_object(c, o, P, "limits", false)))
		validate_limits(c, v, s);
	if ((v = member_array(c, o, P, "mounts", false)))
		validate_mounts(c, v, s);
}

/* Returns false when the entry has no usable name (references to it cannot be
 * checked then). */
static bool validate_target(struct vctx *c, json_t *t, const char *P, struct export_target *out, json_t *names)
{
	char p[PATH_LEN];
	if (!json_is_object(t)) {
		fail(c, P, "must be an object");
		return false;
	}
	check_known(c, t, P, target_keys);
	out->name = member_string(c, t, P, "name", true);
	if (out->name) {
		/* Recorded even when malformed, so it is reported once and not again
		 * by every reference to it. */
		bool fresh = first_use(c, names, out->name);
		if (!spec_is_portable_id(out->name))
			fail(c, at_key(p, P, "name"), PORTABLE_ID_MSG);
		else if (!fresh)
			fail(c, at_key(p, P, "name"), "duplicate target name \"%s\"", out->name);
	}
	out->kind = member_string(c, t, P, "kind", true);
	if (out->kind && strcmp(out->kind, "local") != 0 && strcmp(out->kind, "http") != 0 &&
	    strcmp(out->kind, "s3") != 0)
		fail(c, at_key(p, P, "kind"), "must be \"local\", \"http\" or \"s3\"");
	out->bucket = member_string(c, t, P, "bucket", false);
	out->key_prefix = member_string(c, t, P, "keyPrefix", false);
	return out->name != NULL;
}

static void validate_artifact(struct vctx *c, json_t *a, const char *P, struct artifact *out, json_t *names,
			      json_t *targets)
{
	char p[PATH_LEN];
	if (!json_is_object(a)) {
		fail(c, P, "must be an object");
		return;
	}
	check_known(c, a, P, artifact_keys);
	out->name = member_string(c, a, P, "name", true);
	if (out->name) {
		/* Recorded even when malformed, so it is reported once and not again
		 * by every reference to it. */
		bool fresh = first_use(c, names, out->name);
		if (!spec_is_portable_id(out->name))
			fail(c, at_key(p, P, "name"), PORTABLE_ID_MSG);
		else if (!fresh)
			fail(c, at_key(p, P, "name"), "duplicate artifact name \"%s\"", out->name);
	}
	out->path = member_string(c, a, P, "path", true);
	if (out->path && !is_clean_abs_path(out->path))
		fail(c, at_key(p, P, "path"), "must be an absolute path without '..' components");
	/* A target that names nothing declared is a typo, not a request for the
	 * default target: refusing it keeps an artifact from going somewhere else.
	 * targets is NULL when the declared list is itself broken (already reported). */
	out->target = member_string(c, a, P, "target", false);
	if (out->target && targets && !json_object_get(targets, out->target))
		fail(c, at_key(p, P, "target"), "must name a target declared in spec.export.targets");
}

static void validate_export(struct vctx *c, json_t *o, struct spec *s)
{
	const char *P = "spec.export";
	size_t i, n;
	json_t *v, *arr;
	json_t *target_names = json_object(), *artifact_names = json_object();
	if (!target_names || !artifact_names) {
		oom(c);
		goto out;
	}
	check_known(c, o, P, export_keys);
	/* Targets first: artifacts refer to them. */
	bool names_complete = !member(o, "targets") || json_is_array(member(o, "targets"));
	if ((arr = member_array(c, o, P, "targets", false))) {
		n = json_array_size(arr);
		if (n && !(s->targets = calloc(n, sizeof *s->targets))) {
			oom(c);
			goto out;
		}
		s->n_targets = n;
		json_array_foreach(arr, i, v) {
			char p[PATH_LEN];
			if (!validate_target(c, v, at_index(p, "spec.export.targets", i), &s->targets[i],
					     target_names))
				names_complete = false;
		}
	}
	if ((arr = member_array(c, o, P, "artifacts", false))) {
		n = json_array_size(arr);
		if (n && !(s->artifacts = calloc(n, sizeof *s->artifacts))) {
			oom(c);
			goto out;
		}
		s->n_artifacts = n;
		json_array_foreach(arr, i, v) {
			char p[PATH_LEN];
			validate_artifact(c, v, at_index(p, "spec.export.artifacts", i), &s->artifacts[i],
					  artifact_names, names_complete ? target_names : NULL);
		}
	}
out:
	json_decref(target_names);
	json_decref(artifact_names);
}

static void validate_spec(struct vctx *c, json_t *o, struct spec *s)
{
	const char *P = "spec";
	json_t *v;
	check_known(c, o, P, spec_keys);

	s->id = member_string(c, o, P, "id", true);
	if (s->id && !spec_is_portable_id(s->id))
		fail(c, "spec.id", PORTABLE_ID_MSG);
	if ((v = member_object(c, o, P, "correlation", false)))
		validate_correlation(c, v, s);
	if ((v = member_object(c, o, P, "authority", true)))
		validate_authority(c, v, s);

	/* lifetime exists only to carry ttlSeconds: when it is missing, name the
	 * field the user actually has to add. */
	v = member(o, "lifetime");
	if (!v)
		fail(c, "spec.lifetime.ttlSeconds", "required integer 1-2147483647");
	else if (!json_is_object(v))
		fail(c, "spec.lifetime", "must be an object");
	else {
		check_known(c, v, "spec.lifetime", lifetime_keys);
		member_int(c, v, "spec.lifetime", "ttlSeconds", true, 1, INT32_MAX, &s->ttl_seconds);
	}

	if ((v = member_object(c, o, P, "run", false)))
		validate_run(c, v, s);
	if ((v = member_object(c, o, P, "export", false)))
		validate_export(c, v, s);
	s->policy = member_string_map(c, o, P, "policy");
	s->identity = member_string_map(c, o, P, "identity");
	s->placement = member_string_map(c, o, P, "placement");
}

static void validate_document(struct vctx *c, json_t *root, struct spec *s)
{
	json_t *v;
	if (!json_is_object(root)) {
		fail(c, "document", "must be a JSON object");
		return;
	}
	check_known(c, root, "", top_keys);
	member_literal(c, root, "", "apiVersion", API_VERSION);
	member_literal(c, root, "", "kind", KIND);
	if ((v = member_object(c, root, "", "spec", true)))
		validate_spec(c, v, s);
}

/* ---- entry points ------------------------------------------------------------ */

/* Nesting depth by a scan of the raw text, before jansson builds anything: a deep
 * document is refused at the cost of one pass over at most 1 MiB. Brackets inside
 * strings do not count; malformed input may confuse the count, but jansson rejects
 * that input anyway. */
static bool too_deep(const char *buf, size_t len)
{
	int depth = 0;
	bool in_string = false;
	for (size_t i = 0; i < len; i++) {
		char ch = buf[i];
		if (in_string) {
			if (ch == '\\')
				i++;
			else if (ch == '"')
				in_string = false;
			continue;
		}
		if (ch == '"')
			in_string = true;
		else if ((ch == '[' || ch == '{') && ++depth > SPEC_MAX_DEPTH)
			return true;
		else if (ch == ']' || ch == '}')
			depth--;
	}
	return false;
}

int spec_parse_ex(const char *buf, size_t len, bool strict, struct spec *out, struct problems *probs,
		  struct problems *warns)
{
	memset(out, 0, sizeof *out);
	if (len > SPEC_MAX_BYTES) {
		problems_add(probs, "document: larger than 1 MiB");
		return -1;
	}
	if (too_deep(buf, len)) {
		problems_add(probs, "document: nested deeper than %d levels", SPEC_MAX_DEPTH);
		return -1;
	}

	/* Duplicate keys are refused: two readers of one document could otherwise
	 * disagree on its meaning. NULs are let through to be named per field. */
	json_error_t jerr;
	json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
	if (!root) {
		/* jansson quotes the offending input, which may be invalid UTF-8. */
		char text[sizeof jerr.text * 4 + 8];
		show(text, sizeof text, jerr.text, true);
		problems_add(probs, "document: %s at line %d column %d", text, jerr.line, jerr.column);
		return -1;
	}

	struct spec s = {
		.root = root,
		.cpu_period_micros = 100000,
		.graceful_shutdown_seconds = 2,
	};
	struct vctx c = {.probs = probs, .warns = warns, .strict = strict};
	validate_document(&c, root, &s);
	if (c.suppressed)
		problems_add(probs, "document: %zu more problems not shown", c.suppressed);
	if (c.warn_suppressed)
		problems_add(warns, "document: %zu more warnings not shown", c.warn_suppressed);
	if (c.bad) {
		spec_free(&s);
		return -1;
	}
	*out = s;
	return 0;
}

int spec_read(const char *path, char **buf, size_t *len, struct err *e)
{
	*buf = NULL;
	*len = 0;
	bool use_stdin = strcmp(path, "-") == 0;
	char shown[256];
	show(shown, sizeof shown, use_stdin ? "stdin" : path, true);

	cleanup_close int own = -1;
	int fd = STDIN_FILENO;
	if (!use_stdin) {
		own = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
		if (own < 0)
			return err_sys(e, errno, "document: cannot open %s", shown);
		fd = own;
	}

	/* Read one byte past the limit: that is how an oversized document (or an
	 * endless pipe) is told apart without reading all of it. */
	char *b = malloc(SPEC_MAX_BYTES + 1);
	if (!b)
		return err_set(e, "document: out of memory");
	size_t n = 0;
	while (n <= SPEC_MAX_BYTES) {
		ssize_t r = read(fd, b + n, SPEC_MAX_BYTES + 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int errnum = errno;
			free(b);
			return err_sys(e, errnum, "document: cannot read %s", shown);
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	*buf = b;
	*len = n;
	return 0;
}

int spec_load_ex(const char *path, bool strict, struct spec *out, struct problems *probs, struct problems *warns)
{
	memset(out, 0, sizeof *out);
	cleanup_free char *buf = NULL;
	size_t len = 0;
	struct err e = {0};
	if (spec_read(path, &buf, &len, &e) < 0) {
		problems_add(probs, "%s", e.msg);
		return -1;
	}
	return spec_parse_ex(buf, len, strict, out, probs, warns);
}

/* The callers that print rather than return warnings: on stderr, before the
 * caller prints the problems, so a misplaced key comes right before the
 * "required" problem it may explain. */
static void log_warnings(struct problems *warns)
{
	for (size_t i = 0; i < warns->n; i++)
		log_warn("%s", warns->items[i]);
	problems_free(warns);
}

int spec_parse(const char *buf, size_t len, bool strict, struct spec *out, struct problems *probs)
{
	struct problems warns = {0};
	int rc = spec_parse_ex(buf, len, strict, out, probs, &warns);
	log_warnings(&warns);
	return rc;
}

int spec_load(const char *path, bool strict, struct spec *out, struct problems *probs)
{
	struct problems warns = {0};
	int rc = spec_load_ex(path, strict, out, probs, &warns);
	log_warnings(&warns);
	return rc;
}

void spec_free(struct spec *s)
{
	free(s->secret_refs);
	free(s->egress);
	free(s->argv);
	free(s->env);
	free(s->mounts);
	free(s->artifacts);
	free(s->targets);
	json_decref(s->root);
	memset(s, 0, sizeof *s);
}
