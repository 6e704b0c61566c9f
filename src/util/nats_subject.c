#include "util/nats_subject.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static const struct {
	const char *name;
	size_t len;
} placeholders[] = {{"{tenantId}", 10}, {"{cellId}", 8}, {"{event}", 7}};

/* Index of the placeholder at p, or -1. */
static int placeholder_at(const char *p)
{
	for (int i = 0; i < 3; i++)
		if (strncmp(p, placeholders[i].name, placeholders[i].len) == 0)
			return i;
	return -1;
}

int nats_subject_check(const char *tpl, struct err *e)
{
	if (!*tpl)
		return err_set(e, "CELLOS_NATS_SUBJECT: empty");
	bool token_empty = true;
	for (const char *p = tpl; *p;) {
		unsigned char ch = (unsigned char)*p;
		if (ch == '{') {
			int i = placeholder_at(p);
			if (i < 0)
				return err_set(e,
					       "CELLOS_NATS_SUBJECT: '%s': unknown placeholder at '%.20s' (expected "
					       "{tenantId}, {cellId}, {event})",
					       tpl, p);
			p += placeholders[i].len;
			token_empty = false;
			continue;
		}
		if (ch == '.') {
			if (token_empty)
				return err_set(e, "CELLOS_NATS_SUBJECT: '%s' has an empty token", tpl);
			token_empty = true;
		} else if (ch <= 0x20 || ch == 0x7f || ch == '*' || ch == '>' || ch == '}') {
			const char *what = ch == ' ' || (ch >= '\t' && ch <= '\r') ? "whitespace"
					   : ch < 0x20 || ch == 0x7f		  ? "a control character"
					   : ch == '}'				  ? "a '}' outside a placeholder"
									  : ch == '*' ? "the wildcard '*'" : "the wildcard '>'";
			return err_set(e, "CELLOS_NATS_SUBJECT: '%s': %s cannot be in a subject one publishes to", tpl,
				       what);
		} else {
			token_empty = false;
		}
		p++;
	}
	if (token_empty)
		return err_set(e, "CELLOS_NATS_SUBJECT: '%s' has an empty token", tpl);
	return 0;
}

void nats_subject_token(const char *in, char *out, size_t size)
{
	size_t n = 0;
	for (const char *p = in ? in : ""; *p && n + 1 < size; p++) {
		unsigned char ch = (unsigned char)*p;
		out[n++] = ch <= 0x20 || ch == 0x7f || ch == '.' || ch == '*' || ch == '>' ? '_' : (char)ch;
	}
	if (n == 0 && size > 1)
		out[n++] = '_';
	out[n] = '\0';
}

int nats_subject_expand(const char *tpl, const char *tenant, const char *cell, const char *event, char *out,
			size_t size)
{
	const char *values[3] = {tenant, cell, event};
	size_t n = 0;
	for (const char *p = tpl; *p;) {
		int i = *p == '{' ? placeholder_at(p) : -1;
		const char *v = p;
		size_t vl = 1;
		if (i >= 0) {
			v = values[i];
			vl = strlen(v);
			p += placeholders[i].len;
		} else {
			p++;
		}
		if (n + vl >= size)
			return -1;
		memcpy(out + n, v, vl);
		n += vl;
	}
	out[n] = '\0';
	return 0;
}
