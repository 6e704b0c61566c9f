#include "isolate/l7peek.h"

#include <stdbool.h>
#include <string.h>
#include <strings.h>

/* A bounds-checked reader: every take fails rather than read past the end. */
struct rd {
	const uint8_t *p;
	size_t n;
};

static bool take(struct rd *r, size_t k, struct rd *out)
{
	if (r->n < k)
		return false;
	if (out)
		*out = (struct rd){r->p, k};
	r->p += k;
	r->n -= k;
	return true;
}

static bool num(struct rd *r, size_t bytes, size_t *v)
{
	if (r->n < bytes)
		return false;
	*v = 0;
	for (size_t i = 0; i < bytes; i++)
		*v = (*v << 8) | r->p[i];
	r->p += bytes;
	r->n -= bytes;
	return true;
}

/* A length-prefixed vector: `lenbytes` of length, then that many bytes. */
static bool vec(struct rd *r, size_t lenbytes, struct rd *out)
{
	size_t len;
	return num(r, lenbytes, &len) && take(r, len, out);
}

/* A host name as it may appear in SNI or Host: 1–253 characters of letters,
 * digits, '-', '_' and '.', no empty label (one trailing '.' is the root). */
static bool copy_name(const uint8_t *s, size_t n, char *name)
{
	if (n == 0 || n > L7_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		uint8_t c = s[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
			  c == '_' || c == '.';
		if (!ok)
			return false;
		if (c == '.' && (i == 0 || s[i - 1] == '.'))
			return false;
	}
	memcpy(name, s, n);
	name[n] = '\0';
	return true;
}

int l7_looks_tls(const uint8_t *buf, size_t n)
{
	return n >= 1 && buf[0] == 0x16;
}

/* The ClientHello body (RFC 8446 §4.1.2, RFC 6066 §3). */
static enum l7_peek client_hello(struct rd b, char *name)
{
	struct rd x;
	if (!take(&b, 2 + 32, NULL) || !vec(&b, 1, &x) || x.n > 32 || !vec(&b, 2, &x) || x.n < 2 || x.n % 2 ||
	    !vec(&b, 1, &x) || x.n < 1)
		return L7_INVALID;
	if (b.n == 0)
		return L7_NO_NAME; /* no extensions at all */
	struct rd exts;
	if (!vec(&b, 2, &exts) || b.n != 0)
		return L7_INVALID;
	bool have = false;
	while (exts.n) {
		size_t type;
		struct rd data;
		if (!num(&exts, 2, &type) || !vec(&exts, 2, &data))
			return L7_INVALID;
		if (type != 0)
			continue;
		if (have)
			return L7_INVALID; /* two server_name extensions: which would the server use? */
		struct rd list;
		if (!vec(&data, 2, &list) || data.n != 0 || list.n == 0)
			return L7_INVALID;
		while (list.n) {
			size_t kind;
			struct rd host;
			if (!num(&list, 1, &kind) || !vec(&list, 2, &host))
				return L7_INVALID;
			if (kind != 0)
				continue; /* no other name type is defined; skip it as RFC 6066 says */
			if (have || !copy_name(host.p, host.n, name))
				return L7_INVALID; /* two host names, or not a DNS name */
			have = true;
		}
		if (!have)
			return L7_INVALID;
	}
	return have ? L7_NAME : L7_NO_NAME;
}

enum l7_peek l7_tls_sni(const uint8_t *buf, size_t n, char *name)
{
	/* The ClientHello may span several handshake records: join their bodies. */
	uint8_t hs[L7_PEEK_MAX];
	size_t hn = 0, off = 0;
	if (n > L7_PEEK_MAX)
		n = L7_PEEK_MAX;
	while (n - off >= 5) {
		const uint8_t *h = buf + off;
		size_t len = (size_t)h[3] << 8 | h[4];
		if (h[0] != 0x16 || h[1] != 3 || len == 0 || len > 16384)
			return L7_INVALID;
		if (n - off - 5 < len)
			break;
		memcpy(hs + hn, h + 5, len); /* hn + len <= off + 5 + len <= n */
		hn += len;
		off += 5 + len;
		if (hn < 4)
			continue;
		if (hs[0] != 1)
			return L7_INVALID; /* the first handshake message is a ClientHello */
		size_t hlen = (size_t)hs[1] << 16 | (size_t)hs[2] << 8 | hs[3];
		if (hlen > L7_PEEK_MAX - 9)
			return L7_INVALID;
		if (hn >= 4 + hlen)
			return client_hello((struct rd){hs + 4, hlen}, name);
	}
	return n >= L7_PEEK_MAX ? L7_INVALID : L7_NEED_MORE;
}

/* ---- HTTP/1 ---- */

static bool is_tchar(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* "host[:port]" → the host, as a DNS name. */
static bool authority_host(const uint8_t *s, size_t n, char *name)
{
	size_t h = 0;
	while (h < n && s[h] != ':')
		h++;
	if (h < n) {
		size_t digits = n - h - 1;
		if (digits == 0 || digits > 5)
			return false;
		for (size_t i = h + 1; i < n; i++)
			if (s[i] < '0' || s[i] > '9')
				return false;
	}
	return copy_name(s, h, name);
}

static const uint8_t *find_crlf(const uint8_t *p, const uint8_t *end)
{
	for (; p + 1 < end; p++)
		if (p[0] == '\r' && p[1] == '\n')
			return p;
	return NULL;
}

static enum l7_peek request_head(const uint8_t *p, const uint8_t *end, char *name)
{
	/* A lone CR or LF, or a NUL, is a line end to some servers and not to
	 * others: a second Host could hide behind it. */
	for (const uint8_t *q = p; q < end; q++)
		if (!*q || (*q == '\r' && (q + 1 == end || q[1] != '\n')) || (*q == '\n' && (q == p || q[-1] != '\r')))
			return L7_INVALID;
	/* request-line = method SP request-target SP HTTP-version */
	const uint8_t *eol = find_crlf(p, end);
	const uint8_t *m = p;
	while (m < eol && is_tchar(*m))
		m++;
	if (m == p || m >= eol || *m != ' ')
		return L7_INVALID;
	const uint8_t *t = m + 1, *te = t;
	while (te < eol && *te > ' ' && *te != 0x7f)
		te++;
	if (te == t || te >= eol || *te != ' ')
		return L7_INVALID;
	size_t vl = (size_t)(eol - te - 1);
	if (vl != 8 || (memcmp(te + 1, "HTTP/1.1", 8) != 0 && memcmp(te + 1, "HTTP/1.0", 8) != 0))
		return L7_INVALID;

	/* A target that is not a path names a host of its own (absolute-form, or
	 * CONNECT's authority-form): a server may prefer it to Host, so both must agree. */
	char target_host[L7_NAME_MAX + 1] = "";
	if (*t != '/' && !(te - t == 1 && *t == '*')) {
		const uint8_t *a = t;
		size_t tn = (size_t)(te - t);
		if (tn > 7 && strncasecmp((const char *)t, "http://", 7) == 0)
			a = t + 7;
		else if (tn > 8 && strncasecmp((const char *)t, "https://", 8) == 0)
			a = t + 8;
		const uint8_t *ae = a;
		while (ae < te && *ae != '/' && *ae != '?' && *ae != '#')
			ae++;
		if (memchr(a, '@', (size_t)(ae - a)) || !authority_host(a, (size_t)(ae - a), target_host))
			return L7_INVALID;
	}

	bool have = false;
	for (const uint8_t *l = eol + 2;;) {
		const uint8_t *le = find_crlf(l, end);
		if (le == l)
			break; /* the empty line: end of the head */
		if (*l == ' ' || *l == '\t')
			return L7_INVALID; /* obsolete line folding could hide a second Host */
		const uint8_t *c = l;
		while (c < le && is_tchar(*c))
			c++;
		if (c == l || c >= le || *c != ':')
			return L7_INVALID;
		if (c - l == 4 && strncasecmp((const char *)l, "host", 4) == 0) {
			if (have)
				return L7_INVALID; /* two Host headers (RFC 9112 §3.2: a 400) */
			const uint8_t *v = c + 1, *ve = le;
			while (v < ve && (*v == ' ' || *v == '\t'))
				v++;
			while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
				ve--;
			if (!authority_host(v, (size_t)(ve - v), name))
				return L7_INVALID;
			have = true;
		}
		l = le + 2;
	}
	if (target_host[0]) {
		if (have && strcasecmp(name, target_host) != 0)
			return L7_INVALID;
		strcpy(name, target_host);
		return L7_NAME;
	}
	return have ? L7_NAME : L7_NO_NAME;
}

enum l7_peek l7_http_host(const uint8_t *buf, size_t n, char *name)
{
	if (n > L7_PEEK_MAX)
		n = L7_PEEK_MAX;
	const uint8_t *end = NULL;
	for (size_t i = 0; i + 3 < n; i++)
		if (memcmp(buf + i, "\r\n\r\n", 4) == 0) {
			end = buf + i + 4;
			break;
		}
	if (!end) {
		/* Refuse early what cannot become a request: the method is a token. */
		size_t i = 0;
		while (i < n && is_tchar(buf[i]))
			i++;
		if (i < n && buf[i] != ' ')
			return L7_INVALID;
		return n >= L7_PEEK_MAX ? L7_INVALID : L7_NEED_MORE;
	}
	return request_head(buf, end, name);
}
