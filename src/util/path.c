#include "util/path.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

int path_clean(const char *path, char *out, size_t size)
{
	size_t len = 0;
	for (const char *p = path; *p;) {
		while (*p == '/')
			p++;
		size_t n = strcspn(p, "/");
		if (n == 0)
			break;
		if (n == 2 && p[0] == '.' && p[1] == '.') {
			errno = EINVAL;
			return -1;
		}
		if (!(n == 1 && p[0] == '.')) {
			if (len + n + 2 > size) {
				errno = ENAMETOOLONG;
				return -1;
			}
			out[len++] = '/';
			memcpy(out + len, p, n);
			len += n;
		}
		p += n;
	}
	if (size)
		out[len] = '\0';
	return 0;
}

bool path_within_any(const char *path, char *const *prefixes)
{
	for (char *const *p = prefixes; p && *p; p++) {
		size_t n = strlen(*p);
		if (strncmp(path, *p, n) == 0 && (path[n] == '\0' || path[n] == '/'))
			return true;
	}
	return false;
}

bool path_search_next(const char **it, const char *name, bool absolute_only, char *cand, size_t size)
{
	while (*it && **it) {
		const char *p = *it;
		size_t len = strcspn(p, ":");
		*it = p[len] ? p + len + 1 : p + len;
		if (!len || (absolute_only && p[0] != '/'))
			continue;
		if ((size_t)snprintf(cand, size, "%.*s/%s", (int)len, p, name) < size)
			return true;
	}
	return false;
}

size_t path_depth(const char *clean)
{
	size_t n = 0;
	for (const char *p = clean; *p; p++)
		n += *p == '/';
	return n;
}
