/* Reporting: the problem list of spec.h, one-line messages and field paths built
 * from document text, and the validator's problems and warnings (struct vctx). */
#include "spec/spec_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/vec.h"

/* A document with thousands of broken entries would otherwise print thousands of
 * lines; past this many the rest is counted, not listed. */
#define PROBLEMS_MAX 100

#define SHOWN_KEY 100  /* display buffer for one user-supplied key */

/* ---- problems ---------------------------------------------------------------- */

void problems_add(struct problems *p, const char *fmt, ...)
{
	/* Out of memory: the problem is dropped. The validator tracks failure on its
	 * own (vctx.bad), so a lost message never turns an invalid document valid. */
	if (vec_reserve(&p->items, p->n, &p->cap, sizeof *p->items, 8) < 0)
		return;
	char *s = NULL;
	va_list ap;
	va_start(ap, fmt);
	int r = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (r < 0)
		return;
	p->items[p->n++] = s;
}

void problems_free(struct problems *p)
{
	for (size_t i = 0; i < p->n; i++)
		free(p->items[i]);
	free(p->items);
	p->items = NULL;
	p->n = p->cap = 0;
}

/* ---- messages and field paths ------------------------------------------------ */

/* Copies src into dst (size >= 8) for a one-line message: control bytes (with
 * ascii_only, every non-ASCII byte too) become \xNN and what does not fit ends in
 * "...", so a hostile key or file name can neither forge extra lines nor flood. */
void spec_show(char *dst, size_t size, const char *src, bool ascii_only)
{
	size_t o = 0, i = 0;
	while (src[i]) {
		unsigned char ch = (unsigned char)src[i];
		size_t in = 1;
		bool raw = ch >= 0x20 && ch != 0x7f;
		if (ch >= 0x80) {
			/* Keep a whole well-formed UTF-8 sequence or escape the byte. */
			raw = !ascii_only && ch >= 0xc2 && ch <= 0xf4;
			in = ch >= 0xf0 ? 4 : ch >= 0xe0 ? 3 : 2;
			for (size_t k = 1; raw && k < in; k++)
				if (((unsigned char)src[i + k] & 0xc0) != 0x80)
					raw = false;
			if (!raw)
				in = 1;
		}
		size_t out = raw ? in : 4;
		if (o + out + 4 > size)
			break;
		if (raw)
			memcpy(dst + o, src + i, in);
		else
			snprintf(dst + o, 5, "\\x%02x", ch);
		o += out;
		i += in;
	}
	if (src[i]) {
		memcpy(dst + o, "...", 3);
		o += 3;
	}
	dst[o] = '\0';
}

/* A path too long for its buffer (only possible through user-supplied keys) is
 * cut visibly rather than silently. */
static const char *mark_cut(char buf[PATH_LEN], int n)
{
	if (n >= PATH_LEN)
		memcpy(buf + PATH_LEN - 4, "...", 4);
	return buf;
}

/* parent.key (just key at the top level); keys come from the document, so they
 * are shown escaped. */
const char *spec_at_key(char buf[PATH_LEN], const char *parent, const char *key)
{
	char shown[SHOWN_KEY];
	spec_show(shown, sizeof shown, key, false);
	return mark_cut(buf, snprintf(buf, PATH_LEN, "%s%s%s", parent, *parent ? "." : "", shown));
}

const char *spec_at_index(char buf[PATH_LEN], const char *parent, size_t i)
{
	return mark_cut(buf, snprintf(buf, PATH_LEN, "%s[%zu]", parent, i));
}

/* ---- the validator's problems and warnings ----------------------------------- */

void spec_fail(struct vctx *c, const char *path, const char *fmt, ...)
{
	c->bad = true;
	if (c->count >= PROBLEMS_MAX) {
		c->suppressed++;
		return;
	}
	c->count++;
	char msg[768];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	problems_add(c->probs, "%s: %s", path, msg);
}

void spec_oom(struct vctx *c) { spec_fail(c, "document", "out of memory"); }

/* A warning: something the document may do but probably did not mean (an unknown
 * key). Capped like problems, and never makes the document invalid. */
void spec_warn(struct vctx *c, const char *path, const char *fmt, ...)
{
	if (c->warn_count >= PROBLEMS_MAX) {
		c->warn_suppressed++;
		return;
	}
	c->warn_count++;
	char msg[768];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	problems_add(c->warns, "%s: %s", path, msg);
}
