#include "util/b64url.h"

#include <sodium.h>
#include <string.h>

int b64url_decode(const char *in, size_t len, bool allow_padding, unsigned char *out, size_t cap,
		  size_t *out_len)
{
	size_t pad = 0;
	while (pad < len && in[len - 1 - pad] == '=')
		pad++;
	if (pad && (!allow_padding || pad > 2 || len % 4 != 0))
		return -1;
	len -= pad;
	/* A lone final character carries 6 bits, never a whole byte: libsodium would
	 * reject it too, but say so before asking. */
	if (len % 4 == 1)
		return -1;
	const char *end = NULL;
	size_t n = 0;
	/* URLSAFE_NO_PADDING refuses '+', '/', '=' and whitespace; it also refuses
	 * non-zero trailing bits, so every key has exactly one spelling. */
	if (sodium_base642bin(out, cap, in, len, NULL, &n, &end, sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
	    end != in + len)
		return -1;
	*out_len = n;
	return 0;
}

void b64url_encode(const unsigned char *in, size_t n, char *out)
{
	sodium_bin2base64(out, B64URL_ENCODED_LEN(n), in, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}
