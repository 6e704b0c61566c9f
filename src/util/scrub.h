/* Secret values masked out of text that leaves the supervisor (runtime messages
 * that quote the workload's environment back, for instance).
 *
 * Every occurrence of every non-empty secret becomes SCRUB_MASK. Occurrences that
 * overlap are masked as one (no byte of either survives); the output is never
 * scanned again, so a secret that is part of the mask cannot match inside it.
 * The result is bounded by the buffer: when it does not fit it is cut at the end,
 * before a mask that does not fit whole, so no part of a secret is ever kept. */
#ifndef CELLOS_SCRUB_H
#define CELLOS_SCRUB_H

#include <stddef.h>

#define SCRUB_MASK "[redacted]"

/* Copy `n` bytes of `in` (NULs included) to `out` (capacity `size` >= 1, always
 * NUL-terminated), masking `secrets[0..n_secrets)` (NULL and "" entries are
 * ignored). Returns the length written. */
size_t scrub_copy(char *out, size_t size, const char *in, size_t n, const char *const *secrets, size_t n_secrets);

#endif
