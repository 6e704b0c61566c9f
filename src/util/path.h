/* Lexical path clean-up shared by the code that resolves paths inside a cell. */
#ifndef CELLOS_PATH_H
#define CELLOS_PATH_H

#include <stddef.h>

/* `path` with empty and "." components dropped, into out as "/a/b" ("" for "/").
 * ".." is refused (-1, errno EINVAL): inside a scaffold or workspace it could only
 * mean "escape"; too long for out: -1, errno ENAMETOOLONG. */
int path_clean(const char *path, char *out, size_t size);

#endif
