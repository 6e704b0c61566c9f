/* A warm cell's claim record (isolate/cellinit.h): what the supervisor learns
 * from the document after the cell's init exists, sent to it in one SEQPACKET
 * record. Strings are NUL-terminated; a string field is preceded by one byte
 * (0: NULL, 1: present), a list by a 32-bit count (UINT32_MAX: NULL). */
#include "isolate/cellinit.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct buf {
	char *p;
	size_t len, cap;
	bool full;
};

static void put(struct buf *b, const void *d, size_t n)
{
	if (b->full || b->len + n > b->cap) {
		b->full = true;
		return;
	}
	memcpy(b->p + b->len, d, n);
	b->len += n;
}

static void put_str(struct buf *b, const char *s)
{
	char flag = s != NULL;
	put(b, &flag, 1);
	if (s)
		put(b, s, strlen(s) + 1);
}

static void put_list(struct buf *b, char *const *l)
{
	uint32_t n = 0;
	if (!l)
		n = UINT32_MAX;
	else
		while (l[n])
			n++;
	put(b, &n, sizeof n);
	for (uint32_t i = 0; l && i < n; i++)
		put(b, l[i], strlen(l[i]) + 1);
}

int cellinit_pack(const struct cellinit_args *a, char **out, size_t *len)
{
	struct buf b = {.cap = CELLINIT_PACK_MAX - 1};
	if (!(b.p = malloc(b.cap)))
		return -1;
	put_str(&b, a->hostname);
	put_str(&b, a->workdir);
	put_str(&b, a->home);
	put_str(&b, a->path);
	put_list(&b, a->argv);
	put_list(&b, a->envp);
	put_list(&b, a->argv0_prefixes);
	if (b.full) {
		/* It may hold the environment's secrets. */
		explicit_bzero(b.p, b.cap);
		free(b.p);
		return -1;
	}
	*out = b.p;
	*len = b.len;
	return 0;
}

struct rd {
	char *p;
	size_t len, off;
	bool bad;
};

static char *get_str_raw(struct rd *r)
{
	char *end = r->off < r->len ? memchr(r->p + r->off, '\0', r->len - r->off) : NULL;
	if (!end) {
		r->bad = true;
		return NULL;
	}
	char *s = r->p + r->off;
	r->off = (size_t)(end - r->p) + 1;
	return s;
}

static const char *get_str(struct rd *r)
{
	if (r->bad || r->off >= r->len) {
		r->bad = true;
		return NULL;
	}
	return r->p[r->off++] ? get_str_raw(r) : NULL;
}

static char **get_list(struct rd *r)
{
	uint32_t n;
	if (r->bad || r->len - r->off < sizeof n) {
		r->bad = true;
		return NULL;
	}
	memcpy(&n, r->p + r->off, sizeof n);
	r->off += sizeof n;
	if (n == UINT32_MAX)
		return NULL;
	if (n > r->len) {
		r->bad = true;
		return NULL;
	}
	char **l = calloc((size_t)n + 1, sizeof *l);
	if (!l) {
		r->bad = true;
		return NULL;
	}
	for (uint32_t i = 0; i < n && !r->bad; i++)
		l[i] = get_str_raw(r);
	return l;
}

int cellinit_unpack(char *buf, size_t len, struct cellinit_args *a)
{
	struct rd r = {.p = buf, .len = len};
	a->hostname = get_str(&r);
	a->workdir = get_str(&r);
	a->home = get_str(&r);
	a->path = get_str(&r);
	a->argv = get_list(&r);
	a->envp = get_list(&r);
	a->argv0_prefixes = get_list(&r);
	return r.bad || r.off != r.len || !a->hostname ? -1 : 0;
}
