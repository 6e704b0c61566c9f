/* How to name a file that is not the regular file we wanted, in one-line errors. */
#ifndef CELLOS_FILEKIND_H
#define CELLOS_FILEKIND_H

#include <sys/stat.h>

/* "a directory", "a FIFO", "a device", "a socket", "a symbolic link", or
 * "not a regular file" for anything else. */
const char *file_kind(mode_t m);

#endif
