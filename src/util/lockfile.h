/* Files whose flock says that their owner is alive: the run registry
 * (isolate/runreg.c), the per-run uid allocator (isolate/runuid.c) and the
 * gateway's /30 allocator (isolate/gateway.c).
 *
 * An owner takes its lock and keeps it for its whole life; it gives the name up
 * by unlinking the file, then closing it. Someone else who takes the lock of a
 * file it opened by name therefore only learns that the file's owner is gone:
 * between its open() and its flock() that owner may have finished (unlinked and
 * closed it) and a new owner may have made a new file under the same name. The
 * lock is about the name only if the locked file is still that name. */
#ifndef CELLOS_LOCKFILE_H
#define CELLOS_LOCKFILE_H

#include <stdbool.h>

/* `fd` (locked) is still the file called `name` in directory `dirfd`: linked,
 * and the same inode on the same device. */
bool lockfile_is_named(int fd, int dirfd, const char *name);

/* Try to take the slot `name` of directory `dirfd` (an allocator's lock file:
 * made if missing, locked without waiting, still so named). 1: taken, *fd holds
 * it; 0: a live owner holds it; -1: errno says why. */
int lockfile_take(int dirfd, const char *name, int *fd);

/* Give up a slot taken with lockfile_take: unlink first, so that whoever takes
 * the lock after our close sees a file no name leads to. Sets *fd to -1. */
void lockfile_release(const char *path, int *fd);

/* Every slot of directory `dir` (its `*.lock` files) whose owner is gone: the
 * lock taken without waiting on a file still so named. `dead(fd, dirfd, name,
 * arg)` is called with that lock held and says whether to remove the slot (it
 * may undo what the owner left first). */
void lockfile_sweep(const char *dir, bool (*dead)(int fd, int dirfd, const char *name, void *arg), void *arg);

/* Make directory `dir` and its parent (mode 0700) where missing. */
int lockfile_mkdirs(const char *dir);

#endif
