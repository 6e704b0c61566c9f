#include "isolate/tap.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

int tap_create(const char *name, uid_t uid, gid_t gid, struct err *e)
{
	if (strlen(name) >= IFNAMSIZ)
		return err_set(e, "tap %s: name too long", name);
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return err_sys(e, errno, "tap %s: /dev/net/tun", name);
	struct ifreq ifr;
	memset(&ifr, 0, sizeof ifr);
	strcpy(ifr.ifr_name, name);
	/* The flags Firecracker attaches with (it sets them again on attach). */
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	int rc = 0;
	if (ioctl(fd, TUNSETIFF, &ifr) < 0 || ioctl(fd, TUNSETOWNER, (unsigned long)uid) < 0 ||
	    ioctl(fd, TUNSETGROUP, (unsigned long)gid) < 0 || ioctl(fd, TUNSETPERSIST, 1UL) < 0)
		rc = err_sys(e, errno, "tap %s", name);
	close(fd);
	if (rc < 0)
		return rc;
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return err_sys(e, errno, "tap %s: socket", name);
	memset(&ifr, 0, sizeof ifr);
	strcpy(ifr.ifr_name, name);
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0) {
		rc = err_sys(e, errno, "tap %s: SIOCGIFFLAGS", name);
	} else {
		ifr.ifr_flags |= IFF_UP;
		if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
			rc = err_sys(e, errno, "tap %s: up", name);
	}
	close(s);
	return rc;
}
