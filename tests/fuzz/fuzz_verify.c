/* libFuzzer harness: the verifier's line parser and run checks
 * (src/events/verify.c), as `cellctl verify` drives them: the input is a log,
 * split into lines, checked against a fixed Ed25519 key and HMAC key (so inputs
 * built from the corpus's real signed events reach the signature and chain
 * code), then finished. The keys file parser gets the input too. */
#include <sodium.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "events/verify.h"

/* The public key of the seed the corpus was signed with, and its HMAC key
 * (tests/fuzz/make-corpus.sh). */
static const char keys[] = "{\"fuzz-ed\":\"GL0TIuKLgTIBNGek17g7NZAJXBlrZVln87bQpmGt6ao\"}";
static const unsigned char hmac_key[32] = "cellos-fuzz-hmac-key-32-bytes!!";

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	return sodium_init() < 0 ? -1 : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct verifier v;
	if (verifier_init(&v, NULL) < 0 || verifier_load_keys(&v, keys, sizeof keys - 1, NULL) < 0 ||
	    verifier_set_hmac_key(&v, hmac_key, sizeof hmac_key, NULL) < 0)
		__builtin_trap();
	const char *p = (const char *)data, *end = p + size;
	size_t lineno = 0;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
		verifier_line(&v, ++lineno, p, len);
		p += len + (nl ? 1 : 0);
	}
	verifier_finish(&v);
	for (size_t i = 1; i < v.n_problems; i++)
		if (v.problems[i].line < v.problems[i - 1].line)
			__builtin_trap(); /* sorted by line */
	verifier_free(&v);

	/* The same bytes as a keys file. */
	struct verifier k;
	if (verifier_init(&k, NULL) == 0)
		verifier_load_keys(&k, (const char *)data, size, NULL);
	verifier_free(&k);
	return 0;
}
