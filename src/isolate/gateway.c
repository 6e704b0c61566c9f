/* The cell's network gateway: see gateway.h. This file holds the addresses,
 * the /30 allocator and the links (rtnetlink through libmnl); the host table
 * is in gateway_nft.c. */
#include "isolate/gateway.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libmnl/libmnl.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>

#include "isolate/gateway_nft.h"
#include "util/lockfile.h"
#include "util/log.h"

static char gw_dir[256] = GATEWAY_DIR;

void gateway_set_dir(const char *dir) { snprintf(gw_dir, sizeof gw_dir, "%s", dir); }

/* ---- addresses ---- */

static uint32_t mask_of(uint32_t prefix) { return prefix ? ~0u << (32 - prefix) : 0; }

/* "a.b.c.d" or "a.b.c.d/p" into *out; IPv6 text sets *v6. */
static int parse_cidr(const char *s, struct cidr4 *out, bool *v6)
{
	char host[64];
	const char *slash = strchr(s, '/');
	size_t hlen = slash ? (size_t)(slash - s) : strlen(s);
	*v6 = false;
	if (hlen == 0 || hlen >= sizeof host)
		return -1;
	memcpy(host, s, hlen);
	host[hlen] = '\0';
	struct in_addr a;
	unsigned char a6[16];
	if (inet_pton(AF_INET, host, &a) != 1) {
		*v6 = inet_pton(AF_INET6, host, a6) == 1;
		return *v6 ? 0 : -1;
	}
	unsigned long p = 32;
	if (slash) {
		char *end;
		errno = 0;
		p = strtoul(slash + 1, &end, 10);
		if (slash[1] < '0' || slash[1] > '9' || *end || errno || p > 32)
			return -1;
	}
	out->prefix = (uint32_t)p;
	out->addr = ntohl(a.s_addr) & mask_of(out->prefix);
	return 0;
}

int gateway_parse_subnet(const char *v, struct cidr4 *out, struct err *e)
{
	bool v6;
	if (parse_cidr(v, out, &v6) < 0 || v6 || !strchr(v, '/'))
		return err_set(e, "CELLOS_CELL_SUBNET: '%.64s' is not an IPv4 CIDR (e.g. %s)", v, GATEWAY_SUBNET_DEFAULT);
	if (out->prefix < 16 || out->prefix > 29)
		return err_set(e, "CELLOS_CELL_SUBNET: '%s' has a /%u prefix; it must be /16 to /29", v, out->prefix);
	return 0;
}

static int push(struct cidr4 **list, size_t *n, uint32_t addr, uint32_t prefix)
{
	struct cidr4 *nl = reallocarray(*list, *n + 1, sizeof *nl);
	if (!nl)
		return -1;
	*list = nl;
	nl[(*n)++] = (struct cidr4){addr & mask_of(prefix), prefix};
	return 0;
}

int gateway_parse_cidrs(const char *v, struct cidr4 **out, size_t *n, struct err *e)
{
	*out = NULL;
	*n = 0;
	char *copy = strdup(v);
	if (!copy)
		return err_set(e, "out of memory");
	int rc = 0;
	char *save = NULL;
	for (char *tok = strtok_r(copy, ",", &save); tok && rc == 0; tok = strtok_r(NULL, ",", &save)) {
		while (*tok == ' ')
			tok++;
		size_t l = strlen(tok);
		while (l && tok[l - 1] == ' ')
			tok[--l] = '\0';
		struct cidr4 c;
		bool v6;
		if (parse_cidr(tok, &c, &v6) < 0)
			rc = err_set(e, "CELLOS_EGRESS_DENY_CIDRS: '%.64s' is not an IP address or CIDR", tok);
		else if (!v6 && push(out, n, c.addr, c.prefix) < 0)
			rc = err_set(e, "out of memory");
	}
	free(copy);
	if (rc < 0) {
		free(*out);
		*out = NULL;
		*n = 0;
	}
	return rc;
}

int gateway_host_addrs(struct cidr4 **list, size_t *n, struct err *e)
{
	struct ifaddrs *ifa;
	if (getifaddrs(&ifa) < 0)
		return err_sys(e, errno, "CELLOS_EGRESS_DENY_CIDRS: listing the host's own addresses");
	int rc = 0;
	for (struct ifaddrs *i = ifa; i && rc == 0; i = i->ifa_next)
		if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET &&
		    push(list, n, ntohl(((struct sockaddr_in *)i->ifa_addr)->sin_addr.s_addr), 32) < 0)
			rc = err_set(e, "out of memory");
	freeifaddrs(ifa);
	return rc;
}

int gateway_default_deny(const struct cidr4 *subnet, struct cidr4 **list, size_t *n, struct err *e)
{
	/* "this" network, loopback, link-local (cloud metadata 169.254.169.254),
	 * multicast, and the reserved block with the limited broadcast. */
	static const struct { const char *net; uint32_t prefix; } fixed[] = {
		{"0.0.0.0", 8}, {"127.0.0.0", 8}, {"169.254.0.0", 16}, {"224.0.0.0", 4}, {"240.0.0.0", 4},
	};
	for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++) {
		struct in_addr a;
		inet_pton(AF_INET, fixed[i].net, &a);
		if (push(list, n, ntohl(a.s_addr), fixed[i].prefix) < 0)
			return err_set(e, "out of memory");
	}
	if (push(list, n, subnet->addr, subnet->prefix) < 0)
		return err_set(e, "out of memory");
	return gateway_host_addrs(list, n, e);
}

bool gateway_cidr_denied(const struct cidr4 *deny, size_t n, uint32_t addr, uint32_t prefix)
{
	for (size_t i = 0; i < n; i++)
		if (prefix >= deny[i].prefix && (addr & mask_of(deny[i].prefix)) == deny[i].addr)
			return true;
	return false;
}

bool gateway_addr_denied(const struct gateway *gw, struct in_addr a)
{
	return gateway_cidr_denied(gw->deny, gw->n_deny, ntohl(a.s_addr), 32);
}

int gateway_check_forwarding(struct err *e)
{
	char c = '0';
	int fd = open("/proc/sys/net/ipv4/ip_forward", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return err_sys(e, errno, "CELLOS_NETWORK=gateway: cannot read net.ipv4.ip_forward");
	ssize_t got = read(fd, &c, 1);
	close(fd);
	if (got != 1 || c != '1')
		return err_set(e, "CELLOS_NETWORK=gateway: IPv4 forwarding is off (sysctl net.ipv4.ip_forward=0); "
				  "the operator must enable it, the supervisor never changes it");
	return 0;
}

/* ---- rtnetlink ---- */

static struct mnl_socket *rtnl_open(struct err *e)
{
	struct mnl_socket *nl = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
	if (!nl) {
		err_sys(e, errno, "gateway: rtnetlink socket");
		return NULL;
	}
	if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		err_sys(e, errno, "gateway: binding the rtnetlink socket");
		mnl_socket_close(nl);
		return NULL;
	}
	return nl;
}

/* Send the requests in `buf` (messages one after the other, `len` bytes in all)
 * in one write and wait for each one's ack: the kernel handles them in order
 * (a refused one does not stop the next), and the first refusal read ends the
 * wait with its error; the caller then undoes the whole step. `what[i]` names
 * request i for that message. */
static int rtnl_batch(struct mnl_socket *nl, char *buf, size_t len, const char *const *what, struct err *e)
{
	static uint32_t seq;
	uint32_t first = 0, n = 0;
	for (struct nlmsghdr *h = (struct nlmsghdr *)buf; mnl_nlmsg_ok(h, (int)(len - ((char *)h - buf)));
	     h = (struct nlmsghdr *)((char *)h + NLMSG_ALIGN(h->nlmsg_len)), n++) {
		h->nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
		h->nlmsg_seq = ++seq; /* consecutive (mod 2^32): an ack's index is its distance from the first */
		if (n == 0)
			first = h->nlmsg_seq;
	}
	if (mnl_socket_sendto(nl, buf, len) < 0)
		return err_sys(e, errno, "gateway: %s", what[0]);
	char rbuf[8192];
	for (uint32_t acked = 0; acked < n;) {
		ssize_t r = mnl_socket_recvfrom(nl, rbuf, sizeof rbuf);
		if (r < 0)
			return err_sys(e, errno, "gateway: %s", what[acked]);
		int got = (int)r;
		for (struct nlmsghdr *h = (struct nlmsghdr *)rbuf; mnl_nlmsg_ok(h, got); h = mnl_nlmsg_next(h, &got)) {
			if (h->nlmsg_type != NLMSG_ERROR || h->nlmsg_seq - first >= n)
				continue;
			const struct nlmsgerr *err = mnl_nlmsg_get_payload(h);
			uint32_t i = h->nlmsg_seq - first;
			if (err->error)
				return err_sys(e, -err->error, "gateway: %s", what[i]);
			acked++;
		}
	}
	return 0;
}

/* Send one request and wait for its ack. */
static int rtnl_call(struct mnl_socket *nl, struct nlmsghdr *nlh, const char *what, struct err *e)
{
	const char *w[] = {what};
	return rtnl_batch(nl, (char *)nlh, nlh->nlmsg_len, w, e);
}

static struct nlmsghdr *link_msg(char *buf, uint16_t type, uint16_t flags, int index)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = type;
	nlh->nlmsg_flags = flags;
	struct ifinfomsg *ifm = mnl_nlmsg_put_extra_header(nlh, sizeof *ifm);
	ifm->ifi_family = AF_UNSPEC;
	ifm->ifi_index = index;
	return nlh;
}

/* veth host_if <-> eth0, eth0 created directly in the cell's netns. */
static int veth_create(struct mnl_socket *nl, const char *host_if, int netns, struct err *e)
{
	char buf[1024] = {0};
	struct nlmsghdr *nlh = link_msg(buf, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, 0);
	mnl_attr_put_strz(nlh, IFLA_IFNAME, host_if);
	/* One queue each way, asked for up front: without it the kernel makes one
	 * per CPU and then cuts the registered device down to one, and each cut
	 * waits for an RCU grace period under the rtnl lock. */
	mnl_attr_put_u32(nlh, IFLA_NUM_TX_QUEUES, 1);
	mnl_attr_put_u32(nlh, IFLA_NUM_RX_QUEUES, 1);
	struct nlattr *info = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
	mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "veth");
	struct nlattr *data = mnl_attr_nest_start(nlh, IFLA_INFO_DATA);
	struct nlattr *peer = mnl_attr_nest_start(nlh, VETH_INFO_PEER);
	/* The peer's attributes follow an ifinfomsg of its own. */
	memset(mnl_nlmsg_get_payload_tail(nlh), 0, sizeof(struct ifinfomsg));
	nlh->nlmsg_len += MNL_ALIGN(sizeof(struct ifinfomsg));
	mnl_attr_put_strz(nlh, IFLA_IFNAME, GATEWAY_CELL_IF);
	mnl_attr_put_u32(nlh, IFLA_NUM_TX_QUEUES, 1);
	mnl_attr_put_u32(nlh, IFLA_NUM_RX_QUEUES, 1);
	mnl_attr_put_u32(nlh, IFLA_NET_NS_FD, (uint32_t)netns);
	mnl_attr_nest_end(nlh, peer);
	mnl_attr_nest_end(nlh, data);
	mnl_attr_nest_end(nlh, info);
	char what[64];
	snprintf(what, sizeof what, "creating veth %s", host_if);
	return rtnl_call(nl, nlh, what, e);
}

static int link_delete(struct mnl_socket *nl, const char *ifname, struct err *e)
{
	char buf[512] = {0};
	struct nlmsghdr *nlh = link_msg(buf, RTM_DELLINK, 0, 0);
	mnl_attr_put_strz(nlh, IFLA_IFNAME, ifname);
	char what[64];
	snprintf(what, sizeof what, "deleting link %s", ifname);
	return rtnl_call(nl, nlh, what, e);
}

/* Requests appended to a buffer, sent by rtnl_batch(). */
static struct nlmsghdr *put_link_up(char *at, int index)
{
	struct nlmsghdr *nlh = link_msg(at, RTM_NEWLINK, 0, index);
	struct ifinfomsg *ifm = mnl_nlmsg_get_payload(nlh);
	ifm->ifi_flags = IFF_UP;
	ifm->ifi_change = IFF_UP;
	return nlh;
}

static struct nlmsghdr *put_addr(char *at, int index, struct in_addr a)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(at);
	nlh->nlmsg_type = RTM_NEWADDR;
	nlh->nlmsg_flags = NLM_F_CREATE | NLM_F_EXCL;
	struct ifaddrmsg *ifa = mnl_nlmsg_put_extra_header(nlh, sizeof *ifa);
	ifa->ifa_family = AF_INET;
	ifa->ifa_prefixlen = 30;
	ifa->ifa_scope = RT_SCOPE_UNIVERSE;
	ifa->ifa_index = (unsigned)index;
	mnl_attr_put(nlh, IFA_LOCAL, 4, &a);
	mnl_attr_put(nlh, IFA_ADDRESS, 4, &a);
	return nlh;
}

static struct nlmsghdr *put_default_route(char *at, int index, struct in_addr via)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(at);
	nlh->nlmsg_type = RTM_NEWROUTE;
	nlh->nlmsg_flags = NLM_F_CREATE | NLM_F_EXCL;
	struct rtmsg *rt = mnl_nlmsg_put_extra_header(nlh, sizeof *rt);
	rt->rtm_family = AF_INET;
	rt->rtm_table = RT_TABLE_MAIN;
	rt->rtm_protocol = RTPROT_BOOT;
	rt->rtm_scope = RT_SCOPE_UNIVERSE;
	rt->rtm_type = RTN_UNICAST;
	mnl_attr_put(nlh, RTA_GATEWAY, 4, &via);
	mnl_attr_put_u32(nlh, RTA_OIF, (uint32_t)index);
	return nlh;
}

/* Address `ifname` with `a`/30 and bring it up, then (when `via` is not NULL)
 * the default route through `via`: one write, the kernel applies them in order. */
static int link_configure(struct mnl_socket *nl, const char *ifname, struct in_addr a, const struct in_addr *via,
			  struct err *e)
{
	int index = (int)if_nametoindex(ifname);
	if (index <= 0)
		return err_sys(e, errno, "gateway: index of %s", ifname);
	char buf[1536] = {0};
	size_t len = 0;
	len += NLMSG_ALIGN(put_addr(buf + len, index, a)->nlmsg_len);
	len += NLMSG_ALIGN(put_link_up(buf + len, index)->nlmsg_len);
	if (via)
		len += NLMSG_ALIGN(put_default_route(buf + len, index, *via)->nlmsg_len);
	char w_addr[96], w_up[64], txt[INET_ADDRSTRLEN];
	snprintf(w_addr, sizeof w_addr, "adding %s/30 to %s", inet_ntop(AF_INET, &a, txt, sizeof txt), ifname);
	snprintf(w_up, sizeof w_up, "bringing %s up", ifname);
	const char *what[] = {w_addr, w_up, "adding the cell's default route"};
	return rtnl_batch(nl, buf, len, what, e);
}

/* ---- the /30 allocator ---- */

struct nsid {
	unsigned long long dev, ino;
};

static int own_netns(struct nsid *id)
{
	struct stat st;
	if (stat("/proc/thread-self/ns/net", &st) < 0)
		return -1;
	*id = (struct nsid){st.st_dev, st.st_ino};
	return 0;
}

/* What a lock file records: the netns, the table and the host link. */
struct record {
	struct nsid ns;
	char table[256];
	char ifname[IF_NAMESIZE];
};

static bool read_record(int fd, struct record *r)
{
	char buf[1024];
	ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	memset(r, 0, sizeof *r);
	return sscanf(buf, "netns=%llu:%llu\ntable=%255s\nif=%15s\n", &r->ns.dev, &r->ns.ino, r->table, r->ifname) == 4;
}

/* Remove what a dead run recorded, if it belongs to this netns. true when
 * nothing of it is left here (or it is another netns's: see gateway.h). */
static bool reclaim(int fd)
{
	struct record rec;
	struct nsid me;
	if (!read_record(fd, &rec) || own_netns(&me) < 0)
		return true; /* empty: a run that died before recording made nothing */
	if (rec.ns.dev != me.dev || rec.ns.ino != me.ino)
		return true; /* its veth died with its cell; its table is in a netns we cannot reach */
	struct err e = {0};
	bool ok = true;
	if (gateway_nft_delete(rec.table, &e) < 0 && !strstr(e.msg, "No such file")) {
		log_warn("gateway sweep: %s", e.msg);
		ok = false;
	}
	struct mnl_socket *nl = rtnl_open(&e);
	if (nl) {
		if (link_delete(nl, rec.ifname, &e) < 0 && !strstr(e.msg, "No such device"))
			log_warn("gateway sweep: %s", e.msg);
		mnl_socket_close(nl);
	}
	return ok;
}

/* Take /30 `net` if free: 1 taken, 0 in use, -1 error. */
static int try_net(struct gateway *gw, int dir, uint32_t net, struct err *e)
{
	char name[32];
	struct in_addr a = {htonl(net)};
	char txt[INET_ADDRSTRLEN];
	snprintf(name, sizeof name, "%s.lock", inet_ntop(AF_INET, &a, txt, sizeof txt));
	int fd;
	int got = lockfile_take(dir, name, &fd);
	if (got <= 0)
		return got < 0 ? err_sys(e, errno, "gateway allocator %s/%s", gw_dir, name) : 0;
	if (!reclaim(fd)) {
		close(fd);
		return 0;
	}
	gw->lock_fd = fd;
	snprintf(gw->lock_path, sizeof gw->lock_path, "%s/%s", gw_dir, name);
	gw->net.s_addr = htonl(net);
	gw->host_addr.s_addr = htonl(net + 1);
	gw->cell_addr.s_addr = htonl(net + 2);
	/* Named after the /30, which the lock makes unique among live runs. */
	snprintf(gw->host_if, sizeof gw->host_if, "cellos-%08x", net);
	return 1;
}

static uint64_t fnv1a(const char *s)
{
	uint64_t h = 14695981039346656037ull;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

/* Record what this run is about to make, before it makes it: a SIGKILL at
 * any later point leaves nothing the sweep cannot find. */
static int record(struct gateway *gw, struct err *e)
{
	struct nsid me;
	if (own_netns(&me) < 0)
		return err_sys(e, errno, "gateway: stat /proc/thread-self/ns/net");
	char buf[512];
	int len = snprintf(buf, sizeof buf, "netns=%llu:%llu\ntable=%s\nif=%s\n", me.dev, me.ino, gw->table, gw->host_if);
	/* Written over what a dead run left, then cut to length: never truncated
	 * to zero first, which on ext4 (where /run is not a tmpfs) makes the last
	 * close of the file force its data out to disk (auto_da_alloc). */
	struct stat st;
	if (pwrite(gw->lock_fd, buf, (size_t)len, 0) != len || fstat(gw->lock_fd, &st) < 0 ||
	    (st.st_size > len && ftruncate(gw->lock_fd, len) < 0))
		return err_sys(e, errno, "gateway allocator %s", gw->lock_path);
	return 0;
}

static int alloc_net(struct gateway *gw, const char *name, const struct cidr4 *subnet, struct err *e)
{
	if (lockfile_mkdirs(gw_dir) < 0)
		return err_sys(e, errno, "gateway allocator %s", gw_dir);
	int dir = open(gw_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir < 0)
		return err_sys(e, errno, "gateway allocator %s", gw_dir);
	uint32_t count = 1u << (30 - subnet->prefix);
	uint32_t start = (uint32_t)(fnv1a(name) % count);
	int rc = 0;
	for (uint32_t i = 0; i < count && rc == 0; i++)
		rc = try_net(gw, dir, subnet->addr + ((start + i) % count) * 4, e);
	close(dir);
	if (rc == 0) {
		struct in_addr a = {htonl(subnet->addr)};
		char txt[INET_ADDRSTRLEN];
		return err_set(e, "CELLOS_CELL_SUBNET: all %u /30 links of %s/%u are in use by live cells", count,
			       inet_ntop(AF_INET, &a, txt, sizeof txt), subnet->prefix);
	}
	return rc < 0 ? -1 : record(gw, e);
}

static void release_net(struct gateway *gw)
{
	lockfile_release(gw->lock_path, &gw->lock_fd);
}

/* Only this netns's dead runs: another netns's entry is left to the
 * supervisors there (an allocation of its /30 here reclaims it). */
static bool gw_dead(int fd, int dirfd, const char *name, void *arg)
{
	(void)dirfd, (void)name, (void)arg;
	struct record rec;
	struct nsid me;
	return (!read_record(fd, &rec) || (own_netns(&me) == 0 && rec.ns.dev == me.dev && rec.ns.ino == me.ino)) &&
	       reclaim(fd);
}

void gateway_sweep(void)
{
	lockfile_sweep(gw_dir, gw_dead, NULL);
}

/* ---- the gateway ---- */

int gateway_reserve(struct gateway *gw, const char *name, const struct cidr4 *subnet, const struct nft_egress *rules,
		    size_t n_rules, const struct cidr4 *deny, size_t n_deny, int cell_netns, struct err *e)
{
	uint16_t l7 = gw->l7_port, q = gw->l7_queue;
	*gw = (struct gateway){.l7_port = l7, .l7_queue = q, .rules = rules, .n_rules = n_rules, .deny = deny, .n_deny = n_deny,
			       .lock_fd = -1, .cell_netns = cell_netns};
	/* cellos-<cellId>-<runId8> -> cellos-gw-<cellId>-<runId8> */
	snprintf(gw->table, sizeof gw->table, "cellos-gw-%s", strncmp(name, "cellos-", 7) == 0 ? name + 7 : name);
	return alloc_net(gw, name, subnet, e);
}

int gateway_up(struct gateway *gw, const char *name, const struct cidr4 *subnet, const struct nft_egress *rules,
	       size_t n_rules, const struct cidr4 *deny, size_t n_deny, int cell_netns, struct err *e)
{
	if (gateway_reserve(gw, name, subnet, rules, n_rules, deny, n_deny, cell_netns, e) < 0)
		return -1;
	return gateway_build(gw, e);
}

int gateway_build(struct gateway *gw, struct err *e)
{
	/* The table first: the link never exists without its filter. */
	int rc = gateway_nft_apply(gw, e);
	if (rc < 0 && gw->l7_queue) {
		/* nft_compat or its NFQUEUE target missing: the SNI/Host check
		 * falls back to the proxy (the redirect). */
		log_debug("gateway: the kernel refused the SNI/Host check's queue rule (%s): the proxy checks 443/80",
			  e->msg);
		if (gw->nl_host)
			mnl_socket_close(gw->nl_host);
		gw->nl_host = NULL;
		gw->l7_queue = 0;
		*e = (struct err){0};
		rc = gateway_nft_apply(gw, e);
	}
	if (rc < 0) {
		gateway_down(gw);
		return GATEWAY_NFT_FAILED;
	}
	gw->table_made = true;
	struct mnl_socket *nl = rtnl_open(e);
	if (!nl) {
		gateway_down(gw);
		return -1;
	}
	rc = veth_create(nl, gw->host_if, gw->cell_netns, e);
	if (rc < 0 && strstr(e->msg, "File exists")) {
		/* A dead cell's veth whose netns the kernel has not finished tearing
		 * down: the /30 (and so the name) is ours now, the link a leftover. */
		if (link_delete(nl, gw->host_if, e) == 0)
			rc = veth_create(nl, gw->host_if, gw->cell_netns, e);
	}
	if (rc == 0) {
		gw->link_made = true;
		rc = link_configure(nl, gw->host_if, gw->host_addr, NULL, e);
	}
	mnl_socket_close(nl);
	if (rc < 0)
		gateway_down(gw);
	return rc;
}

int gateway_cell_up(struct gateway *gw, struct err *e)
{
	struct mnl_socket *nl = rtnl_open(e);
	if (!nl)
		return -1;
	int rc = link_configure(nl, GATEWAY_CELL_IF, gw->cell_addr, &gw->host_addr, e);
	mnl_socket_close(nl);
	/* The cell's sets are extended through a socket of its netns, kept. */
	if (rc == 0 && !(gw->nl_cell = gateway_nft_socket(e)))
		rc = -1;
	return rc;
}

/* Matcher of SPEC §6.4: exact, or one leading "*." matching one or more extra
 * labels but not the apex; case-insensitive; a trailing dot is ignored. */
static bool name_matches(const char *pattern, const char *qname)
{
	size_t ql = strlen(qname);
	if (ql && qname[ql - 1] == '.')
		ql--;
	if (strncmp(pattern, "*.", 2) != 0)
		return strlen(pattern) == ql && strncasecmp(pattern, qname, ql) == 0;
	const char *apex = pattern + 2;
	size_t al = strlen(apex);
	return ql > al + 1 && qname[ql - al - 1] == '.' && strncasecmp(qname + ql - al, apex, al) == 0;
}

int gateway_allow_addrs(struct gateway *gw, size_t rule, const struct in_addr *addrs, size_t n, size_t *rejected,
			struct err *e)
{
	const struct nft_egress *r = NULL;
	for (size_t i = 0; i < gw->n_rules && !r; i++)
		if (gw->rules[i].set && gw->rules[i].rule == rule)
			r = &gw->rules[i];
	if (!r)
		return err_set(e, "gateway: egress rule %zu is not a DNS-name rule", rule);
	cleanup_free uint32_t *ok = calloc(n ? n : 1, sizeof *ok);
	if (!ok)
		return err_set(e, "out of memory");
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (gateway_addr_denied(gw, addrs[i])) {
			if (rejected)
				(*rejected)++;
		} else {
			ok[k++] = addrs[i].s_addr;
		}
	return gateway_nft_add_elems(gw, r->set, ok, k, e);
}

int gateway_allow_name(struct gateway *gw, const char *qname, const struct in_addr *addrs, size_t n,
		       size_t *rejected, struct err *e)
{
	int count = 0;
	for (size_t i = 0; i < gw->n_rules; i++) {
		if (!gw->rules[i].set || !name_matches(gw->rules[i].host, qname))
			continue;
		if (gateway_allow_addrs(gw, gw->rules[i].rule, addrs, n, NULL, e) < 0)
			return -1;
		count++;
	}
	for (size_t i = 0; rejected && i < n; i++)
		if (gateway_addr_denied(gw, addrs[i]))
			(*rejected)++;
	return count;
}

static void down(struct gateway *gw, bool delete_link)
{
	struct err e = {0};
	if (gw->nl_cell) {
		mnl_socket_close(gw->nl_cell);
		gw->nl_cell = NULL;
	}
	if (gw->nl_host) {
		mnl_socket_close(gw->nl_host);
		gw->nl_host = NULL;
	}
	bool kept = false;
	if (gw->link_made && delete_link) {
		struct mnl_socket *nl = rtnl_open(&e);
		if (!nl || link_delete(nl, gw->host_if, &e) < 0)
			log_error("%s", e.msg);
		if (nl)
			mnl_socket_close(nl);
		gw->link_made = false;
	}
	if (gw->table_made) {
		if (gateway_nft_delete(gw->table, &e) < 0) {
			log_error("%s", e.msg);
			kept = true; /* recorded: the next supervisor's sweep retries */
		}
		gw->table_made = false;
	}
	if (kept) {
		close(gw->lock_fd);
		gw->lock_fd = -1;
	}
	release_net(gw);
}

void gateway_down(struct gateway *gw) { down(gw, true); }

/* The veth goes with the cell's netns, which dies with the cell (the kernel
 * tears it down in the background): deleting it here would make every destroy
 * wait for the kernel's network synchronisation (tens of ms). */
void gateway_down_dying(struct gateway *gw) { down(gw, false); }
