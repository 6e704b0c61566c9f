/* The exit report of a microVM cell (SPEC §6.3): upstream's frame, 4 bytes of
 * little-endian exit status, followed by an HMAC-SHA256 tag over those 4 bytes
 * and the run id, keyed by the per-boot 32-byte secret. Shared by the guest's
 * cellos-init (which writes it) and the host (which checks it), so it lives in
 * util, the one layer both may include. */
#ifndef CELLOS_VM_FRAME_H
#define CELLOS_VM_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define VM_KEY_BYTES 32
#define VM_TAG_BYTES 32
#define VM_FRAME_BYTES (4 + VM_TAG_BYTES)

/* Fill frame[VM_FRAME_BYTES] for `status`. */
void vm_frame_make(const unsigned char key[VM_KEY_BYTES], const char *run_id, int32_t status,
		   unsigned char frame[VM_FRAME_BYTES]);

/* 0 and *status when `frame` (len bytes) is a frame with a valid tag for this
 * key and run id; -1 otherwise (short, or a tag that does not verify). */
int vm_frame_check(const unsigned char key[VM_KEY_BYTES], const char *run_id, const unsigned char *frame, size_t len,
		   int32_t *status);

#endif
