/* Secret values masked out of text. See scrub.h.
 *
 * The result is built in a second buffer rather than shifted around in place:
 * the mask is longer than many secrets, and every in-place scheme has to move
 * the tail by a size that the end of the buffer can make negative. */
#include "util/scrub.h"

#include <string.h>

/* Length of the longest secret that starts at `p` (`left` bytes remain), 0 if none. */
static size_t match_at(const char *p, size_t left, const char *const *secrets, size_t n_secrets)
{
	size_t best = 0;
	for (size_t i = 0; i < n_secrets; i++) {
		if (!secrets[i])
			continue;
		size_t len = strlen(secrets[i]);
		if (len > best && len <= left && memcmp(p, secrets[i], len) == 0)
			best = len;
	}
	return best;
}

size_t scrub_copy(char *out, size_t size, const char *in, size_t n, const char *const *secrets, size_t n_secrets)
{
	static const char mask[] = SCRUB_MASK;
	const size_t mlen = sizeof mask - 1;
	size_t o = 0, room = size - 1; /* one byte for the NUL */

	for (size_t i = 0; i < n;) {
		size_t len = match_at(in + i, n - i, secrets, n_secrets);
		if (len == 0) {
			if (o == room)
				break;
			out[o++] = in[i++];
			continue;
		}
		/* Every occurrence that starts inside this one extends it: overlapping
		 * occurrences are masked as one, so no byte of either is kept. */
		size_t end = i + len;
		for (size_t j = i + 1; j < end; j++) {
			size_t l = match_at(in + j, n - j, secrets, n_secrets);
			if (j + l > end)
				end = j + l;
		}
		/* A cut mask would say nothing, and what follows must not be kept
		 * without it: stop here. */
		if (room - o < mlen)
			break;
		memcpy(out + o, mask, mlen);
		o += mlen;
		i = end;
	}
	out[o] = '\0';
	return o;
}
