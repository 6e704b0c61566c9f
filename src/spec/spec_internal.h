/* What the files of src/spec/ share and no other module uses (public API:
 * spec/spec.h). The validator records problems in a struct vctx
 * (spec_problems.c), reads the document through typed accessors
 * (spec_member.c), checks key names against the known-key tables
 * (spec_keys.c) and values against the syntax rules (spec_lex.c); spec.c holds
 * the rules of each section and spec_load.c reads and parses the text. */
#ifndef CELLOS_SPEC_INTERNAL_H
#define CELLOS_SPEC_INTERNAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "spec/spec.h"

#define PATH_LEN 512   /* a field path such as spec.authority.egressRules[3].port */

/* ---- validation context (spec_problems.c) ------------------------------------ */

struct vctx {
	struct problems *probs;
	struct problems *warns;
	bool strict;
	bool bad;          /* set by every problem, even one that could not be stored */
	size_t count;      /* problems listed by this parse */
	size_t suppressed; /* problems past PROBLEMS_MAX */
	size_t warn_count, warn_suppressed; /* the same for warnings */
};

/* A problem at `path` (a field path; "document" for the whole): makes the
 * document invalid. Past a cap, problems are counted instead of listed. */
void spec_fail(struct vctx *c, const char *path, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void spec_oom(struct vctx *c);
/* A warning: recorded, capped like problems, never makes the document invalid. */
void spec_warn(struct vctx *c, const char *path, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* src made safe for a one-line message (control bytes escaped, long text cut). */
void spec_show(char *dst, size_t size, const char *src, bool ascii_only);
/* Field paths: parent.key (key shown escaped) and parent[i]; buf is returned. */
const char *spec_at_key(char buf[PATH_LEN], const char *parent, const char *key);
const char *spec_at_index(char buf[PATH_LEN], const char *parent, size_t i);

/* ---- known keys (spec_keys.c) ------------------------------------------------ */

/* The keys of each object with a fixed set of them, NULL-terminated. */
extern const char *const spec_known_top[], *const spec_known_spec[], *const spec_known_correlation[],
	*const spec_known_authority[], *const spec_known_egress_rule[], *const spec_known_dns_authority[],
	*const spec_known_resolver[], *const spec_known_lifetime[], *const spec_known_run[],
	*const spec_known_mount[], *const spec_known_limits[], *const spec_known_cpu_max[],
	*const spec_known_export[], *const spec_known_artifact[], *const spec_known_target[];
/* Every member of obj not in `known` is a warning (a problem when strict), with a
 * did-you-mean suggestion when one is close enough. */
void spec_check_known(struct vctx *c, json_t *obj, const char *path, const char *const *known);

/* ---- syntax rules not in the public API (spec_lex.c) ------------------------- */

bool spec_is_env_name(const char *s);        /* [A-Za-z_][A-Za-z0-9_]* */
bool spec_is_subject_token(const char *s);   /* one NATS subject token */
bool spec_is_clean_abs_path(const char *s);  /* absolute, no "..", < PATH_MAX */
bool spec_is_ip_port(const char *s);         /* "ip:port", "[v6]:port" */

/* ---- typed accessors (spec_member.c) ----------------------------------------- */

/* JSON null counts as absent. Each accessor records a problem naming the field
 * when the member is missing (if required) or of the wrong type. */
json_t *spec_member(json_t *obj, const char *key);
const char *spec_want_string(struct vctx *c, json_t *v, const char *path);
const char *spec_member_string(struct vctx *c, json_t *obj, const char *path, const char *key, bool required);
json_t *spec_member_object(struct vctx *c, json_t *obj, const char *path, const char *key, bool required);
json_t *spec_member_array(struct vctx *c, json_t *obj, const char *path, const char *key, bool required);
bool spec_member_int(struct vctx *c, json_t *obj, const char *path, const char *key, bool required,
		     long long min, long long max, long long *out);
void spec_member_literal(struct vctx *c, json_t *obj, const char *path, const char *key, const char *literal);
json_t *spec_member_string_map(struct vctx *c, json_t *obj, const char *path, const char *key);
bool spec_first_use(struct vctx *c, json_t *set, const char *name);

/* ---- the rules (spec.c) ------------------------------------------------------ */

/* Validates the whole document, filling s on the way. */
void spec_validate_document(struct vctx *c, json_t *root, struct spec *s);

#endif
