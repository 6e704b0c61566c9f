/* The SNI check on an nfnetlink_queue: see l7queue.h. */
#include "isolate/l7queue.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <linux/netfilter/nfnetlink_queue.h>
#include <netinet/ip.h>
#include <netinet/tcp.h>

#include "isolate/evloop.h"
#include "isolate/gateway.h"
#include "isolate/l7peek.h"
#include "util/ids.h"
#include "util/log.h"

/* Flows tracked at once (undecided, or decided and lingering); a flow beyond
 * that has its segments dropped until one ends (the client retransmits). */
#define MAX_FLOWS 256
/* Payload segments held per flow before the name must be known. A client
 * sends at most its initial congestion window (10 segments on Linux) before
 * it waits for acknowledgements that only the server gives, so a ClientHello
 * spread over more segments than that cannot be read here. */
#define MAX_HELD 64
/* How long a decided flow is remembered: its segments queued before the mark
 * was set are still arriving here and get the same verdict. */
#define LINGER_MS 3000
/* A netlink message: the packet (at most the copy range) and its attributes. */
#define MSG_BUF (0xffff + 4096)
/* Messages read per pump before the wait loop gets its turn again. */
#define BURST 256

enum { W_QUEUE = 1 };

struct held {
	uint32_t id;
	uint32_t seq;
};

struct flow {
	bool used, decided, allowed;
	uint32_t saddr, daddr;          /* network order: the cell, the server */
	uint16_t sport, dport;          /* network order */
	uint32_t start;                 /* sequence number of the first payload byte */
	uint32_t ack;                   /* the cell's last acknowledgement: the server's next byte */
	bool have_ack;
	uint8_t *buf, *got;             /* L7_PEEK_MAX bytes each: the payload, which bytes arrived */
	size_t contig;                  /* bytes arrived without a gap from `start` */
	struct held held[MAX_HELD];
	size_t n_held;
	int64_t deadline;               /* undecided: the peek timeout; decided: forget it then */
	char dest[32];                  /* "ip:port" of the server */
};

struct l7queue {
	struct netpolicy *np;
	int peek_timeout_ms;
	struct evloop loop;
	struct mnl_socket *nfq, *ct;
	uint16_t num;
	int raw;                        /* for the FIN sent to a refused cell */
	unsigned ifindex;
	struct in_addr cell;
	uint32_t ct_seq;
	struct flow f[MAX_FLOWS];
	char *msg;                      /* MSG_BUF */
};

/* ---- netlink ---- */

static struct nlmsghdr *nf_msg(char *buf, uint16_t subsys, uint16_t type, uint16_t flags, uint8_t family,
			       uint16_t res_id, uint32_t seq)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = (uint16_t)(subsys << 8 | type);
	nlh->nlmsg_flags = NLM_F_REQUEST | flags;
	nlh->nlmsg_seq = seq;
	struct nfgenmsg *g = mnl_nlmsg_put_extra_header(nlh, sizeof *g);
	g->nfgen_family = family;
	g->version = NFNETLINK_V0;
	g->res_id = htons(res_id);
	return nlh;
}

/* Send one request and wait for its acknowledgement: 0, or -errno. */
static int nl_call(struct mnl_socket *nl, struct nlmsghdr *nlh)
{
	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0)
		return -errno;
	char buf[MNL_SOCKET_BUFFER_SIZE];
	for (;;) {
		ssize_t n = mnl_socket_recvfrom(nl, buf, sizeof buf);
		if (n < 0)
			return errno == EINTR ? -EINTR : -errno;
		int len = (int)n;
		for (const struct nlmsghdr *r = (void *)buf; mnl_nlmsg_ok(r, len); r = mnl_nlmsg_next(r, &len))
			if (r->nlmsg_type == NLMSG_ERROR && r->nlmsg_seq == nlh->nlmsg_seq) {
				const struct nlmsgerr *ack = mnl_nlmsg_get_payload(r);
				return ack->error;
			}
	}
}

static int queue_cmd(struct l7queue *q, uint16_t num, uint8_t cmd, bool params)
{
	char buf[256];
	struct nlmsghdr *nlh = nf_msg(buf, NFNL_SUBSYS_QUEUE, NFQNL_MSG_CONFIG, NLM_F_ACK, AF_UNSPEC, num, ++q->ct_seq);
	struct nfqnl_msg_config_cmd c = {.command = cmd, .pf = htons(AF_INET)};
	mnl_attr_put(nlh, NFQA_CFG_CMD, sizeof c, &c);
	if (params) {
		/* The whole packet: the payload is what is read. */
		struct nfqnl_msg_config_params p = {.copy_range = htonl(0xffff), .copy_mode = NFQNL_COPY_PACKET};
		mnl_attr_put(nlh, NFQA_CFG_PARAMS, sizeof p, &p);
	}
	return nl_call(q->nfq, nlh);
}

static void verdict(struct l7queue *q, uint32_t id, uint32_t v)
{
	char buf[128];
	struct nlmsghdr *nlh = nf_msg(buf, NFNL_SUBSYS_QUEUE, NFQNL_MSG_VERDICT, 0, AF_UNSPEC, q->num, 0);
	struct nfqnl_msg_verdict_hdr h = {.verdict = htonl(v), .id = htonl(id)};
	mnl_attr_put(nlh, NFQA_VERDICT_HDR, sizeof h, &h);
	if (mnl_socket_sendto(q->nfq, nlh, nlh->nlmsg_len) < 0)
		log_warn("SNI check: verdict on the queue: %s", strerror(errno));
}

/* The flow's conntrack mark (its original tuple: the cell's address and port
 * before the masquerade). */
static int set_mark(struct l7queue *q, const struct flow *f, uint32_t mark)
{
	char buf[512];
	struct nlmsghdr *nlh = nf_msg(buf, NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_NEW, NLM_F_ACK, AF_INET, 0, ++q->ct_seq);
	struct nlattr *orig = mnl_attr_nest_start(nlh, CTA_TUPLE_ORIG);
	struct nlattr *ip = mnl_attr_nest_start(nlh, CTA_TUPLE_IP);
	mnl_attr_put_u32(nlh, CTA_IP_V4_SRC, f->saddr);
	mnl_attr_put_u32(nlh, CTA_IP_V4_DST, f->daddr);
	mnl_attr_nest_end(nlh, ip);
	struct nlattr *proto = mnl_attr_nest_start(nlh, CTA_TUPLE_PROTO);
	mnl_attr_put_u8(nlh, CTA_PROTO_NUM, IPPROTO_TCP);
	mnl_attr_put_u16(nlh, CTA_PROTO_SRC_PORT, f->sport);
	mnl_attr_put_u16(nlh, CTA_PROTO_DST_PORT, f->dport);
	mnl_attr_nest_end(nlh, proto);
	mnl_attr_nest_end(nlh, orig);
	mnl_attr_put_u32(nlh, CTA_MARK, htonl(mark));
	return nl_call(q->ct, nlh);
}

/* 0 when ctnetlink answers: a GET of a flow that cannot exist (TCP
 * 0.0.0.0:0 -> 0.0.0.0:0) is ENOENT there, another error without it. */
static int ct_present(struct l7queue *q)
{
	char buf[256];
	struct nlmsghdr *nlh = nf_msg(buf, NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_GET, NLM_F_ACK, AF_INET, 0, ++q->ct_seq);
	struct nlattr *orig = mnl_attr_nest_start(nlh, CTA_TUPLE_ORIG);
	struct nlattr *ip = mnl_attr_nest_start(nlh, CTA_TUPLE_IP);
	mnl_attr_put_u32(nlh, CTA_IP_V4_SRC, 0);
	mnl_attr_put_u32(nlh, CTA_IP_V4_DST, 0);
	mnl_attr_nest_end(nlh, ip);
	struct nlattr *proto = mnl_attr_nest_start(nlh, CTA_TUPLE_PROTO);
	mnl_attr_put_u8(nlh, CTA_PROTO_NUM, IPPROTO_TCP);
	mnl_attr_put_u16(nlh, CTA_PROTO_SRC_PORT, 0);
	mnl_attr_put_u16(nlh, CTA_PROTO_DST_PORT, 0);
	mnl_attr_nest_end(nlh, proto);
	mnl_attr_nest_end(nlh, orig);
	int rc = nl_call(q->ct, nlh);
	return rc == -ENOENT ? 0 : rc;
}

/* ---- the end of a refused connection, to the cell ---- */

static uint16_t csum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/* A segment from the server's address to the cell: `fin`, the last bytes
 * (`data`, may be empty) and a FIN; else a RST. */
static void to_cell(struct l7queue *q, const struct flow *f, uint32_t seq, bool fin, const char *data, size_t len)
{
	struct {
		struct iphdr ip;
		struct tcphdr tcp;
		uint8_t data[sizeof L7_HTTP_FORBIDDEN];
	} pkt = {0};
	if (len > sizeof pkt.data)
		len = sizeof pkt.data;
	size_t tcp_len = sizeof pkt.tcp + len, tot = sizeof pkt.ip + tcp_len;
	pkt.ip.version = 4;
	pkt.ip.ihl = 5;
	pkt.ip.ttl = 64;
	pkt.ip.protocol = IPPROTO_TCP;
	pkt.ip.saddr = f->daddr;
	pkt.ip.daddr = f->saddr;
	pkt.ip.tot_len = htons((uint16_t)tot);
	pkt.tcp.source = f->dport;
	pkt.tcp.dest = f->sport;
	pkt.tcp.seq = htonl(seq);
	pkt.tcp.doff = 5;
	if (fin) {
		pkt.tcp.ack_seq = htonl(f->start); /* none of the cell's bytes */
		pkt.tcp.fin = 1;
		pkt.tcp.ack = 1;
		pkt.tcp.psh = len > 0;
		if (len)
			memcpy(pkt.data, data, len);
	} else {
		pkt.tcp.rst = 1;
	}
	/* Summed over bytes (not through a uint16_t pointer into the struct,
	 * which the compiler may read before the stores above); an odd length
	 * is padded with a zero byte. */
	uint8_t ph[12 + sizeof pkt.tcp + sizeof pkt.data + 1] = {0};
	memcpy(ph, &pkt.ip.saddr, 4);
	memcpy(ph + 4, &pkt.ip.daddr, 4);
	ph[9] = IPPROTO_TCP;
	ph[10] = (uint8_t)(tcp_len >> 8);
	ph[11] = (uint8_t)tcp_len;
	memcpy(ph + 12, &pkt.tcp, tcp_len);
	uint32_t sum = 0;
	for (size_t i = 0; i < 12 + tcp_len; i += 2)
		sum += (uint32_t)(ph[i] << 8 | ph[i + 1]);
	pkt.tcp.check = htons(csum_fold(sum));
	struct sockaddr_in to = {.sin_family = AF_INET, .sin_addr.s_addr = f->saddr};
	if (sendto(q->raw, &pkt, tot, 0, (struct sockaddr *)&to, sizeof to) < 0)
		log_debug("SNI/Host check: %s: closing the cell's side: %s", f->dest, strerror(errno));
}

/* A refused connection ends now on the cell's side, rather than at its next
 * retransmission (or never, for a client that waits for the server): a FIN at
 * the sequence number it expects next (its last acknowledgement), so it reads
 * the end of the stream as from the proxy, which closes a refused TLS
 * connection without an alert; then a RST right behind it, so its socket is
 * gone at once (a socket that has read a FIN reports the end of the stream
 * before the reset), instead of lingering on a close that the host's
 * conntrack, which never saw this FIN, would find out of window. */
static void close_cell(struct l7queue *q, const struct flow *f, bool tls)
{
	if (q->raw < 0 || !f->have_ack)
		return;
	/* An HTTP/1 client reads why, as from the proxy: the 403 in the FIN's
	 * segment (the request is never acknowledged: nothing of it went on). */
	const char *why = tls ? "" : L7_HTTP_FORBIDDEN;
	size_t len = strlen(why);
	to_cell(q, f, f->ack, true, why, len);
	to_cell(q, f, f->ack + (uint32_t)len + 1, false, NULL, 0);
}

/* ---- flows ---- */

static void flow_free(struct flow *f)
{
	free(f->buf);
	free(f->got);
	*f = (struct flow){0};
}

static struct flow *flow_find(struct l7queue *q, uint32_t saddr, uint16_t sport, uint32_t daddr, uint16_t dport)
{
	for (int i = 0; i < MAX_FLOWS; i++) {
		struct flow *f = &q->f[i];
		if (f->used && f->saddr == saddr && f->sport == sport && f->daddr == daddr && f->dport == dport)
			return f;
	}
	return NULL;
}

static struct flow *flow_new(struct l7queue *q, uint32_t saddr, uint16_t sport, uint32_t daddr, uint16_t dport,
			     uint32_t seq)
{
	for (int i = 0; i < MAX_FLOWS; i++) {
		struct flow *f = &q->f[i];
		if (f->used)
			continue;
		*f = (struct flow){.used = true, .saddr = saddr, .sport = sport, .daddr = daddr, .dport = dport,
				   .start = seq, .deadline = mono_ms() + q->peek_timeout_ms};
		f->buf = malloc(L7_PEEK_MAX);
		f->got = calloc(1, L7_PEEK_MAX);
		if (!f->buf || !f->got) {
			flow_free(f);
			return NULL;
		}
		char ip[INET_ADDRSTRLEN] = "?";
		inet_ntop(AF_INET, &daddr, ip, sizeof ip);
		snprintf(f->dest, sizeof f->dest, "%s:%u", ip, ntohs(dport));
		return f;
	}
	return NULL;
}

static void report(struct l7queue *q, const struct flow *f, const char *name, bool tls, bool allow,
		   const char *reason)
{
	struct l7_event ev = {.destination = f->dest, .server_name = name, .protocol = tls ? "tls" : "http",
			      .decision = allow ? "allow" : "deny", .reason = reason};
	const struct netpolicy_hooks *h = &q->np->hooks;
	if (h->l7_event)
		h->l7_event(h->ctx, &ev);
}

static int by_seq(const void *a, const void *b)
{
	int32_t d = (int32_t)(((const struct held *)a)->seq - ((const struct held *)b)->seq);
	return (d > 0) - (d < 0);
}

static void finish(struct l7queue *q, struct flow *f, bool tls, bool allow)
{
	if (allow && set_mark(q, f, GATEWAY_CT_ALLOW) < 0) {
		log_warn("SNI check: %s: the flow's conntrack mark could not be set: refused", f->dest);
		allow = false;
	}
	if (!allow) {
		int rc = set_mark(q, f, GATEWAY_CT_DENY);
		if (rc < 0)
			log_debug("SNI check: %s: conntrack mark: %s", f->dest, strerror(-rc));
		close_cell(q, f, tls);
	}
	/* In sequence order: the server gets the ClientHello as it was sent. */
	qsort(f->held, f->n_held, sizeof f->held[0], by_seq);
	for (size_t k = 0; k < f->n_held; k++)
		verdict(q, f->held[k].id, allow ? NF_ACCEPT : NF_DROP);
	f->n_held = 0;
	f->decided = true;
	f->allowed = allow;
	f->deadline = mono_ms() + LINGER_MS;
	/* The bytes are not needed any more. */
	free(f->buf);
	free(f->got);
	f->buf = f->got = NULL;
	if (allow)
		log_debug("SNI check: %s: allowed on queue %u; the kernel forwards the flow", f->dest, q->num);
}

/* Decide on what has arrived, as the proxy does (l7proxy.c's decide()); `eof`:
 * nothing more will. */
static void decide(struct l7queue *q, struct flow *f, bool eof, bool timeout)
{
	size_t n = f->contig;
	bool tls = n ? l7_looks_tls(f->buf, n) : ntohs(f->dport) == 443;
	char name[L7_NAME_MAX + 1];
	enum l7_peek r = n == 0 ? L7_NEED_MORE : tls ? l7_tls_sni(f->buf, n, name) : l7_http_host(f->buf, n, name);
	if (r == L7_NEED_MORE && !eof && !timeout)
		return;
	const char *reason;
	bool allow = false;
	if (r == L7_NEED_MORE && timeout)
		reason = "l7_peek_timeout";
	else if (r != L7_NAME)
		reason = tls ? "l7_sni_missing" : "l7_http_host_missing";
	else if (!netpolicy_l7_allowed(q->np, name, (struct in_addr){f->daddr}, ntohs(f->dport)))
		reason = tls ? "l7_sni_allowlist_miss" : "l7_http_host_allowlist_miss";
	else
		allow = true, reason = tls ? "l7_sni_allowlist_match" : "l7_http_host_allowlist_match";
	report(q, f, r == L7_NAME ? name : NULL, tls, allow, reason);
	finish(q, f, tls, allow);
}

/* The bytes of a payload segment at `seq`: 1 when something new arrived, 0 for
 * a duplicate, -1 when it lies beyond what may be read before the decision. */
static int gather(struct flow *f, uint32_t seq, const uint8_t *data, size_t len)
{
	int64_t off = (int32_t)(seq - f->start);
	if (off < 0) { /* begins before the first byte seen: only the rest counts */
		if ((int64_t)len <= -off)
			return 0;
		data += -off;
		len -= (size_t)-off;
		off = 0;
	}
	if (off >= L7_PEEK_MAX)
		return -1;
	size_t end = (size_t)off + len > L7_PEEK_MAX ? L7_PEEK_MAX : (size_t)off + len;
	bool fresh = false;
	for (size_t k = (size_t)off; k < end; k++)
		if (!f->got[k]) {
			f->buf[k] = data[k - (size_t)off];
			f->got[k] = 1;
			fresh = true;
		}
	while (f->contig < L7_PEEK_MAX && f->got[f->contig])
		f->contig++;
	if ((size_t)off + len > L7_PEEK_MAX)
		return -1;
	return fresh ? 1 : 0;
}

/* A segment from the cell. */
static void from_cell(struct l7queue *q, uint32_t id, const struct iphdr *ip, const struct tcphdr *th,
		      const uint8_t *data, size_t len)
{
	uint32_t seq = ntohl(th->seq);
	struct flow *f = flow_find(q, ip->saddr, th->source, ip->daddr, th->dest);
	if (f && f->decided && !(th->ack && ntohl(th->ack_seq) == f->ack)) {
		/* Not a segment of the decided connection, which were all sent
		 * before the server could send more than its SYN-ACK: a new
		 * connection on the same addresses and ports (conntrack reopened
		 * the entry, its mark 0 again), decided afresh. */
		flow_free(f);
		f = NULL;
	}
	if (f && f->decided) {
		/* Queued before the flow's mark was set. */
		verdict(q, id, f->allowed ? NF_ACCEPT : NF_DROP);
		return;
	}
	if (!f) {
		if (th->rst) {
			verdict(q, id, NF_ACCEPT);
			return;
		}
		if (!(f = flow_new(q, ip->saddr, th->source, ip->daddr, th->dest, seq))) {
			verdict(q, id, NF_DROP);
			return;
		}
	}
	if (th->ack) {
		f->ack = ntohl(th->ack_seq);
		f->have_ack = true;
	}
	if (th->rst) { /* the cell gave up: nothing was decided, nothing reported (as the proxy) */
		for (size_t k = 0; k < f->n_held; k++)
			verdict(q, f->held[k].id, NF_DROP);
		verdict(q, id, NF_ACCEPT);
		flow_free(f);
		return;
	}
	if (len == 0 && !th->fin) {
		verdict(q, id, NF_ACCEPT); /* the handshake's ACK, a window update */
		return;
	}
	int g = len ? gather(f, seq, data, len) : 1;
	if (g == 0) {
		verdict(q, id, NF_DROP); /* a retransmission of what is held */
		return;
	}
	f->held[f->n_held++] = (struct held){.id = id, .seq = seq};
	decide(q, f, g < 0 || th->fin || f->n_held == MAX_HELD, false);
}

static void on_packet(struct l7queue *q, const struct nlmsghdr *nlh)
{
	struct nlattr *tb[NFQA_MAX + 1] = {0};
	const struct nlattr *a;
	mnl_attr_for_each(a, nlh, sizeof(struct nfgenmsg))
	{
		uint16_t t = mnl_attr_get_type(a);
		if (t <= NFQA_MAX)
			tb[t] = (struct nlattr *)a;
	}
	if (!tb[NFQA_PACKET_HDR] || mnl_attr_get_payload_len(tb[NFQA_PACKET_HDR]) < sizeof(struct nfqnl_msg_packet_hdr))
		return;
	const struct nfqnl_msg_packet_hdr *ph = mnl_attr_get_payload(tb[NFQA_PACKET_HDR]);
	uint32_t id = ntohl(ph->packet_id);
	const uint8_t *p = tb[NFQA_PAYLOAD] ? mnl_attr_get_payload(tb[NFQA_PAYLOAD]) : NULL;
	size_t n = tb[NFQA_PAYLOAD] ? mnl_attr_get_payload_len(tb[NFQA_PAYLOAD]) : 0;
	uint32_t indev = tb[NFQA_IFINDEX_INDEV] ? ntohl(mnl_attr_get_u32(tb[NFQA_IFINDEX_INDEV])) : 0;
	uint32_t outdev = tb[NFQA_IFINDEX_OUTDEV] ? ntohl(mnl_attr_get_u32(tb[NFQA_IFINDEX_OUTDEV])) : 0;
	struct iphdr ip;
	struct tcphdr th;
	size_t ihl, thl, tot;
	if (!p || n < sizeof ip || (memcpy(&ip, p, sizeof ip), ip.version != 4) || ip.protocol != IPPROTO_TCP ||
	    (ihl = ip.ihl * 4u) < sizeof ip || (tot = ntohs(ip.tot_len)) > n || tot < ihl + sizeof th ||
	    (memcpy(&th, p + ihl, sizeof th), (thl = th.doff * 4u) < sizeof th) || tot < ihl + thl) {
		verdict(q, id, NF_DROP); /* nothing this check knows */
		return;
	}
	const uint8_t *data = p + ihl + thl;
	size_t len = tot - ihl - thl;
	if (ip.saddr == q->cell.s_addr && indev == q->ifindex) {
		from_cell(q, id, &ip, &th, data, len);
	} else if (ip.daddr == q->cell.s_addr && outdev == q->ifindex) {
		/* The server's segments before the decision: the handshake passes,
		 * bytes do not (the cell must not read a server it may not reach).
		 * After an allow the server's answer is never queued: the mark is
		 * set before the ClientHello is let through. */
		verdict(q, id, len == 0 ? NF_ACCEPT : NF_DROP);
	} else {
		verdict(q, id, NF_DROP); /* another interface's: never ours to pass */
	}
}

static void read_queue(struct l7queue *q)
{
	for (int k = 0; k < BURST; k++) {
		ssize_t n = recv(mnl_socket_get_fd(q->nfq), q->msg, MSG_BUF, MSG_DONTWAIT);
		if (n < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
				log_warn("SNI check: reading queue %u: %s", q->num, strerror(errno));
			return;
		}
		int len = (int)n;
		for (const struct nlmsghdr *nlh = (void *)q->msg; mnl_nlmsg_ok(nlh, len); nlh = mnl_nlmsg_next(nlh, &len))
			if (nlh->nlmsg_type == (NFNL_SUBSYS_QUEUE << 8 | NFQNL_MSG_PACKET))
				on_packet(q, nlh);
			else if (nlh->nlmsg_type == NLMSG_ERROR) {
				const struct nlmsgerr *err = mnl_nlmsg_get_payload(nlh);
				if (err->error)
					log_debug("SNI check: queue %u: %s", q->num, strerror(-err->error));
			}
	}
}

void l7queue_pump(struct l7queue *q)
{
	struct epoll_event ev[2];
	/* The timer stays readable until evloop_arm() below: one look, then the
	 * queue is read whether or not it was among the ready ones. */
	(void)evloop_ready(&q->loop, ev, 2);
	read_queue(q);
	int64_t now = mono_ms(), next = INT64_MAX;
	for (int i = 0; i < MAX_FLOWS; i++) {
		struct flow *f = &q->f[i];
		if (!f->used)
			continue;
		if (f->deadline <= now) {
			if (f->decided) {
				flow_free(f);
				continue;
			}
			decide(q, f, false, true);
		}
		if (f->deadline < next)
			next = f->deadline;
	}
	evloop_arm(&q->loop, next);
}

int l7queue_open(struct l7queue **out, struct netpolicy *np, int peek_timeout_ms, struct err *e)
{
	struct l7queue *q = calloc(1, sizeof *q);
	if (!q || !(q->msg = malloc(MSG_BUF))) {
		free(q);
		return err_sys(e, ENOMEM, "SNI check queue");
	}
	q->np = np;
	q->peek_timeout_ms = peek_timeout_ms;
	q->loop.ep = q->loop.timer = -1;
	q->raw = -1;
	q->nfq = mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC);
	q->ct = mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC);
	if (!q->nfq || !q->ct || mnl_socket_bind(q->nfq, 0, MNL_SOCKET_AUTOPID) < 0 ||
	    mnl_socket_bind(q->ct, 0, MNL_SOCKET_AUTOPID) < 0) {
		err_sys(e, errno, "SNI check: netlink socket");
		l7queue_close(q);
		return -1;
	}
	/* The decision is carried out through the flow's conntrack mark: a
	 * kernel without ctnetlink would refuse every flow, so it gets the proxy. */
	int rc = ct_present(q);
	if (rc < 0) {
		err_sys(e, -rc, "SNI check: ctnetlink");
		l7queue_close(q);
		return -1;
	}
	/* A number another socket holds (a live cell's) answers EPERM, not
	 * EBUSY: try the next, from a start of this process's own so that
	 * concurrent supervisors rarely meet, a bounded number of times (EPERM
	 * is also what a caller without CAP_NET_ADMIN gets). */
	uint32_t span = L7QUEUE_LAST - L7QUEUE_FIRST + 1, start = (uint32_t)getpid() % span;
	rc = -EPERM;
	for (uint32_t k = 0; k < L7QUEUE_TRIES && (rc == -EPERM || rc == -EBUSY); k++) {
		uint16_t n = (uint16_t)(L7QUEUE_FIRST + (start + k) % span);
		if ((rc = queue_cmd(q, n, NFQNL_CFG_CMD_BIND, true)) == 0)
			q->num = n;
	}
	if (rc < 0) {
		err_sys(e, -rc, "SNI check: binding an nfnetlink_queue");
		l7queue_close(q);
		return -1;
	}
	/* Bursts of segments must not be lost to a full socket buffer (a lost
	 * message is a segment held without a verdict until the queue closes). */
	int fd = mnl_socket_get_fd(q->nfq), big = 4 << 20, one = 1;
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof big);
	(void)setsockopt(fd, SOL_NETLINK, NETLINK_NO_ENOBUFS, &one, sizeof one);
	if (evloop_open(&q->loop, e) < 0) {
		l7queue_close(q);
		return -1;
	}
	*out = q;
	return 0;
}

uint16_t l7queue_num(const struct l7queue *q)
{
	return q->num;
}

int l7queue_start(struct l7queue *q, const char *host_if, struct in_addr cell, struct err *e)
{
	q->cell = cell;
	if (!(q->ifindex = if_nametoindex(host_if)))
		return err_sys(e, errno, "SNI check: %s", host_if);
	q->raw = socket(AF_INET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_RAW);
	if (q->raw < 0 ||
	    setsockopt(q->raw, SOL_SOCKET, SO_BINDTODEVICE, host_if, (socklen_t)strlen(host_if) + 1) < 0)
		return err_sys(e, errno, "SNI check: raw socket on %s", host_if);
	return evloop_watch(&q->loop, mnl_socket_get_fd(q->nfq), EPOLLIN, ((uint64_t)W_QUEUE << 32), e);
}

int l7queue_fd(const struct l7queue *q)
{
	return q->loop.ep;
}

void l7queue_close(struct l7queue *q)
{
	if (!q)
		return;
	if (q->num)
		(void)queue_cmd(q, q->num, NFQNL_CFG_CMD_UNBIND, false); /* held segments are dropped */
	for (int i = 0; i < MAX_FLOWS; i++)
		flow_free(&q->f[i]);
	if (q->nfq)
		mnl_socket_close(q->nfq);
	if (q->ct)
		mnl_socket_close(q->ct);
	if (q->raw >= 0)
		close(q->raw);
	evloop_close(&q->loop);
	free(q->msg);
	free(q);
}
