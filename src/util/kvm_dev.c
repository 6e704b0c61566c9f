#include "util/kvm_dev.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

/* KVM's misc device numbers (Documentation/admin-guide/devices.txt). */
#define KVM_MAJOR 10
#define KVM_MINOR 232
#define KVM_STABLE_API 12

int kvm_dev_check(const char *dev, gid_t *gid, char *why, size_t size)
{
	struct stat st;
	if (stat(dev, &st) < 0) {
		snprintf(why, size, "%s: %s", dev, strerror(errno));
		return -1;
	}
	if (!S_ISCHR(st.st_mode)) {
		snprintf(why, size, "%s: not a character device", dev);
		return -1;
	}
	int fd = open(dev, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		snprintf(why, size, "%s: %s", dev, strerror(errno));
		return -1;
	}
	if (major(st.st_rdev) == KVM_MAJOR && minor(st.st_rdev) == KVM_MINOR) {
		int v = ioctl(fd, KVM_GET_API_VERSION, 0);
		if (v != KVM_STABLE_API) {
			snprintf(why, size, "%s: KVM_GET_API_VERSION answered %d%s%s (expected %d)", dev, v,
				 v < 0 ? ": " : "", v < 0 ? strerror(errno) : "", KVM_STABLE_API);
			close(fd);
			return -1;
		}
	}
	close(fd);
	/* The VMM runs as the run's own uid: it opens the device through its
	 * "other" bits, or as a member of its group, which it is then given. */
	*gid = (st.st_mode & S_IROTH) && (st.st_mode & S_IWOTH) ? (gid_t)-1 : st.st_gid;
	if (*gid != (gid_t)-1 && !((st.st_mode & S_IRGRP) && (st.st_mode & S_IWGRP))) {
		snprintf(why, size, "%s: neither its group nor others may read and write it (mode %03o): the VMM runs unprivileged",
			 dev, st.st_mode & 0777);
		return -1;
	}
	return 0;
}
