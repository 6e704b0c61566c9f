/* The syntax rules of names and addresses in the document: portable ids, secret
 * and environment names, subject tokens, clean paths, DNS names, IP/CIDR and
 * ip:port. Pure functions of a string. */
#include "spec/spec_internal.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <limits.h>
#include <string.h>

/* ---- small character and syntax rules ---------------------------------------- */

/* ASCII classes by hand: <ctype.h> depends on the locale. */
static bool is_digit(char ch) { return ch >= '0' && ch <= '9'; }
static bool is_alpha(char ch) { return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z'); }
static bool is_alnum(char ch) { return is_alpha(ch) || is_digit(ch); }

bool spec_is_portable_id(const char *s)
{
	if (!s || !is_alnum(s[0]))
		return false;
	size_t n = 1;
	for (; s[n]; n++)
		if (!is_alnum(s[n]) && s[n] != '.' && s[n] != '_' && s[n] != '-')
			return false;
	return n <= 128 && !strstr(s, "..");
}

void spec_secret_key(const char *ref, char *buf, size_t size)
{
	size_t n = 0;
	for (const char *p = ref; *p && n + 1 < size; p++)
		buf[n++] = (*p == '-' || *p == '.') ? '_' : (char)toupper((unsigned char)*p);
	if (size)
		buf[n] = '\0';
}

bool spec_is_secret_name(const char *s)
{
	if (!s || !(is_alpha(s[0]) || s[0] == '_'))
		return false;
	size_t n = 1;
	for (; s[n]; n++)
		if (!is_alnum(s[n]) && s[n] != '_' && s[n] != '.' && s[n] != '-')
			return false;
	return n <= 128;
}

bool spec_is_env_name(const char *s)
{
	if (!(is_alpha(s[0]) || s[0] == '_'))
		return false;
	for (s++; *s; s++)
		if (!is_alnum(*s) && *s != '_')
			return false;
	return true;
}

/* A NATS subject token: the tenant id is spliced into subjects, where '.' splits
 * tokens, '*' and '>' are wildcards and whitespace ends the subject. Control bytes
 * and the empty string are refused for the same reason. */
bool spec_is_subject_token(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch <= 0x20 || ch == 0x7f || ch == '.' || ch == '*' || ch == '>')
			return false;
	}
	return true;
}

/* An absolute path without ".." components, shorter than PATH_MAX. ".." is refused
 * because these paths are resolved inside a scaffold (workingDirectory) or beneath
 * the workspace (artifacts): ".." could only ever mean "escape". */
bool spec_is_clean_abs_path(const char *s)
{
	if (s[0] != '/' || strlen(s) >= PATH_MAX)
		return false;
	for (const char *p = s; *p;) {
		while (*p == '/')
			p++;
		const char *end = strchrnul(p, '/');
		if (end - p == 2 && p[0] == '.' && p[1] == '.')
			return false;
		p = end;
	}
	return true;
}

/* Decimal without sign or leading zeros, value <= max. */
static bool parse_decimal(const char *s, long max, long *out)
{
	size_t n = strlen(s);
	if (n == 0 || n > 10 || (s[0] == '0' && n > 1))
		return false;
	long v = 0;
	for (size_t i = 0; i < n; i++) {
		if (!is_digit(s[i]))
			return false;
		v = v * 10 + (s[i] - '0');
	}
	if (v > max)
		return false;
	*out = v;
	return true;
}

/* 4 or 6 for an address literal of that family, 0 otherwise. */
static int ip_family(const char *s)
{
	unsigned char buf[sizeof(struct in6_addr)];
	if (inet_pton(AF_INET, s, buf) == 1)
		return 4;
	if (inet_pton(AF_INET6, s, buf) == 1)
		return 6;
	return 0;
}

/* Copies s[0..n) into a small buffer for inet_pton; false if it cannot fit. */
static bool copy_addr(char dst[INET6_ADDRSTRLEN], const char *s, size_t n)
{
	if (n == 0 || n >= INET6_ADDRSTRLEN)
		return false;
	memcpy(dst, s, n);
	dst[n] = '\0';
	return true;
}

bool spec_is_dns_name(const char *s)
{
	size_t total = strlen(s);
	if (total == 0 || total > 253)
		return false;
	if (s[0] == '*' && s[1] == '.')
		s += 2;
	size_t len = 0;
	bool all_digits = true;
	char prev = '\0';
	for (const char *p = s;; p++) {
		if (*p == '.' || *p == '\0') {
			if (len == 0 || len > 63 || prev == '-')
				return false;
			/* A final label of digits only is no host name but a mistyped
			 * address ("192.0.2.300"); no top-level domain is numeric. */
			if (*p == '\0')
				return !all_digits;
			len = 0;
			all_digits = true;
			prev = '.';
			continue;
		}
		if (!is_alnum(*p) && *p != '-')
			return false;
		if (len == 0 && *p == '-')
			return false;
		if (!is_digit(*p))
			all_digits = false;
		len++;
		prev = *p;
	}
}

int spec_host_family(const char *host)
{
	const char *slash = strchr(host, '/');
	if (!slash) {
		int fam = ip_family(host);
		if (fam)
			return fam;
		return spec_is_dns_name(host) ? 0 : -1;
	}
	/* CIDR. Host bits after the prefix are tolerated (10.0.0.1/8 means
	 * 10.0.0.0/8), as nft and ip(8) do. */
	char addr[INET6_ADDRSTRLEN];
	long prefix;
	if (!copy_addr(addr, host, (size_t)(slash - host)))
		return -1;
	int fam = ip_family(addr);
	if (!fam || !parse_decimal(slash + 1, fam == 4 ? 32 : 128, &prefix))
		return -1;
	return fam;
}

/* "ip:port", IPv6 in brackets ("[::1]:53"): without brackets its colons would be
 * ambiguous with the port separator. */
bool spec_is_ip_port(const char *s)
{
	char addr[INET6_ADDRSTRLEN];
	const char *colon;
	int want;
	long port;
	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (!close || close[1] != ':' || !copy_addr(addr, s + 1, (size_t)(close - s - 1)))
			return false;
		colon = close + 1;
		want = 6;
	} else {
		colon = strrchr(s, ':');
		if (!colon || !copy_addr(addr, s, (size_t)(colon - s)))
			return false;
		want = 4;
	}
	return ip_family(addr) == want && parse_decimal(colon + 1, 65535, &port) && port >= 1;
}
