/* A guest image made by `cellctl image build` (SPEC §6.3): manifest.json and the
 * files it names, each with its SHA-256. Shared by the microVM backends (qemu,
 * firecracker): VMM-independent. */
#ifndef CELLOS_VM_IMAGE_H
#define CELLOS_VM_IMAGE_H

#include <limits.h>
#include <stdbool.h>

#include "util/err.h"

#define VM_MANIFEST "manifest.json"
#define VM_MANIFEST_VERSION 1

enum vm_image_part {
	VM_IMG_VMLINUX = 0, /* uncompressed ELF kernel: what both VMMs boot */
	VM_IMG_BZIMAGE,     /* the kernel as Debian ships it (optional) */
	VM_IMG_INITRAMFS,   /* cpio: cellos-init, busybox, modules */
	VM_IMG_ROOTFS,      /* read-only ext4 root (optional) */
	VM_IMG_N
};

/* The manifest's key for each part ("vmlinux", "bzImage", "initramfs", "rootfs"). */
const char *vm_image_part_name(enum vm_image_part p);

struct vm_image_file {
	bool present;
	char path[PATH_MAX];
	char sha256[65];        /* as the manifest says, checked against the file */
	int fd;                 /* open O_RDONLY on the verified file, -1 when absent */
};

struct vm_image {
	char dir[PATH_MAX];
	char kernel_release[128];
	struct vm_image_file f[VM_IMG_N];
};

/* Read DIR/manifest.json and open every file it names; hash each one through
 * the fd that stays open (the VMM is handed that file, /proc/self/fd/N, so a
 * later rename cannot swap it); any mismatch, missing file or malformed manifest
 * is an error naming CELLOS_VM_IMAGE_DIR and the part. vmlinux and initramfs are
 * required. On error nothing stays open. */
int vm_image_open(struct vm_image *img, const char *dir, struct err *e);
void vm_image_close(struct vm_image *img);

/* The digests lifecycle.started reports: kernelDigestSha256 (vmlinux) and
 * rootfsDigestSha256 (the ext4 root when there is one, else the initramfs, which
 * is then the guest's root). */
const char *vm_image_kernel_digest(const struct vm_image *img);
const char *vm_image_rootfs_digest(const struct vm_image *img);

/* SHA-256 of what remains to be read from fd (read from offset 0), lower-case hex. */
int vm_sha256_fd(int fd, char hex[65], struct err *e);

#endif
