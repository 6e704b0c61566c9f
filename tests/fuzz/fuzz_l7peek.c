/* libFuzzer harness: the SNI/Host check's parsers (src/isolate/l7peek.c) and the
 * name matcher. Any bytes, as the first bytes of a connection from a hostile
 * workload: no crash, no read past the input, and a reported name is always a
 * DNS name of at most L7_NAME_MAX characters that matches itself. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "isolate/hostmatch.h"
#include "isolate/l7peek.h"

static void check(enum l7_peek r, const char *name)
{
	if (r != L7_NAME)
		return;
	size_t n = strlen(name);
	if (n == 0 || n > L7_NAME_MAX || !host_match(name, name))
		__builtin_trap();
	for (size_t i = 0; i < n; i++)
		if (!(name[i] == '.' || name[i] == '-' || name[i] == '_' || (name[i] >= '0' && name[i] <= '9') ||
		      ((name[i] | 0x20) >= 'a' && (name[i] | 0x20) <= 'z')))
			__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char name[L7_NAME_MAX + 1];
	check(l7_tls_sni(data, size, name), name);
	check(l7_http_host(data, size, name), name);
	/* The matcher on two NUL-terminated halves of the input. */
	char a[300], b[300];
	size_t h = size / 2 < sizeof a - 1 ? size / 2 : sizeof a - 1;
	size_t k = size - size / 2 < sizeof b - 1 ? size - size / 2 : sizeof b - 1;
	memcpy(a, data, h);
	a[h] = '\0';
	memcpy(b, data + size / 2, k);
	b[k] = '\0';
	if (host_match(a, b) && a[0] != '*' && strlen(a) && strlen(b) && !host_match(b, a))
		__builtin_trap(); /* without a wildcard, matching is symmetric */
	return 0;
}
