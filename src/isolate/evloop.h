/* A small event loop for the gateway's proxies (DNS proxy, SNI/Host check):
 * an epoll set and a one-shot timer in it, so that a proxy is one descriptor
 * the supervisor's wait loop polls (readable: call the proxy's pump) and needs
 * no thread of its own. Watches carry a 64-bit tag chosen by the proxy; tag 0
 * is the timer. */
#ifndef CELLOS_EVLOOP_H
#define CELLOS_EVLOOP_H

#include <stdint.h>
#include <sys/epoll.h>

#include "util/err.h"

#define EVLOOP_TIMER 0

struct evloop {
	int ep;
	int timer;
	int64_t armed;                  /* the deadline set now, INT64_MAX: none */
};

int evloop_open(struct evloop *l, struct err *e);
/* Watch `fd` for `events` (EPOLLIN/EPOLLOUT), replacing an earlier watch. */
int evloop_watch(struct evloop *l, int fd, uint32_t events, uint64_t tag, struct err *e);
void evloop_unwatch(struct evloop *l, int fd);
/* Fire once at `deadline_ms` (mono_ms clock); INT64_MAX: never. Costs no system
 * call when that is already the deadline set and it has not fired. */
void evloop_arm(struct evloop *l, int64_t deadline_ms);
/* What is ready now, without waiting: up to `max` into ev. */
int evloop_ready(struct evloop *l, struct epoll_event *ev, int max);
void evloop_close(struct evloop *l);

#endif
