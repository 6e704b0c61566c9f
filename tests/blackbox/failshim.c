/* LD_PRELOAD shim for black-box tests: makes a libc call fail where it
 * practically never does (resource exhaustion), so the supervisor's handling of
 * that failure can be seen from outside. Everything else goes to the real call.
 *
 *   FAILSHIM_SIGNALFD=N     the N-th signalfd() of the process fails with EMFILE
 *   FAILSHIM_SO_PASSCRED=1  setsockopt(SOL_SOCKET, SO_PASSCRED) fails with ENOMEM
 *
 * Built by test_failing_calls.py; the workload never sees it (its environment
 * is cleared, so LD_PRELOAD does not reach it). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/signalfd.h>
#include <sys/socket.h>

int signalfd(int fd, const sigset_t *mask, int flags)
{
	static int calls;
	const char *fail_at = getenv("FAILSHIM_SIGNALFD");
	if (fail_at && ++calls == atoi(fail_at)) {
		errno = EMFILE;
		return -1;
	}
	int (*real)(int, const sigset_t *, int) = (int (*)(int, const sigset_t *, int))dlsym(RTLD_NEXT, "signalfd");
	return real(fd, mask, flags);
}

int setsockopt(int fd, int level, int name, const void *value, socklen_t len)
{
	if (level == SOL_SOCKET && name == SO_PASSCRED && getenv("FAILSHIM_SO_PASSCRED")) {
		errno = ENOMEM;
		return -1;
	}
	int (*real)(int, int, int, const void *, socklen_t) =
		(int (*)(int, int, int, const void *, socklen_t))dlsym(RTLD_NEXT, "setsockopt");
	return real(fd, level, name, value, len);
}
