#include "isolate/dnsproxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "isolate/evloop.h"
#include "isolate/ldns_dl.h"
#include "util/ids.h"
#include "util/log.h"

/* Bounds on what a cell can make the proxy hold: queries waiting for the
 * upstream, and TCP clients. Beyond them a query gets SERVFAIL (proxy_busy)
 * and a TCP client is closed. */
#define MAX_QUERIES 64
#define MAX_TCP 16
/* A TCP client that sends nothing for this long is closed. */
#define TCP_IDLE_MS 10000
#define DNS_MSG_MAX 65535

enum { W_UDP = 1, W_TCP, W_UP, W_CLIENT };
#define TAG(kind, i) ((uint64_t)(kind) << 32 | (uint32_t)(i))

struct query {
	bool used;
	int client;                     /* TCP client index, -1: UDP */
	struct sockaddr_storage from;   /* UDP: where the answer goes */
	socklen_t fromlen;
	int up;                         /* socket to the upstream */
	uint8_t *msg;                   /* the query as it came, after 2 bytes of room for TCP's length */
	size_t len;
	size_t sent;                    /* TCP: bytes of length + query sent */
	uint8_t *ans;                   /* TCP: the answer being read (length first) */
	size_t an;
	ldns_pkt *pkt;
	int64_t deadline;
	char name[1024];
	char type[32];
};

struct client {
	int fd;                         /* -1: free */
	uint8_t *in;                    /* length-prefixed queries as they arrive */
	size_t inn;
	uint8_t *out;                   /* answers not yet written */
	size_t outn, outoff;
	int query;                      /* the one in flight, -1 */
	int64_t deadline;
	bool broken;                    /* a write failed: closed at the end of the pump (not in the
					   middle of answering, which would free the query being answered) */
};

struct dnsproxy {
	struct dnsproxy_cfg cfg;
	struct evloop loop;
	int udp, tcp;
	const struct ldns_api *L;
	bool ldns_failed;
	struct query q[MAX_QUERIES];
	struct client c[MAX_TCP];
};

static void report(struct dnsproxy *p, const char *name, const char *type, const char *decision, const char *reason,
		   bool asked, int answers)
{
	struct dns_event ev = {.query_name = name, .query_type = type, .decision = decision, .reason = reason,
			       .upstream_id = asked ? p->cfg.upstream_id : NULL, .answer_count = answers};
	const struct netpolicy_hooks *h = &p->cfg.np->hooks;
	if (h->dns_event)
		h->dns_event(h->ctx, &ev);
}

/* ---- TCP clients ---- */

static void client_close(struct dnsproxy *p, int i);

static void client_watch(struct dnsproxy *p, int i)
{
	struct client *c = &p->c[i];
	uint32_t ev = 0;
	if (c->query < 0)
		ev |= EPOLLIN;
	if (c->outoff < c->outn)
		ev |= EPOLLOUT;
	struct err e = {0};
	if (evloop_watch(&p->loop, c->fd, ev, TAG(W_CLIENT, i), &e) < 0)
		log_warn("DNS proxy: %s", e.msg);
}

static void client_flush(struct dnsproxy *p, int i)
{
	struct client *c = &p->c[i];
	while (c->outoff < c->outn) {
		ssize_t w = send(c->fd, c->out + c->outoff, c->outn - c->outoff, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (w <= 0) {
			c->broken = true;
			return;
		}
		c->outoff += (size_t)w;
	}
	if (c->outoff == c->outn)
		c->outoff = c->outn = 0;
	client_watch(p, i);
}

/* Queue one length-prefixed message for TCP client i. */
static void client_send(struct dnsproxy *p, int i, const uint8_t *m, size_t n)
{
	struct client *c = &p->c[i];
	uint8_t *o = realloc(c->out, c->outn + 2 + n);
	if (!o) {
		c->broken = true;
		return;
	}
	c->out = o;
	o[c->outn] = (uint8_t)(n >> 8);
	o[c->outn + 1] = (uint8_t)n;
	memcpy(o + c->outn + 2, m, n);
	c->outn += 2 + n;
	client_flush(p, i);
}

/* ---- queries ---- */

static void answer(struct dnsproxy *p, int client, const struct sockaddr_storage *from, socklen_t fromlen,
		   const uint8_t *m, size_t n)
{
	if (client >= 0) {
		if (p->c[client].fd >= 0)
			client_send(p, client, m, n);
		return;
	}
	if (sendto(p->udp, m, n, MSG_DONTWAIT, (const struct sockaddr *)from, fromlen) < 0)
		log_debug("DNS proxy: sendto: %s", strerror(errno));
}

/* A response of our own (REFUSED, SERVFAIL) to the query `pkt`: the same id,
 * question and flags, QR set, the given rcode. */
static void answer_rcode(struct dnsproxy *p, int client, const struct sockaddr_storage *from, socklen_t fromlen,
			 ldns_pkt *pkt, uint8_t rcode)
{
	p->L->pkt_set_qr(pkt, true);
	p->L->pkt_set_aa(pkt, false);
	p->L->pkt_set_ra(pkt, true);
	p->L->pkt_set_rcode(pkt, rcode);
	uint8_t *w = NULL;
	size_t wn = 0;
	if (p->L->pkt2wire(&w, pkt, &wn) == LDNS_STATUS_OK)
		answer(p, client, from, fromlen, w, wn);
	free(w);
}

static void query_free(struct dnsproxy *p, int i)
{
	struct query *q = &p->q[i];
	if (q->up >= 0) {
		evloop_unwatch(&p->loop, q->up);
		close(q->up);
	}
	if (q->pkt)
		p->L->pkt_free(q->pkt);
	free(q->msg);
	free(q->ans);
	if (q->client >= 0 && p->c[q->client].query == i)
		p->c[q->client].query = -1;
	*q = (struct query){.up = -1, .client = -1};
}

static void client_input(struct dnsproxy *p, int i);

/* The query is over (answered or given up): its TCP client may send the next. */
static void query_done(struct dnsproxy *p, int i)
{
	int client = p->q[i].client;
	query_free(p, i);
	if (client >= 0 && p->c[client].fd >= 0) {
		p->c[client].deadline = mono_ms() + TCP_IDLE_MS;
		client_input(p, client);
	}
}

static void servfail(struct dnsproxy *p, int i, const char *reason)
{
	struct query *q = &p->q[i];
	answer_rcode(p, q->client, &q->from, q->fromlen, q->pkt, LDNS_RCODE_SERVFAIL);
	report(p, q->name, q->type, "servfail", reason, true, -1);
	query_done(p, i);
}

/* The name and type of the one question, for events and the matcher. */
static void describe(struct dnsproxy *p, const ldns_rr *rr, char *name, size_t nn, char *type, size_t tn)
{
	char *s = p->L->rdf2str(p->L->rr_owner(rr));
	snprintf(name, nn, "%s", s ? s : "");
	free(s);
	size_t l = strlen(name);
	if (l > 1 && name[l - 1] == '.')
		name[l - 1] = '\0';
	s = p->L->rr_type2str(p->L->rr_get_type(rr));
	snprintf(type, tn, "%s", s ? s : "");
	free(s);
}

static int upstream_socket(struct dnsproxy *p, bool tcp)
{
	if (!p->cfg.upstream_len)
		return -1; /* none known (egress_proxy.c warned) */
	int fd = socket(p->cfg.upstream.ss_family, (tcp ? SOCK_STREAM : SOCK_DGRAM) | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (const struct sockaddr *)&p->cfg.upstream, p->cfg.upstream_len) < 0 && errno != EINPROGRESS) {
		close(fd);
		return -1;
	}
	return fd;
}

/* One message from a client: UDP (client -1, from) or TCP client `client`. */
static void handle_query(struct dnsproxy *p, int client, const struct sockaddr_storage *from, socklen_t fromlen,
			 const uint8_t *m, size_t n)
{
	struct err e = {0};
	if (!p->L && !p->ldns_failed && !(p->L = ldns_api_load(&e))) {
		log_error("DNS proxy: %s: every query is dropped", e.msg);
		p->ldns_failed = true;
	}
	if (!p->L) {
		report(p, "", "", "malformed", "dns_library_unavailable", false, -1);
		return;
	}
	ldns_pkt *pkt = NULL;
	if (p->L->wire2pkt(&pkt, m, n) != LDNS_STATUS_OK || p->L->pkt_qr(pkt) ||
	    p->L->pkt_get_opcode(pkt) != LDNS_PACKET_QUERY || p->L->pkt_qdcount(pkt) != 1 ||
	    p->L->rr_list_rr_count(p->L->pkt_question(pkt)) != 1) {
		if (pkt)
			p->L->pkt_free(pkt);
		report(p, "", "", "malformed", "malformed_query", false, -1);
		if (client >= 0)
			client_close(p, client); /* the stream cannot be trusted to resync */
		return;
	}
	char name[1024], type[32];
	describe(p, p->L->rr_list_rr(p->L->pkt_question(pkt), 0), name, sizeof name, type, sizeof type);
	if (!netpolicy_name_allowed(p->cfg.np, name)) {
		answer_rcode(p, client, from, fromlen, pkt, LDNS_RCODE_REFUSED);
		p->L->pkt_free(pkt);
		report(p, name, type, "refused", "allowlist_miss", false, -1);
		return;
	}
	int i = 0;
	while (i < MAX_QUERIES && p->q[i].used)
		i++;
	if (i == MAX_QUERIES) {
		answer_rcode(p, client, from, fromlen, pkt, LDNS_RCODE_SERVFAIL);
		p->L->pkt_free(pkt);
		report(p, name, type, "servfail", "proxy_busy", false, -1);
		return;
	}
	struct query *q = &p->q[i];
	*q = (struct query){.used = true, .client = client, .fromlen = fromlen, .pkt = pkt, .len = n,
			    .deadline = mono_ms() + p->cfg.timeout_ms};
	if (from)
		q->from = *from;
	snprintf(q->name, sizeof q->name, "%s", name);
	snprintf(q->type, sizeof q->type, "%s", type);
	if (client >= 0)
		p->c[client].query = i;
	q->msg = malloc(n + 2);
	q->up = upstream_socket(p, client >= 0);
	if (!q->msg || q->up < 0) {
		servfail(p, i, "upstream_unreachable");
		return;
	}
	q->msg[0] = (uint8_t)(n >> 8);
	q->msg[1] = (uint8_t)n;
	memcpy(q->msg + 2, m, n);
	if (client < 0 && send(q->up, m, n, MSG_DONTWAIT) < 0) {
		servfail(p, i, "upstream_unreachable");
		return;
	}
	if (evloop_watch(&p->loop, q->up, client < 0 ? EPOLLIN : EPOLLOUT, TAG(W_UP, i), &e) < 0) {
		log_warn("DNS proxy: %s", e.msg);
		servfail(p, i, "upstream_unreachable");
	}
}

/* An answer from the upstream for query i: checked against the query (id,
 * question), relayed as it came, its IPv4 addresses learned. Returns false when
 * it is not the answer (a stray datagram): keep waiting. */
static bool handle_answer(struct dnsproxy *p, int i, const uint8_t *m, size_t n)
{
	struct query *q = &p->q[i];
	const struct ldns_api *L = p->L;
	ldns_pkt *a = NULL;
	if (L->wire2pkt(&a, m, n) != LDNS_STATUS_OK)
		return false;
	bool ok = L->pkt_qr(a) && L->pkt_id(a) == L->pkt_id(q->pkt) &&
		  L->rr_list_rr_count(L->pkt_question(a)) == 1;
	if (ok) {
		const ldns_rr *qa = L->rr_list_rr(L->pkt_question(a), 0), *qq = L->rr_list_rr(L->pkt_question(q->pkt), 0);
		ok = L->rr_get_type(qa) == L->rr_get_type(qq) && L->dname_compare(L->rr_owner(qa), L->rr_owner(qq)) == 0;
	}
	if (!ok) {
		L->pkt_free(a);
		return false;
	}
	/* Every A record of the answer section: the resolver has followed any
	 * CNAME chain, and these are the addresses the cell will connect to for
	 * the name it asked. They join the sets before the cell has the answer,
	 * so its first connection is not dropped. */
	ldns_rr_list *an = L->pkt_answer(a);
	size_t count = L->rr_list_rr_count(an), n4 = 0;
	struct in_addr v4[64];
	for (size_t k = 0; k < count && n4 < 64; k++) {
		const ldns_rr *rr = L->rr_list_rr(an, k);
		const ldns_rdf *d = L->rr_rdf(rr, 0);
		if (L->rr_get_type(rr) == LDNS_RR_TYPE_A && L->rr_get_class(rr) == LDNS_RR_CLASS_IN && d &&
		    L->rdf_size(d) == 4)
			memcpy(&v4[n4++], L->rdf_data(d), 4);
	}
	L->pkt_free(a);
	size_t denied = netpolicy_learn(p->cfg.np, q->name, v4, n4);
	answer(p, q->client, &q->from, q->fromlen, m, n);
	report(p, q->name, q->type, "permitted", denied ? "rebind_rejected" : "allowlist_match", true, (int)count);
	query_done(p, i);
	return true;
}

static void upstream_event(struct dnsproxy *p, int i, uint32_t events)
{
	struct query *q = &p->q[i];
	if (!q->used)
		return;
	static uint8_t buf[DNS_MSG_MAX];
	if (q->client < 0) {
		for (;;) {
			ssize_t r = recv(q->up, buf, sizeof buf, MSG_DONTWAIT);
			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
				return;
			if (r < 0) { /* e.g. ECONNREFUSED: nothing listens there */
				servfail(p, i, "upstream_unreachable");
				return;
			}
			if (handle_answer(p, i, buf, (size_t)r))
				return;
		}
	}
	/* TCP: send the length-prefixed query, then read the length-prefixed answer. */
	if (q->sent < q->len + 2) {
		ssize_t w = send(q->up, q->msg + q->sent, q->len + 2 - q->sent, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			return;
		if (w <= 0) {
			servfail(p, i, "upstream_unreachable");
			return;
		}
		q->sent += (size_t)w;
		if (q->sent == q->len + 2) {
			struct err e = {0};
			q->ans = malloc(2 + DNS_MSG_MAX);
			if (!q->ans || evloop_watch(&p->loop, q->up, EPOLLIN, TAG(W_UP, i), &e) < 0)
				servfail(p, i, "upstream_unreachable");
		}
		return;
	}
	size_t want = q->an < 2 ? 2 : 2 + ((size_t)q->ans[0] << 8 | q->ans[1]);
	ssize_t r = recv(q->up, q->ans + q->an, want - q->an, MSG_DONTWAIT);
	if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (r <= 0) {
		servfail(p, i, "upstream_unreachable");
		return;
	}
	q->an += (size_t)r;
	if (q->an < 2 || q->an < 2 + ((size_t)q->ans[0] << 8 | q->ans[1]))
		return;
	if (!handle_answer(p, i, q->ans + 2, q->an - 2))
		servfail(p, i, "upstream_invalid_answer");
}

/* ---- TCP clients (continued) ---- */

static void client_close(struct dnsproxy *p, int i)
{
	struct client *c = &p->c[i];
	if (c->fd < 0)
		return;
	int qi = c->query;
	evloop_unwatch(&p->loop, c->fd);
	close(c->fd);
	c->fd = -1;
	free(c->in);
	free(c->out);
	*c = (struct client){.fd = -1, .query = -1};
	if (qi >= 0 && p->q[qi].used) {
		report(p, p->q[qi].name, p->q[qi].type, "servfail", "client_closed", true, -1);
		p->q[qi].client = -1;
		query_free(p, qi);
	}
}

/* Handle the queries complete in the client's buffer, one at a time. */
static void client_input(struct dnsproxy *p, int i)
{
	struct client *c = &p->c[i];
	while (c->fd >= 0 && !c->broken && c->query < 0 && c->inn >= 2) {
		size_t n = (size_t)c->in[0] << 8 | c->in[1];
		if (c->inn < 2 + n)
			break;
		uint8_t *m = malloc(n ? n : 1);
		if (!m) {
			client_close(p, i);
			return;
		}
		memcpy(m, c->in + 2, n);
		memmove(c->in, c->in + 2 + n, c->inn - 2 - n);
		c->inn -= 2 + n;
		handle_query(p, i, NULL, 0, m, n);
		free(m);
	}
	if (c->fd >= 0)
		client_watch(p, i);
}

static void client_event(struct dnsproxy *p, int i, uint32_t events)
{
	struct client *c = &p->c[i];
	if (c->fd < 0)
		return;
	if (events & (EPOLLHUP | EPOLLERR)) {
		client_close(p, i);
		return;
	}
	if (events & EPOLLOUT)
		client_flush(p, i);
	if (c->broken || !(events & EPOLLIN) || c->query >= 0)
		return;
	ssize_t r = recv(c->fd, c->in + c->inn, 2 + DNS_MSG_MAX - c->inn, MSG_DONTWAIT);
	if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (r <= 0) {
		client_close(p, i);
		return;
	}
	c->inn += (size_t)r;
	c->deadline = mono_ms() + TCP_IDLE_MS;
	client_input(p, i);
}

static void accept_clients(struct dnsproxy *p)
{
	for (;;) {
		int fd = accept4(p->tcp, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return;
		int i = 0;
		while (i < MAX_TCP && p->c[i].fd >= 0)
			i++;
		struct client *c = &p->c[i < MAX_TCP ? i : 0];
		if (i == MAX_TCP || !(c->in = malloc(2 + DNS_MSG_MAX))) {
			close(fd);
			continue;
		}
		c->fd = fd;
		c->deadline = mono_ms() + TCP_IDLE_MS;
		client_watch(p, i);
	}
}

static void read_udp(struct dnsproxy *p)
{
	static uint8_t buf[DNS_MSG_MAX];
	for (int k = 0; k < 64; k++) { /* bounded: the wait loop has other work too */
		struct sockaddr_storage from;
		socklen_t fl = sizeof from;
		ssize_t r = recvfrom(p->udp, buf, sizeof buf, MSG_DONTWAIT, (struct sockaddr *)&from, &fl);
		if (r < 0)
			return;
		handle_query(p, -1, &from, fl, buf, (size_t)r);
	}
}

static void expire(struct dnsproxy *p)
{
	int64_t now = mono_ms();
	for (int i = 0; i < MAX_QUERIES; i++)
		if (p->q[i].used && p->q[i].deadline <= now)
			servfail(p, i, "upstream_timeout");
	for (int i = 0; i < MAX_TCP; i++)
		if (p->c[i].fd >= 0 && p->c[i].query < 0 && p->c[i].outn == 0 && p->c[i].deadline <= now)
			client_close(p, i);
}

static void arm(struct dnsproxy *p)
{
	int64_t next = INT64_MAX;
	for (int i = 0; i < MAX_QUERIES; i++)
		if (p->q[i].used && p->q[i].deadline < next)
			next = p->q[i].deadline;
	for (int i = 0; i < MAX_TCP; i++)
		if (p->c[i].fd >= 0 && p->c[i].deadline < next)
			next = p->c[i].deadline;
	evloop_arm(&p->loop, next);
}

void dnsproxy_pump(struct dnsproxy *p)
{
	struct epoll_event ev[32];
	int n = evloop_ready(&p->loop, ev, 32);
	for (int k = 0; k < n; k++) {
		uint32_t kind = (uint32_t)(ev[k].data.u64 >> 32), i = (uint32_t)ev[k].data.u64;
		switch (kind) {
		case W_UDP: read_udp(p); break;
		case W_TCP: accept_clients(p); break;
		case W_UP: upstream_event(p, (int)i, ev[k].events); break;
		case W_CLIENT: client_event(p, (int)i, ev[k].events); break;
		default: break; /* the timer: expire() below */
		}
	}
	expire(p);
	for (int i = 0; i < MAX_TCP; i++)
		if (p->c[i].fd >= 0 && p->c[i].broken)
			client_close(p, i);
	arm(p);
}

int dnsproxy_fd(const struct dnsproxy *p)
{
	return p->loop.ep;
}

static int listener(const struct dnsproxy_cfg *cfg, int type, struct err *e)
{
	int fd = socket(AF_INET, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return err_sys(e, errno, "DNS proxy: socket");
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(cfg->port), .sin_addr = cfg->listen};
	char txt[INET_ADDRSTRLEN] = "?";
	inet_ntop(AF_INET, &cfg->listen, txt, sizeof txt);
	if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || (type == SOCK_STREAM && listen(fd, 16) < 0)) {
		int errnum = errno;
		close(fd);
		return err_sys(e, errnum, "DNS proxy: %s %s:%u", type == SOCK_STREAM ? "tcp" : "udp", txt, cfg->port);
	}
	return fd;
}

void dnsproxy_preload(void)
{
	struct err e = {0};
	if (!ldns_api_load(&e))
		log_debug("DNS proxy: not preloaded: %s", e.msg);
}

int dnsproxy_open(struct dnsproxy **out, const struct dnsproxy_cfg *cfg, struct err *e)
{
	struct dnsproxy *p = calloc(1, sizeof *p);
	if (!p)
		return err_sys(e, ENOMEM, "DNS proxy");
	p->cfg = *cfg;
	p->udp = p->tcp = -1;
	p->loop.ep = p->loop.timer = -1;
	for (int i = 0; i < MAX_QUERIES; i++)
		p->q[i] = (struct query){.up = -1, .client = -1};
	for (int i = 0; i < MAX_TCP; i++)
		p->c[i] = (struct client){.fd = -1, .query = -1};
	if (evloop_open(&p->loop, e) < 0 || (p->udp = listener(cfg, SOCK_DGRAM, e)) < 0 ||
	    (p->tcp = listener(cfg, SOCK_STREAM, e)) < 0 || evloop_watch(&p->loop, p->udp, EPOLLIN, TAG(W_UDP, 0), e) < 0 ||
	    evloop_watch(&p->loop, p->tcp, EPOLLIN, TAG(W_TCP, 0), e) < 0) {
		dnsproxy_close(p);
		return -1;
	}
	*out = p;
	return 0;
}

void dnsproxy_close(struct dnsproxy *p)
{
	if (!p)
		return;
	for (int i = 0; i < MAX_QUERIES; i++)
		if (p->q[i].used) {
			report(p, p->q[i].name, p->q[i].type, "servfail", "cell_ended", true, -1);
			p->q[i].client = -1;
			query_free(p, i);
		}
	for (int i = 0; i < MAX_TCP; i++)
		client_close(p, i);
	if (p->udp >= 0)
		close(p->udp);
	if (p->tcp >= 0)
		close(p->tcp);
	evloop_close(&p->loop);
	free(p);
}
