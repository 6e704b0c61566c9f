#include "isolate/tap.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libnftnl/rule.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>

#include "isolate/nft_build.h"

static int set_addr(const char *name, const char *addr, int prefix, struct err *e)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return err_sys(e, errno, "%s: socket", name);
	struct ifreq ifr;
	memset(&ifr, 0, sizeof ifr);
	snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", name);
	struct sockaddr_in *sin = (struct sockaddr_in *)&ifr.ifr_addr;
	sin->sin_family = AF_INET;
	int rc = 0;
	if (inet_pton(AF_INET, addr, &sin->sin_addr) != 1)
		rc = err_set(e, "%s: bad address %s", name, addr);
	else if (ioctl(s, SIOCSIFADDR, &ifr) < 0)
		rc = err_sys(e, errno, "%s: SIOCSIFADDR", name);
	if (rc == 0) {
		sin->sin_addr.s_addr = htonl(prefix ? ~0u << (32 - prefix) : 0);
		if (ioctl(s, SIOCSIFNETMASK, &ifr) < 0)
			rc = err_sys(e, errno, "%s: SIOCSIFNETMASK", name);
	}
	if (rc == 0 && ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
		rc = err_sys(e, errno, "%s: SIOCGIFFLAGS", name);
	if (rc == 0) {
		ifr.ifr_flags |= IFF_UP;
		if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
			rc = err_sys(e, errno, "%s: SIOCSIFFLAGS", name);
	}
	close(s);
	return rc;
}

int tap_open(const char *name, const char *addr, int prefix, struct err *e)
{
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return err_sys(e, errno, "/dev/net/tun");
	struct ifreq ifr;
	memset(&ifr, 0, sizeof ifr);
	snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", name);
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		int errnum = errno;
		close(fd);
		return err_sys(e, errnum, "%s: TUNSETIFF", name);
	}
	if (set_addr(name, addr, prefix, e) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

int tap_create(const char *name, uid_t uid, gid_t gid, const char *addr, int prefix, struct err *e)
{
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return err_sys(e, errno, "/dev/net/tun");
	struct ifreq ifr;
	memset(&ifr, 0, sizeof ifr);
	snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", name);
	/* The flags Firecracker attaches with (it sets them again itself). */
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	int rc = 0;
	if (ioctl(fd, TUNSETIFF, &ifr) < 0 || ioctl(fd, TUNSETOWNER, (unsigned long)uid) < 0 ||
	    ioctl(fd, TUNSETGROUP, (unsigned long)gid) < 0 || ioctl(fd, TUNSETPERSIST, 1UL) < 0)
		rc = err_sys(e, errno, "%s: TUNSETIFF/OWNER/PERSIST", name);
	close(fd);
	if (rc < 0)
		return rc;
	if (addr)
		return set_addr(name, addr, prefix, e);
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return err_sys(e, errno, "%s: socket", name);
	memset(&ifr, 0, sizeof ifr);
	snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", name);
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0) {
		rc = err_sys(e, errno, "%s: SIOCGIFFLAGS", name);
	} else {
		ifr.ifr_flags |= IFF_UP;
		if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
			rc = err_sys(e, errno, "%s: SIOCSIFFLAGS", name);
	}
	close(s);
	return rc;
}

int tap_route_out(const char *out_if, struct err *e)
{
	/* The sysctl of the calling thread's netns (/proc/sys/net follows it). */
	int fd = open("/proc/sys/net/ipv4/ip_forward", O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, "1", 1) != 1) {
		int errnum = errno;
		if (fd >= 0)
			close(fd);
		return err_sys(e, errnum, "net.ipv4.ip_forward of the cell's network namespace");
	}
	close(fd);
	struct nftb b;
	nftb_init(&b);
	nftb_table(&b, TAP_NAT_TABLE, true);
	nftb_chain(&b, TAP_NAT_TABLE, "postrouting", "nat", NF_INET_POST_ROUTING, 100, NF_ACCEPT);
	struct nftnl_rule *r = nftb_rule_new(TAP_NAT_TABLE, "postrouting");
	if (r && (nftx_ifname(r, false, true, out_if) || nftx_masq(r))) {
		nftnl_rule_free(r);
		r = NULL;
	}
	nftb_rule(&b, r, "add rule: masquerade");
	struct mnl_socket *nl = nftb_open(e);
	int rc = nl ? nftb_send(nl, &b, e) : -1;
	if (nl)
		mnl_socket_close(nl);
	nftb_free(&b);
	if (rc < 0)
		err_prefix(e, "table inet " TAP_NAT_TABLE);
	return rc;
}
