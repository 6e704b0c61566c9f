/* libFuzzer harness: the RFC 8785 canonicaliser (src/util/canon.c). Whatever
 * jansson accepts must canonicalise, and the canonical form must be a fixed
 * point: parsing it and canonicalising again gives the same bytes (the property
 * the digest chain and the signatures rely on). */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/canon.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *v = json_loadb((const char *)data, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
	if (!v)
		return 0;
	size_t len = 0;
	char *c1 = canon_dump(v, &len);
	json_decref(v);
	/* jansson never produces NaN or infinities, and its depth limit is ours. */
	if (!c1)
		__builtin_trap();
	if (strlen(c1) > len)
		__builtin_trap();
	/* Reals that print as integers too large for json_int_t (1e20 ->
	 * "100000000000000000000") are the one thing jansson cannot read back. */
	json_t *again = json_loadb(c1, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
	if (again) {
		size_t len2 = 0;
		char *c2 = canon_dump(again, &len2);
		if (!c2 || len2 != len || memcmp(c1, c2, len) != 0)
			__builtin_trap();
		free(c2);
		json_decref(again);
	}
	free(c1);
	return 0;
}
