/* Unit tests for src/isolate/hostmatch.c and src/isolate/l7peek.c: the SPEC §6.4
 * name matcher, the TLS ClientHello server_name and the HTTP/1 Host parsers,
 * with hostile inputs (truncated, oversized, two names, smuggled Host). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "isolate/hostmatch.h"
#include "isolate/l7peek.h"

/* ---- matcher ---- */

static void test_match_exact(void **state)
{
	assert_true(host_match("example.com", "example.com"));
	assert_true(host_match("example.com", "EXAMPLE.Com"));
	assert_true(host_match("Example.COM", "example.com."));
	assert_true(host_match("example.com.", "example.com"));
	assert_false(host_match("example.com", "www.example.com"));
	assert_false(host_match("example.com", "example.co"));
	assert_false(host_match("example.com", "example.com.evil"));
	assert_false(host_match("example.com", "notexample.com"));
	assert_false(host_match("example.com", ""));
	assert_false(host_match("", "example.com"));
	assert_false(host_match("example.com", "."));
}

static void test_match_wildcard(void **state)
{
	assert_true(host_match("*.example.com", "a.example.com"));
	assert_true(host_match("*.example.com", "A.B.Example.COM."));
	assert_false(host_match("*.example.com", "example.com"));   /* never the apex */
	assert_false(host_match("*.example.com", "example.com."));
	assert_false(host_match("*.example.com", ".example.com"));
	assert_false(host_match("*.example.com", "aexample.com"));  /* a label boundary */
	assert_false(host_match("*.example.com", "a.example.com.evil"));
	assert_false(host_match("*.example.com", "com"));
	/* Only a leading "*." is a wildcard. */
	assert_false(host_match("a.*.com", "a.b.com"));
	assert_true(host_match("a.*.com", "a.*.com"));
	assert_false(host_match("*", "anything"));
	assert_false(host_match("*.", "a."));
}

/* ---- TLS ClientHello ---- */

struct buf {
	uint8_t b[70000];
	size_t n;
};

static void put(struct buf *b, const void *p, size_t n)
{
	memcpy(b->b + b->n, p, n);
	b->n += n;
}
static void put8(struct buf *b, unsigned v) { b->b[b->n++] = (uint8_t)v; }
static void put16(struct buf *b, unsigned v) { put8(b, v >> 8); put8(b, v & 0xff); }
static void put24(struct buf *b, unsigned v) { put8(b, v >> 16); put16(b, v & 0xffff); }

/* A server_name extension with the given host_name entries. */
static void ext_sni(struct buf *e, const char *const *names, size_t n)
{
	size_t list = 0;
	for (size_t i = 0; i < n; i++)
		list += 3 + strlen(names[i]);
	put16(e, 0);
	put16(e, (unsigned)(2 + list));
	put16(e, (unsigned)list);
	for (size_t i = 0; i < n; i++) {
		put8(e, 0);
		put16(e, (unsigned)strlen(names[i]));
		put(e, names[i], strlen(names[i]));
	}
}

/* A ClientHello carrying extensions `ext` (NULL: no extension block), as TLS
 * records of at most `frag` bytes each. */
static void client_hello(struct buf *out, const struct buf *ext, size_t frag)
{
	static struct buf body, hs;
	body.n = hs.n = 0;
	put16(&body, 0x0303);
	for (int i = 0; i < 32; i++)
		put8(&body, (unsigned)i);
	put8(&body, 0);            /* session id */
	put16(&body, 4);           /* two cipher suites */
	put16(&body, 0x1301);
	put16(&body, 0x1302);
	put8(&body, 1);            /* compression: null */
	put8(&body, 0);
	if (ext) {
		put16(&body, (unsigned)ext->n);
		put(&body, ext->b, ext->n);
	}
	put8(&hs, 1);
	put24(&hs, (unsigned)body.n);
	put(&hs, body.b, body.n);
	out->n = 0;
	for (size_t off = 0; off < hs.n; off += frag) {
		size_t k = hs.n - off < frag ? hs.n - off : frag;
		put8(out, 0x16);
		put16(out, 0x0301);
		put16(out, (unsigned)k);
		put(out, hs.b + off, k);
	}
}

static struct buf ext, ch;

static void with_names(const char *const *names, size_t n)
{
	ext.n = 0;
	put16(&ext, 0x000a); /* supported_groups, before */
	put16(&ext, 4);
	put16(&ext, 2);
	put16(&ext, 0x001d);
	ext_sni(&ext, names, n);
	put16(&ext, 0x002b); /* supported_versions, after */
	put16(&ext, 3);
	put8(&ext, 2);
	put16(&ext, 0x0304);
}

static void test_sni_found(void **state)
{
	char name[L7_NAME_MAX + 1];
	const char *one[] = {"Www.Example.com"};
	with_names(one, 1);
	client_hello(&ch, &ext, 16384);
	assert_true(l7_looks_tls(ch.b, ch.n));
	assert_int_equal(l7_tls_sni(ch.b, ch.n, name), L7_NAME);
	assert_string_equal(name, "Www.Example.com");
	/* The same hello split over records of 7 bytes. */
	client_hello(&ch, &ext, 7);
	assert_int_equal(l7_tls_sni(ch.b, ch.n, name), L7_NAME);
	assert_string_equal(name, "Www.Example.com");
}

static void test_sni_truncated(void **state)
{
	char name[L7_NAME_MAX + 1];
	const char *one[] = {"a.example"};
	with_names(one, 1);
	client_hello(&ch, &ext, 16384);
	/* Every strict prefix waits for more; none is taken for a name. */
	for (size_t k = 0; k < ch.n; k++)
		assert_int_equal(l7_tls_sni(ch.b, k, name), L7_NEED_MORE);
	client_hello(&ch, &ext, 5);
	for (size_t k = 0; k < ch.n; k++)
		assert_int_equal(l7_tls_sni(ch.b, k, name), L7_NEED_MORE);
}

static void test_sni_absent(void **state)
{
	char name[L7_NAME_MAX + 1];
	client_hello(&ch, NULL, 16384);
	assert_int_equal(l7_tls_sni(ch.b, ch.n, name), L7_NO_NAME);
	ext.n = 0;
	put16(&ext, 0x002b);
	put16(&ext, 3);
	put8(&ext, 2);
	put16(&ext, 0x0304);
	client_hello(&ch, &ext, 16384);
	assert_int_equal(l7_tls_sni(ch.b, ch.n, name), L7_NO_NAME);
}

static void test_sni_two_names(void **state)
{
	char name[L7_NAME_MAX + 1];
	const char *two[] = {"allowed.example", "evil.example"};
	with_names(two, 2);
	client_hello(&ch, &ext, 16384);
	assert_int_equal(l7_tls_sni(ch.b, ch.n, name), L7_INVALID);
	/* Two server_name extensions of one name each. */
	ext.n = 0;
	ext_sni(&ext, two, 1);
	ext_sni(&ext, two + 1, 1);
	client_hello(&ch, &ext, 16384);
	assert_int_equal(l7_tls_sni(ch.b, ch.n, name), L7_INVALID);
}

static void test_sni_hostile_names(void **state)
{
	char name[L7_NAME_MAX + 1];
	const char *bad[] = {"", "a..example", ".example", "a\x01.example", "a example", "evil.example\r\nHost: x"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		ext.n = 0;
		ext_sni(&ext, bad + i, 1);
		client_hello(&ch, &ext, 16384);
		assert_int_equal(l7_tls_sni(ch.b, ch.n, name), L7_INVALID);
	}
	/* A name of 254 characters is not a DNS name; 253 is. */
	char longname[300];
	memset(longname, 'a', 254);
	longname[254] = '\0';
	const char *ln[] = {longname};
	ext.n = 0;
	ext_sni(&ext, ln, 1);
	client_hello(&ch, &ext, 16384);
	assert_int_equal(l7_tls_sni(ch.b, ch.n, name), L7_INVALID);
	longname[253] = '\0';
	ext.n = 0;
	ext_sni(&ext, ln, 1);
	client_hello(&ch, &ext, 16384);
	assert_int_equal(l7_tls_sni(ch.b, ch.n, name), L7_NAME);
	assert_int_equal(strlen(name), 253);
}

static void test_sni_bad_framing(void **state)
{
	char name[L7_NAME_MAX + 1];
	const char *one[] = {"a.example"};
	with_names(one, 1);
	client_hello(&ch, &ext, 16384);
	struct buf b = ch;
	b.b[0] = 0x17;                      /* application data, not a handshake */
	assert_int_equal(l7_tls_sni(b.b, b.n, name), L7_INVALID);
	b = ch;
	b.b[5] = 2;                         /* a ServerHello */
	assert_int_equal(l7_tls_sni(b.b, b.n, name), L7_INVALID);
	b = ch;
	b.b[3] = 0x40;                      /* a record over 2^14 bytes */
	b.b[4] = 0x01;
	assert_int_equal(l7_tls_sni(b.b, b.n, name), L7_INVALID);
	/* The extension block's length disagrees with what follows it. */
	b = ch;
	size_t extlen_at = 5 + 4 + 2 + 32 + 1 + 2 + 4 + 2;
	b.b[extlen_at + 1] ^= 1;
	assert_int_equal(l7_tls_sni(b.b, b.n, name), L7_INVALID);
	/* The server_name list claims more than the extension holds. */
	b = ch;
	size_t sni_list_at = extlen_at + 2 + 8 + 4;
	b.b[sni_list_at + 1] += 1;
	assert_int_equal(l7_tls_sni(b.b, b.n, name), L7_INVALID);
	/* A handshake message that claims to be larger than anything accepted. */
	b = ch;
	b.b[6] = 0x01;
	assert_int_equal(l7_tls_sni(b.b, b.n, name), L7_INVALID);
}

static void test_sni_oversized(void **state)
{
	char name[L7_NAME_MAX + 1];
	/* Padding pushes the hello over L7_PEEK_MAX: refused, not buffered. */
	const char *one[] = {"a.example"};
	with_names(one, 1);
	put16(&ext, 0x0015);
	put16(&ext, 20000);
	memset(ext.b + ext.n, 0, 20000);
	ext.n += 20000;
	client_hello(&ch, &ext, 16384);
	assert_int_equal(l7_tls_sni(ch.b, ch.n, name), L7_INVALID);
	assert_int_equal(l7_tls_sni(ch.b, L7_PEEK_MAX, name), L7_INVALID);
}

/* ---- HTTP Host ---- */

static enum l7_peek host_of(const char *req, char *name)
{
	return l7_http_host((const uint8_t *)req, strlen(req), name);
}

static void test_host_found(void **state)
{
	char name[L7_NAME_MAX + 1];
	assert_false(l7_looks_tls((const uint8_t *)"GET", 3));
	assert_int_equal(host_of("GET / HTTP/1.1\r\nHost: a.example\r\n\r\n", name), L7_NAME);
	assert_string_equal(name, "a.example");
	assert_int_equal(host_of("GET /x HTTP/1.1\r\nUser-Agent: t\r\nhOsT:\t B.Example:8080 \r\nAccept: */*\r\n\r\n", name),
			 L7_NAME);
	assert_string_equal(name, "B.Example");
	assert_int_equal(host_of("GET http://a.example/x HTTP/1.1\r\nHost: a.example\r\n\r\n", name), L7_NAME);
	assert_string_equal(name, "a.example");
	assert_int_equal(host_of("GET http://a.example:80/x HTTP/1.0\r\n\r\n", name), L7_NAME);
	assert_string_equal(name, "a.example");
	/* Bytes after the head (a body, a pipelined request) do not matter. */
	assert_int_equal(host_of("POST / HTTP/1.1\r\nHost: a.example\r\nContent-Length: 3\r\n\r\nabc", name), L7_NAME);
}

static void test_host_missing(void **state)
{
	char name[L7_NAME_MAX + 1];
	assert_int_equal(host_of("GET / HTTP/1.0\r\n\r\n", name), L7_NO_NAME);
	assert_int_equal(host_of("GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", name), L7_NO_NAME);
}

static void test_host_truncated(void **state)
{
	char name[L7_NAME_MAX + 1];
	const char *req = "GET / HTTP/1.1\r\nHost: a.example\r\n\r\n";
	for (size_t k = 0; k < strlen(req); k++)
		assert_int_equal(l7_http_host((const uint8_t *)req, k, name), L7_NEED_MORE);
}

static void test_host_hostile(void **state)
{
	char name[L7_NAME_MAX + 1];
	const char *bad[] = {
		"GET / HTTP/1.1\r\nHost: a.example\r\nHost: evil.example\r\n\r\n",     /* two Hosts */
		"GET / HTTP/1.1\r\nX: y\nHost: evil.example\r\nHost: a.example\r\n\r\n", /* bare LF */
		"GET / HTTP/1.1\r\nX: y\rHost: evil.example\r\n\r\n",                    /* bare CR */
		"GET / HTTP/1.1\r\nX: y\r\n Host: evil.example\r\n\r\n",                 /* folding */
		"GET http://evil.example/ HTTP/1.1\r\nHost: a.example\r\n\r\n",          /* target disagrees */
		"GET http://a.example@evil.example/ HTTP/1.1\r\nHost: a.example\r\n\r\n",
		"CONNECT evil.example:443 HTTP/1.1\r\nHost: a.example\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a.example:http\r\n\r\n",                         /* bad port */
		"GET / HTTP/1.1\r\nHost: [::1]\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a example\r\n\r\n",
		"GET / HTTP/2.0\r\nHost: a.example\r\n\r\n",
		"GET /\r\nHost: a.example\r\n\r\n",
		"\x16\x03\x01 / HTTP/1.1\r\nHost: a.example\r\n\r\n",
		"GET / HTTP/1.1\r\nHost : a.example\r\n\r\n",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		enum l7_peek r = host_of(bad[i], name);
		if (r != L7_INVALID)
			fail_msg("case %zu: %d", i, (int)r);
	}
	/* Not a request at all: refused before any header arrives. */
	assert_int_equal(host_of("\x16\x03", name), L7_INVALID);
	assert_int_equal(host_of("SSH-2.0-OpenSSH_9.2\r\n", name), L7_INVALID);
	/* A NUL in the head. */
	static const uint8_t nul[] = "GET / HTTP/1.1\r\nHost: a.example\r\nX: \0\r\n\r\n";
	assert_int_equal(l7_http_host(nul, sizeof nul - 1, name), L7_INVALID);
}

static void test_host_oversized(void **state)
{
	char name[L7_NAME_MAX + 1];
	static uint8_t big[L7_PEEK_MAX + 100];
	size_t n = 0;
	n += (size_t)sprintf((char *)big, "GET / HTTP/1.1\r\nX: ");
	while (n < sizeof big)
		big[n++] = 'a';
	assert_int_equal(l7_http_host(big, L7_PEEK_MAX - 1, name), L7_NEED_MORE);
	assert_int_equal(l7_http_host(big, L7_PEEK_MAX, name), L7_INVALID);
	assert_int_equal(l7_http_host(big, sizeof big, name), L7_INVALID);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_match_exact),      cmocka_unit_test(test_match_wildcard),
		cmocka_unit_test(test_sni_found),        cmocka_unit_test(test_sni_truncated),
		cmocka_unit_test(test_sni_absent),       cmocka_unit_test(test_sni_two_names),
		cmocka_unit_test(test_sni_hostile_names), cmocka_unit_test(test_sni_bad_framing),
		cmocka_unit_test(test_sni_oversized),    cmocka_unit_test(test_host_found),
		cmocka_unit_test(test_host_missing),     cmocka_unit_test(test_host_truncated),
		cmocka_unit_test(test_host_hostile),     cmocka_unit_test(test_host_oversized),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
