/* Unit tests for src/events/sign.c and src/util/b64url.c: the primitives against
 * their RFC test vectors, the signer's key hygiene, and the envelope. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "events/sign.h"
#include "util/b64url.h"
#include "util/canon.h"

static void unhex(const char *h, unsigned char *out, size_t n)
{
	assert_int_equal(strlen(h), 2 * n);
	size_t got = 0;
	assert_int_equal(sodium_hex2bin(out, n, h, 2 * n, NULL, &got, NULL), 0);
	assert_int_equal(got, n);
}

static bool all_zero(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

/* A key buffer as config.c hands it over (sodium_malloc'd), so that the test can
 * check it is wiped. */
static unsigned char *key_copy(const unsigned char *k, size_t n)
{
	unsigned char *p = sodium_malloc(n ? n : 1);
	assert_non_null(p);
	memcpy(p, k, n);
	return p;
}

static void sign_with(enum sign_alg alg, const unsigned char *key, size_t key_len, const void *msg, size_t len,
		      unsigned char *sig, size_t *sig_len)
{
	unsigned char *k = key_copy(key, key_len);
	struct err e = {0};
	struct signer *s = signer_new(alg, "test-kid", k, key_len, &e);
	assert_non_null(s);
	/* The raw key is wiped as soon as the signer has derived its state. */
	assert_true(all_zero(k, key_len));
	signer_sign(s, msg, len, sig, sig_len);
	signer_free(s);
	sodium_free(k);
}

/* RFC 8032 §7.1, TEST 1 (empty message) and TEST 2 (one byte). */
static void test_ed25519_rfc8032(void **state)
{
	static const struct {
		const char *seed, *pk, *msg, *sig;
	} v[] = {
		{"9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
		 "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
		 "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"},
		{"4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
		 "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
		 "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"},
	};
	for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
		unsigned char seed[32], pk[32], want[64], msg[1], sig[SIGN_MAX_BYTES], got_pk[32];
		size_t mlen = strlen(v[i].msg) / 2, sig_len = 0;
		unhex(v[i].seed, seed, 32);
		unhex(v[i].pk, pk, 32);
		unhex(v[i].sig, want, 64);
		if (mlen)
			unhex(v[i].msg, msg, mlen);
		sign_with(SIGN_ED25519, seed, 32, msg, mlen, sig, &sig_len);
		assert_int_equal(sig_len, 64);
		assert_memory_equal(sig, want, 64);
		assert_int_equal(sign_ed25519_public_key(seed, got_pk, NULL), 0);
		assert_memory_equal(got_pk, pk, 32);
		assert_true(sign_verify_ed25519(pk, msg, mlen, sig, 64));
		sig[0] ^= 1;
		assert_false(sign_verify_ed25519(pk, msg, mlen, sig, 64));
		assert_false(sign_verify_ed25519(pk, msg, mlen, sig, 63));
	}
}

/* RFC 4231 test cases 1, 2 (a 4-byte key) and 6 (a 131-byte key, longer than the
 * SHA-256 block: hashed first): HMAC keys of any length. */
static void test_hmac_rfc4231(void **state)
{
	unsigned char k1[20], k6[131];
	memset(k1, 0x0b, sizeof k1);
	memset(k6, 0xaa, sizeof k6);
	static const char m6[] = "Test Using Larger Than Block-Size Key - Hash Key First";
	const struct {
		const unsigned char *key;
		size_t klen;
		const char *msg, *tag;
	} v[] = {
		{k1, sizeof k1, "Hi There", "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"},
		{(const unsigned char *)"Jefe", 4, "what do ya want for nothing?",
		 "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
		{k6, sizeof k6, m6, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"},
	};
	for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
		unsigned char want[32], sig[SIGN_MAX_BYTES];
		size_t sig_len = 0;
		unhex(v[i].tag, want, 32);
		sign_with(SIGN_HMAC, v[i].key, v[i].klen, v[i].msg, strlen(v[i].msg), sig, &sig_len);
		assert_int_equal(sig_len, 32);
		assert_memory_equal(sig, want, 32);
		assert_true(sign_verify_hmac(v[i].key, v[i].klen, v[i].msg, strlen(v[i].msg), sig, 32));
		assert_false(sign_verify_hmac(v[i].key, v[i].klen, v[i].msg, strlen(v[i].msg) - 1, sig, 32));
		assert_false(sign_verify_hmac(v[i].key, v[i].klen, v[i].msg, strlen(v[i].msg), sig, 31));
	}
}

/* The signer reuses its keyed state: signing twice gives the same tag (the copy
 * of the state must not be consumed by the first signature). */
static void test_hmac_state_reused(void **state)
{
	unsigned char key[7] = "seven!!", *k = key_copy(key, 7), a[64], b[64];
	size_t la = 0, lb = 0;
	struct signer *s = signer_new(SIGN_HMAC, "k", k, 7, NULL);
	assert_non_null(s);
	signer_sign(s, "abc", 3, a, &la);
	signer_sign(s, "abc", 3, b, &lb);
	assert_int_equal(la, 32);
	assert_memory_equal(a, b, 32);
	assert_true(sign_verify_hmac(key, 7, "abc", 3, a, la));
	signer_free(s);
	sodium_free(k);
}

/* Refused configurations still wipe the key they were given. */
static void test_signer_refuses(void **state)
{
	unsigned char seed[31];
	memset(seed, 7, sizeof seed);
	unsigned char *k = key_copy(seed, sizeof seed);
	struct err e = {0};
	assert_null(signer_new(SIGN_ED25519, "k", k, sizeof seed, &e));
	assert_true(all_zero(k, sizeof seed));
	assert_non_null(strstr(e.msg, "CELLOS_EVENT_SIGNING_KEY_BASE64"));
	sodium_free(k);

	k = key_copy(seed, 1);
	assert_null(signer_new(SIGN_HMAC, "k", k, 0, &e));
	sodium_free(k);
	k = key_copy(seed, 1);
	assert_null(signer_new(SIGN_OFF, "k", k, 1, &e));
	assert_true(all_zero(k, 1));
	sodium_free(k);
	char long_kid[SIGN_KID_MAX + 2];
	memset(long_kid, 'a', sizeof long_kid - 1);
	long_kid[sizeof long_kid - 1] = '\0';
	k = key_copy(seed, 1);
	assert_null(signer_new(SIGN_HMAC, long_kid, k, 1, &e));
	assert_non_null(strstr(e.msg, "CELLOS_EVENT_SIGNING_KID"));
	sodium_free(k);
	signer_free(NULL);
}

/* The wrapper: canonical, the SPEC's shape, the signature over the canonical
 * inner event, source/subject/time copied. */
static void test_wrap(void **state)
{
	unsigned char seed[32], pk[32];
	randombytes_buf(seed, sizeof seed);
	assert_int_equal(sign_ed25519_public_key(seed, pk, NULL), 0);
	unsigned char *k = key_copy(seed, 32);
	struct signer *s = signer_new(SIGN_ED25519, "ops-2026-q4", k, 32, NULL);
	assert_non_null(s);
	json_t *inner = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:{s:s, s:s}}", "specversion", "1.0", "id", "i-1",
				  "source", "/cellos/supervisor/h", "subject", "urn:cellos:cell:c", "time",
				  "2026-11-29T20:14:33.123456Z", "sequence", "1", "data", "cellId", "c", "runId", "r");
	size_t clen = 0, wlen = 0;
	char *canon = canon_dump(inner, &clen);
	char wid[37] = "";
	char *w = signer_wrap(s, inner, canon, clen, &wlen, wid);
	assert_non_null(w);
	assert_int_equal(strlen(w), wlen);
	assert_int_equal(strlen(wid), 36);

	json_t *p = json_loads(w, JSON_REJECT_DUPLICATES, NULL);
	assert_non_null(p);
	char *again = canon_dump(p, NULL);
	assert_string_equal(again, w); /* the line is already canonical */
	free(again);
	assert_string_equal(json_string_value(json_object_get(p, "type")), SIGNED_ENVELOPE_TYPE);
	assert_string_equal(json_string_value(json_object_get(p, "id")), wid);
	assert_string_not_equal(wid, "i-1");
	static const char *const same[] = {"source", "subject", "time", "specversion"};
	for (int i = 0; i < 4; i++)
		assert_string_equal(json_string_value(json_object_get(p, same[i])),
				    json_string_value(json_object_get(inner, same[i])));
	assert_string_equal(json_string_value(json_object_get(p, "datacontenttype")), "application/json");
	assert_null(json_object_get(p, "sequence"));
	json_t *d = json_object_get(p, "data");
	assert_int_equal(json_object_size(d), 4);
	assert_string_equal(json_string_value(json_object_get(d, "algorithm")), "ed25519");
	assert_string_equal(json_string_value(json_object_get(d, "signerKid")), "ops-2026-q4");
	char *ev = canon_dump(json_object_get(d, "event"), NULL);
	assert_string_equal(ev, canon);
	const char *sig_b64 = json_string_value(json_object_get(d, "signature"));
	assert_int_equal(strlen(sig_b64), 86); /* 64 bytes, no padding */
	unsigned char sig[64];
	size_t sl = 0;
	assert_int_equal(b64url_decode(sig_b64, strlen(sig_b64), false, sig, sizeof sig, &sl), 0);
	assert_true(sign_verify_ed25519(pk, canon, clen, sig, sl));
	free(ev);
	json_decref(p);
	free(w);
	free(canon);
	json_decref(inner);
	signer_free(s);
	sodium_free(k);
	assert_string_equal(sign_alg_name(SIGN_HMAC), "hmac-sha256");

	/* Characters that need escaping in the kid and the attributes, and non-ASCII:
	 * the wrapper stays canonical and its event is the signed bytes. */
	unsigned char hk[3] = "key";
	k = key_copy(hk, 3);
	s = signer_new(SIGN_HMAC, "q\"u\\o/te", k, 3, NULL);
	assert_non_null(s);
	inner = json_pack("{s:s, s:s, s:s, s:s}", "source", "/cellos/supervisor/h\"\\\x01\xc3\xa9", "subject",
			  "urn:cellos:cell:\xf0\x9f\x98\x80", "time", "t\n", "z", "\xef\xac\xb3");
	canon = canon_dump(inner, &clen);
	w = signer_wrap(s, inner, canon, clen, &wlen, wid);
	assert_non_null(w);
	p = json_loads(w, JSON_REJECT_DUPLICATES, NULL);
	assert_non_null(p);
	again = canon_dump(p, NULL);
	assert_string_equal(again, w);
	free(again);
	assert_string_equal(json_string_value(json_object_get(json_object_get(p, "data"), "signerKid")), "q\"u\\o/te");
	assert_string_equal(json_string_value(json_object_get(p, "source")), "/cellos/supervisor/h\"\\\x01\xc3\xa9");
	ev = canon_dump(json_object_get(json_object_get(p, "data"), "event"), NULL);
	assert_string_equal(ev, canon);
	free(ev);
	/* An event without the attributes to copy cannot be wrapped. */
	json_t *bare = json_object();
	assert_null(signer_wrap(s, bare, "{}", 2, &wlen, wid));
	json_decref(bare);
	json_decref(p);
	free(w);
	free(canon);
	json_decref(inner);
	signer_free(s);
	sodium_free(k);
	assert_string_equal(sign_alg_name(SIGN_ED25519), "ed25519");
}

static void test_b64url(void **state)
{
	unsigned char out[64];
	size_t n = 0;
	/* "hello" = aGVsbG8 (padded: aGVsbG8=) */
	assert_int_equal(b64url_decode("aGVsbG8", 7, true, out, sizeof out, &n), 0);
	assert_int_equal(n, 5);
	assert_memory_equal(out, "hello", 5);
	assert_int_equal(b64url_decode("aGVsbG8=", 8, true, out, sizeof out, &n), 0);
	assert_int_equal(n, 5);
	assert_int_equal(b64url_decode("aGVsbG8=", 8, false, out, sizeof out, &n), -1);
	assert_int_equal(b64url_decode("aGVsbA==", 8, true, out, sizeof out, &n), 0);
	assert_int_equal(n, 4);
	/* Padding must complete the last quantum, and there are at most two. */
	assert_int_equal(b64url_decode("aGVsbG8==", 9, true, out, sizeof out, &n), -1);
	assert_int_equal(b64url_decode("aGVsbA===", 9, true, out, sizeof out, &n), -1);
	assert_int_equal(b64url_decode("aGVs=bA=", 8, true, out, sizeof out, &n), -1);
	/* 0xfb 0xff: standard base64 "+/8", base64url "-_8". */
	assert_int_equal(b64url_decode("-_8", 3, false, out, sizeof out, &n), 0);
	assert_int_equal(n, 2);
	assert_true(out[0] == 0xfb && out[1] == 0xff);
	assert_int_equal(b64url_decode("+/8", 3, true, out, sizeof out, &n), -1);
	assert_int_equal(b64url_decode("aGVs bG8", 8, true, out, sizeof out, &n), -1);
	assert_int_equal(b64url_decode("aGVsbG8\n", 8, true, out, sizeof out, &n), -1);
	/* A lone last character, and non-zero unused bits ("aGVsbG9" is not canonical). */
	assert_int_equal(b64url_decode("aGVsb", 5, true, out, sizeof out, &n), -1);
	assert_int_equal(b64url_decode("aGVsbG9", 7, true, out, sizeof out, &n), -1);
	/* Too long for the buffer. */
	assert_int_equal(b64url_decode("aGVsbG8", 7, true, out, 4, &n), -1);
	assert_int_equal(b64url_decode("", 0, true, out, sizeof out, &n), 0);
	assert_int_equal(n, 0);

	char enc[B64URL_ENCODED_LEN(5)];
	b64url_encode((const unsigned char *)"hello", 5, enc);
	assert_string_equal(enc, "aGVsbG8");
	unsigned char ff[2] = {0xfb, 0xff};
	char enc2[B64URL_ENCODED_LEN(2)];
	b64url_encode(ff, 2, enc2);
	assert_string_equal(enc2, "-_8");
}

static int setup(void **state) { return sodium_init() < 0 ? -1 : 0; }

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ed25519_rfc8032),
		cmocka_unit_test(test_hmac_rfc4231),
		cmocka_unit_test(test_hmac_state_reused),
		cmocka_unit_test(test_signer_refuses),
		cmocka_unit_test(test_wrap),
		cmocka_unit_test(test_b64url),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
