/* The name a TCP connection asks for, from its first bytes (SPEC §6.4 SNI/Host
 * check): the `server_name` of a TLS ClientHello, or the `Host` of an HTTP/1
 * request. Pure functions over what has arrived so far; nothing is decrypted
 * or answered here. */
#ifndef CELLOS_L7PEEK_H
#define CELLOS_L7PEEK_H

#include <stddef.h>
#include <stdint.h>

/* The most a connection may send before a name must be known: a ClientHello
 * larger than this (it may span several TLS records) or HTTP headers longer
 * than this are refused rather than buffered without bound. */
#define L7_PEEK_MAX 16384
/* The longest name reported (a DNS name is at most 253 characters). */
#define L7_NAME_MAX 253
/* The answer to an HTTP/1 request whose Host is not allowed (the proxy sends
 * it on the cell's connection, the queue in a segment of its own). */
#define L7_HTTP_FORBIDDEN                                                                 \
	"HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 40\r\n" \
	"Connection: close\r\n\r\ncellos: host not allowed for this cell\r\n"

enum l7_peek {
	L7_NEED_MORE,   /* consistent so far, but incomplete */
	L7_NAME,        /* one name, copied to `name` (NUL-terminated) */
	L7_NO_NAME,     /* complete, and it names nothing */
	L7_INVALID,     /* not a ClientHello / request we accept (malformed, two names, a name
			   that is not a DNS name, over L7_PEEK_MAX) */
};

/* Whether the bytes start like TLS (a handshake record) rather than HTTP. */
int l7_looks_tls(const uint8_t *buf, size_t n);

/* `name` must hold L7_NAME_MAX + 1 bytes. */
enum l7_peek l7_tls_sni(const uint8_t *buf, size_t n, char *name);
/* The Host of the first request; its port, if any, is not part of the name. An
 * absolute-form request target must name the same host. */
enum l7_peek l7_http_host(const uint8_t *buf, size_t n, char *name);

#endif
