/* The supervisor's end of the agent's relay (sink/nats_relay.h). */
#include "sink/nats_relay.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/vec.h"

/* Datagrams not yet taken by the socket (its buffer full: the agent is busy). */
struct out {
	char *buf;
	size_t len;
};

struct nats_relay {
	int fd;
	nats_wire_reply_fn on_reply;
	void *arg;
	struct out *q;
	size_t n, cap, head;
	char *in;          /* one answer */
	char error[200];
	char where[64];
};

struct nats_relay *nats_relay_new(int fd, nats_wire_reply_fn on_reply, void *arg, struct err *e)
{
	struct nats_relay *r = calloc(1, sizeof *r);
	if (r)
		r->in = malloc(NATS_RELAY_MAX_MSG + 1);
	if (!r || !r->in) {
		if (r)
			free(r);
		err_set(e, "%s: out of memory", NATS_RELAY_ENV);
		return NULL;
	}
	r->fd = fd;
	r->on_reply = on_reply;
	r->arg = arg;
	snprintf(r->where, sizeof r->where, "cellos-agent's relay (%s=%d)", NATS_RELAY_ENV, fd);
	/* A datagram must fit in the socket's send buffer whole: room for an
	 * event as large as NATS takes (root may go beyond wmem_max). */
	int size = 4 * NATS_RELAY_MAX_MSG;
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof size) < 0)
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
	return r;
}

static void closed(struct nats_relay *r, const char *why)
{
	if (r->error[0])
		return;
	snprintf(r->error, sizeof r->error, "the relay to cellos-agent closed (%s)", why);
	for (size_t i = r->head; i < r->n; i++)
		free(r->q[i].buf);
	r->head = r->n = 0;
}

void nats_relay_flush(struct nats_relay *r)
{
	while (!r->error[0] && r->head < r->n) {
		struct out *o = &r->q[r->head];
		ssize_t w = send(r->fd, o->buf, o->len, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (w < 0) {
			closed(r, strerror(errno));
			return;
		}
		free(o->buf);
		r->head++;
	}
	if (r->head == r->n)
		r->head = r->n = 0;
}

static void dispatch(struct nats_relay *r, size_t n)
{
	struct nats_relay_msg m;
	if (nats_relay_parse(r->in, n, &m) < 0)
		return;
	if (m.kind == 'M')
		r->on_reply(r->arg, m.token, atoi(m.a), m.data, m.len);
	else if (m.kind == 'F')
		r->on_reply(r->arg, m.token, -1, m.data, m.len);
}

void nats_relay_pump(struct nats_relay *r, int timeout_ms)
{
	if (r->error[0]) {
		/* Nothing will ever come: the caller's clock decides. */
		if (timeout_ms > 0)
			poll(NULL, 0, timeout_ms);
		return;
	}
	struct pollfd p = {.fd = r->fd, .events = POLLIN | (r->head < r->n ? POLLOUT : 0)};
	if (timeout_ms > 0 && poll(&p, 1, timeout_ms) <= 0)
		return;
	for (;;) {
		ssize_t n = recv(r->fd, r->in, NATS_RELAY_MAX_MSG, MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n <= 0) {
			closed(r, n == 0 ? "cellos-agent is gone" : strerror(errno));
			return;
		}
		dispatch(r, (size_t)n);
	}
	if (timeout_ms > 0)
		nats_relay_flush(r);
}

bool nats_relay_open(const struct nats_relay *r) { return !r->error[0]; }
const char *nats_relay_error(const struct nats_relay *r) { return r->error; }
const char *nats_relay_where(const struct nats_relay *r) { return r->where; }

int nats_relay_publish(struct nats_relay *r, const char *subject, const char *token, const char *msg_id,
		       const void *data, size_t len, struct err *e)
{
	if (r->error[0])
		return err_set(e, "%s", r->error);
	const char *id = msg_id ? msg_id : "";
	size_t ts = strlen(token) + 1, ss = strlen(subject) + 1, is = strlen(id) + 1;
	size_t total = 1 + ts + ss + is + len;
	if (total > NATS_RELAY_MAX_MSG)
		return err_set(e, "the event (%zu bytes) is larger than the relay takes (%d)", len, NATS_RELAY_MAX_MSG);
	if (vec_reserve(&r->q, r->n, &r->cap, sizeof *r->q, 16) < 0)
		return err_set(e, "out of memory");
	char *b = malloc(total);
	if (!b)
		return err_set(e, "out of memory");
	b[0] = 'P';
	memcpy(b + 1, token, ts);
	memcpy(b + 1 + ts, subject, ss);
	memcpy(b + 1 + ts + ss, id, is);
	if (len)
		memcpy(b + 1 + ts + ss + is, data, len);
	r->q[r->n++] = (struct out){.buf = b, .len = total};
	return 0;
}

void nats_relay_free(struct nats_relay *r)
{
	if (!r)
		return;
	for (size_t i = r->head; i < r->n; i++)
		free(r->q[i].buf);
	free(r->q);
	free(r->in);
	close(r->fd);
	free(r);
}

/* The next NUL-terminated field at *p (within end), or NULL. */
static const char *field(char **p, const char *end)
{
	char *s = *p;
	char *z = memchr(s, '\0', (size_t)(end - s));
	if (!z)
		return NULL;
	*p = z + 1;
	return s;
}

int nats_relay_parse(char *buf, size_t n, struct nats_relay_msg *m)
{
	if (n < 2)
		return -1;
	memset(m, 0, sizeof *m);
	buf[n] = '\0';
	char *p = buf + 1;
	const char *end = buf + n;
	m->kind = buf[0];
	if (!(m->token = field(&p, end)))
		return -1;
	switch (m->kind) {
	case 'P':
		if (!(m->a = field(&p, end)) || !(m->b = field(&p, end)) || !*m->a)
			return -1;
		break;
	case 'M':
		if (!(m->a = field(&p, end)))
			return -1;
		break;
	case 'F':
		break;
	default:
		return -1;
	}
	m->data = p;
	m->len = (size_t)(end - p);
	return 0;
}
