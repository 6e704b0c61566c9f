/* The relay (docs/DESIGN.md, "The agent's relay"): a supervisor that
 * cellos-agent started publishes through the agent's NATS connection instead
 * of opening its own. The agent hands it one end of an AF_UNIX SOCK_SEQPACKET
 * socket (CELLOS_NATS_RELAY_FD); one datagram is one message:
 *
 *   supervisor -> agent  'P' token NUL subject NUL msg-id NUL payload
 *                        publish payload to subject (header Nats-Msg-Id: msg-id
 *                        unless empty) with a reply subject of the agent's;
 *   agent -> supervisor  'M' token NUL status NUL data
 *                        the reply that came (JetStream's ack, or the answer of
 *                        a $JS.API request), status as nats_wire's (0: none);
 *                        'F' token NUL reason
 *                        no reply will come: the agent could not publish, or
 *                        none came within NATS_RELAY_ANSWER_MS.
 *
 * The token is the caller's, as with nats_wire. This side is nats_wire's
 * shape over the socket (sink/nats_wire.h), so the JetStream sink keeps its
 * states, retries and order (nats_async.c) whichever carries its publishes.
 * The socket never reconnects: once the agent's end is closed (the agent is
 * gone), nothing sent can be answered any more. */
#ifndef CELLOS_NATS_RELAY_H
#define CELLOS_NATS_RELAY_H

#include <stdbool.h>
#include <stddef.h>

#include "sink/nats_wire.h"
#include "util/err.h"

#define NATS_RELAY_ENV "CELLOS_NATS_RELAY_FD"
/* The agent answers 'F' when JetStream did not answer within this. */
#define NATS_RELAY_ANSWER_MS 1000
/* The largest datagram either side reads: NATS's default max_payload and
 * the names around it. */
#define NATS_RELAY_MAX_MSG ((1 << 20) + 4096)

struct nats_relay;

/* Take over fd (checked by the configuration; closed by nats_relay_free).
 * NULL with *e. */
struct nats_relay *nats_relay_new(int fd, nats_wire_reply_fn on_reply, void *arg, struct err *e);
/* Read and dispatch the answers, send what is queued; waits up to timeout_ms
 * for something to happen. An answer 'F' reaches on_reply with status -1 and
 * the reason as data. */
void nats_relay_pump(struct nats_relay *r, int timeout_ms);
/* Send what is queued, without waiting. */
void nats_relay_flush(struct nats_relay *r);
/* False once the agent's end is closed. */
bool nats_relay_open(const struct nats_relay *r);
/* Why it closed ("" while open). */
const char *nats_relay_error(const struct nats_relay *r);
const char *nats_relay_where(const struct nats_relay *r);
/* Queue a publish. -1 with *e when it cannot be sent (closed, too large). */
int nats_relay_publish(struct nats_relay *r, const char *subject, const char *token, const char *msg_id,
		       const void *data, size_t len, struct err *e);
void nats_relay_free(struct nats_relay *r);

/* One datagram split into its fields (both sides): 0, or -1 when malformed.
 * For 'P': a = subject, b = msg-id; 'M': a = status; 'F': data = reason.
 * The strings point into buf, which must have one byte after n for a NUL. */
struct nats_relay_msg {
	char kind;
	const char *token, *a, *b;
	const char *data;
	size_t len;
};
int nats_relay_parse(char *buf, size_t n, struct nats_relay_msg *m);

#endif
