/* Lexical path clean-up shared by the code that resolves paths inside a cell. */
#ifndef CELLOS_PATH_H
#define CELLOS_PATH_H

#include <stdbool.h>
#include <stddef.h>

/* `path` with empty and "." components dropped, into out as "/a/b" ("" for "/").
 * ".." is refused (-1, errno EINVAL): inside a scaffold or workspace it could only
 * mean "escape"; too long for out: -1, errno ENAMETOOLONG. */
int path_clean(const char *path, char *out, size_t size);

/* Whether the clean path `path` is one of the clean `prefixes` (NULL-terminated;
 * NULL: none) or lies below it, by whole components: "/srv/ci" holds
 * "/srv/ci/x", never "/srv/ci-evil/x". The clean form of "/" ("") holds every
 * path. Both sides in path_clean's form, so "." and "//" cannot fool it and ".."
 * cannot occur. */
bool path_within_any(const char *path, char *const *prefixes);

/* The PATH walk of execvp, one candidate at a time: `*it` starts at a PATH value
 * (a colon list) and advances; each call writes the next "<entry>/<name>" into
 * `cand` and returns true, false once the list is done. Empty entries are
 * skipped, and so are relative ones when `absolute_only` (they mean "relative
 * to the working directory", which a workload controls), and candidates that do
 * not fit `cand`. What a candidate must be (a regular file, executable, ...) is
 * the caller's test. */
bool path_search_next(const char **it, const char *name, bool absolute_only, char *cand, size_t size);

/* The number of components of a clean path ("/a/b": 2, "": 0): the order in
 * which nested mount targets are mounted. */
size_t path_depth(const char *clean);

#endif
