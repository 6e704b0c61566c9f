#include "isolate/l7proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/netfilter_ipv4.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
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

/* A relay thread's stack: it only loops over two splice(2) calls. */
#define RELAY_STACK (256 * 1024)

enum { W_LISTEN = 1, W_CLIENT, W_SERVER, W_RELAY_DONE };
#define TAG(kind, i) ((uint64_t)(kind) << 32 | (uint32_t)(i))

enum cstate { C_FREE, C_PEEK, C_CONNECT, C_HEAD, C_RELAY };

/* One direction of an allowed connection, moved by a thread of its own. */
struct dir {
	int from, to;                   /* borrowed sockets */
	int pipe[2];
	size_t cap;                     /* the pipe's size, as the kernel granted it */
	pthread_t thread;
	bool started;
	struct conn *c;
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
	atomic_int running;             /* relay threads not yet finished */
	int done_fd;                    /* the proxy's eventfd: the last thread to finish says so */
};

struct l7proxy {
	struct netpolicy *np;
	int peek_timeout_ms;
	struct evloop loop;
	int lfd;
	uint16_t port;
	struct in_addr cell;
	bool listening;
	int done_fd;                    /* eventfd: a connection's relay threads have finished */
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

static void relay_join(struct conn *c)
{
	/* Wakes a thread blocked on either socket: its splice sees the end of
	 * the stream or EPIPE, and it returns. */
	if (atomic_load(&c->running) > 0) {
		shutdown(c->client, SHUT_RDWR);
		shutdown(c->server, SHUT_RDWR);
	}
	struct dir *d[] = {&c->up, &c->down};
	for (size_t k = 0; k < 2; k++)
		if (d[k]->started) {
			pthread_join(d[k]->thread, NULL);
			d[k]->started = false;
		}
}

static void conn_close(struct l7proxy *p, int i)
{
	struct conn *c = &p->c[i];
	if (c->st == C_FREE)
		return;
	if (c->st == C_RELAY)
		relay_join(c);
	int fds[] = {c->client, c->server, c->up.pipe[0], c->up.pipe[1], c->down.pipe[0], c->down.pipe[1]};
	for (size_t k = 0; k < sizeof fds / sizeof fds[0]; k++)
		if (fds[k] >= 0) {
			if (k < 2 && c->st != C_RELAY)
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

/* ---- after the decision: splice, a thread per direction ---- */

/* The relay threads share nothing with the supervisor's thread but the
 * connection's descriptors, which that thread closes only after joining them:
 * no locks. A thread per direction rather than this loop's epoll set, because
 * each chunk then costs two splice(2) calls in a thread that the socket wakes
 * directly, instead of a trip through the supervisor's poll(), epoll_wait() and
 * both directions' splices; and the two directions run at once. */
static void *relay_main(void *arg)
{
	struct dir *d = arg;
	bool broken = false;
	for (;;) {
		ssize_t r = splice(d->from, NULL, d->pipe[1], NULL, d->cap, SPLICE_F_MOVE);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			broken = r < 0;
			break;
		}
		while (r > 0) {
			ssize_t w = splice(d->pipe[0], NULL, d->to, NULL, (size_t)r, SPLICE_F_MOVE);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0) {
				broken = true;
				break;
			}
			r -= w;
		}
		if (broken)
			break;
	}
	if (broken) {
		/* One side is gone: end the other direction too. */
		shutdown(d->from, SHUT_RDWR);
		shutdown(d->to, SHUT_RDWR);
	} else {
		shutdown(d->to, SHUT_WR); /* pass the half-close on */
	}
	if (atomic_fetch_sub(&d->c->running, 1) == 1) {
		uint64_t one = 1;
		(void)!write(d->c->done_fd, &one, sizeof one);
	}
	return NULL;
}

static int open_pipe(struct dir *d)
{
	if (pipe2(d->pipe, O_CLOEXEC) < 0)
		return -1;
	/* Larger than the default 64 KiB: fewer, larger steps per megabyte (1 MiB
	 * is the default pipe-max-size; where the kernel gives less, the pipe
	 * simply holds less). Best effort: the default size works too. */
	fcntl(d->pipe[1], F_SETPIPE_SZ, PIPE_BYTES);
	int sz = fcntl(d->pipe[1], F_GETPIPE_SZ);
	d->cap = sz > 0 ? (size_t)sz : 65536;
	return 0;
}

static int blocking(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
}

static void start_relay(struct l7proxy *p, int i)
{
	struct conn *c = &p->c[i];
	free(c->buf);
	c->buf = NULL;
	/* The loop no longer watches these sockets: the threads block on them. */
	evloop_unwatch(&p->loop, c->client);
	evloop_unwatch(&p->loop, c->server);
	c->st = C_RELAY;
	c->done_fd = p->done_fd;
	c->up.from = c->down.to = c->client;
	c->up.to = c->down.from = c->server;
	c->up.c = c->down.c = c;
	if (open_pipe(&c->up) < 0 || open_pipe(&c->down) < 0 || blocking(c->client) < 0 || blocking(c->server) < 0) {
		log_warn("SNI/Host check: %s: %s", c->dest, strerror(errno));
		conn_close(p, i);
		return;
	}
	pthread_attr_t at;
	pthread_attr_init(&at);
	pthread_attr_setstacksize(&at, RELAY_STACK);
	struct dir *d[] = {&c->up, &c->down};
	for (size_t k = 0; k < 2; k++) {
		atomic_fetch_add(&c->running, 1);
		int rc = pthread_create(&d[k]->thread, &at, relay_main, d[k]);
		if (rc != 0) {
			atomic_fetch_sub(&c->running, 1);
			log_warn("SNI/Host check: %s: relay thread: %s", c->dest, strerror(rc));
			pthread_attr_destroy(&at);
			conn_close(p, i); /* joins a thread already started */
			return;
		}
		d[k]->started = true;
	}
	pthread_attr_destroy(&at);
}

/* Relay threads have finished: end their connections. */
static void reap_relays(struct l7proxy *p)
{
	uint64_t n;
	(void)!read(p->done_fd, &n, sizeof n);
	for (int i = 0; i < MAX_CONNS; i++)
		if (p->c[i].st == C_RELAY && atomic_load(&p->c[i].running) == 0)
			conn_close(p, i);
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
	start_relay(p, i);
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

static const char FORBIDDEN[] = L7_HTTP_FORBIDDEN;

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
				   .up = {.pipe = {-1, -1}}, .down = {.pipe = {-1, -1}}, .done_fd = -1};
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
	if (events & (EPOLLHUP | EPOLLERR) && c->st != C_PEEK && c->st != C_RELAY) {
		/* A side is gone for good (a waiting socket would otherwise be
		 * reported again and again). */
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
	case C_RELAY:
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
			else if (kind == W_RELAY_DONE)
				reap_relays(p);
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
		if (c->st != C_FREE && c->st != C_RELAY && c->deadline < next)
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
	p->done_fd = -1;
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
	p->done_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (p->done_fd < 0 || evloop_watch(&p->loop, p->done_fd, EPOLLIN, TAG(W_RELAY_DONE, 0), e) < 0) {
		if (p->done_fd < 0)
			err_sys(e, errno, "SNI/Host check: eventfd");
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
	if (p->done_fd >= 0)
		close(p->done_fd);
	evloop_close(&p->loop);
	free(p);
}
