/* Whole writes and small whole files: what the kernel's interface files
 * (cgroup, /proc) and our own output files need. Every function keeps errno
 * of the failing call. */
#ifndef CELLOS_FILEIO_H
#define CELLOS_FILEIO_H

#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

/* Write all n bytes, resuming short writes and EINTR; -1 with errno otherwise
 * (EIO when the kernel takes nothing). */
int write_all(int fd, const void *buf, size_t n);
/* The same for an iovec (which it consumes: entries are advanced in place). */
int writev_all(int fd, struct iovec *iov, int n);

/* The whole file at `path` as a NUL-terminated malloc'd string (at most 8 MiB),
 * or NULL with errno. */
char *file_read_all(const char *path);
/* One read(2) of `file` under `dirfd` (AT_FDCWD: a path) into buf, NUL-terminated:
 * its length, or -1. For the kernel's small interface files. */
ssize_t file_read_at(int dirfd, const char *file, char *buf, size_t size);
/* One write(2) of the string s to `file` under `dirfd`; 0 or -1. */
int file_write_at(int dirfd, const char *file, const char *s);

#endif
