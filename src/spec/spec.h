/* The ExecutionCell document (SPEC §2): model, parser and validator.
 *
 * Strings in struct spec point into `root` (a jansson tree the spec owns), so the
 * model is valid until spec_free(). Optional numbers use 0 for "absent" where the
 * SPEC makes 0 an invalid value anyway. */
#ifndef CELLOS_SPEC_H
#define CELLOS_SPEC_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "util/err.h"

#define SPEC_MAX_BYTES (1024 * 1024)
#define SPEC_MAX_DEPTH 64

enum egress_proto { PROTO_TCP = 0, PROTO_UDP };
enum secret_delivery { DELIVERY_ENV = 0, DELIVERY_FILE };

struct egress_rule {
	const char *host;       /* IPv4/IPv6 literal, CIDR, or DNS name ("*." allowed once) */
	int port;               /* 1..65535 */
	enum egress_proto proto;
};

struct kv {
	const char *key;
	const char *value;
};

/* run.mounts[] (ext): a host directory or file shown at `target` in the cell. */
struct host_mount {
	const char *source;     /* absolute, without '..' (as written) */
	const char *target;     /* absolute, without '..', checked against the target rules */
	bool read_only;         /* readOnly, default true */
};
#define SPEC_MOUNTS_MAX 64

struct artifact {
	const char *name;
	const char *path;
	const char *target;     /* NULL: default target */
};

struct export_target {
	const char *name;
	const char *kind;       /* "local", "http", "s3" */
	const char *bucket;     /* may be NULL */
	const char *key_prefix; /* may be NULL */
};

struct spec {
	json_t *root;           /* owned; everything below borrows from it */

	const char *id;
	json_t *correlation;    /* borrowed object or NULL */
	const char *tenant_id;  /* borrowed from correlation, may be NULL */

	const char **secret_refs;
	size_t n_secret_refs;
	struct egress_rule *egress;
	size_t n_egress;
	json_t *dns_authority;  /* borrowed or NULL */

	long long ttl_seconds;  /* 1..2147483647 */

	bool has_run;
	const char **argv;      /* NULL-terminated, argc entries */
	size_t argc;
	enum secret_delivery delivery;
	const char *working_directory; /* NULL if absent */
	struct kv *env;
	size_t n_env;
	long long timeout_ms;   /* 0: absent */
	long long memory_max_bytes;    /* 0: absent */
	long long cpu_quota_micros;    /* 0: absent */
	long long cpu_period_micros;   /* default 100000 */
	long long pids_max;            /* 0: absent */
	long long graceful_shutdown_seconds; /* default 2 */
	struct host_mount *mounts;      /* run.mounts */
	size_t n_mounts;

	struct artifact *artifacts;
	size_t n_artifacts;
	struct export_target *targets;
	size_t n_targets;

	json_t *policy;         /* borrowed objects or NULL */
	json_t *identity;
	json_t *placement;
};

/* A growable list of "field.path: message" problems. */
struct problems {
	char **items;
	size_t n, cap;
};
void problems_add(struct problems *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void problems_free(struct problems *p);

/* Parse and validate a document held in memory. On success returns 0 and fills
 * *out (release with spec_free). On failure returns -1 and appends every problem
 * found to *probs (parse errors: one entry).
 *
 * Warnings are appended to *warns, in the same "field.path: message" form, whether
 * the document is valid or not: today, each unknown key (SPEC §2: accepted for
 * upstream compatibility), e.g.
 *   spec.authority.secretDelivery: unknown key, ignored; did you mean spec.run.secretDelivery?
 * `strict` (CELLOS_STRICT_SPEC=1, the hardened profile) makes each unknown key a
 * problem instead ("...: unknown key; did you mean ...?"). Both lists are capped
 * at 100 entries plus one "document: N more ... not shown". The caller frees both
 * with problems_free. A report that needs {path, message} splits an item at its
 * first ": " (a path never contains one, unless a key of the document does). */
int spec_parse_ex(const char *buf, size_t len, bool strict, struct spec *out, struct problems *probs,
		  struct problems *warns);

/* Read a document from `path` ("-" = stdin): at most SPEC_MAX_BYTES + 1 bytes
 * (spec_parse refuses more) into *buf (malloc'd, the caller frees it). -1 when
 * it cannot be opened or read: an I/O error, not a problem of the document. */
int spec_read(const char *path, char **buf, size_t *len, struct err *e);

/* spec_read (a read error is one problem), then spec_parse_ex. */
int spec_load_ex(const char *path, bool strict, struct spec *out, struct problems *probs, struct problems *warns);

/* spec_parse_ex / spec_load_ex with the warnings logged on stderr (log_warn, so
 * CELLOS_LOG=error silences them) instead of returned. */
int spec_parse(const char *buf, size_t len, bool strict, struct spec *out, struct problems *probs);
int spec_load(const char *path, bool strict, struct spec *out, struct problems *probs);

void spec_free(struct spec *s);

/* Helpers shared with other parts (export, secrets). */
bool spec_is_portable_id(const char *s);      /* [A-Za-z0-9][A-Za-z0-9._-]{0,127}, no ".." */
bool spec_is_secret_name(const char *s);      /* [A-Za-z_][A-Za-z0-9_.-]{0,127} */
/* The <KEY> of a secretRef in the brokers' variable names (SPEC §5): upper-cased,
 * '-' and '.' turned into '_'. Two refs with one key would read one variable. */
void spec_secret_key(const char *ref, char *buf, size_t size);
/* A DNS name: labels of 1-63 [A-Za-z0-9-] not starting or ending with '-', at most
 * 253 bytes, one optional leading "*.", last label not all digits, no trailing dot. */
bool spec_is_dns_name(const char *s);
/* Kind of an egress host: 4 or 6 for an address or CIDR of that family (host bits
 * after the prefix tolerated), 0 for a DNS name, -1 for neither. */
int spec_host_family(const char *host);

#endif
