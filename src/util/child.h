/* The first steps of a helper the supervisor forks before it execs a program
 * of the host (a microVM monitor, an OCI runtime, a runtime's tool). */
#ifndef CELLOS_CHILD_H
#define CELLOS_CHILD_H

#include <sys/types.h>

/* Die with `parent` (SIGKILL at its death) and start from the default signal
 * state: nothing blocked (the supervisor blocks its stop signals), SIGPIPE
 * default (the supervisor ignores it). -1 when `parent` was already gone before
 * the tie was made: nobody would ever kill what this child starts. */
int child_tie(pid_t parent);

#endif
