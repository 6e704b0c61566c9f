#include "isolate/netns.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/log.h"

/* Return the calling thread to the netns `self` (and close it). Failing to come
 * back would leave the supervisor inside the cell: nothing sane can follow. */
static void come_back(int self)
{
	if (setns(self, CLONE_NEWNET) < 0) {
		log_error("setns back to the host netns: %s", strerror(errno));
		abort();
	}
	close(self);
}

int netns_run_in(int netns, netns_fn fn, void *arg, struct err *e)
{
	int self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (self < 0)
		return err_sys(e, errno, "open /proc/self/ns/net");
	if (setns(netns, CLONE_NEWNET) < 0) {
		close(self);
		return err_sys(e, errno, "setns into the cell's netns");
	}
	int rc = fn(arg, e);
	come_back(self);
	return rc;
}

int netns_make(int *out, netns_fn fn, void *arg, struct err *e)
{
	*out = -1;
	int self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (self < 0)
		return err_sys(e, errno, "open /proc/self/ns/net");
	int rc = 0;
	if (unshare(CLONE_NEWNET) < 0) {
		rc = err_sys(e, errno, "create the cell's network namespace");
	} else {
		*out = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
		rc = *out < 0 ? err_sys(e, errno, "open the cell's network namespace") : fn ? fn(arg, e) : 0;
	}
	come_back(self);
	return rc;
}
