#include "backend/vm_image.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const part_names[VM_IMG_N] = {"vmlinux", "bzImage", "initramfs", "rootfs"};

const char *vm_image_part_name(enum vm_image_part p) { return part_names[p]; }

int vm_sha256_fd(int fd, char hex[65], struct err *e)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return err_sys(e, errno, "fstat");
	unsigned char h[crypto_hash_sha256_BYTES];
	if (st.st_size == 0) {
		crypto_hash_sha256(h, (const unsigned char *)"", 0);
	} else {
		/* One mapping and one call: the kernel image is tens of MB, read on
		 * every boot. */
		void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
		if (m == MAP_FAILED)
			return err_sys(e, errno, "mmap");
		madvise(m, (size_t)st.st_size, MADV_SEQUENTIAL);
		crypto_hash_sha256(h, m, (unsigned long long)st.st_size);
		munmap(m, (size_t)st.st_size);
	}
	sodium_bin2hex(hex, 65, h, sizeof h);
	return 0;
}

/* Digests of image files already hashed, keyed by device and inode, valid
 * while size, mtime and ctime are unchanged: any write to a file changes its
 * ctime, which only the clock's owner (root) can forge. The kernel alone is
 * tens of MB, and hashing it on every boot was a large share of a cell's
 * start. Root's own directory, so no other user can plant an entry. */
#define DIGEST_CACHE "/run/cellos/vm-digests"

static void cache_name(const struct stat *st, char *buf, size_t size)
{
	snprintf(buf, size, DIGEST_CACHE "/%llx-%llx", (unsigned long long)st->st_dev, (unsigned long long)st->st_ino);
}

static void cache_key(const struct stat *st, char *buf, size_t size)
{
	snprintf(buf, size, "%lld %lld.%09ld %lld.%09ld ", (long long)st->st_size, (long long)st->st_mtim.tv_sec,
		 st->st_mtim.tv_nsec, (long long)st->st_ctim.tv_sec, st->st_ctim.tv_nsec);
}

static bool cache_get(const struct stat *st, char hex[65])
{
	char path[128], want[128], got[256] = "";
	cache_name(st, path, sizeof path);
	cache_key(st, want, sizeof want);
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return false;
	struct stat cs;
	ssize_t n = fstat(fd, &cs) == 0 && cs.st_uid == 0 && !(cs.st_mode & 022) ? read(fd, got, sizeof got - 1) : -1;
	close(fd);
	size_t wl = strlen(want);
	if (n != (ssize_t)(wl + 64) || strncmp(got, want, wl) != 0)
		return false;
	memcpy(hex, got + wl, 64);
	hex[64] = 0;
	return true;
}

static void cache_put(const struct stat *st, const char hex[65])
{
	if (geteuid() != 0 || (mkdir("/run/cellos", 0711) < 0 && errno != EEXIST) ||
	    (mkdir(DIGEST_CACHE, 0700) < 0 && errno != EEXIST))
		return;
	char path[128], tmp[160], line[256];
	cache_name(st, path, sizeof path);
	snprintf(tmp, sizeof tmp, "%s.%d", path, (int)getpid());
	cache_key(st, line, sizeof line);
	strcat(line, hex);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	bool ok = write(fd, line, strlen(line)) == (ssize_t)strlen(line);
	close(fd);
	if (!ok || rename(tmp, path) < 0)
		unlink(tmp);
}

static bool is_hex64(const char *s)
{
	if (strlen(s) != 64)
		return false;
	for (; *s; s++)
		if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
			return false;
	return true;
}

/* A part's file name: a plain name inside the image directory. */
static bool plain_name(const char *s)
{
	return s[0] && !strchr(s, '/') && strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

void vm_image_close(struct vm_image *img)
{
	for (int i = 0; i < VM_IMG_N; i++) {
		if (img->f[i].present && img->f[i].fd >= 0)
			close(img->f[i].fd);
		img->f[i].fd = -1;
		img->f[i].present = false;
	}
}

static int open_part(struct vm_image *img, const char *dir, enum vm_image_part p, json_t *o, struct err *e)
{
	struct vm_image_file *f = &img->f[p];
	const char *name = json_string_value(json_object_get(o, "path"));
	const char *sha = json_string_value(json_object_get(o, "sha256"));
	if (!name || !plain_name(name) || !sha || !is_hex64(sha))
		return err_set(e, "CELLOS_VM_IMAGE_DIR: %s/" VM_MANIFEST ": files.%s needs a plain \"path\" and a hex \"sha256\"",
			       img->dir, part_names[p]);
	snprintf(f->path, sizeof f->path, "%s/%s", dir, name);
	snprintf(f->sha256, sizeof f->sha256, "%s", sha);
	f->fd = open(f->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (f->fd < 0)
		return err_sys(e, errno, "CELLOS_VM_IMAGE_DIR: %s (%s)", f->path, part_names[p]);
	f->present = true;
	struct stat st;
	if (fstat(f->fd, &st) < 0 || !S_ISREG(st.st_mode))
		return err_set(e, "CELLOS_VM_IMAGE_DIR: %s (%s) is not a regular file", f->path, part_names[p]);
	char got[65];
	struct err he = {0};
	if (!cache_get(&st, got)) {
		if (vm_sha256_fd(f->fd, got, &he) < 0)
			return err_set(e, "CELLOS_VM_IMAGE_DIR: %s (%s): %s", f->path, part_names[p], he.msg);
		cache_put(&st, got);
	}
	if (strcmp(got, sha) != 0)
		return err_set(e, "CELLOS_VM_IMAGE_DIR: %s (%s) has SHA-256 %s, not %s as " VM_MANIFEST " says (the image was changed)",
			       f->path, part_names[p], got, sha);
	return 0;
}

int vm_image_open(struct vm_image *img, const char *dir, struct err *e)
{
	memset(img, 0, sizeof *img);
	for (int i = 0; i < VM_IMG_N; i++)
		img->f[i].fd = -1;
	snprintf(img->dir, sizeof img->dir, "%s", dir);
	char mpath[PATH_MAX + 32];
	snprintf(mpath, sizeof mpath, "%s/" VM_MANIFEST, dir);
	json_error_t je;
	json_t *m = json_load_file(mpath, JSON_REJECT_DUPLICATES, &je);
	if (!m)
		return err_set(e, "CELLOS_VM_IMAGE_DIR: %s: %s (build one with `cellctl image build --out %s`)", mpath,
			       je.text, dir);
	int rc = 0;
	json_t *files = json_object_get(m, "files");
	json_t *ver = json_object_get(m, "version");
	if (!json_is_integer(ver) || json_integer_value(ver) != VM_MANIFEST_VERSION || !json_is_object(files)) {
		rc = err_set(e, "CELLOS_VM_IMAGE_DIR: %s: not a version %d manifest with \"files\"", mpath,
			     VM_MANIFEST_VERSION);
		goto out;
	}
	const char *rel = json_string_value(json_object_get(m, "kernelRelease"));
	snprintf(img->kernel_release, sizeof img->kernel_release, "%s", rel ? rel : "");
	for (int p = 0; p < VM_IMG_N && rc == 0; p++) {
		json_t *o = json_object_get(files, part_names[p]);
		if (!o) {
			if (p == VM_IMG_VMLINUX || p == VM_IMG_INITRAMFS)
				rc = err_set(e, "CELLOS_VM_IMAGE_DIR: %s: files.%s is missing", mpath, part_names[p]);
			continue;
		}
		rc = open_part(img, dir, (enum vm_image_part)p, o, e);
	}
out:
	json_decref(m);
	if (rc < 0)
		vm_image_close(img);
	return rc;
}

const char *vm_image_kernel_digest(const struct vm_image *img) { return img->f[VM_IMG_VMLINUX].sha256; }

const char *vm_image_rootfs_digest(const struct vm_image *img)
{
	return img->f[VM_IMG_ROOTFS].present ? img->f[VM_IMG_ROOTFS].sha256 : img->f[VM_IMG_INITRAMFS].sha256;
}
