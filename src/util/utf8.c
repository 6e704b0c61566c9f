/* UTF-8 well-formedness and repair. See utf8.h. */
#include "util/utf8.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

size_t utf8_next(const char *s, size_t n, bool *ok)
{
	const unsigned char *u = (const unsigned char *)s;
	/* Range of the second byte; the third and fourth are always 80..BF. The
	 * narrower ranges after E0, ED, F0 and F4 keep out overlong forms,
	 * surrogates and code points above U+10FFFF. */
	unsigned char lo = 0x80, hi = 0xbf;
	size_t len;

	*ok = false;
	if (u[0] < 0x80) {
		*ok = true;
		return 1;
	} else if (u[0] >= 0xc2 && u[0] <= 0xdf) {
		len = 2;
	} else if (u[0] >= 0xe0 && u[0] <= 0xef) {
		len = 3;
		if (u[0] == 0xe0)
			lo = 0xa0;
		else if (u[0] == 0xed)
			hi = 0x9f;
	} else if (u[0] >= 0xf0 && u[0] <= 0xf4) {
		len = 4;
		if (u[0] == 0xf0)
			lo = 0x90;
		else if (u[0] == 0xf4)
			hi = 0x8f;
	} else {
		return 1; /* 80..C1, F5..FF never start a character */
	}
	for (size_t i = 1; i < len; i++) {
		if (i >= n || u[i] < lo || u[i] > hi)
			return i;
		lo = 0x80;
		hi = 0xbf;
	}
	*ok = true;
	return len;
}

char *utf8_repair(const char *s, size_t n)
{
	static const char fffd[] = "\xef\xbf\xbd";
	/* Each replaced subpart is at least one byte and becomes three. */
	if (n > (SIZE_MAX - 1) / 3)
		return NULL;
	char *out = malloc(3 * n + 1);
	if (!out)
		return NULL;
	size_t o = 0;
	for (size_t i = 0; i < n;) {
		bool ok;
		size_t len = utf8_next(s + i, n - i, &ok);
		if (ok) {
			memcpy(out + o, s + i, len);
			o += len;
		} else {
			memcpy(out + o, fffd, 3);
			o += 3;
		}
		i += len;
	}
	out[o] = '\0';
	return out;
}
