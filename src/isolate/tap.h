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

/* Route what enters from the microVM's TAP out through `out_if` (the gateway's
 * veth, SPEC §6.4), in the calling thread's network namespace (the cell's own,
 * never the host's): IPv4 forwarding on there, and table inet TAP_NAT_TABLE
 * masquerading to out_if's address, so the host's gateway sees the cell's one
 * address as it does for any cell. */
#define TAP_NAT_TABLE "cellos-tap"
int tap_route_out(const char *out_if, struct err *e);

#endif
