/* URL rules of SPEC §10, and what of a URL may be shown. Pure string code (unit
 * tested in tests/unit/test_export.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "export/export.h"

/* Append `s` (n bytes) to the growing buffer; false when out of memory. */
static bool put(char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
	if (*len + n + 1 > *cap) {
		size_t nc = (*len + n + 1) * 2;
		char *g = realloc(*buf, nc);
		if (!g)
			return false;
		*buf = g;
		*cap = nc;
	}
	memcpy(*buf + *len, s, n);
	*len += n;
	(*buf)[*len] = '\0';
	return true;
}

char *export_url_for(const char *tmpl, const char *cell_id, const char *name)
{
	static const char CELL[] = "{cell_id}", NAME[] = "{artifact_name}";
	char *out = NULL;
	size_t len = 0, cap = 0;
	bool ok = true;
	if (strstr(tmpl, CELL) || strstr(tmpl, NAME)) {
		/* Cell ids and artifact names are portable identifiers
		 * ([A-Za-z0-9._-]): nothing in them needs escaping in a URL. */
		for (const char *p = tmpl; ok && *p;) {
			if (strncmp(p, CELL, sizeof CELL - 1) == 0) {
				ok = put(&out, &len, &cap, cell_id, strlen(cell_id));
				p += sizeof CELL - 1;
			} else if (strncmp(p, NAME, sizeof NAME - 1) == 0) {
				ok = put(&out, &len, &cap, name, strlen(name));
				p += sizeof NAME - 1;
			} else {
				ok = put(&out, &len, &cap, p, 1);
				p++;
			}
		}
	} else if (strchr(tmpl, '?')) {
		/* A query string is taken to be a complete (e.g. presigned) URL. */
		ok = put(&out, &len, &cap, tmpl, strlen(tmpl));
	} else {
		size_t tl = strlen(tmpl);
		ok = put(&out, &len, &cap, tmpl, tl) && (tl && tmpl[tl - 1] == '/' ? true : put(&out, &len, &cap, "/", 1)) &&
		     put(&out, &len, &cap, cell_id, strlen(cell_id)) && put(&out, &len, &cap, "/", 1) &&
		     put(&out, &len, &cap, name, strlen(name));
	}
	if (!ok || !out) {
		free(out);
		return NULL;
	}
	return out;
}

void export_url_shown(const char *url, char *out, size_t size)
{
	/* scheme://[userinfo@]host[:port][/path][?query][#fragment]: keep the
	 * scheme, host, port and path. Presigned URLs carry their signature in the
	 * query, and basic-auth credentials in the userinfo. */
	const char *sep = strstr(url, "://");
	const char *auth = sep ? sep + 3 : url;
	size_t auth_len = strcspn(auth, "/?#");
	const char *host = auth;
	for (const char *p = auth; p < auth + auth_len; p++)
		if (*p == '@')
			host = p + 1; /* the last '@' of the authority ends the userinfo */
	const char *path = auth + auth_len;
	size_t path_len = strcspn(path, "?#");
	snprintf(out, size, "%.*s%.*s%.*s", (int)(auth - url), url, (int)(auth + auth_len - host), host, (int)path_len,
		 path);
}

void export_s3_destination(const char *bucket, const char *prefix, const char *cell_id, const char *name, char *out,
			   size_t size)
{
	const char *p = prefix ? prefix : "";
	while (*p == '/')
		p++;
	size_t pl = strlen(p);
	while (pl && p[pl - 1] == '/')
		pl--;
	snprintf(out, size, "s3://%s/%.*s%s%s/%s", bucket, (int)pl, p, pl ? "/" : "", cell_id, name);
}
