#include "isolate/secretfs.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/mount.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "secrets/secret.h"
#include "util/fd.h"
#include "util/fileio.h"

/* A tmpfs just big enough for the files (a page per started page of each, a few
 * spare), as a detached mount; "noswap" when the kernel lets us. */
static int new_tmpfs(const struct secrets *s, uid_t uid, gid_t gid, bool noswap)
{
	unsigned long long pages = 4;
	for (size_t i = 0; i < s->n; i++) {
		size_t vlen;
		secret_value(&s->items[i], &vlen);
		pages += (vlen + 4095) / 4096;
	}
	char size[32], inodes[32], u[16], g[16];
	snprintf(size, sizeof size, "%llu", pages * 4096);
	snprintf(u, sizeof u, "%u", (unsigned)uid);
	snprintf(g, sizeof g, "%u", (unsigned)gid);
	snprintf(inodes, sizeof inodes, "%zu", s->n + 8);
	int fs = fsopen("tmpfs", FSOPEN_CLOEXEC);
	if (fs < 0)
		return -1;
	if (fsconfig(fs, FSCONFIG_SET_STRING, "mode", "0700", 0) < 0 ||
	    fsconfig(fs, FSCONFIG_SET_STRING, "uid", u, 0) < 0 || fsconfig(fs, FSCONFIG_SET_STRING, "gid", g, 0) < 0 ||
	    fsconfig(fs, FSCONFIG_SET_STRING, "size", size, 0) < 0 ||
	    fsconfig(fs, FSCONFIG_SET_STRING, "nr_inodes", inodes, 0) < 0 ||
	    (noswap && fsconfig(fs, FSCONFIG_SET_FLAG, "noswap", NULL, 0) < 0) ||
	    fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0) {
		close_keep_errno(fs);
		return -1;
	}
	int m = fsmount(fs, FSMOUNT_CLOEXEC, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC);
	close_keep_errno(fs);
	return m;
}

static int write_file(int dir, const char *name, const char *v, size_t len, uid_t uid, gid_t gid)
{
	cleanup_close int fd = openat(dir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0400);
	if (fd < 0 || fchown(fd, uid, gid) < 0 || write_all(fd, v, len) < 0)
		return -1;
	return close(steal_fd(&fd));
}

/* The directory `rel` under `dirfd` (created if missing, as the cell resolves it). */
static int subdir(int dirfd, const char *rel, mode_t mode)
{
	if (mkdirat(dirfd, rel, mode) < 0 && errno != EEXIST)
		return -1;
	return fd_openat2(dirfd, rel, O_PATH | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW, 0,
			  RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS);
}

int secretfs_build(int root, const struct secrets *s, uid_t uid, gid_t gid, struct err *e)
{
	cleanup_close int run = -1, cellos = -1, dir = -1, m = -1;
	if ((run = subdir(root, "run", 0755)) < 0 || (cellos = subdir(run, "cellos", 0755)) < 0 ||
	    (dir = subdir(cellos, "secrets", 0700)) < 0)
		return err_sys(e, errno, "secrets: create %s in the cell", SECRETFS_DIR);
	/* "noswap" is refused inside a user namespace: swap is then governed by
	 * the cell's cgroup (memory.swap.max 0 when it has a memory limit). */
	m = new_tmpfs(s, uid, gid, true);
	if (m < 0 && errno == EINVAL)
		m = new_tmpfs(s, uid, gid, false);
	if (m < 0)
		return err_sys(e, errno, "secrets: mount a tmpfs on %s", SECRETFS_DIR);
	/* Written through the detached mount, before anyone can see it. */
	for (size_t i = 0; i < s->n; i++) {
		size_t vlen;
		const char *v = secret_value(&s->items[i], &vlen);
		if (write_file(m, s->items[i].name, v, vlen, uid, gid) < 0)
			/* The name, never the value. */
			return err_sys(e, errno, "secrets: write %s/%s", SECRETFS_DIR, s->items[i].name);
	}
	struct mount_attr ro = {.attr_set = MOUNT_ATTR_RDONLY};
	if (mount_setattr(m, "", AT_EMPTY_PATH, &ro, sizeof ro) < 0 ||
	    move_mount(m, "", dir, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
		return err_sys(e, errno, "secrets: attach %s read-only", SECRETFS_DIR);
	return 0;
}
