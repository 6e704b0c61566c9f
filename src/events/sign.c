/* Signed events (SPEC §9). See sign.h. */
#include "events/sign.h"

#include <limits.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "util/b64url.h"
#include "util/canon.h"
#include "util/ids.h"

#ifndef MADV_WIPEONFORK
#define MADV_WIPEONFORK 18
#endif

/* Everything derived from the key, in one sodium_malloc'd block. For HMAC we keep
 * the state after the key has been absorbed (inner and outer padded hashes): each
 * signature then starts from a copy of it, so a key of any length costs its
 * hashing once, not once per event. */
struct signer_secret {
	union {
		unsigned char ed25519_sk[crypto_sign_SECRETKEYBYTES];
		crypto_auth_hmacsha256_state hmac;
	} u;
};

struct signer {
	enum sign_alg alg;
	char *kid_json;          /* the kid as a canonical JSON string */
	struct signer_secret *secret;
};

const char *sign_alg_name(enum sign_alg alg)
{
	switch (alg) {
	case SIGN_ED25519: return "ed25519";
	case SIGN_HMAC: return "hmac-sha256";
	case SIGN_OFF: break;
	}
	return "off";
}

void *sign_secure_alloc(size_t size)
{
	unsigned char *p = sodium_malloc(size);
	if (!p)
		return NULL;
	long page = sysconf(_SC_PAGESIZE);
	if (page > 0) {
		/* The pages holding p..p+size belong to sodium's unprotected region of
		 * this allocation alone, so advising them touches nothing else. */
		uintptr_t start = (uintptr_t)p & ~((uintptr_t)page - 1);
		uintptr_t end = ((uintptr_t)p + size + (uintptr_t)page - 1) & ~((uintptr_t)page - 1);
		(void)madvise((void *)start, end - start, MADV_WIPEONFORK);
	}
	return p;
}

struct signer *signer_new(enum sign_alg alg, const char *kid, unsigned char *key, size_t key_len, struct err *e)
{
	struct signer *s = NULL;
	if (alg != SIGN_ED25519 && alg != SIGN_HMAC) {
		err_set(e, "CELLOS_EVENT_SIGNING: no signing algorithm");
		goto fail;
	}
	if (!kid || strlen(kid) > SIGN_KID_MAX) {
		err_set(e, "CELLOS_EVENT_SIGNING_KID: missing or longer than %d bytes", SIGN_KID_MAX);
		goto fail;
	}
	if (alg == SIGN_ED25519 ? key_len != SIGN_ED25519_SEED_BYTES : key_len == 0) {
		err_set(e, "CELLOS_EVENT_SIGNING_KEY_BASE64: wrong key length (%zu bytes)", key_len);
		goto fail;
	}
	s = calloc(1, sizeof *s);
	if (!s || !(s->secret = sign_secure_alloc(sizeof *s->secret))) {
		err_set(e, "CELLOS_EVENT_SIGNING: cannot allocate locked memory for the key");
		goto fail;
	}
	s->alg = alg;
	json_t *k = json_string(kid);
	s->kid_json = k ? canon_dump(k, NULL) : NULL;
	json_decref(k);
	if (!s->kid_json) {
		err_set(e, "CELLOS_EVENT_SIGNING_KID: not valid UTF-8, or out of memory");
		goto fail;
	}
	if (alg == SIGN_ED25519) {
		unsigned char pk[crypto_sign_PUBLICKEYBYTES];
		crypto_sign_seed_keypair(pk, s->secret->u.ed25519_sk, key);
	} else {
		crypto_auth_hmacsha256_init(&s->secret->u.hmac, key, key_len);
	}
	sodium_memzero(key, key_len);
	return s;
fail:
	if (key)
		sodium_memzero(key, key_len);
	signer_free(s);
	return NULL;
}

void signer_free(struct signer *s)
{
	if (!s)
		return;
	sodium_free(s->secret); /* zeroes before unmapping */
	free(s->kid_json);
	free(s);
}

void signer_sign(const struct signer *s, const void *msg, size_t len, unsigned char sig[SIGN_MAX_BYTES],
		 size_t *sig_len)
{
	if (s->alg == SIGN_ED25519) {
		unsigned long long n = 0;
		crypto_sign_detached(sig, &n, msg, len, s->secret->u.ed25519_sk);
		*sig_len = (size_t)n;
		return;
	}
	/* The state is a plain struct: copying it is how the keyed prefix is reused. */
	crypto_auth_hmacsha256_state st;
	memcpy(&st, &s->secret->u.hmac, sizeof st);
	crypto_auth_hmacsha256_update(&st, msg, len);
	crypto_auth_hmacsha256_final(&st, sig);
	sodium_memzero(&st, sizeof st);
	*sig_len = crypto_auth_hmacsha256_BYTES;
}

/* A JSON string in canonical form (malloc'd), or NULL. */
static char *canon_string(json_t *v)
{
	return json_is_string(v) ? canon_dump(v, NULL) : NULL;
}

char *signer_wrap(const struct signer *s, json_t *inner, const char *canon, size_t len, size_t *out_len,
		  char id_out[37])
{
	unsigned char sig[SIGN_MAX_BYTES];
	size_t sig_len = 0;
	char sig_b64[B64URL_ENCODED_LEN(SIGN_MAX_BYTES)];
	signer_sign(s, canon, len, sig, &sig_len);
	b64url_encode(sig, sig_len, sig_b64);
	char id[37];
	uuid_v4(id);

	/* The wrapper is written around the very bytes that were signed rather than
	 * re-serialised: its canonical form (RFC 8785) has its members in this order
	 * (keys sorted), the inner event is already canonical, and so is the whole.
	 * The unit tests check that parsing and canonicalising it changes nothing. */
	char *source = canon_string(json_object_get(inner, "source"));
	char *subject = canon_string(json_object_get(inner, "subject"));
	char *time = canon_string(json_object_get(inner, "time"));
	char *out = NULL;
	if (source && subject && time && len <= INT_MAX) {
		int n = asprintf(&out,
				 "{\"data\":{\"algorithm\":\"%s\",\"event\":%.*s,\"signature\":\"%s\",\"signerKid\":%s},"
				 "\"datacontenttype\":\"application/json\",\"id\":\"%s\",\"source\":%s,\"specversion\":\"1.0\","
				 "\"subject\":%s,\"time\":%s,\"type\":\"" SIGNED_ENVELOPE_TYPE "\"}",
				 sign_alg_name(s->alg), (int)len, canon, sig_b64, s->kid_json, id, source, subject, time);
		if (n < 0)
			out = NULL;
		else
			*out_len = (size_t)n;
	}
	free(source);
	free(subject);
	free(time);
	if (out && id_out)
		memcpy(id_out, id, 37);
	return out;
}

bool sign_verify_ed25519(const unsigned char pk[SIGN_ED25519_PK_BYTES], const void *msg, size_t len,
			 const unsigned char *sig, size_t sig_len)
{
	return sig_len == crypto_sign_BYTES && crypto_sign_verify_detached(sig, msg, len, pk) == 0;
}

bool sign_verify_hmac(const unsigned char *key, size_t key_len, const void *msg, size_t len,
		      const unsigned char *sig, size_t sig_len)
{
	if (sig_len != crypto_auth_hmacsha256_BYTES)
		return false;
	crypto_auth_hmacsha256_state st;
	unsigned char tag[crypto_auth_hmacsha256_BYTES];
	crypto_auth_hmacsha256_init(&st, key, key_len);
	crypto_auth_hmacsha256_update(&st, msg, len);
	crypto_auth_hmacsha256_final(&st, tag);
	sodium_memzero(&st, sizeof st);
	/* Constant time: a verifier must not leak how much of a forged tag matched. */
	bool ok = sodium_memcmp(tag, sig, sizeof tag) == 0;
	sodium_memzero(tag, sizeof tag);
	return ok;
}

int sign_ed25519_public_key(const unsigned char seed[SIGN_ED25519_SEED_BYTES],
			    unsigned char pk[SIGN_ED25519_PK_BYTES], struct err *e)
{
	unsigned char *sk = sodium_malloc(crypto_sign_SECRETKEYBYTES);
	if (!sk)
		return err_set(e, "cannot allocate locked memory for the key");
	crypto_sign_seed_keypair(pk, sk, seed);
	sodium_free(sk);
	return 0;
}
