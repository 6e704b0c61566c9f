/* File descriptors: closing without losing errno, handing one out of a cleanup
 * scope, openat2(2), and the cleanup attributes of directory streams and FILEs
 * (cleanup_free and cleanup_close are in util/err.h, where every file has them). */
#ifndef CELLOS_FD_H
#define CELLOS_FD_H

#include <dirent.h>
#include <errno.h>
#include <linux/openat2.h> /* RESOLVE_* for fd_openat2 callers */
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <unistd.h>

/* close(fd) when fd >= 0, keeping the errno of the failure being reported. */
static inline void close_keep_errno(int fd)
{
	int errnum = errno;
	if (fd >= 0)
		close(fd);
	errno = errnum;
}

/* Take the descriptor out of a cleanup_close variable: the caller now owns it. */
static inline int steal_fd(int *fd)
{
	int v = *fd;
	*fd = -1;
	return v;
}

static inline void cleanup_dirp(DIR **d) { if (*d) closedir(*d); }
static inline void cleanup_filep(FILE **f) { if (*f) fclose(*f); }
#define cleanup_dir __attribute__((cleanup(cleanup_dirp)))
#define cleanup_file __attribute__((cleanup(cleanup_filep)))

/* openat2(2) with exactly these flags, mode and RESOLVE_* bits (nothing added:
 * the caller spells out O_CLOEXEC and the rest). -1 with errno on failure. */
int fd_openat2(int dirfd, const char *path, uint64_t flags, mode_t mode, uint64_t resolve);

#endif
