/* A dead cell's TCP sockets, ended at destroy (SOCK_DESTROY through
 * sock_diag, as `ss -K` does). A socket its process closed lives on in the
 * kernel until its connection ends (FIN_WAIT, or data the peer never reads):
 * up to a minute and more after a peer that never answers, and each holds the
 * cell's network namespace, with its end of the gateway's veth, alive that
 * long. Ending them leaves nothing of the cell in the kernel once destroy
 * returns; each peer gets a reset, as from a process killed with its
 * connection open. Needs CONFIG_INET_DIAG_DESTROY (else the kernel's timers
 * end them later). */
#ifndef CELLOS_TCPKILL_H
#define CELLOS_TCPKILL_H

#include <stddef.h>

#include "util/err.h"

/* In network namespace `netns` (an fd), whose processes are all gone: every
 * TCP socket not in TIME_WAIT ended; *killed counts them. */
int tcpkill_netns(int netns, size_t *killed, struct err *e);

#endif
