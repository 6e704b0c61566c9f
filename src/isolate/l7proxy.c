#include "isolate/l7proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/netfilter_ipv4.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "isolate/evloop.h"
#include "isolate/l7peek.h"
#include "util/ids.h"
#include "util/log.h"

/* Connections held at once (each: two sockets, two pipes). Further ones wait
 * in the listener's backlog until one ends. */
#define MAX_CONNS 64
/* Per direction: the pipe the bytes move through (the kernel's default is 64 KiB;
 * larger means fewer wake-ups per megabyte; 1 MiB is the default pipe-max-size,
 * and where the kernel gives less the pipe simply holds less). */
#define PIPE_BYTES (1024 * 1024)

enum { W_LISTEN = 1, W_CLIENT, W_SERVER };
#define TAG(kind, i) ((uint64_t)(kind) << 32 | (uint32_t)(i))

enum cstate { C_FREE, C_PEEK, C_CONNECT, C_HEAD, C_SPLICE };

struct dir {
	int from, to;                   /* borrowed sockets */
	int pipe[2];
	size_t cap;                     /* the pipe's size, as the kernel granted it */
	size_t held;                    /* bytes in the pipe */
	bool eof, done;
};

struct conn {
	enum cstate st;
	int client, server;
	uint32_t cev, sev;              /* what each socket is watched for now (~0: unknown) */
	struct sockaddr_in dst;
	char dest[32];                  /* "ip:port" */
	uint8_t *buf;                   /* what was read before the decision */
	size_t n, sent;
	int64_t deadline;
	struct dir up, down;            /* client → server, server → client */
};

struct l7proxy {
	struct netpolicy *np;
	int peek_timeout_ms;
	struct evloop loop;
	int lfd;
	uint16_t port;
	struct in_addr cell;
	bool listening;
	struct conn c[MAX_CONNS];
	size_t n_conns;
};

static void report(struct l7proxy *p, struct conn *c, const char *name, bool tls, bool allow, const char *reason)
{
	struct l7_event ev = {.destination = c->dest, .server_name = name, .protocol = tls ? "tls" : "http",
			      .decision = allow ? "allow" : "deny", .reason = reason};
	const struct netpolicy_hooks *h = &p->np->hooks;
	if (h->l7_event)
		h->l7_event(h->ctx, &ev);
}

static void conn_close(struct l7proxy *p, int i)
{
	struct conn *c = &p->c[i];
	if (c->st == C_FREE)
		return;
	int fds[] = {c->client, c->server, c->up.pipe[0], c->up.pipe[1], c->down.pipe[0], c->down.pipe[1]};
	for (size_t k = 0; k < sizeof fds / sizeof fds[0]; k++)
		if (fds[k] >= 0) {
			if (k < 2)
				evloop_unwatch(&p->loop, fds[k]);
			close(fds[k]);
		}
	free(c->buf);
	*c = (struct conn){.st = C_FREE, .client = -1, .server = -1};
	if (p->n_conns-- == MAX_CONNS) {
		struct err e = {0};
		if (evloop_watch(&p->loop, p->lfd, EPOLLIN, TAG(W_LISTEN, 0), &e) < 0)
			log_warn("SNI/Host check: %s", e.msg);
	}
}

static void watch(struct l7proxy *p, int i, int fd, int kind, uint32_t ev)
{
	/* Only changes cost a system call: the relay's hot path mostly keeps its
	 * interest from one wake-up to the next. */
	uint32_t *cur = kind == W_CLIENT ? &p->c[i].cev : &p->c[i].sev;
	if (*cur == ev)
		return;
	struct err e = {0};
	*cur = ev;
	if (evloop_watch(&p->loop, fd, ev, TAG(kind, i), &e) < 0) {
		log_warn("SNI/Host check: %s", e.msg);
		conn_close(p, i);
	}
}

/* ---- after the decision: splice ---- */

/* Move what can move in one direction. Returns -1 when the connection is broken. */
static int dir_step(struct dir *d)
{
	while (!d->done) {
		bool moved = false;
		if (!d->eof && d->held < d->cap) {
			ssize_t r = splice(d->from, NULL, d->pipe[1], NULL, d->cap - d->held,
					   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
			if (r > 0) {
				d->held += (size_t)r;
				moved = true;
			} else if (r == 0) {
				d->eof = true;
			} else if (errno != EAGAIN && errno != EINTR) {
				return -1;
			}
		}
		if (d->held) {
			ssize_t w = splice(d->pipe[0], NULL, d->to, NULL, d->held, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
			if (w > 0) {
				d->held -= (size_t)w;
				moved = true;
			} else if (w < 0 && errno != EAGAIN && errno != EINTR) {
				return -1;
			}
		}
		if (d->eof && !d->held) {
			shutdown(d->to, SHUT_WR); /* pass the half-close on */
			d->done = true;
		}
		if (!moved)
			break;
	}
	return 0;
}

static void splice_step(struct l7proxy *p, int i)
{
	struct conn *c = &p->c[i];
	if (dir_step(&c->up) < 0 || dir_step(&c->down) < 0 || (c->up.done && c->down.done)) {
		conn_close(p, i);
		return;
	}
	/* Each socket: readable when its direction has room, writable when the
	 * other direction holds bytes for it. */
	uint32_t ce = (!c->up.eof && c->up.held < c->up.cap ? EPOLLIN : 0) | (c->down.held ? EPOLLOUT : 0);
	uint32_t se = (!c->down.eof && c->down.held < c->down.cap ? EPOLLIN : 0) | (c->up.held ? EPOLLOUT : 0);
	watch(p, i, c->client, W_CLIENT, ce);
	if (c->st != C_FREE)
		watch(p, i, c->server, W_SERVER, se);
}

static int open_pipe(struct dir *d)
{
	if (pipe2(d->pipe, O_NONBLOCK | O_CLOEXEC) < 0)
		return -1;
	fcntl(d->pipe[1], F_SETPIPE_SZ, PIPE_BYTES); /* best effort: the default size works too */
	int sz = fcntl(d->pipe[1], F_GETPIPE_SZ);
	d->cap = sz > 0 ? (size_t)sz : 65536;
	return 0;
}

static void start_splice(struct l7proxy *p, int i)
{
	struct conn *c = &p->c[i];
	if (open_pipe(&c->up) < 0 || open_pipe(&c->down) < 0) {
		log_warn("SNI/Host check: pipe: %s", strerror(errno));
		conn_close(p, i);
		return;
	}
	c->up.from = c->down.to = c->client;
	c->up.to = c->down.from = c->server;
	c->st = C_SPLICE;
	free(c->buf);
	c->buf = NULL;
	splice_step(p, i);
}

/* Send what was read before the decision, as it was. */
static void send_head(struct l7proxy *p, int i)
{
	struct conn *c = &p->c[i];
	while (c->sent < c->n) {
		ssize_t w = send(c->server, c->buf + c->sent, c->n - c->sent, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			c->st = C_HEAD;
			watch(p, i, c->client, W_CLIENT, 0);
			if (c->st != C_FREE)
				watch(p, i, c->server, W_SERVER, EPOLLOUT);
			return;
		}
		if (w <= 0) {
			conn_close(p, i);
			return;
		}
		c->sent += (size_t)w;
	}
	start_splice(p, i);
}

static void connected(struct l7proxy *p, int i)
{
	struct conn *c = &p->c[i];
	int err = 0;
	socklen_t len = sizeof err;
	if (getsockopt(c->server, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err) {
		log_debug("SNI/Host check: %s: %s", c->dest, strerror(err ? err : errno));
		conn_close(p, i);
		return;
	}
	send_head(p, i);
}

/* ---- before the decision: peek ---- */

static const char FORBIDDEN[] = "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 40\r\n"
				"Connection: close\r\n\r\ncellos: host not allowed for this cell\r\n";

static void deny(struct l7proxy *p, int i, const char *name, bool tls, const char *reason)
{
	struct conn *c = &p->c[i];
	report(p, c, name, tls, false, reason);
	if (!tls)
		(void)!send(c->client, FORBIDDEN, sizeof FORBIDDEN - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
	conn_close(p, i);
}

static void allow(struct l7proxy *p, int i, const char *name, bool tls)
{
	struct conn *c = &p->c[i];
	report(p, c, name, tls, true, tls ? "l7_sni_allowlist_match" : "l7_http_host_allowlist_match");
	c->server = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->server < 0 || (connect(c->server, (struct sockaddr *)&c->dst, sizeof c->dst) < 0 && errno != EINPROGRESS)) {
		log_debug("SNI/Host check: %s: %s", c->dest, strerror(errno));
		conn_close(p, i);
		return;
	}
	c->st = C_CONNECT;
	c->deadline = mono_ms() + p->peek_timeout_ms;
	watch(p, i, c->client, W_CLIENT, 0); /* nothing more is read until the server is there */
	if (c->st != C_FREE)
		watch(p, i, c->server, W_SERVER, EPOLLOUT);
}

/* Decide on what has arrived; `eof`: nothing more will. */
static void decide(struct l7proxy *p, int i, bool eof, bool timeout)
{
	struct conn *c = &p->c[i];
	bool tls = c->n ? l7_looks_tls(c->buf, c->n) : ntohs(c->dst.sin_port) == 443;
	char name[L7_NAME_MAX + 1];
	enum l7_peek r = c->n == 0 ? L7_NEED_MORE : tls ? l7_tls_sni(c->buf, c->n, name) : l7_http_host(c->buf, c->n, name);
	if (r == L7_NEED_MORE && !eof && !timeout)
		return;
	if (r == L7_NEED_MORE && timeout) {
		deny(p, i, NULL, tls, "l7_peek_timeout");
		return;
	}
	if (r != L7_NAME) {
		/* Nothing, no name, or not a name we can trust (malformed, two names). */
		deny(p, i, NULL, tls, tls ? "l7_sni_missing" : "l7_http_host_missing");
		return;
	}
	if (!netpolicy_l7_allowed(p->np, name, c->dst.sin_addr, ntohs(c->dst.sin_port))) {
		deny(p, i, name, tls, tls ? "l7_sni_allowlist_miss" : "l7_http_host_allowlist_miss");
		return;
	}
	allow(p, i, name, tls);
}

static void peek(struct l7proxy *p, int i)
{
	struct conn *c = &p->c[i];
	ssize_t r = recv(c->client, c->buf + c->n, L7_PEEK_MAX - c->n, MSG_DONTWAIT);
	if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (r < 0) {
		conn_close(p, i);
		return;
	}
	c->n += (size_t)r;
	decide(p, i, r == 0 || c->n == L7_PEEK_MAX, false);
}

static void accept_conns(struct l7proxy *p)
{
	while (p->n_conns < MAX_CONNS) {
		struct sockaddr_in peer;
		socklen_t pl = sizeof peer;
		int fd = accept4(p->lfd, (struct sockaddr *)&peer, &pl, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return;
		struct sockaddr_in dst;
		socklen_t dl = sizeof dst;
		/* Only the cell, and only what the gateway redirected (it has an
		 * original destination that is not this listener). */
		if (peer.sin_family != AF_INET || peer.sin_addr.s_addr != p->cell.s_addr ||
		    getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &dst, &dl) < 0 || dst.sin_port == htons(p->port)) {
			close(fd);
			continue;
		}
		int i = 0;
		while (p->c[i].st != C_FREE)
			i++;
		struct conn *c = &p->c[i];
		*c = (struct conn){.st = C_PEEK, .client = fd, .server = -1, .dst = dst, .cev = ~0u, .sev = ~0u,
				   .deadline = mono_ms() + p->peek_timeout_ms,
				   .up = {.pipe = {-1, -1}}, .down = {.pipe = {-1, -1}}};
		char ip[INET_ADDRSTRLEN] = "?";
		inet_ntop(AF_INET, &dst.sin_addr, ip, sizeof ip);
		snprintf(c->dest, sizeof c->dest, "%s:%u", ip, ntohs(dst.sin_port));
		p->n_conns++;
		if (!(c->buf = malloc(L7_PEEK_MAX))) {
			conn_close(p, i);
			continue;
		}
		watch(p, i, fd, W_CLIENT, EPOLLIN);
	}
	evloop_unwatch(&p->loop, p->lfd); /* full: the backlog waits for a free slot */
}

static void conn_event(struct l7proxy *p, int i, bool server, uint32_t events)
{
	struct conn *c = &p->c[i];
	if (events & (EPOLLHUP | EPOLLERR) && c->st != C_PEEK) {
		/* A side is gone for good: move what still can, then end (a
		 * waiting socket would otherwise be reported again and again). */
		if (c->st == C_SPLICE)
			splice_step(p, i);
		conn_close(p, i);
		return;
	}
	switch (c->st) {
	case C_PEEK:
		if (!server)
			peek(p, i);
		break;
	case C_CONNECT:
		if (server)
			connected(p, i);
		break;
	case C_HEAD:
		if (server)
			send_head(p, i);
		break;
	case C_SPLICE:
		splice_step(p, i);
		break;
	case C_FREE:
		break;
	}
}

void l7proxy_pump(struct l7proxy *p)
{
	struct epoll_event ev[64];
	/* A few rounds while there is work: bytes that arrived meanwhile move now,
	 * not after another trip through the supervisor's poll(). Bounded, so the
	 * wait loop's other duties (signals, the workload's end) are not starved. */
	for (int round = 0, n; round < 4 && (n = evloop_ready(&p->loop, ev, 64)) > 0; round++)
		for (int k = 0; k < n; k++) {
			uint32_t kind = (uint32_t)(ev[k].data.u64 >> 32), i = (uint32_t)ev[k].data.u64;
			if (kind == W_LISTEN)
				accept_conns(p);
			else if (kind == W_CLIENT || kind == W_SERVER)
				conn_event(p, (int)i, kind == W_SERVER, ev[k].events);
		}
	int64_t now = mono_ms(), next = INT64_MAX;
	for (int i = 0; i < MAX_CONNS; i++) {
		struct conn *c = &p->c[i];
		if (c->st == C_PEEK && c->deadline <= now)
			decide(p, i, false, true);
		if ((c->st == C_PEEK || c->st == C_CONNECT || c->st == C_HEAD) && c->deadline <= now)
			conn_close(p, i); /* a server that never answers the connect */
		if (c->st != C_FREE && c->st != C_SPLICE && c->deadline < next)
			next = c->deadline;
	}
	evloop_arm(&p->loop, next);
}

int l7proxy_open(struct l7proxy **out, struct netpolicy *np, int peek_timeout_ms, struct err *e)
{
	struct l7proxy *p = calloc(1, sizeof *p);
	if (!p)
		return err_sys(e, ENOMEM, "SNI/Host check");
	p->np = np;
	p->peek_timeout_ms = peek_timeout_ms;
	p->loop.ep = p->loop.timer = -1;
	for (int i = 0; i < MAX_CONNS; i++)
		p->c[i] = (struct conn){.st = C_FREE, .client = -1, .server = -1};
	p->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_ANY)};
	socklen_t al = sizeof a;
	if (p->lfd < 0 || bind(p->lfd, (struct sockaddr *)&a, sizeof a) < 0 ||
	    getsockname(p->lfd, (struct sockaddr *)&a, &al) < 0) {
		err_sys(e, errno, "SNI/Host check: listener");
		l7proxy_close(p);
		return -1;
	}
	p->port = ntohs(a.sin_port);
	if (evloop_open(&p->loop, e) < 0) {
		l7proxy_close(p);
		return -1;
	}
	*out = p;
	return 0;
}

uint16_t l7proxy_port(const struct l7proxy *p)
{
	return p->port;
}

int l7proxy_listen(struct l7proxy *p, const char *host_if, struct in_addr cell, struct err *e)
{
	p->cell = cell;
	if (host_if && setsockopt(p->lfd, SOL_SOCKET, SO_BINDTODEVICE, host_if, (socklen_t)strlen(host_if) + 1) < 0)
		return err_sys(e, errno, "SNI/Host check: bind to %s", host_if);
	if (listen(p->lfd, 64) < 0)
		return err_sys(e, errno, "SNI/Host check: listen");
	p->listening = true;
	return evloop_watch(&p->loop, p->lfd, EPOLLIN, TAG(W_LISTEN, 0), e);
}

int l7proxy_fd(const struct l7proxy *p)
{
	return p->loop.ep;
}

void l7proxy_close(struct l7proxy *p)
{
	if (!p)
		return;
	for (int i = 0; i < MAX_CONNS; i++)
		conn_close(p, i);
	if (p->lfd >= 0)
		close(p->lfd);
	evloop_close(&p->loop);
	free(p);
}
