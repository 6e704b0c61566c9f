/* Privilege of the workload (SPEC §6.1): none at all. */
#ifndef CELLOS_CAPS_H
#define CELLOS_CAPS_H

#include "util/err.h"

/* Drop every capability for good, in this process and everything it execs:
 * bounding and ambient sets emptied, securebits locked so that uid 0 gains
 * nothing at execve, effective/permitted/inheritable cleared, and
 * PR_SET_NO_NEW_PRIVS (setuid/setgid bits and file capabilities are ignored).
 * Also works, and means the same, inside a user namespace. */
int caps_drop_all(struct err *e);

#endif
