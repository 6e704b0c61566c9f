/* The signals that ask a run to stop (SIGTERM, SIGINT: SPEC §1). The supervisor
 * keeps them blocked from start-up and learns of them only through a signalfd,
 * polled next to everything else it waits for. */
#ifndef CELLOS_STOPSIG_H
#define CELLOS_STOPSIG_H

#include <signal.h>

/* *set = {SIGTERM, SIGINT}. */
void stopsig_set(sigset_t *set);

/* A non-blocking, close-on-exec signalfd for them, or -1 with errno. It only
 * reports them while they are blocked. */
int stopsig_fd(void);

#endif
