/* File descriptors. See util/fd.h. */
#include "util/fd.h"

#include <linux/openat2.h>
#include <sys/syscall.h>

int fd_openat2(int dirfd, const char *path, uint64_t flags, mode_t mode, uint64_t resolve)
{
	struct open_how how = {.flags = flags, .mode = mode, .resolve = resolve};
	return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof how);
}
