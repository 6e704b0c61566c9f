/* base64url (RFC 4648 §5) as the SPEC uses it: keys are read with their '='
 * padding tolerated, signatures are written (and read back) without it. */
#ifndef CELLOS_B64URL_H
#define CELLOS_B64URL_H

#include <stdbool.h>
#include <stddef.h>

/* Decode `len` characters of base64url into out (at most cap bytes). With
 * allow_padding, up to two trailing '=' are accepted (and must then complete the
 * last quantum); without it, any '=' is an error. No whitespace, no '+' or '/'.
 * Returns 0 and the length in *out_len, or -1 (bad character or length, or more
 * than cap bytes). */
int b64url_decode(const char *in, size_t len, bool allow_padding, unsigned char *out, size_t cap,
		  size_t *out_len);

/* Characters b64url_encode needs for n bytes, including the NUL. */
#define B64URL_ENCODED_LEN(n) ((((n) + 2) / 3) * 4 + 1)

/* Encode without padding into out (B64URL_ENCODED_LEN(n) bytes). */
void b64url_encode(const unsigned char *in, size_t n, char *out);

#endif
