#include "util/cpio.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int pad(struct cpio *c)
{
	static const char zero[4];
	long pos = ftell(c->f);
	if (pos < 0)
		return -1;
	size_t n = (size_t)((4 - pos % 4) % 4);
	return fwrite(zero, 1, n, c->f) == n ? 0 : -1;
}

int cpio_add(struct cpio *c, const char *name, mode_t mode, const void *data, size_t len, struct err *e)
{
	size_t namesize = strlen(name) + 1;
	/* newc: 13 fields of 8 hex digits after the magic; mtime 0 keeps archives
	 * reproducible, so the image digest depends on content only. */
	if (fprintf(c->f, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X", ++c->ino, (unsigned)mode, 0u,
		    0u, S_ISDIR(mode) ? 2u : 1u, 0u, (unsigned)len, 0u, 0u, 0u, 0u, (unsigned)namesize, 0u) < 0 ||
	    fwrite(name, 1, namesize, c->f) != namesize || pad(c) < 0 ||
	    (len && fwrite(data, 1, len, c->f) != len) || pad(c) < 0)
		return err_sys(e, errno ? errno : EIO, "cpio: %s", name);
	return 0;
}

int cpio_add_file(struct cpio *c, const char *name, mode_t mode, const char *host_path, struct err *e)
{
	FILE *in = fopen(host_path, "rb");
	if (!in)
		return err_sys(e, errno, "%s", host_path);
	char *buf = NULL;
	size_t len = 0, cap = 0;
	for (;;) {
		if (len == cap) {
			cap = cap ? 2 * cap : 1 << 16;
			char *nb = realloc(buf, cap);
			if (!nb) {
				free(buf);
				fclose(in);
				return err_sys(e, ENOMEM, "%s", host_path);
			}
			buf = nb;
		}
		size_t n = fread(buf + len, 1, cap - len, in);
		len += n;
		if (n == 0)
			break;
	}
	int bad = ferror(in);
	fclose(in);
	int rc = bad ? err_sys(e, EIO, "%s", host_path) : cpio_add(c, name, S_IFREG | (mode & 07777), buf, len, e);
	free(buf);
	return rc;
}

int cpio_finish(struct cpio *c, struct err *e)
{
	if (cpio_add(c, "TRAILER!!!", 0, NULL, 0, e) < 0)
		return -1;
	if (fflush(c->f) != 0)
		return err_sys(e, errno, "cpio");
	return 0;
}
