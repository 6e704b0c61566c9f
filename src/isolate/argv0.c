#include "isolate/argv0.h"

#include <limits.h>
#include <string.h>

bool argv0_normalize(const char *path, char *out, size_t size)
{
	if (!path || path[0] != '/' || size < 2)
		return false;
	size_t len = 0;
	out[len++] = '/';
	for (const char *p = path; *p;) {
		while (*p == '/')
			p++;
		size_t n = strcspn(p, "/");
		if (n == 0)
			break;
		if (n == 1 && p[0] == '.') {
			/* nothing */
		} else if (n == 2 && p[0] == '.' && p[1] == '.') {
			/* Back to the previous component; ".." of "/" is "/". */
			while (len > 1 && out[len - 1] != '/')
				len--;
			if (len > 1)
				len--;
		} else {
			if (len + (len > 1) + n + 1 > size)
				return false;
			if (len > 1)
				out[len++] = '/';
			memcpy(out + len, p, n);
			len += n;
		}
		p += n;
	}
	out[len] = '\0';
	return true;
}

bool argv0_allowed(const char *program, char *const *prefixes)
{
	if (!prefixes)
		return true;
	char prog[PATH_MAX], pre[PATH_MAX];
	if (!argv0_normalize(program, prog, sizeof prog))
		return false;
	for (char *const *p = prefixes; *p; p++) {
		if (!argv0_normalize(*p, pre, sizeof pre))
			continue;
		size_t n = strlen(pre);
		if (n == 1) /* "/" allows every absolute path */
			return true;
		if (strncmp(prog, pre, n) == 0 && prog[n] == '/')
			return true;
	}
	return false;
}
