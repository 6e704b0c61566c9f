#include "util/vm_frame.h"

#include <sodium.h>
#include <string.h>

static void tag(const unsigned char key[VM_KEY_BYTES], const char *run_id, const unsigned char le[4],
		unsigned char out[VM_TAG_BYTES])
{
	crypto_auth_hmacsha256_state st;
	crypto_auth_hmacsha256_init(&st, key, VM_KEY_BYTES);
	crypto_auth_hmacsha256_update(&st, le, 4);
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)run_id, strlen(run_id));
	crypto_auth_hmacsha256_final(&st, out);
	sodium_memzero(&st, sizeof st);
}

void vm_frame_make(const unsigned char key[VM_KEY_BYTES], const char *run_id, int32_t status,
		   unsigned char frame[VM_FRAME_BYTES])
{
	uint32_t u = (uint32_t)status;
	for (int i = 0; i < 4; i++)
		frame[i] = (unsigned char)(u >> (8 * i));
	tag(key, run_id, frame, frame + 4);
}

int vm_frame_check(const unsigned char key[VM_KEY_BYTES], const char *run_id, const unsigned char *frame, size_t len,
		   int32_t *status)
{
	if (len < VM_FRAME_BYTES)
		return -1;
	unsigned char want[VM_TAG_BYTES];
	tag(key, run_id, frame, want);
	int ok = sodium_memcmp(want, frame + 4, VM_TAG_BYTES) == 0;
	sodium_memzero(want, sizeof want);
	if (!ok)
		return -1;
	uint32_t u = 0;
	for (int i = 0; i < 4; i++)
		u |= (uint32_t)frame[i] << (8 * i);
	*status = (int32_t)u;
	return 0;
}
