#include "isolate/hostmatch.h"

#include <stddef.h>
#include <string.h>
#include <strings.h>

/* Length without one trailing '.' (the root label of a fully qualified name,
 * as resolvers print it). */
static size_t name_len(const char *s)
{
	size_t n = strlen(s);
	return n && s[n - 1] == '.' ? n - 1 : n;
}

bool host_match(const char *pattern, const char *name)
{
	size_t pn = name_len(pattern), nn = name_len(name);
	if (pn == 0 || nn == 0)
		return false;
	if (pn > 2 && pattern[0] == '*' && pattern[1] == '.') {
		/* "*.example.com": the name must end in ".example.com" and have a
		 * non-empty label before that dot. */
		size_t sn = pn - 1; /* ".example.com" */
		if (nn <= sn)
			return false;
		const char *tail = name + (nn - sn);
		return tail[0] == '.' && nn - sn > 0 && strncasecmp(tail, pattern + 1, sn) == 0;
	}
	return pn == nn && strncasecmp(pattern, name, pn) == 0;
}
