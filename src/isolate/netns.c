#include "isolate/netns.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
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

/* The child's report: which step failed (0: none) and its errno; the netns
 * comes along as SCM_RIGHTS. */
struct make_in_report {
	int step;
	int errnum;
};

static const char *const make_in_steps[] = {"", "take the run's uid", "join the cell's user namespace",
					    "create the cell's network namespace", "open it"};

/* In the vfork()ed child: system calls only (it shares our memory and our
 * stack, and glibc's set*id would signal our threads), then _exit. Raw
 * setres[ug]id change this task's ids only; without SECBIT_NO_SETUID_FIXUP the
 * child's capabilities go, and it holds those of the user namespace's owner. */
static _Noreturn void make_in_child(int sock, int userns, uid_t uid, gid_t gid)
{
	struct make_in_report r = {0};
	int fd = -1;
	if (syscall(SYS_setresgid, -1, gid, -1) < 0 || syscall(SYS_setresuid, -1, uid, -1) < 0)
		r.step = 1;
	else if (setns(userns, CLONE_NEWUSER) < 0)
		r.step = 2;
	else if (unshare(CLONE_NEWNET) < 0)
		r.step = 3;
	else if ((fd = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC)) < 0)
		r.step = 4;
	r.errnum = r.step ? errno : 0;
	union {
		struct cmsghdr h;
		char space[CMSG_SPACE(sizeof(int))];
	} cm;
	memset(&cm, 0, sizeof cm);
	struct iovec iov = {&r, sizeof r};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	if (fd >= 0) {
		mh.msg_control = &cm;
		mh.msg_controllen = sizeof cm;
		struct cmsghdr *h = CMSG_FIRSTHDR(&mh);
		h->cmsg_level = SOL_SOCKET;
		h->cmsg_type = SCM_RIGHTS;
		h->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(h), &fd, sizeof fd);
	}
	_exit(sendmsg(sock, &mh, MSG_NOSIGNAL) == (ssize_t)sizeof r ? 0 : 1);
}

int netns_make_in(int userns, uid_t uid, gid_t gid, int *out, struct err *e)
{
	*out = -1;
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return err_sys(e, errno, "the cell's network namespace: socketpair");
	pid_t pid = vfork();
	if (pid == 0)
		make_in_child(sv[1], userns, uid, gid);
	int fork_errno = errno;
	close(sv[1]);
	if (pid < 0) {
		close(sv[0]);
		return err_sys(e, fork_errno, "the cell's network namespace: vfork");
	}
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	struct make_in_report r = {.step = -1};
	union {
		struct cmsghdr h;
		char space[CMSG_SPACE(sizeof(int))];
	} cm;
	struct iovec iov = {&r, sizeof r};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = &cm, .msg_controllen = sizeof cm};
	ssize_t n = recvmsg(sv[0], &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	int recv_errno = errno;
	close(sv[0]);
	struct cmsghdr *h = n == (ssize_t)sizeof r ? CMSG_FIRSTHDR(&mh) : NULL;
	if (h && h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_RIGHTS && h->cmsg_len == CMSG_LEN(sizeof(int)))
		memcpy(out, CMSG_DATA(h), sizeof(int));
	if (*out >= 0 && r.step == 0)
		return 0;
	if (*out >= 0)
		close(*out);
	*out = -1;
	if (n != (ssize_t)sizeof r)
		return err_sys(e, n < 0 ? recv_errno : EIO, "the cell's network namespace: no word from its maker");
	if (r.step > 0 && r.step < (int)(sizeof make_in_steps / sizeof *make_in_steps))
		return err_sys(e, r.errnum, "the cell's network namespace: %s", make_in_steps[r.step]);
	return err_set(e, "the cell's network namespace: its maker sent no namespace");
}
