/* Privilege of the workload (SPEC §6.1): none at all. */
#ifndef CELLOS_CAPS_H
#define CELLOS_CAPS_H

#include "util/err.h"

/* The half that leaves the effective set alone, so the caller can go on with
 * privileged work (mounts): empty the bounding and ambient sets and lock the
 * securebits so that uid 0 gains nothing at execve. */
int caps_drop_bounding(struct err *e);

/* Drop every capability for good, in this process and everything it execs:
 * caps_drop_bounding() if not done yet, then effective/permitted/inheritable
 * cleared and PR_SET_NO_NEW_PRIVS (setuid/setgid bits and file capabilities
 * are ignored). Also works, and means the same, inside a user namespace. */
int caps_drop_all(struct err *e);

#endif
