/* How events are signed (CELLOS_EVENT_SIGNING, SPEC §9): vocabulary shared by
 * the configuration and the signer; enums only, includes nothing of ours. */
#ifndef CELLOS_SIGN_ALG_H
#define CELLOS_SIGN_ALG_H

enum sign_alg { SIGN_OFF = 0, SIGN_ED25519, SIGN_HMAC };

/* A key id (CELLOS_EVENT_SIGNING_KID, the envelope's kid): 1 to this many
 * printable ASCII characters, no spaces. */
#define SIGN_KID_MAX 128

#endif
