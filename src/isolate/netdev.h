/* Network devices of a cell's netns. */
#ifndef CELLOS_NETDEV_H
#define CELLOS_NETDEV_H

#include "util/err.h"

/* Bring `lo` up in the calling thread's network namespace. */
int netdev_loopback_up(struct err *e);

#endif
