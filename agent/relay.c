/* The relay (docs/DESIGN.md, "The agent's relay"; sink/nats_relay.h has the
 * datagrams): every supervisor the agent starts publishes its events through
 * the agent's NATS connection instead of opening one of its own, which costs
 * the broker far more than the messages (bench/README.md).
 *
 * Each supervisor gets one end of a socketpair; the agent reads the other in
 * its loop, publishes each message with a reply subject <inbox>.<number>
 * (core publish: JetStream acks on the reply subject), and answers the
 * supervisor when the reply comes ('M', passed on as it is: the supervisor's
 * sink reads acks as it does on its own connection), or 'F' when none can
 * come.
 *
 * The relay's messages go on a connection of its own, the project's threadless
 * client (sink/nats_wire.h) polled in the agent's loop: what the supervisors
 * sent in one turn of the loop goes out in one write, and an ack is answered
 * in the turn that reads it. On libnats's connection each message was a write
 * of its own and each ack crossed libnats's reader and delivery threads and a
 * pipe before the loop saw it: a short cell, whose events go out together at
 * its end, waited 1.2 ms for its last ack, of which the broker took 0.1
 * (bench/README.md). A connection with TLS or a credentials file, which that
 * client does not do, still goes through libnats: then the subscription's
 * callback runs on libnats's thread and only passes the message through a
 * pipe, as queue.c's does.
 *
 * Order: a supervisor's messages are published in the order they come, on
 * one connection, so a run's events reach the stream in the order the sink
 * sent them; the sink does the rest (sink/nats_async.c). A link lives until
 * its supervisor's end closes (it exited): then it is closed, and replies
 * still due for it are dropped. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nats/nats.h>

#include "agent.h"
#include "sink/nats.h"
#include "sink/nats_dl.h"
#include "sink/nats_relay.h"
#include "sink/nats_wire.h"
#include "util/fileio.h"
#include "util/ids.h"
#include "util/log.h"
#include "util/vec.h"

static void on_reply(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *closure)
{
	struct relays *r = closure;
	if (write_all(r->pipe[1], &m, sizeof m) < 0)
		r->conn->api->natsMsg_Destroy(m);
}

static void handle_reply(struct relays *r, uint64_t id, const char *status, const char *data, size_t len);

static void on_wire_reply(void *arg, const char *token, int status, const char *data, size_t len)
{
	char st[16];
	snprintf(st, sizeof st, "%d", status);
	handle_reply(arg, strtoull(token, NULL, 10), st, data, len);
}

int relays_open(struct relays *r, struct nats_conn *conn, const struct nats_conn_opts *opts, unsigned max_links,
		struct err *e)
{
	memset(r, 0, sizeof *r);
	r->pipe[0] = r->pipe[1] = -1;
	if (!max_links)
		return 0;
	r->conn = conn;
	if (!(r->links = calloc(max_links, sizeof *r->links)) || !(r->buf = malloc(NATS_RELAY_MAX_MSG + 1)))
		return err_set(e, "out of memory");
	r->n_links = max_links;
	for (size_t i = 0; i < r->n_links; i++)
		r->links[i].fd = -1;
	if (!nats_sink_needs_libnats(opts)) {
		/* Connected in the loop (relays_tick): a server that is not
		 * there yet is tried again, as libnats's connection is. */
		if (!(r->w = nats_wire_new(opts->urls, "cellos-agent (relay)", on_wire_reply, r, e)))
			return -1;
		r->on = true;
		return 0;
	}
	if (pipe2(r->pipe, O_CLOEXEC) < 0)
		return err_sys(e, errno, "pipe");
	fcntl(r->pipe[0], F_SETFL, O_NONBLOCK);
	char id[37];
	uuid_v4(id);
	snprintf(r->inbox, sizeof r->inbox, "_INBOX.cellos-relay.%.8s%.4s", id, id + 9);
	char subject[80];
	snprintf(subject, sizeof subject, "%s.*", r->inbox);
	const struct nats_api *a = conn->api;
	natsStatus st = a->natsConnection_Subscribe(&r->sub, conn->nc, subject, on_reply, r);
	if (st == NATS_OK)
		st = a->natsSubscription_SetPendingLimits(r->sub, -1, -1);
	if (st != NATS_OK)
		return err_set(e, "NATS subscribe: %s", a->natsStatus_GetText(st));
	r->on = true;
	return 0;
}

static void link_close(struct relays *r, struct relay_link *l)
{
	if (l->fd >= 0)
		close(l->fd);
	l->fd = -1;
}

void relays_close(struct relays *r)
{
	if (r->sub)
		r->conn->api->natsSubscription_Destroy(r->sub);
	if (r->conn && r->pipe[0] >= 0) {
		natsMsg *m;
		while (read(r->pipe[0], &m, sizeof m) == (ssize_t)sizeof m)
			r->conn->api->natsMsg_Destroy(m);
	}
	for (size_t i = 0; i < r->n_links; i++)
		link_close(r, &r->links[i]);
	for (int i = 0; i < 2; i++)
		if (r->pipe[i] >= 0)
			close(r->pipe[i]);
	if (r->w)
		nats_wire_free(r->w);
	free(r->links);
	free(r->pend);
	free(r->buf);
	memset(r, 0, sizeof *r);
	r->pipe[0] = r->pipe[1] = -1;
}

int relay_new(struct relays *r)
{
	if (!r->on)
		return -1;
	struct relay_link *l = NULL;
	for (size_t i = 0; i < r->n_links && !l; i++)
		if (r->links[i].fd < 0)
			l = &r->links[i];
	if (!l) {
		log_warn("relay: every link is taken: this supervisor connects to NATS itself");
		return -1;
	}
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		log_warn("relay: socketpair: %s: this supervisor connects to NATS itself", strerror(errno));
		return -1;
	}
	/* Our answers are small: the default send buffer holds them (the
	 * supervisor raises its own, for its events: sink/nats_relay.c). */
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	l->fd = sv[0];
	l->gen = ++r->next_gen;
	return sv[1];
}

/* One datagram to a supervisor; a supervisor that does not read (its buffer
 * full) loses the answer: its sink then dead-letters the event, which is a
 * copy too many at worst, never one too few. */
static void answer(struct relays *r, struct relay_link *l, char kind, const char *token, const char *a,
		   const char *data, size_t len)
{
	size_t ts = strlen(token) + 1, as = a ? strlen(a) + 1 : 0, total = 1 + ts + as + len;
	if (total > NATS_RELAY_MAX_MSG)
		return;
	char *b = r->buf;
	b[0] = kind;
	memcpy(b + 1, token, ts);
	if (a)
		memcpy(b + 1 + ts, a, as);
	if (len)
		memcpy(b + 1 + ts + as, data, len);
	if (send(l->fd, b, total, MSG_DONTWAIT | MSG_NOSIGNAL) < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
		log_debug("relay: answer lost: %s", strerror(errno));
}

static void failed(struct relays *r, struct relay_link *l, const char *token, const char *why)
{
	char t[32];
	snprintf(t, sizeof t, "%s", token);
	answer(r, l, 'F', t, NULL, why, strlen(why));
}

/* What a supervisor may publish to: anything but the server's own subjects
 * and inboxes, and of those only the JetStream calls its sink makes at
 * admission (CELL_OS_REQUIRE_JETSTREAM, CELLOS_NATS_ENSURE_STREAM). */
static bool subject_allowed(const char *s)
{
	if (strncmp(s, "$JS.API.", 8) == 0)
		return strcmp(s + 8, "STREAM.NAMES") == 0 || strncmp(s + 8, "STREAM.INFO.", 12) == 0 ||
		       strncmp(s + 8, "STREAM.CREATE.", 14) == 0;
	return s[0] != '$' && strncmp(s, "_INBOX.", 7) != 0;
}

static int add_pending(struct relays *r, size_t link, const char *token, uint64_t *id)
{
	if (vec_reserve(&r->pend, r->n_pend, &r->cap_pend, sizeof *r->pend, 32) < 0)
		return -1;
	struct relay_pending *p = &r->pend[r->n_pend++];
	*p = (struct relay_pending){.id = ++r->next_id, .link = link, .gen = r->links[link].gen,
				    .deadline_ms = mono_ms() + NATS_RELAY_ANSWER_MS,
				    .conn_gen = r->w ? nats_wire_generation(r->w) : 0};
	snprintf(p->token, sizeof p->token, "%s", token);
	*id = p->id;
	return 0;
}

/* The message on the relay's own connection, or on libnats's; 0 or -1 with *e. */
static int send_msg(struct relays *r, uint64_t id, const struct nats_relay_msg *m, struct err *e)
{
	char token[24];
	snprintf(token, sizeof token, "%" PRIu64, id);
	if (r->w)
		return nats_wire_publish(r->w, m->a, token, m->b[0] ? m->b : NULL, m->data, m->len, e);
	const struct nats_api *a = r->conn->api;
	char reply[96];
	snprintf(reply, sizeof reply, "%s.%s", r->inbox, token);
	natsMsg *msg = NULL;
	natsStatus s = a->natsMsg_Create(&msg, m->a, reply, m->data, (int)m->len);
	if (s == NATS_OK && m->b[0])
		s = a->natsMsgHeader_Set(msg, "Nats-Msg-Id", m->b);
	if (s == NATS_OK)
		s = a->natsConnection_PublishMsg(r->conn->nc, msg);
	a->natsMsg_Destroy(msg);
	return s == NATS_OK ? 0 : err_set(e, "publish: %s", a->natsStatus_GetText(s));
}

static bool connected(const struct relays *r)
{
	return r->w ? nats_wire_state(r->w) == NATS_WIRE_READY : nats_conn_connected(r->conn);
}

static void publish(struct relays *r, size_t link, const struct nats_relay_msg *m)
{
	struct relay_link *l = &r->links[link];
	if (strlen(m->token) >= sizeof r->pend[0].token) {
		failed(r, l, m->token, "the token is too long");
		return;
	}
	if (!subject_allowed(m->a)) {
		char why[300];
		snprintf(why, sizeof why, "subject '%.200s' is not one a supervisor publishes to", m->a);
		failed(r, l, m->token, why);
		return;
	}
	if (!connected(r)) {
		failed(r, l, m->token, "no connection to NATS now");
		return;
	}
	uint64_t id;
	if (add_pending(r, link, m->token, &id) < 0) {
		failed(r, l, m->token, "out of memory");
		return;
	}
	struct err e = {0};
	if (send_msg(r, id, m, &e) < 0) {
		r->n_pend--; /* the one just added */
		failed(r, l, m->token, e.msg);
	}
}

void relay_on_readable(struct relays *r, size_t i)
{
	struct relay_link *l = &r->links[i];
	for (;;) {
		ssize_t n = recv(l->fd, r->buf, NATS_RELAY_MAX_MSG, MSG_DONTWAIT | MSG_TRUNC);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			/* The supervisor exited (or the link broke): its replies
			 * still due are dropped when they come. */
			link_close(r, l);
			return;
		}
		struct nats_relay_msg m;
		if ((size_t)n > NATS_RELAY_MAX_MSG || nats_relay_parse(r->buf, (size_t)n, &m) < 0 || m.kind != 'P') {
			log_warn("relay: a malformed message from a supervisor: link closed");
			link_close(r, l);
			return;
		}
		publish(r, i, &m);
	}
}

static ssize_t find_pending(const struct relays *r, uint64_t id)
{
	for (size_t i = 0; i < r->n_pend; i++)
		if (r->pend[i].id == id)
			return (ssize_t)i;
	return -1;
}

static void drop_pending(struct relays *r, size_t i) { r->pend[i] = r->pend[--r->n_pend]; }

/* The server's answer to pending message `id`: passed on to its supervisor
 * if that one is still there. */
static void handle_reply(struct relays *r, uint64_t id, const char *status, const char *data, size_t len)
{
	ssize_t k = find_pending(r, id);
	if (k < 0)
		return;
	struct relay_pending *p = &r->pend[k];
	struct relay_link *l = &r->links[p->link];
	if (l->fd >= 0 && l->gen == p->gen)
		answer(r, l, 'M', p->token, status, data, len);
	drop_pending(r, (size_t)k);
}

void relays_pollfd(const struct relays *r, struct pollfd *p)
{
	*p = (struct pollfd){.fd = -1};
	if (r->w)
		*p = (struct pollfd){.fd = nats_wire_fd(r->w), .events = nats_wire_poll_events(r->w)};
	else if (r->on)
		*p = (struct pollfd){.fd = r->pipe[0], .events = POLLIN};
}

void relays_send(struct relays *r)
{
	if (r->w)
		nats_wire_flush(r->w);
}

void relays_on_ready(struct relays *r)
{
	if (r->w) {
		/* Reads and answers what came; then what is queued (the
		 * connection's CONNECT, a PONG) goes. */
		nats_wire_pump(r->w, 0);
		nats_wire_flush(r->w);
		return;
	}
	const struct nats_api *a = r->conn->api;
	natsMsg *m;
	while (read(r->pipe[0], &m, sizeof m) == (ssize_t)sizeof m) {
		const char *subject = a->natsMsg_GetSubject(m);
		size_t n = strlen(r->inbox);
		if (strncmp(subject, r->inbox, n) == 0 && subject[n] == '.') {
			const char *status = NULL;
			if (a->natsMsgHeader_Get(m, "Status", &status) != NATS_OK || !status)
				status = "0";
			int len = a->natsMsg_GetDataLength(m);
			handle_reply(r, strtoull(subject + n + 1, NULL, 10), status, a->natsMsg_GetData(m),
				     len > 0 ? (size_t)len : 0);
		}
		a->natsMsg_Destroy(m);
	}
}

int64_t relays_tick(struct relays *r)
{
	int64_t now = mono_ms(), wait = 1000;
	uint64_t conn_gen = 0;
	if (r->w) {
		/* The next attempt when one is due; a connection not yet
		 * confirmed is given up on there after its time. */
		int64_t retry = nats_wire_retry_ms(r->w);
		if ((retry >= 0 && now >= retry) || (retry < 0 && !nats_wire_confirmed(r->w))) {
			nats_wire_pump(r->w, 0);
			nats_wire_flush(r->w);
		}
		retry = nats_wire_retry_ms(r->w);
		if (retry >= 0 && retry - now < wait)
			wait = retry > now ? retry - now : 0;
		else if (retry < 0 && !nats_wire_confirmed(r->w) && wait > 100)
			wait = 100;
		/* The answer to a message sent on a connection that is gone
		 * cannot come: 'F' at once, and the sink sends it again. */
		conn_gen = nats_wire_state(r->w) == NATS_WIRE_READY ? nats_wire_generation(r->w) : UINT64_MAX;
	}
	for (size_t i = 0; i < r->n_pend;) {
		struct relay_pending *p = &r->pend[i];
		if (r->w && p->conn_gen != conn_gen) {
			struct relay_link *l = &r->links[p->link];
			if (l->fd >= 0 && l->gen == p->gen) {
				char why[300];
				snprintf(why, sizeof why, "the relay's connection to NATS was lost (%s)", nats_wire_error(r->w));
				failed(r, l, p->token, why);
			}
			drop_pending(r, i);
			continue;
		}
		if (now < p->deadline_ms) {
			if (p->deadline_ms - now < wait)
				wait = p->deadline_ms - now;
			i++;
			continue;
		}
		struct relay_link *l = &r->links[p->link];
		if (l->fd >= 0 && l->gen == p->gen) {
			char why[100];
			snprintf(why, sizeof why, "no answer from JetStream within %d ms", NATS_RELAY_ANSWER_MS);
			failed(r, l, p->token, why);
		}
		drop_pending(r, i);
	}
	return wait;
}
