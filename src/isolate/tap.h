/* A TAP device for a microVM's network interface (SPEC §6.3: "egress goes
 * through a TAP device in the cell's netns"). */
#ifndef CELLOS_TAP_H
#define CELLOS_TAP_H

#include <sys/types.h>

#include "util/err.h"

/* Make the persistent TAP `name` in the calling thread's network namespace,
 * owned by uid/gid (the unprivileged VMM attaches to it by name without any
 * capability), and bring it up. It goes away with the namespace. */
int tap_create(const char *name, uid_t uid, gid_t gid, struct err *e);

#endif
