/* libFuzzer harness: the document parser and validator (src/spec/), in both
 * modes (CELLOS_STRICT_SPEC off and on). Any crash, leak or UB is a finding. */
#include <stddef.h>
#include <stdint.h>

#include "spec/spec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	for (int strict = 0; strict <= 1; strict++) {
		struct spec s;
		struct problems p = {0}, w = {0};
		if (spec_parse_ex((const char *)data, size, strict, &s, &p, &w) == 0) {
			/* A valid document never comes with problems. */
			if (p.n)
				__builtin_trap();
			spec_free(&s);
		} else if (p.n == 0) {
			/* An invalid one always says why. */
			__builtin_trap();
		}
		problems_free(&p);
		problems_free(&w);
	}
	return 0;
}
