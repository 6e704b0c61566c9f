/* A NATS client for the event sink's plain-TCP connections: the text protocol
 * (INFO, CONNECT, PING/PONG, SUB, PUB/HPUB, MSG/HMSG, -ERR) on one non-blocking
 * socket, driven by its caller, with no thread of its own.
 *
 * Why not libnats here (docs/DESIGN.md, JetStream sink): loading libnats with
 * libssl and libcrypto, its threads and its synchronous requests cost a short
 * cell far more than the 1 ms the sink may add; and no thread may run in the
 * supervisor while it clone3()s a cell's init. Connections with TLS or a
 * credentials file still go through libnats (sink/nats_conn.h).
 *
 * The caller queues what to send; nats_wire_pump() connects (each URL in turn,
 * again 250 ms after a failed attempt), reads, writes and hands every message on the
 * client's inbox (`<inbox>.<token>`, subscribed on every connection) to the
 * callback with its token. Nothing is resent by this layer: after a lost
 * connection the caller republishes what it still needs (nats_wire_generation()
 * tells it a new connection is up).
 *
 * Typical use:
 *
 *	struct nats_wire *w = nats_wire_new(urls, "name", on_reply, arg, &e);
 *	while (nats_wire_state(w) != NATS_WIRE_READY) nats_wire_pump(w, 10);
 *	nats_wire_publish(w, "subject", "7", "event-id", data, len, &e);
 *	nats_wire_pump(w, 100);   // on_reply(arg, "7", ...) once the ack arrives
 *	nats_wire_free(w);
 */
#ifndef CELLOS_NATS_WIRE_H
#define CELLOS_NATS_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

struct nats_wire;

/* A message on the inbox: `token` is what follows "<inbox>."; `status` the
 * header status (503: no responders; 0: none); data/len the payload. */
typedef void (*nats_wire_reply_fn)(void *arg, const char *token, int status, const char *data, size_t len);

enum nats_wire_state {
	NATS_WIRE_DOWN,  /* no connection (waiting to try the next URL) */
	NATS_WIRE_READY, /* connecting or connected, CONNECT queued: publishes may be queued */
};

/* `urls`: nats://[user[:pass]@|token@]host[:port] (checked by the
 * configuration). Nothing is done on the network until the first pump. NULL
 * with *e. */
struct nats_wire *nats_wire_new(char *const *urls, const char *name, nats_wire_reply_fn on_reply, void *arg,
				struct err *e);
/* Hand the callback to a new owner (a prepared connection taken by the sink). */
void nats_wire_set_reply(struct nats_wire *w, nats_wire_reply_fn on_reply, void *arg);
/* Connect, read and dispatch, write; waits up to timeout_ms for something to
 * happen. With 0, it neither waits nor writes (nats_wire_flush() does). Never
 * fails: problems end the connection (its reason is nats_wire_error()) and a
 * new one is tried later. */
void nats_wire_pump(struct nats_wire *w, int timeout_ms);
/* Write what is queued, without waiting (no read). */
void nats_wire_flush(struct nats_wire *w);
enum nats_wire_state nats_wire_state(const struct nats_wire *w);
/* Counts connections that reached READY: a change means the previous one is gone. */
uint64_t nats_wire_generation(const struct nats_wire *w);
/* Whether the server answered our PING on this connection (CONNECT accepted). */
bool nats_wire_confirmed(const struct nats_wire *w);
/* Why the last connection ended or failed ("" when none did). */
const char *nats_wire_error(const struct nats_wire *w);
/* Connection failures so far (every URL tried counts). */
unsigned nats_wire_failures(const struct nats_wire *w);
/* The URLs with any user and password left out, for messages. */
const char *nats_wire_where(const struct nats_wire *w);

/* For a caller that polls the socket in a loop of its own (cellos-agent's
 * relay): the socket (-1: none now), the events to poll it for, and when a
 * connection that is DOWN is to be tried again (nats_wire_pump() tries it;
 * -1: it is not DOWN). */
int nats_wire_fd(const struct nats_wire *w);
short nats_wire_poll_events(const struct nats_wire *w);
int64_t nats_wire_retry_ms(const struct nats_wire *w);

/* Queue a message to `subject` with reply subject "<inbox>.<token>" and, when
 * msg_id is not NULL, the header Nats-Msg-Id. READY only; -1 with *e when the
 * message is larger than the server accepts (it would close the connection). */
int nats_wire_publish(struct nats_wire *w, const char *subject, const char *token, const char *msg_id,
		      const void *data, size_t len, struct err *e);

void nats_wire_free(struct nats_wire *w);

/* Connect now and keep the connection for the next nats_wire_take_prepared()
 * of this process (`cellos-supervisor --warm`); waits up to timeout_ms for the
 * server's answer. */
void nats_wire_prepare(char *const *urls, const char *name, int64_t timeout_ms);
/* The prepared connection (caller owns it), or NULL. */
struct nats_wire *nats_wire_take_prepared(void);

#endif
