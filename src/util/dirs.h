/* Directory helpers on host paths the supervisor owns (/run/cellos/..., its
 * temporary directories): never on a path a cell could have changed. */
#ifndef CELLOS_DIRS_H
#define CELLOS_DIRS_H

#include <stdbool.h>
#include <sys/types.h>

/* mkdir -p: `path` and its missing parents with `mode`; 0, or -1 with errno. */
int dirs_mkdir_p(const char *path, mode_t mode);

/* The directory every run's host state lives under. */
#define DIRS_RUN_BASE "/run/cellos"

/* Make DIRS_RUN_BASE, root's and 0711, or open an existing one up to 0711 when
 * others cannot traverse it (a 0700 one, made by an earlier version or by
 * hand): the VMMs and OCI runtimes run as the run's uid and must reach their
 * own directory beneath it. Traverse, never list: each entry keeps its own
 * mode. Refused (-1, errno EPERM) when it is not a directory of root's.
 * 0, or -1 with errno. */
int dirs_run_base(void);

/* Remove a directory tree without following symlinks (no-op when absent). */
int dirs_rmtree(const char *path);

/* Whether the directory open at `fd` has no entry (true when it cannot be read). */
bool dirs_empty(int fd);

#endif
