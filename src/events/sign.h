/* Signed events (SPEC §9): the signer of the supervisor and the primitives the
 * verifier (cellctl verify) shares with it.
 *
 * The key material lives in sodium_malloc'd memory (guard pages, mlock'd, left out
 * of core dumps, and wiped in forked children: the cell's init is a fork of the
 * supervisor and has no business holding the key). It is wiped on signer_free. */
#ifndef CELLOS_SIGN_H
#define CELLOS_SIGN_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "events/sign_alg.h"
#include "util/err.h"

#define SIGNED_ENVELOPE_TYPE "dev.cellos.events.signed_envelope.v1"
#define SIGN_MAX_BYTES 64 /* Ed25519 signature; an HMAC-SHA256 tag is 32 */
#define SIGN_ED25519_SEED_BYTES 32
#define SIGN_ED25519_PK_BYTES 32

struct signer;

/* The `algorithm` string of the envelope: "ed25519" or "hmac-sha256". */
const char *sign_alg_name(enum sign_alg alg);

/* Derive the signing state from `key` (Ed25519: a 32-byte seed; HMAC: any length)
 * and wipe `key` in every case, success or not. NULL with *e set on failure. */
struct signer *signer_new(enum sign_alg alg, const char *kid, unsigned char *key, size_t key_len, struct err *e);
void signer_free(struct signer *s);

/* Sign `len` bytes; writes the signature and its length. */
void signer_sign(const struct signer *s, const void *msg, size_t len, unsigned char sig[SIGN_MAX_BYTES],
		 size_t *sig_len);

/* Wrap an event: `inner` is the event (its source, subject and time are copied to
 * the wrapper), `canon`/`len` its canonical form, which is what is signed. Returns
 * the canonical form of the signed_envelope.v1 wrapper (malloc'd, length in
 * *out_len) and its id in id_out, or NULL on allocation failure. */
char *signer_wrap(const struct signer *s, json_t *inner, const char *canon, size_t len, size_t *out_len,
		  char id_out[37]);

/* Verification, for cellctl. `key` is the Ed25519 public key or the HMAC key. */
bool sign_verify_ed25519(const unsigned char pk[SIGN_ED25519_PK_BYTES], const void *msg, size_t len,
			 const unsigned char *sig, size_t sig_len);
bool sign_verify_hmac(const unsigned char *key, size_t key_len, const void *msg, size_t len,
		      const unsigned char *sig, size_t sig_len);

/* Public key of an Ed25519 seed (cellctl keygen). */
int sign_ed25519_public_key(const unsigned char seed[SIGN_ED25519_SEED_BYTES],
			    unsigned char pk[SIGN_ED25519_PK_BYTES], struct err *e);

/* sodium_malloc, and ask the kernel to hand forked children zero pages instead
 * of a copy of it (MADV_WIPEONFORK; best effort on kernels without it). */
void *sign_secure_alloc(size_t size);

#endif
