/* Directory helpers on host paths the supervisor owns (/run/cellos/..., its
 * temporary directories): never on a path a cell could have changed. */
#ifndef CELLOS_DIRS_H
#define CELLOS_DIRS_H

#include <stdbool.h>
#include <sys/types.h>

/* mkdir -p: `path` and its missing parents with `mode`; 0, or -1 with errno. */
int dirs_mkdir_p(const char *path, mode_t mode);

/* Remove a directory tree without following symlinks (no-op when absent). */
int dirs_rmtree(const char *path);

/* Whether the directory open at `fd` has no entry (true when it cannot be read). */
bool dirs_empty(int fd);

#endif
