/* The cell's private secrets directory (SPEC §5, secretDelivery "file").
 *
 * Built by the cell's init inside the cell's mount namespace, in the scaffold
 * before it is sealed (isolate/mount.c calls this): a fresh tmpfs on
 * /run/cellos/secrets, mode 0700, holding one mode-0400 file per secret named
 * after its secretRef, owned by the cell's root (the workload's identity), then
 * made read-only, nosuid, nodev, noexec. Nothing of it exists outside the cell's
 * mount namespace, and it is gone when that namespace ends (destroy). The pages
 * are charged to the cell's memory cgroup and, where the kernel allows
 * ("noswap", not inside a user namespace), never written to swap. */
#ifndef CELLOS_SECRETFS_H
#define CELLOS_SECRETFS_H

#include <sys/types.h>

#include "util/err.h"

#define SECRETFS_DIR "/run/cellos/secrets"

struct secrets;

/* `root`: the scaffold (the cell's future "/", still writable). */
/* `uid`/`gid` own the directory and the files (ids of the mounting namespace). */
int secretfs_build(int root, const struct secrets *s, uid_t uid, gid_t gid, struct err *e);

#endif
