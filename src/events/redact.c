#include "events/redact.h"

#include <stdbool.h>
#include <string.h>

/* Deeper than any event we build; a bound keeps the recursion finite. Deeper
 * data is a failure (-1), so the caller drops it rather than emit it unredacted. */
#define REDACT_MAX_DEPTH 64

static bool listed(const char *key, char *const *fields)
{
	for (char *const *f = fields; *f; f++)
		if (strcmp(*f, key) == 0)
			return true;
	return false;
}

static json_t *replacement(const json_t *v)
{
	if (json_is_object(v))
		return json_object();
	if (json_is_array(v))
		return json_pack("[s]", REDACTED);
	return json_string(REDACTED);
}

static int walk(json_t *v, char *const *fields, int depth)
{
	if (depth > REDACT_MAX_DEPTH)
		return -1;
	if (json_is_array(v)) {
		for (size_t i = 0; i < json_array_size(v); i++)
			if (walk(json_array_get(v, i), fields, depth + 1) < 0)
				return -1;
		return 0;
	}
	if (!json_is_object(v))
		return 0;
	const char *key;
	json_t *member;
	void *tmp;
	json_object_foreach_safe(v, tmp, key, member) {
		if (listed(key, fields)) {
			json_t *r = replacement(member);
			/* Setting an existing key replaces the value in place: the
			 * iteration is not disturbed. */
			if (!r || json_object_set_new(v, key, r) < 0)
				return -1;
		} else if (walk(member, fields, depth + 1) < 0) {
			return -1;
		}
	}
	return 0;
}

int redact_data(json_t *data, char *const *fields)
{
	if (!fields || !*fields)
		return 0;
	return walk(data, fields, 0);
}
