#include "isolate/netdev.h"

#include <errno.h>
#include <net/if.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

int netdev_loopback_up(struct err *e)
{
	/* A socket belongs to the netns it was created in, so this acts on the
	 * cell's loopback when called after setns(). */
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return err_sys(e, errno, "loopback: socket");
	struct ifreq ifr;
	memset(&ifr, 0, sizeof ifr);
	strcpy(ifr.ifr_name, "lo");
	int rc = 0;
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0) {
		rc = err_sys(e, errno, "loopback: SIOCGIFFLAGS");
	} else {
		ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
		if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
			rc = err_sys(e, errno, "loopback: SIOCSIFFLAGS");
	}
	close(fd);
	return rc;
}
