#include "isolate/evloop.h"

#include <errno.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "util/ids.h"

int evloop_open(struct evloop *l, struct err *e)
{
	l->armed = INT64_MAX;
	l->ep = epoll_create1(EPOLL_CLOEXEC);
	if (l->ep < 0)
		return err_sys(e, errno, "epoll_create1");
	l->timer = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (l->timer < 0) {
		int errnum = errno;
		close(l->ep);
		l->ep = -1;
		return err_sys(e, errnum, "timerfd_create");
	}
	if (evloop_watch(l, l->timer, EPOLLIN, EVLOOP_TIMER, e) < 0) {
		evloop_close(l);
		return -1;
	}
	return 0;
}

int evloop_watch(struct evloop *l, int fd, uint32_t events, uint64_t tag, struct err *e)
{
	struct epoll_event ev = {.events = events, .data.u64 = tag};
	if (epoll_ctl(l->ep, EPOLL_CTL_MOD, fd, &ev) == 0)
		return 0;
	if (errno == ENOENT && epoll_ctl(l->ep, EPOLL_CTL_ADD, fd, &ev) == 0)
		return 0;
	return err_sys(e, errno, "epoll_ctl");
}

void evloop_unwatch(struct evloop *l, int fd)
{
	epoll_ctl(l->ep, EPOLL_CTL_DEL, fd, NULL);
}

void evloop_arm(struct evloop *l, int64_t deadline_ms)
{
	if (deadline_ms == l->armed && (deadline_ms == INT64_MAX || deadline_ms > mono_ms()))
		return;
	l->armed = deadline_ms;
	struct itimerspec its = {0};
	if (deadline_ms != INT64_MAX) {
		if (deadline_ms <= 0)
			deadline_ms = 1; /* 0 would disarm */
		its.it_value.tv_sec = deadline_ms / 1000;
		its.it_value.tv_nsec = (deadline_ms % 1000) * 1000000L;
	}
	uint64_t n;
	(void)!read(l->timer, &n, sizeof n); /* a fired timer stays readable until read */
	timerfd_settime(l->timer, TFD_TIMER_ABSTIME, &its, NULL);
}

int evloop_ready(struct evloop *l, struct epoll_event *ev, int max)
{
	int n = epoll_wait(l->ep, ev, max, 0);
	return n < 0 ? 0 : n;
}

void evloop_close(struct evloop *l)
{
	if (l->timer >= 0)
		close(l->timer);
	if (l->ep >= 0)
		close(l->ep);
	l->timer = l->ep = -1;
}
