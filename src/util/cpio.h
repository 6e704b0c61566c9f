/* A writer of cpio "newc" archives, the format the Linux kernel unpacks as an
 * initramfs. Used for the guest image's initramfs (cellctl image build) and for
 * the per-boot job archive appended to it (the kernel unpacks concatenated
 * archives in order, so the job needs no disk of its own). */
#ifndef CELLOS_CPIO_H
#define CELLOS_CPIO_H

#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

#include "util/err.h"

struct cpio {
	FILE *f;
	unsigned ino;
};

/* One entry: a directory (S_IFDIR), a regular file (S_IFREG, `data` of `len`
 * bytes) or a symlink (S_IFLNK, `data` is the target). Owner root. */
int cpio_add(struct cpio *c, const char *name, mode_t mode, const void *data, size_t len, struct err *e);
/* A regular file's content from a host file. */
int cpio_add_file(struct cpio *c, const char *name, mode_t mode, const char *host_path, struct err *e);
/* The TRAILER!!! entry that ends an archive. */
int cpio_finish(struct cpio *c, struct err *e);

#endif
