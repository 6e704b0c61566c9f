/* Control characters and ill-formed UTF-8 escaped for log lines. See escape.h. */
#include "util/escape.h"

#include <stdbool.h>
#include <string.h>

#include "util/utf8.h"

/* A well-formed character of `len` bytes at `u` that a terminal would act on. */
static bool is_control(const unsigned char *u, size_t len)
{
	if (len == 1)
		return u[0] < 0x20 || u[0] == 0x7f;
	return len == 2 && u[0] == 0xc2 && u[1] < 0xa0; /* U+0080..U+009F */
}

size_t escape_controls(char *out, size_t size, const char *in, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0, room = size - 1; /* one byte for the NUL */

	for (size_t i = 0; i < n;) {
		const unsigned char *u = (const unsigned char *)in + i;
		bool ok;
		size_t len = utf8_next(in + i, n - i, &ok);
		if (ok && !is_control(u, len)) {
			if (room - o < len)
				break;
			memcpy(out + o, u, len);
			o += len;
		} else {
			if (room - o < 4 * len)
				break;
			for (size_t k = 0; k < len; k++) {
				out[o++] = '\\';
				out[o++] = 'x';
				out[o++] = hex[u[k] >> 4];
				out[o++] = hex[u[k] & 15];
			}
		}
		i += len;
	}
	out[o] = '\0';
	return o;
}
