/* The NATS text protocol on one non-blocking socket. See nats_wire.h. */
#include "sink/nats_wire.h"

#include <errno.h>
#include <jansson.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/ids.h"

/* After a failed or lost connection, the next URL is tried this much later. */
#define WIRE_RECONNECT_MS 250
/* A connection whose server has not answered our PING by then fails. */
#define WIRE_CONNECT_MS 1000
/* The server's max_payload until its INFO says (NATS's default, 1 MiB). */
#define WIRE_DEFAULT_MAX_PAYLOAD (1024 * 1024)

struct buf {
	char *p;
	size_t len, cap;
};

struct url {
	char *host, *port, *user, *pass, *token;
};

struct nats_wire {
	struct url *urls;
	size_t n_urls, next_url;
	char where[1024];
	char name[256];
	char inbox[48];
	nats_wire_reply_fn on_reply;
	void *arg;
	int fd;
	enum nats_wire_state state;
	bool confirmed;
	int64_t since_ms;        /* start of the current attempt; DOWN: when to retry */
	uint64_t generation;
	unsigned failures;
	long long max_payload;
	struct buf out, in;
	char error[256];
};

static int buf_add(struct buf *b, const void *p, size_t n)
{
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap < b->len + n)
			cap *= 2;
		char *q = realloc(b->p, cap);
		if (!q)
			return -1;
		b->p = q;
		b->cap = cap;
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
	return 0;
}

static int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int buf_printf(struct buf *b, const char *fmt, ...)
{
	char tmp[1400];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof tmp)
		return -1;
	return buf_add(b, tmp, (size_t)n);
}

static void buf_drop(struct buf *b, size_t n)
{
	memmove(b->p, b->p + n, b->len - n);
	b->len -= n;
}

/* nats://[user[:pass]@|token@]host[:port] */
static int parse_url(const char *u, struct url *out, char *where, size_t size)
{
	memset(out, 0, sizeof *out);
	const char *p = strncmp(u, "nats://", 7) == 0 ? u + 7 : u;
	const char *at = strrchr(p, '@');
	if (at) {
		const char *colon = memchr(p, ':', (size_t)(at - p));
		if (colon) {
			out->user = strndup(p, (size_t)(colon - p));
			out->pass = strndup(colon + 1, (size_t)(at - colon - 1));
			if (!out->user || !out->pass)
				return -1;
		} else if (!(out->token = strndup(p, (size_t)(at - p)))) {
			return -1;
		}
		p = at + 1;
	}
	const char *port = NULL;
	size_t hlen;
	if (*p == '[') {
		const char *close = strchr(p, ']');
		if (!close)
			return -1;
		hlen = (size_t)(close - p - 1);
		out->host = strndup(p + 1, hlen);
		port = close[1] == ':' ? close + 2 : NULL;
	} else {
		const char *colon = strchr(p, ':');
		hlen = colon ? (size_t)(colon - p) : strlen(p);
		out->host = strndup(p, hlen);
		port = colon ? colon + 1 : NULL;
	}
	out->port = strdup(port && *port ? port : "4222");
	if (!out->host || !out->port)
		return -1;
	snprintf(where, size, "nats://%s%s%s:%s", strchr(out->host, ':') ? "[" : "", out->host,
		 strchr(out->host, ':') ? "]" : "", out->port);
	return 0;
}

static void fail(struct nats_wire *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* End the connection (or the attempt) and say why; the next URL is tried
 * WIRE_RECONNECT_MS later. */
static void fail(struct nats_wire *w, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(w->error, sizeof w->error, fmt, ap);
	va_end(ap);
	if (w->fd >= 0)
		close(w->fd);
	w->fd = -1;
	if (!w->confirmed)
		w->failures++; /* refused, or never answered our CONNECT */
	/* A working connection that ended is replaced at once (e.g. a server
	 * that dropped a connection idle for minutes); a failed attempt later. */
	w->since_ms = mono_ms() + (w->confirmed ? 0 : WIRE_RECONNECT_MS);
	w->state = NATS_WIRE_DOWN;
	w->confirmed = false;
	w->out.len = w->in.len = 0;
}

static void start_connect(struct nats_wire *w)
{
	struct url *u = &w->urls[w->next_url];
	w->next_url = (w->next_url + 1) % w->n_urls;
	w->since_ms = mono_ms();
	w->out.len = w->in.len = 0;
	/* A numeric address needs no resolver (getaddrinfo() costs a cell
	 * tenths of a millisecond even then); a name is looked up here, once per
	 * attempt (the resolver's own timeouts bound it). */
	struct sockaddr_storage ss = {0};
	socklen_t sl = 0;
	struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
	char *end;
	unsigned long port = strtoul(u->port, &end, 10);
	if (*end || port == 0 || port > 65535) {
		fail(w, "%s: invalid port", u->port);
		return;
	}
	if (inet_pton(AF_INET, u->host, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons((uint16_t)port);
		sl = sizeof *in4;
	} else if (inet_pton(AF_INET6, u->host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		sl = sizeof *in6;
	} else {
		struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV}, *ai = NULL;
		int g = getaddrinfo(u->host, u->port, &hints, &ai);
		if (g != 0) {
			fail(w, "%s: %s", u->host, gai_strerror(g));
			return;
		}
		memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
		sl = ai->ai_addrlen;
		freeaddrinfo(ai);
	}
	w->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (w->fd < 0) {
		fail(w, "socket: %s", strerror(errno));
		return;
	}
	/* Each write is a whole batch that an answer is awaited for: Nagle's
	 * algorithm would hold a second one until the server's delayed ACK,
	 * 40 ms (seen: a cell's last ack 44 ms late). libnats sets it too. */
	int one = 1;
	setsockopt(w->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (connect(w->fd, (struct sockaddr *)&ss, sl) < 0 && errno != EINPROGRESS) {
		fail(w, "%s", strerror(errno));
		return;
	}
	/* CONNECT, a PING (its PONG confirms the CONNECT) and the inbox
	 * subscription go out with the first messages, without waiting for the
	 * server's INFO: the server reads them after sending it. What the INFO
	 * says is checked when it comes (on_info); a server that requires TLS
	 * or lacks headers is then refused with a message. */
	json_t *c = json_pack("{s:b, s:b, s:b, s:s, s:s, s:s, s:i, s:b, s:b}", "verbose", 0, "pedantic", 0,
			      "tls_required", 0, "name", w->name, "lang", "C", "version", "cellos", "protocol", 1,
			      "headers", 1, "no_responders", 1);
	if (c && u->user)
		json_object_set_new(c, "user", json_string(u->user)), json_object_set_new(c, "pass", json_string(u->pass));
	if (c && u->token)
		json_object_set_new(c, "auth_token", json_string(u->token));
	char *s = c ? json_dumps(c, JSON_COMPACT) : NULL;
	json_decref(c);
	int rc = s ? buf_add(&w->out, "CONNECT ", 8) | buf_add(&w->out, s, strlen(s)) |
			     buf_printf(&w->out, "\r\nPING\r\nSUB %s.* 1\r\n", w->inbox)
		   : -1;
	free(s);
	if (rc < 0) {
		fail(w, "out of memory");
		return;
	}
	w->max_payload = WIRE_DEFAULT_MAX_PAYLOAD;
	w->state = NATS_WIRE_READY;
	w->generation++;
}

/* The server's INFO: what it requires of us (our CONNECT is on its way). */
static void on_info(struct nats_wire *w, const char *json, size_t len)
{
	json_error_t je;
	json_t *j = json_loadb(json, len, 0, &je);
	if (!j) {
		fail(w, "the server's INFO is not JSON");
		return;
	}
	bool tls = json_is_true(json_object_get(j, "tls_required"));
	bool headers = json_is_true(json_object_get(j, "headers"));
	long long max = json_integer_value(json_object_get(j, "max_payload"));
	json_decref(j);
	if (max > 0)
		w->max_payload = max;
	if (tls)
		fail(w, "the server requires TLS (use a tls:// URL or CELLOS_NATS_TLS_CA)");
	else if (!headers)
		fail(w, "the server does not support message headers (NATS 2.2 or later needed)");
}

/* One MSG/HMSG: "<subject> <sid> [reply] [<hdr bytes>] <total bytes>". */
static void on_msg(struct nats_wire *w, const char *subject, const char *p, size_t hdr, size_t total)
{
	size_t il = strlen(w->inbox);
	if (strncmp(subject, w->inbox, il) != 0 || subject[il] != '.')
		return;
	int status = 0;
	if (hdr >= 12 && strncmp(p, "NATS/1.0", 8) == 0 && p[8] == ' ')
		status = atoi(p + 9);
	if (w->on_reply)
		w->on_reply(w->arg, subject + il + 1, status, p + hdr, total - hdr);
}

/* Everything complete in the input buffer; what is left is a partial line or
 * message. */
static void parse(struct nats_wire *w)
{
	size_t off = 0;
	while (w->fd >= 0) {
		char *start = w->in.p + off;
		char *eol = memmem(start, w->in.len - off, "\r\n", 2);
		if (!eol)
			break;
		size_t llen = (size_t)(eol - start);
		if (llen >= 5 && (strncmp(start, "MSG ", 4) == 0 || strncmp(start, "HMSG ", 5) == 0)) {
			bool h = start[0] == 'H';
			char line[1024];
			if (llen >= sizeof line) {
				fail(w, "protocol line too long");
				return;
			}
			memcpy(line, start, llen);
			line[llen] = '\0';
			char *tok[6];
			int n = 0;
			for (char *t = strtok(line, " \t"); t && n < 6; t = strtok(NULL, " \t"))
				tok[n++] = t;
			/* MSG subj sid [reply] total; HMSG subj sid [reply] hdr total */
			int need = h ? 5 : 4;
			if (n < need || n > need + 1) {
				fail(w, "bad %s line from the server", h ? "HMSG" : "MSG");
				return;
			}
			size_t total = strtoul(tok[n - 1], NULL, 10), hdr = h ? strtoul(tok[n - 2], NULL, 10) : 0;
			if (hdr > total) {
				fail(w, "bad HMSG line from the server");
				return;
			}
			size_t body = off + llen + 2;
			if (w->in.len < body + total + 2)
				break; /* the rest of it is still on its way */
			on_msg(w, tok[1], w->in.p + body, hdr, total);
			off = body + total + 2;
			continue;
		}
		if (llen >= 5 && strncmp(start, "INFO ", 5) == 0) {
			on_info(w, start + 5, llen - 5);
		} else if (llen == 4 && strncmp(start, "PING", 4) == 0) {
			if (buf_add(&w->out, "PONG\r\n", 6) < 0)
				fail(w, "out of memory");
		} else if (llen == 4 && strncmp(start, "PONG", 4) == 0) {
			w->confirmed = true;
		} else if (llen >= 4 && strncmp(start, "-ERR", 4) == 0) {
			/* -ERR 'Authorization Violation': the server closes after it. */
			const char *m = start + 4;
			size_t ml = llen - 4;
			while (ml && (*m == ' ' || *m == '\'')) m++, ml--;
			while (ml && m[ml - 1] == '\'') ml--;
			fail(w, "%.*s", (int)ml, m);
			return;
		}
		off += llen + 2;
	}
	if (w->fd >= 0)
		buf_drop(&w->in, off);
}

static void do_read(struct nats_wire *w)
{
	for (;;) {
		if (w->in.cap - w->in.len < 16384) {
			size_t cap = w->in.cap ? w->in.cap * 2 : 65536;
			char *q = realloc(w->in.p, cap);
			if (!q) {
				fail(w, "out of memory");
				return;
			}
			w->in.p = q;
			w->in.cap = cap;
		}
		size_t room = w->in.cap - w->in.len;
		ssize_t n = recv(w->fd, w->in.p + w->in.len, room, MSG_DONTWAIT);
		if (n > 0) {
			w->in.len += (size_t)n;
			if ((size_t)n < room)
				break; /* drained: no need to hear EAGAIN */
			continue;
		}
		if (n == 0) {
			parse(w);
			if (w->fd >= 0)
				fail(w, "the server closed the connection");
			return;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != ENOTCONN)
			fail(w, "%s", strerror(errno));
		break;
	}
	parse(w);
}

static void do_write(struct nats_wire *w)
{
	size_t done = 0;
	while (done < w->out.len) {
		ssize_t n = send(w->fd, w->out.p + done, w->out.len - done, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n > 0) {
			done += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
			fail(w, "%s", strerror(errno));
			return;
		}
		break;
	}
	buf_drop(&w->out, done);
}

void nats_wire_flush(struct nats_wire *w)
{
	if (w->fd >= 0 && w->out.len)
		do_write(w);
}

void nats_wire_pump(struct nats_wire *w, int timeout_ms)
{
	int64_t now = mono_ms();
	if (w->state == NATS_WIRE_DOWN) {
		if (now < w->since_ms) {
			/* Nothing to do before the next attempt: just wait. */
			int64_t left = w->since_ms - now;
			if (timeout_ms > 0)
				poll(NULL, 0, (int)(left < timeout_ms ? left : timeout_ms));
			if (mono_ms() < w->since_ms)
				return;
		}
		start_connect(w);
		if (w->state == NATS_WIRE_DOWN)
			return;
	}
	/* What came first (the PONG that confirms us may be waiting there),
	 * then what is queued (not without a wait: the caller queues more and
	 * flushes it all in one write), then wait if asked to. */
	do_read(w);
	if (w->fd >= 0 && w->out.len && timeout_ms > 0)
		do_write(w);
	if (w->fd < 0)
		return;
	now = mono_ms();
	if (!w->confirmed && now - w->since_ms >= WIRE_CONNECT_MS) {
		fail(w, "no answer within %d ms", WIRE_CONNECT_MS);
		return;
	}
	if (timeout_ms <= 0)
		return;
	int t = timeout_ms;
	if (!w->confirmed) {
		int64_t left = w->since_ms + WIRE_CONNECT_MS - now;
		t = left < t ? (int)left : t;
	}
	/* A refused connect shows as POLLERR/POLLHUP. */
	struct pollfd p = {.fd = w->fd, .events = POLLIN | (w->out.len ? POLLOUT : 0)};
	if (poll(&p, 1, t < 0 ? 0 : t) <= 0)
		return;
	if (p.revents & (POLLIN | POLLHUP | POLLERR))
		do_read(w);
	if (w->fd >= 0 && w->out.len)
		do_write(w);
}

struct nats_wire *nats_wire_new(char *const *urls, const char *name, nats_wire_reply_fn on_reply, void *arg,
				struct err *e)
{
	struct nats_wire *w = calloc(1, sizeof *w);
	size_t n = 0;
	while (urls[n])
		n++;
	if (!w || !n || !(w->urls = calloc(n, sizeof *w->urls))) {
		free(w);
		err_set(e, "CELLOS_NATS_URL: out of memory");
		return NULL;
	}
	w->fd = -1;
	w->n_urls = n;
	size_t wl = 0;
	for (size_t i = 0; i < n; i++) {
		char one[300];
		if (parse_url(urls[i], &w->urls[i], one, sizeof one) < 0) {
			nats_wire_free(w);
			err_set(e, "CELLOS_NATS_URL: cannot parse '%s'", urls[i]);
			return NULL;
		}
		if (wl < sizeof w->where)
			wl += (size_t)snprintf(w->where + wl, sizeof w->where - wl, "%s%s", i ? "," : "", one);
	}
	snprintf(w->name, sizeof w->name, "%s", name);
	unsigned char r[12];
	if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) {
		nats_wire_free(w);
		err_set(e, "getrandom: %s", strerror(errno));
		return NULL;
	}
	int k = snprintf(w->inbox, sizeof w->inbox, "_INBOX.");
	for (size_t i = 0; i < sizeof r; i++)
		k += snprintf(w->inbox + k, sizeof w->inbox - (size_t)k, "%02x", r[i]);
	w->on_reply = on_reply;
	w->arg = arg;
	w->since_ms = mono_ms(); /* the first pump connects */
	return w;
}

void nats_wire_set_reply(struct nats_wire *w, nats_wire_reply_fn on_reply, void *arg)
{
	w->on_reply = on_reply;
	w->arg = arg;
}

enum nats_wire_state nats_wire_state(const struct nats_wire *w) { return w->state; }
uint64_t nats_wire_generation(const struct nats_wire *w) { return w->generation; }
bool nats_wire_confirmed(const struct nats_wire *w) { return w->state == NATS_WIRE_READY && w->confirmed; }
const char *nats_wire_error(const struct nats_wire *w) { return w->error; }
unsigned nats_wire_failures(const struct nats_wire *w) { return w->failures; }
const char *nats_wire_where(const struct nats_wire *w) { return w->where; }
int nats_wire_fd(const struct nats_wire *w) { return w->fd; }
short nats_wire_poll_events(const struct nats_wire *w) { return (short)(POLLIN | (w->out.len ? POLLOUT : 0)); }
int64_t nats_wire_retry_ms(const struct nats_wire *w) { return w->state == NATS_WIRE_DOWN ? w->since_ms : -1; }

int nats_wire_publish(struct nats_wire *w, const char *subject, const char *token, const char *msg_id,
		      const void *data, size_t len, struct err *e)
{
	if (w->state != NATS_WIRE_READY)
		return err_set(e, "not connected to NATS");
	char hdr[200] = "";
	int hl = msg_id ? snprintf(hdr, sizeof hdr, "NATS/1.0\r\nNats-Msg-Id: %s\r\n\r\n", msg_id) : 0;
	if (hl < 0 || (size_t)hl >= sizeof hdr)
		return err_set(e, "message id too long");
	if (w->max_payload > 0 && (long long)(len + (size_t)hl) > w->max_payload)
		return err_set(e, "the event (%zu bytes) is larger than the server's max_payload (%lld)", len,
			       w->max_payload);
	int rc = hl ? buf_printf(&w->out, "HPUB %s %s.%s %d %zu\r\n", subject, w->inbox, token, hl, (size_t)hl + len)
		    : buf_printf(&w->out, "PUB %s %s.%s %zu\r\n", subject, w->inbox, token, len);
	if (rc < 0 || buf_add(&w->out, hdr, (size_t)hl) < 0 || buf_add(&w->out, data, len) < 0 ||
	    buf_add(&w->out, "\r\n", 2) < 0)
		return err_set(e, "out of memory");
	return 0;
}

void nats_wire_free(struct nats_wire *w)
{
	if (!w)
		return;
	if (w->fd >= 0)
		close(w->fd);
	for (size_t i = 0; i < w->n_urls && w->urls; i++) {
		struct url *u = &w->urls[i];
		free(u->host), free(u->port), free(u->user), free(u->pass), free(u->token);
	}
	free(w->urls);
	free(w->out.p);
	free(w->in.p);
	free(w);
}

/* Process-wide by nature: one warm supervisor, one run. */
static struct nats_wire *prepared;

void nats_wire_prepare(char *const *urls, const char *name, int64_t timeout_ms)
{
	struct err e = {0};
	if (prepared || !(prepared = nats_wire_new(urls, name, NULL, NULL, &e)))
		return;
	int64_t end = mono_ms() + timeout_ms;
	while (!nats_wire_confirmed(prepared) && mono_ms() < end)
		nats_wire_pump(prepared, 10);
}

struct nats_wire *nats_wire_take_prepared(void)
{
	struct nats_wire *w = prepared;
	prepared = NULL;
	return w;
}
