/* Typed access to members of the document's objects: each accessor records a
 * problem naming the field when a member is missing or of the wrong type.
 *
 * JSON null counts as "absent" for optional members: upstream deserialises with
 * serde, where `Option<T>` accepts null, and its documents must keep working. */
#include "spec/spec_internal.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

json_t *spec_member(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);
	return json_is_null(v) ? NULL : v;
}

/* The string value of v, or NULL with a problem. The document is parsed with
 * JSON_ALLOW_NUL so that a "\u0000" gets a message naming its field; every string
 * the program uses must come through here, or a NUL would silently cut it. */
const char *spec_want_string(struct vctx *c, json_t *v, const char *path)
{
	if (!json_is_string(v)) {
		spec_fail(c, path, "must be a string");
		return NULL;
	}
	const char *s = json_string_value(v);
	if (strlen(s) != json_string_length(v)) {
		spec_fail(c, path, "must not contain NUL characters");
		return NULL;
	}
	return s;
}

const char *spec_member_string(struct vctx *c, json_t *obj, const char *path, const char *key, bool required)
{
	char p[PATH_LEN];
	json_t *v = spec_member(obj, key);
	if (!v) {
		if (required)
			spec_fail(c, spec_at_key(p, path, key), "required string");
		return NULL;
	}
	return spec_want_string(c, v, spec_at_key(p, path, key));
}

static json_t *member_of_type(struct vctx *c, json_t *obj, const char *path, const char *key, bool required,
			      json_type type)
{
	char p[PATH_LEN];
	const char *what = type == JSON_OBJECT ? "object" : "array";
	json_t *v = spec_member(obj, key);
	if (!v) {
		if (required)
			spec_fail(c, spec_at_key(p, path, key), "required %s", what);
		return NULL;
	}
	if (json_typeof(v) != type) {
		spec_fail(c, spec_at_key(p, path, key), "must be an %s", what);
		return NULL;
	}
	return v;
}

json_t *spec_member_object(struct vctx *c, json_t *obj, const char *path, const char *key, bool required)
{
	return member_of_type(c, obj, path, key, required, JSON_OBJECT);
}

json_t *spec_member_array(struct vctx *c, json_t *obj, const char *path, const char *key, bool required)
{
	return member_of_type(c, obj, path, key, required, JSON_ARRAY);
}

/* An integer member in [min, max]; *out is written only when valid, so it keeps
 * its default otherwise. Reals (even 5.0) and booleans are not integers. */
bool spec_member_int(struct vctx *c, json_t *obj, const char *path, const char *key, bool required,
		     long long min, long long max, long long *out)
{
	char p[PATH_LEN], range[64];
	if (max == LLONG_MAX)
		snprintf(range, sizeof range, "integer >= %lld", min);
	else
		snprintf(range, sizeof range, "integer %lld-%lld", min, max);
	json_t *v = spec_member(obj, key);
	if (!v) {
		if (required)
			spec_fail(c, spec_at_key(p, path, key), "required %s", range);
		return false;
	}
	if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) {
		spec_fail(c, spec_at_key(p, path, key), "must be an %s", range);
		return false;
	}
	*out = json_integer_value(v);
	return true;
}

/* A required member that must equal `literal` (apiVersion, kind). */
void spec_member_literal(struct vctx *c, json_t *obj, const char *path, const char *key, const char *literal)
{
	char p[PATH_LEN];
	json_t *v = spec_member(obj, key);
	if (!v) {
		spec_fail(c, spec_at_key(p, path, key), "required, must be \"%s\"", literal);
		return;
	}
	const char *s = spec_want_string(c, v, spec_at_key(p, path, key));
	if (s && strcmp(s, literal) != 0)
		spec_fail(c, p, "must be \"%s\"", literal);
}

/* policy, identity, placement, labels: free-form objects whose values are strings. */
json_t *spec_member_string_map(struct vctx *c, json_t *obj, const char *path, const char *key)
{
	char base[PATH_LEN], p[PATH_LEN];
	json_t *map = spec_member_object(c, obj, path, key, false);
	if (!map)
		return NULL;
	spec_at_key(base, path, key);
	const char *k;
	json_t *v;
	json_object_foreach(map, k, v)
		spec_want_string(c, v, spec_at_key(p, base, k));
	return map;
}

/* Adds name to a set (a jansson object: its hash is seeded, so a document full of
 * colliding names cannot make this quadratic). False if it was there already. */
bool spec_first_use(struct vctx *c, json_t *set, const char *name)
{
	if (json_object_get(set, name))
		return false;
	if (json_object_set_new_nocheck(set, name, json_true()) < 0)
		spec_oom(c);
	return true;
}
