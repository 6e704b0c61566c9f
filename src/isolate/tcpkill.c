/* Ending a dead cell's TCP sockets: see tcpkill.h. */
#include "isolate/tcpkill.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <libmnl/libmnl.h>
#include <linux/inet_diag.h>
#include <linux/sock_diag.h>

#include "isolate/netns.h"
#include "util/fileio.h"

/* TCP states as inet_diag's bit mask (include/net/tcp_states.h): every state
 * of a full socket, not TIME_WAIT (a timewait socket holds no reference on its
 * netns, and the netns's exit purges it) nor a request socket. */
#define TCP_TIME_WAIT 6
#define TCP_NEW_SYN_RECV 12
#define FULL_SOCKETS (0xfffu & ~(1u << TCP_TIME_WAIT) & ~(1u << TCP_NEW_SYN_RECV))

/* How many sockets one call ends at most: a cell's sockets are few, and a
 * dead cell's leftovers fewer; beyond it the kernel's timers end the rest. */
#define MAX_IDS 1024

struct found {
	struct inet_diag_sockid id[MAX_IDS];
	size_t n;
};

static int collect(const struct nlmsghdr *nlh, void *arg)
{
	struct found *f = arg;
	if (nlh->nlmsg_type != SOCK_DIAG_BY_FAMILY || mnl_nlmsg_get_payload_len(nlh) < sizeof(struct inet_diag_msg))
		return MNL_CB_OK;
	const struct inet_diag_msg *m = mnl_nlmsg_get_payload(nlh);
	if (f->n < MAX_IDS)
		f->id[f->n++] = m->id;
	return MNL_CB_OK;
}

static struct nlmsghdr *request(char *buf, uint16_t type, uint16_t flags, uint8_t family, uint32_t seq,
				const struct inet_diag_sockid *id)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = type;
	nlh->nlmsg_flags = NLM_F_REQUEST | flags;
	nlh->nlmsg_seq = seq;
	struct inet_diag_req_v2 *r = mnl_nlmsg_put_extra_header(nlh, sizeof *r);
	r->sdiag_family = family;
	r->sdiag_protocol = IPPROTO_TCP;
	r->idiag_states = FULL_SOCKETS;
	if (id)
		r->id = *id;
	return nlh;
}

/* Inside the cell's netns: every full TCP socket of one family, then each
 * ended (the dump is read whole first: ending sockets while the kernel walks
 * its table would make it skip some). */
static int kill_family(struct mnl_socket *nl, uint8_t family, uint32_t *seq, size_t *killed, struct err *e)
{
	static struct found f;
	f.n = 0;
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = request(buf, SOCK_DIAG_BY_FAMILY, NLM_F_DUMP, family, ++*seq, NULL);
	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0)
		return err_sys(e, errno, "sock_diag: listing the cell's TCP sockets");
	unsigned portid = mnl_socket_get_portid(nl);
	int rc;
	do {
		ssize_t n = mnl_socket_recvfrom(nl, buf, sizeof buf);
		if (n < 0)
			return err_sys(e, errno, "sock_diag: reading the cell's TCP sockets");
		rc = mnl_cb_run(buf, (size_t)n, *seq, portid, collect, &f);
	} while (rc > 0);
	if (rc < 0)
		return err_sys(e, errno, "sock_diag: the cell's TCP sockets");
	for (size_t i = 0; i < f.n; i++) {
		nlh = request(buf, SOCK_DESTROY, NLM_F_ACK, family, ++*seq, &f.id[i]);
		if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0)
			return err_sys(e, errno, "sock_diag: ending a TCP socket");
		ssize_t n = mnl_socket_recvfrom(nl, buf, sizeof buf);
		if (n < 0)
			return err_sys(e, errno, "sock_diag: ending a TCP socket");
		if (mnl_cb_run(buf, (size_t)n, *seq, portid, NULL, NULL) >= 0)
			(*killed)++;
		else if (errno != ENOENT) /* ENOENT: it ended meanwhile by itself */
			return err_sys(e, errno, "sock_diag: ending a TCP socket");
	}
	return 0;
}

/* Whether the calling thread's netns may hold TCP sockets of `family`: its
 * sockstat's "inuse" count (per netns; every hashed full socket, FIN_WAIT
 * included). The dump costs ~1 ms a family where it is 0 (as after most
 * cells): sock_diag walks the host-wide connection table, not the netns's.
 * When the count cannot be read, the dump decides. */
static bool may_have_tcp(uint8_t family)
{
	const char *file = family == AF_INET ? "/proc/thread-self/net/sockstat" : "/proc/thread-self/net/sockstat6";
	const char *key = family == AF_INET ? "\nTCP: inuse " : "\nTCP6: inuse ";
	char buf[1024] = "\n";
	if (file_read_at(AT_FDCWD, file, buf + 1, sizeof buf - 1) <= 0)
		return true;
	const char *p = strstr(buf, key);
	return !p || strtol(p + strlen(key), NULL, 10) != 0;
}

static int kill_all(void *arg, struct err *e)
{
	size_t *killed = arg;
	struct mnl_socket *nl = mnl_socket_open2(NETLINK_SOCK_DIAG, SOCK_CLOEXEC);
	if (!nl)
		return err_sys(e, errno, "sock_diag: netlink socket");
	uint32_t seq = 0;
	int rc = -1;
	if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0)
		err_sys(e, errno, "sock_diag: binding the netlink socket");
	else if ((!may_have_tcp(AF_INET) || kill_family(nl, AF_INET, &seq, killed, e) == 0) &&
		 (!may_have_tcp(AF_INET6) || kill_family(nl, AF_INET6, &seq, killed, e) == 0))
		rc = 0;
	mnl_socket_close(nl);
	return rc;
}

int tcpkill_netns(int netns, size_t *killed, struct err *e)
{
	*killed = 0;
	return netns_run_in(netns, kill_all, killed, e);
}
