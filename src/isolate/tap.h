/* A TAP device in the calling thread's network namespace: a microVM's network
 * interface (SPEC §6.3). Not persistent: it exists while the returned fd (or
 * the VMM it is handed to) holds it open, so nothing of it can outlive the cell. */
#ifndef CELLOS_TAP_H
#define CELLOS_TAP_H

#include <sys/types.h>

#include "util/err.h"

/* Make TAP `name` with IPv4 address `addr`/`prefix` and bring it up; returns its
 * fd (close-on-exec) or -1. */
int tap_open(const char *name, const char *addr, int prefix, struct err *e);

/* Firecracker attaches to its TAP by name, as the run's unprivileged uid: make
 * TAP `name` persistent and owned by uid/gid, with `addr`/`prefix` (addr NULL:
 * none), and bring it up. It goes away with its network namespace. */
int tap_create(const char *name, uid_t uid, gid_t gid, const char *addr, int prefix, struct err *e);

#endif
