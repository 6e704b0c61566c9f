/* The cell's root filesystem: see mount.h for what the cell sees.
 *
 * Everything is done with the new mount API (fsopen/fsmount, open_tree,
 * mount_setattr, move_mount, Linux >= 5.12) on file descriptors, never on path
 * strings walked from the host's root: a mount point is always a directory we
 * just created inside the scaffold tmpfs, or an fd opened with RESOLVE_IN_ROOT
 * relative to the scaffold, so a symlink (ours or one inside a bound host
 * directory) can never point a mount, a mkdir or a mask at the host. Two more
 * reasons for the new API: mount_setattr(AT_RECURSIVE) makes a bound host tree
 * read-only including every submount in one call (a classic MS_REMOUNT|MS_BIND
 * only changes the top mount, leaving e.g. a bind-mounted /etc/resolv.conf
 * writable), and each new filesystem comes with its mount flags already set,
 * so there is no window in which it is writable or allows setuid. */
#include "isolate/mount.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "isolate/secretfs.h"
#include "util/fd.h"
#include "util/path.h"

/* Every host tree the cell sees: read-only, no setuid, no devices. */
#define HOST_RO (MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV)
/* Masks and kernel pseudo-filesystems: nothing to execute there either. */
#define SEALED (HOST_RO | MOUNT_ATTR_NOEXEC)

/* Host directories bound into the cell, or recreated as symlinks where the host
 * has symlinks (merged /usr: /bin -> usr/bin). Not /var (logs, databases, caches
 * of the host), /home, /root, /srv, /mnt, /media, /run (sockets of the host's
 * daemons and of the supervisor). */
static const char *const host_entries[] = {"usr", "etc", "opt", "bin", "sbin", "lib", "lib32", "lib64", "libx32"};

/* Host secrets inside the bound trees. Masked wherever present, even where the
 * cell's identity could not open them: their size and times are the host's
 * business too (who changed a password when). */
static const char *const etc_masks[] = {
	"etc/shadow", "etc/shadow-", "etc/gshadow", "etc/gshadow-", "etc/security/opasswd",
	"etc/ssh/ssh_host_rsa_key", "etc/ssh/ssh_host_ecdsa_key", "etc/ssh/ssh_host_ed25519_key",
	"etc/ssh/ssh_host_dsa_key", "etc/ssl/private", "etc/krb5.keytab", "etc/ipsec.secrets",
	"etc/ipsec.d/private", "etc/wireguard", "etc/NetworkManager/system-connections",
	"etc/letsencrypt", "etc/cellos",
};

/* procfs entries that expose or act on the whole host and that uid 0 may open
 * without any capability (mode bits only): the host's memory (kcore), the
 * kernel keyring, timers and scheduler state of every task, physical page
 * flags (a Rowhammer aid), sysrq-trigger (reboot) and /proc/acpi/wakeup.
 * Docker's list, less kmsg (needs CAP_SYSLOG anyway). */
static const char *const proc_masks[] = {
	"kcore", "keys", "latency_stats", "timer_list", "timer_stats", "sched_debug", "sysrq-trigger",
	"kpagecount", "kpageflags", "kpagecgroup", "acpi", "asound", "scsi",
};
/* Writable by uid 0 without capabilities for many entries (e.g. vm.drop_caches). */
static const char *const proc_readonly[] = {"sys", "irq", "bus", "fs"};
/* Firmware tables and EFI variables; RAPL energy counters (a power side channel). */
static const char *const sys_masks[] = {"firmware", "devices/virtual/powercap"};

static const struct {
	const char *name;
	unsigned major, minor;
} dev_nodes[] = {
	{"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7}, {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0},
};
static const struct {
	const char *name, *target;
} dev_links[] = {
	{"fd", "/proc/self/fd"}, {"stdin", "/proc/self/fd/0"}, {"stdout", "/proc/self/fd/1"},
	{"stderr", "/proc/self/fd/2"}, {"ptmx", "pts/ptmx"},
};

struct builder {
	int root;         /* the scaffold tmpfs (the cell's future "/") */
	int dev;          /* the cell's /dev */
	struct err *e;
	/* Mount ids of the filesystems that are the cell's own (scaffold, /tmp,
	 * workspace): the only places a missing directory or mount point is made. */
	uint64_t own[3];
	size_t n_own;
	int trees[CELLFS_MOUNTS_MAX]; /* run.mounts, taken from the staging area */
	/* The first mask of each kind once attached (see cover()), or -1: every
	 * later mask is a copy of it, so that the cell has one mask filesystem
	 * rather than one per masked directory. */
	int mask_dir, mask_file;
	bool no_mknod;    /* mknod refused once (a user namespace): bind the rest */
	uid_t uid;        /* the cell's identity as we see it (cellfs_opts.owner_*) */
	gid_t gid;
};

static uint64_t mount_id(int fd)
{
	struct statx stx;
	if (statx(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, STATX_MNT_ID, &stx) < 0 || !(stx.stx_mask & STATX_MNT_ID))
		return 0;
	return stx.stx_mnt_id;
}

static void own_mount(struct builder *b, int fd)
{
	uint64_t id = mount_id(fd);
	if (id && b->n_own < sizeof b->own / sizeof b->own[0])
		b->own[b->n_own++] = id;
}

static bool is_own(const struct builder *b, int fd)
{
	uint64_t id = mount_id(fd);
	for (size_t i = 0; id && i < b->n_own; i++)
		if (b->own[i] == id)
			return true;
	return false;
}

static int openat_in(int root, const char *rel, int flags)
{
	/* RESOLVE_IN_ROOT: ".." and absolute symlinks stop at `root`, as they will for
	 * the workload once `root` is "/". */
	return fd_openat2(root, rel, (uint64_t)(flags | O_CLOEXEC), 0, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS);
}

/* A new instance of filesystem `type` as a detached mount; `conf` is a comma list
 * of key=value or flag options. -1 with errno on failure. */
static int new_fs(const char *type, const char *conf, unsigned attrs)
{
	int fs = fsopen(type, FSOPEN_CLOEXEC);
	if (fs < 0)
		return -1;
	char buf[128];
	snprintf(buf, sizeof buf, "%s", conf ? conf : "");
	char *save = NULL;
	for (char *kv = strtok_r(buf, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
		char *val = strchr(kv, '=');
		if (val)
			*val++ = '\0';
		if (fsconfig(fs, val ? FSCONFIG_SET_STRING : FSCONFIG_SET_FLAG, kv, val, 0) < 0) {
			close_keep_errno(fs);
			return -1;
		}
	}
	int m = -1;
	if (fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) == 0)
		m = fsmount(fs, FSMOUNT_CLOEXEC, attrs);
	close_keep_errno(fs);
	return m;
}

static int attach(int m, int dirfd, const char *rel)
{
	return move_mount(m, "", dirfd, rel, MOVE_MOUNT_F_EMPTY_PATH | (*rel ? 0 : MOVE_MOUNT_T_EMPTY_PATH));
}

/* Mount a new `type` on `rel` (created, mode `mode`) under `dirfd`; returns the
 * mount's fd (the caller closes it) or -1 with errno. */
static int mount_new(int dirfd, const char *rel, mode_t mode, const char *type, const char *conf, unsigned attrs)
{
	int m = new_fs(type, conf, attrs);
	if (m < 0)
		return -1;
	if ((mkdirat(dirfd, rel, mode) < 0 && errno != EEXIST) || attach(m, dirfd, rel) < 0) {
		close_keep_errno(m);
		return -1;
	}
	return m;
}

/* A read-only copy of the host tree at `src` (with its submounts) on `rel`. */
static int bind_host_ro(const char *src, int dirfd, const char *rel, unsigned attrs)
{
	int t = open_tree(AT_FDCWD, src, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
	if (t < 0)
		return -1;
	struct mount_attr a = {.attr_set = attrs};
	int rc = mount_setattr(t, "", AT_EMPTY_PATH | AT_RECURSIVE, &a, sizeof a);
	if (rc == 0)
		rc = attach(t, dirfd, rel);
	close_keep_errno(t);
	return rc;
}

/* Mount the tree at `rel` under `dirfd` again on itself, sealed read-only. */
static int seal_in_place(int dirfd, const char *rel)
{
	int t = open_tree(dirfd, rel, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
	if (t < 0)
		return errno == ENOENT ? 0 : -1;
	struct mount_attr a = {.attr_set = SEALED};
	int rc = mount_setattr(t, "", AT_EMPTY_PATH | AT_RECURSIVE, &a, sizeof a);
	if (rc == 0)
		rc = attach(t, dirfd, rel);
	close_keep_errno(t);
	return rc;
}

/* Cover what `fd` refers to: a directory with an empty mode-000 tmpfs, anything
 * else with the cell's /dev/null on a nodev mount; opening either fails (EACCES)
 * for a workload without capabilities. The first cover of each kind is made and
 * sealed here and kept; the others are copies of it (open_tree of a mount that
 * is attached in our namespace), which keep its flags: one empty tmpfs for all
 * directories instead of a new filesystem per mask (a superblock to make now and
 * to tear down with the cell), and no mount_setattr per file. Sharing is safe:
 * both are read-only, empty or a device, and the cell holds no capability that
 * could remount one of them. */
static int cover(struct builder *b, int fd)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -1;
	bool dir = S_ISDIR(st.st_mode);
	int *first = dir ? &b->mask_dir : &b->mask_file;
	int m;
	if (*first >= 0) {
		m = open_tree(*first, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
	} else if (dir) {
		m = new_fs("tmpfs", "mode=000,size=4k", SEALED);
	} else {
		m = open_tree(b->dev, "null", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
		struct mount_attr a = {.attr_set = SEALED};
		if (m >= 0 && mount_setattr(m, "", AT_EMPTY_PATH, &a, sizeof a) < 0) {
			close_keep_errno(m);
			m = -1;
		}
	}
	if (m < 0)
		return -1;
	int rc = move_mount(m, "", fd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH);
	if (rc == 0 && *first < 0)
		*first = m; /* now attached: the source of the next copies */
	else
		close_keep_errno(m);
	return rc;
}

/* Mask `rel` (resolved inside `dirfd` as the cell will resolve it) if it exists.
 * With `if_open`, only if the cell could open it: its mode lets "others" in, or
 * it is the cell's own (uid or gid). The cell's processes are the run's own
 * uid/gid (never shared, no supplementary groups, SPEC §3) without any
 * capability, so a host file closed to others is closed to them, and covering
 * it would be a mount for nothing. For procfs entries, whose metadata says
 * nothing; an entry some kernel made readable is covered all the same. */
static int mask_if(struct builder *b, int dirfd, const char *rel, const char *shown, bool if_open)
{
	int fd = openat_in(dirfd, rel, O_PATH);
	if (fd < 0)
		return (errno == ENOENT || errno == ENOTDIR) ? 0 : err_sys(b->e, errno, "cell filesystem: mask %s", shown);
	struct stat st;
	if (if_open && fstat(fd, &st) == 0 && !(st.st_mode & S_IRWXO) && st.st_uid != b->uid && st.st_gid != b->gid) {
		close(fd);
		return 0;
	}
	int rc = cover(b, fd);
	close_keep_errno(fd);
	return rc < 0 ? err_sys(b->e, errno, "cell filesystem: mask %s", shown) : 0;
}

static int mask(struct builder *b, int dirfd, const char *rel, const char *shown)
{
	return mask_if(b, dirfd, rel, shown, false);
}

/* The top-level entry `name` of the host tree `src` ("/" or another root) into
 * the scaffold: a directory or regular file bound read-only (recursively), a
 * symlink recreated (resolved inside the cell, whatever its target); anything
 * else, or nothing there, is left out. */
static int add_host_entry(struct builder *b, const char *src, const char *name)
{
	char from[PATH_MAX];
	snprintf(from, sizeof from, "%s/%s", strcmp(src, "/") ? src : "", name);
	struct stat st;
	if (lstat(from, &st) < 0)
		return 0; /* absent on this host */
	if (S_ISLNK(st.st_mode)) {
		char target[PATH_MAX];
		ssize_t n = readlink(from, target, sizeof target - 1);
		if (n < 0)
			return err_sys(b->e, errno, "cell filesystem: readlink %s", from);
		target[n] = '\0';
		if (symlinkat(target, b->root, name) < 0)
			return err_sys(b->e, errno, "cell filesystem: symlink %s", from);
	} else if (S_ISDIR(st.st_mode) || S_ISREG(st.st_mode)) {
		int rc = S_ISDIR(st.st_mode) ? mkdirat(b->root, name, 0755) : mknodat(b->root, name, S_IFREG | 0644, 0);
		if (rc < 0 || bind_host_ro(from, b->root, name, HOST_RO) < 0)
			return err_sys(b->e, errno, "cell filesystem: bind %s read-only", from);
	}
	return 0;
}

static int build_host_entries(struct builder *b)
{
	for (size_t i = 0; i < sizeof host_entries / sizeof host_entries[0]; i++)
		if (add_host_entry(b, "/", host_entries[i]) < 0)
			return -1;
	return 0;
}

static int build_dev(struct builder *b)
{
	b->dev = mount_new(b->root, "dev", 0755, "tmpfs", "mode=0755,size=64k", MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC);
	if (b->dev < 0)
		return err_sys(b->e, errno, "cell filesystem: mount /dev");
	for (size_t i = 0; i < sizeof dev_nodes / sizeof dev_nodes[0]; i++) {
		const char *name = dev_nodes[i].name;
		if (!b->no_mknod) {
			if (mknodat(b->dev, name, S_IFCHR | 0666, makedev(dev_nodes[i].major, dev_nodes[i].minor)) == 0)
				continue;
			if (errno != EPERM)
				return err_sys(b->e, errno, "cell filesystem: mknod /dev/%s", name);
		}
		/* A user namespace may not create device nodes: bind the host's, as
		 * bubblewrap's --dev does (and stop asking after the first refusal). */
		b->no_mknod = true;
		char src[32];
		snprintf(src, sizeof src, "/dev/%s", name);
		/* The mount point: an empty regular file (one call, no fd). */
		if (mknodat(b->dev, name, S_IFREG | 0666, 0) < 0)
			return err_sys(b->e, errno, "cell filesystem: create /dev/%s", name);
		if (bind_host_ro(src, b->dev, name, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC) < 0)
			return err_sys(b->e, errno, "cell filesystem: bind %s", src);
	}
	for (size_t i = 0; i < sizeof dev_links / sizeof dev_links[0]; i++)
		if (symlinkat(dev_links[i].target, b->dev, dev_links[i].name) < 0)
			return err_sys(b->e, errno, "cell filesystem: symlink /dev/%s", dev_links[i].name);
	int m = mount_new(b->dev, "pts", 0755, "devpts", "newinstance,ptmxmode=0666,mode=0620",
			  MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC);
	if (m < 0)
		return err_sys(b->e, errno, "cell filesystem: mount /dev/pts");
	close(m);
	if ((m = mount_new(b->dev, "shm", 01777, "tmpfs", "mode=1777", MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV)) < 0)
		return err_sys(b->e, errno, "cell filesystem: mount /dev/shm");
	close(m);
	return 0;
}

static int build_proc(struct builder *b)
{
	int proc = mount_new(b->root, "proc", 0555, "proc", NULL, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC);
	if (proc < 0 && errno == EPERM) {
		/* A user namespace without its own PID namespace may not mount a procfs
		 * (it would show processes it does not own): show the host's instead,
		 * with the same masks. */
		if (mkdirat(b->root, "proc", 0555) == 0 &&
		    bind_host_ro("/proc", b->root, "proc", MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC) == 0)
			proc = openat(b->root, "proc", O_PATH | O_DIRECTORY | O_CLOEXEC);
	}
	if (proc < 0)
		return err_sys(b->e, errno, "cell filesystem: mount /proc");
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < sizeof proc_readonly / sizeof proc_readonly[0]; i++)
		if (seal_in_place(proc, proc_readonly[i]) < 0)
			rc = err_sys(b->e, errno, "cell filesystem: /proc/%s read-only", proc_readonly[i]);
	for (size_t i = 0; rc == 0 && i < sizeof proc_masks / sizeof proc_masks[0]; i++)
		rc = mask_if(b, proc, proc_masks[i], proc_masks[i], true);
	close(proc);
	return rc;
}

static int build_sys(struct builder *b)
{
	/* A sysfs of our own shows the cell's network namespace (only lo), not the
	 * host's interfaces; the kernel refuses it to a user namespace that does not
	 * own its network namespace, and then the cell simply has no /sys. */
	int sys = new_fs("sysfs", NULL, SEALED);
	if (sys < 0)
		return errno == EPERM ? 0 : err_sys(b->e, errno, "cell filesystem: mount /sys");
	int rc = 0;
	if ((mkdirat(b->root, "sys", 0555) < 0) || attach(sys, b->root, "sys") < 0)
		rc = err_sys(b->e, errno, "cell filesystem: mount /sys");
	for (size_t i = 0; rc == 0 && i < sizeof sys_masks / sizeof sys_masks[0]; i++)
		rc = mask(b, sys, sys_masks[i], sys_masks[i]);
	close(sys);
	return rc;
}

/* Make what is missing of `rel` (relative to the scaffold, resolved as the cell
 * will resolve it): directories, the last component a regular file when `file`.
 * Only on the cell's own filesystems: a path inside a host tree (bound read-only,
 * or a writable run.mounts source) must already exist there, since nothing is
 * ever created on the host. `what` and `shown` name the field in messages. */
static int make_path(struct builder *b, char *rel, bool file, const char *what, const char *shown)
{
	size_t len = strlen(rel);
	for (size_t i = 0; i <= len; i++) {
		if (rel[i] != '/' && rel[i] != '\0')
			continue;
		char saved = rel[i];
		rel[i] = '\0';
		char *slash = strrchr(rel, '/');
		int parent = slash ? (*slash = '\0', openat_in(b->root, rel, O_PATH | O_DIRECTORY)) : dup(b->root);
		if (slash)
			*slash = '/';
		const char *name = slash ? slash + 1 : rel;
		struct stat st;
		int rc = 0, errnum = 0;
		const char *why = "";
		if (parent < 0) {
			rc = -1;
			errnum = errno;
		} else if (fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
			/* there already (what it is, the mount decides) */
		} else if (errno != ENOENT) {
			rc = -1;
			errnum = errno;
		} else if (!is_own(b, parent)) {
			struct statvfs sv;
			rc = -1;
			why = fstatvfs(parent, &sv) == 0 && (sv.f_flag & ST_RDONLY) ? " (it would be inside a read-only host directory)"
										  : " (it would be inside a host directory)";
		} else if (saved == '\0' && file) {
			int fd = openat(parent, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
			rc = fd < 0 ? -1 : close(fd);
			errnum = errno;
		} else if (mkdirat(parent, name, 0755) < 0) {
			rc = -1;
			errnum = errno;
		}
		if (parent >= 0)
			close(parent);
		if (rc < 0) {
			if (errnum)
				err_sys(b->e, errnum, "%s %s: cannot create /%s in the cell%s", what, shown, rel, why);
			else
				err_set(b->e, "%s %s: cannot create /%s in the cell%s", what, shown, rel, why);
			rel[i] = saved;
			return -1;
		}
		rel[i] = saved;
	}
	return 0;
}

/* run.workingDirectory: a fresh tmpfs at the same path inside the cell. Missing
 * parents are created in the scaffold; a path inside a read-only host tree must
 * already exist there (we never create anything on the host). */
static int build_workdir(struct builder *b, const char *workdir, uid_t uid, gid_t gid)
{
	char clean[PATH_MAX];
	if (path_clean(workdir, clean, sizeof clean) < 0)
		return errno == EINVAL ? err_set(b->e, "run.workingDirectory %s: '..' is not allowed", workdir)
				       : err_set(b->e, "run.workingDirectory: path too long");
	char *rel = clean[0] ? clean + 1 : clean; /* relative to the scaffold */
	if (!*rel)
		return err_set(b->e, "run.workingDirectory: '/' cannot be the workspace (it is the cell's root)");
	if (make_path(b, rel, false, "run.workingDirectory", workdir) < 0)
		return -1;
	int dir = openat_in(b->root, rel, O_PATH | O_DIRECTORY);
	if (dir < 0)
		return err_sys(b->e, errno, "run.workingDirectory %s: open in the cell", workdir);
	char conf[64];
	snprintf(conf, sizeof conf, "mode=0755,uid=%u,gid=%u", (unsigned)uid, (unsigned)gid);
	int m = new_fs("tmpfs", conf, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
	int rc = m < 0 ? -1 : move_mount(m, "", dir, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH);
	int errnum = errno;
	if (rc == 0)
		own_mount(b, m);
	close_keep_errno(m);
	close(dir);
	return rc < 0 ? err_sys(b->e, errnum, "run.workingDirectory %s: mount tmpfs", workdir) : 0;
}

/* One run.mounts tree at its target. */
static int attach_host(struct builder *b, const struct cellfs_mount *m, int tree)
{
	char what[64], rel[PATH_MAX];
	snprintf(what, sizeof what, "spec.run.mounts[%zu].target", m->index);
	snprintf(rel, sizeof rel, "%s", m->target + 1);
	if (make_path(b, rel, !m->dir, what, m->target) < 0)
		return -1;
	int dst = openat_in(b->root, rel, O_PATH);
	struct stat st;
	if (dst < 0 || fstat(dst, &st) < 0) {
		close_keep_errno(dst);
		return err_sys(b->e, errno, "%s %s: open in the cell", what, m->target);
	}
	if (m->dir != S_ISDIR(st.st_mode)) {
		close(dst);
		return err_set(b->e, "%s %s: the source is %sa directory, the target in the cell is %s", what, m->target,
			       m->dir ? "" : "not ", S_ISDIR(st.st_mode) ? "one" : "not");
	}
	int rc = move_mount(tree, "", dst, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH);
	int errnum = errno;
	close(dst);
	return rc < 0 ? err_sys(b->e, errnum, "%s %s: mount", what, m->target) : 0;
}

/* The workspace and run.mounts, outermost first: a mount inside the workspace
 * comes after its tmpfs, one inside another mount after that one. */
static int build_mounts(struct builder *b, const struct cellfs_opts *o)
{
	char clean[PATH_MAX];
	size_t wd_depth = o->workdir && path_clean(o->workdir, clean, sizeof clean) == 0 ? path_depth(clean) : 0;
	bool wd_done = !o->workdir;
	for (size_t k = 0; k <= o->n_mounts; k++) {
		const struct cellfs_mount *m = k < o->n_mounts ? &o->mounts[k] : NULL;
		if (!wd_done && (!m || path_depth(m->target) > wd_depth)) {
			if (build_workdir(b, o->workdir, o->owner_uid, o->owner_gid) < 0)
				return -1;
			wd_done = true;
		}
		if (m && attach_host(b, m, b->trees[k]) < 0)
			return -1;
	}
	return 0;
}

/* Write the host's /etc/`name` plus `line` as file `name` of the detached
 * tmpfs `m`. */
static int write_entry_file(int m, const char *name, const char *line)
{
	char src[32];
	snprintf(src, sizeof src, "/etc/%s", name);
	int in = open(src, O_RDONLY | O_CLOEXEC);
	int out = openat(m, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	int rc = in < 0 || out < 0 ? -1 : 0;
	char buf[8192];
	ssize_t n = 0;
	bool nl = true;
	while (rc == 0 && (n = read(in, buf, sizeof buf)) > 0) {
		rc = write(out, buf, (size_t)n) == n ? 0 : -1;
		nl = buf[n - 1] == '\n';
	}
	if (rc == 0 && n < 0)
		rc = -1;
	if (rc == 0 && ((!nl && write(out, "\n", 1) != 1) || write(out, line, strlen(line)) != (ssize_t)strlen(line)))
		rc = -1;
	close_keep_errno(in);
	close_keep_errno(out);
	return rc;
}

/* /etc/passwd and /etc/group of the cell: the host's plus `cellos` for the run's
 * uid/gid, on a small tmpfs of their own, each bound read-only over the host's
 * file in the cell (the detached tmpfs lives on through the binds). */
static int add_cell_user(struct builder *b, const struct cellfs_opts *o)
{
	char pw[PATH_MAX + 96], gr[64];
	snprintf(pw, sizeof pw, "cellos:x:%u:%u:cellos:%s:/bin/sh\n", (unsigned)o->owner_uid, (unsigned)o->owner_gid,
		 o->home ? o->home : "/tmp");
	snprintf(gr, sizeof gr, "cellos:x:%u:\n", (unsigned)o->owner_gid);
	int m = new_fs("tmpfs", "mode=0755,size=1m", HOST_RO & ~MOUNT_ATTR_RDONLY);
	if (m < 0)
		return err_sys(b->e, errno, "cell filesystem: tmpfs for /etc/passwd");
	const char *names[] = {"passwd", "group"}, *lines[] = {pw, gr};
	for (size_t i = 0; i < 2; i++) {
		char rel[32];
		snprintf(rel, sizeof rel, "etc/%s", names[i]);
		int t = -1, dst = -1, rc = write_entry_file(m, names[i], lines[i]);
		if (rc == 0)
			t = open_tree(m, names[i], OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
		struct mount_attr ro = {.attr_set = HOST_RO};
		if (t < 0 || mount_setattr(t, "", AT_EMPTY_PATH, &ro, sizeof ro) < 0 ||
		    (dst = openat_in(b->root, rel, O_PATH)) < 0 ||
		    move_mount(t, "", dst, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
			rc = -1;
		close_keep_errno(t);
		close_keep_errno(dst);
		if (rc < 0) {
			close_keep_errno(m);
			return err_sys(b->e, errno, "cell filesystem: /etc/%s with the run's user", names[i]);
		}
	}
	close(m);
	return 0;
}

/* /etc/resolv.conf of the cell: `text` on a small tmpfs of its own, bound
 * read-only over the host's file. Where the host's is a symlink (systemd-resolved:
 * /run/systemd/resolve/stub-resolv.conf), its target is made on the scaffold and
 * covered instead; a link into a host directory must point at a file. */
static int bind_resolv_conf(struct builder *b, const char *text)
{
	char rel[PATH_MAX] = "etc/resolv.conf", link[PATH_MAX], abs[PATH_MAX + 8], clean[PATH_MAX];
	int etc = openat_in(b->root, "etc", O_PATH | O_DIRECTORY);
	ssize_t n = etc < 0 ? -1 : readlinkat(etc, "resolv.conf", link, sizeof link - 1);
	close_keep_errno(etc);
	if (n > 0) {
		link[n] = '\0';
		/* Relative: from /etc, where a leading "../" (any number: ".." of
		 * "/" is "/") leads to the root. */
		const char *l = link;
		bool up = false;
		while (l[0] != '/' && strncmp(l, "../", 3) == 0) {
			l += 3;
			up = true;
		}
		snprintf(abs, sizeof abs, "%s%s", l[0] == '/' ? "" : up ? "/" : "/etc/", l);
		if (path_clean(abs, clean, sizeof clean) < 0 || !clean[0])
			return err_set(b->e, "cell filesystem: /etc/resolv.conf: the host's symlink %s cannot be followed", link);
		snprintf(rel, sizeof rel, "%s", clean + 1);
		if (make_path(b, rel, true, "/etc/resolv.conf", "(the gateway's DNS proxy)") < 0)
			return -1;
	}
	int m = new_fs("tmpfs", "mode=0755,size=16k", HOST_RO & ~MOUNT_ATTR_RDONLY);
	if (m < 0)
		return err_sys(b->e, errno, "cell filesystem: tmpfs for /etc/resolv.conf");
	int f = openat(m, "resolv.conf", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	int rc = f >= 0 && write(f, text, strlen(text)) == (ssize_t)strlen(text) ? 0 : -1;
	close_keep_errno(f);
	int t = -1, dst = -1;
	if (rc == 0)
		t = open_tree(m, "resolv.conf", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
	struct mount_attr ro = {.attr_set = HOST_RO};
	if (t < 0 || mount_setattr(t, "", AT_EMPTY_PATH, &ro, sizeof ro) < 0 || (dst = openat_in(b->root, rel, O_PATH)) < 0 ||
	    move_mount(t, "", dst, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
		rc = -1;
	close_keep_errno(t);
	close_keep_errno(dst);
	close_keep_errno(m);
	return rc < 0 ? err_sys(b->e, errno, "cell filesystem: /etc/resolv.conf for the gateway's DNS proxy") : 0;
}

static int build(struct builder *b, const struct cellfs_opts *o)
{
	struct err *e = b->e;
	/* Nothing we mount may propagate back to the host (and pivot_root refuses a
	 * shared parent mount). */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return err_sys(e, errno, "cell filesystem: make / private");
	/* run.mounts: copies of the trees the supervisor staged (hostmount/hostmount.h), taken
	 * before the scaffold covers the staging area. In a user namespace the copy
	 * keeps the flags the kernel locked (read-only, nosuid, nodev). */
	for (size_t k = 0; k < o->n_mounts; k++)
		if ((b->trees[k] = open_tree(AT_FDCWD, o->mounts[k].staged, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE)) <
		    0)
			return err_sys(e, errno, "spec.run.mounts[%zu]: take the staged mount", o->mounts[k].index);

	/* The scaffold must be attached somewhere to receive mounts and to pivot
	 * into: over /tmp, in this namespace only (as bubblewrap does). No source we
	 * bind lives under /tmp. */
	b->root = new_fs("tmpfs", "mode=0755,size=1m", MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
	if (b->root < 0)
		return err_sys(e, errno, "cell filesystem: new tmpfs");
	if (attach(b->root, AT_FDCWD, "/tmp") < 0 && attach(b->root, AT_FDCWD, "/mnt") < 0)
		return err_sys(e, errno, "cell filesystem: attach the scaffold on /tmp");
	own_mount(b, b->root);

	if (build_host_entries(b) < 0 || build_dev(b) < 0 || build_proc(b) < 0)
		return -1;
	int m = mount_new(b->root, "tmp", 01777, "tmpfs", "mode=1777", MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
	if (m < 0)
		return err_sys(e, errno, "cell filesystem: mount /tmp");
	own_mount(b, m);
	close(m);
	if (mkdirat(b->root, "run", 0755) < 0 || mkdirat(b->root, "var", 0755) < 0 ||
	    symlinkat("../tmp", b->root, "var/tmp") < 0)
		return err_sys(e, errno, "cell filesystem: scaffold");

	for (size_t i = 0; i < sizeof etc_masks / sizeof etc_masks[0]; i++)
		if (mask(b, b->root, etc_masks[i], etc_masks[i]) < 0)
			return -1;
	if (build_mounts(b, o) < 0)
		return -1;
	/* After the mounts: the supervisor's files may lie inside a host mount too. */
	for (char *const *h = o->hide; h && *h; h++)
		if (**h == '/' && mask(b, b->root, *h + 1, *h) < 0)
			return -1;
	if (o->secrets && secretfs_build(b->root, o->secrets, o->owner_uid, o->owner_gid, e) < 0)
		return -1;
	if (o->add_user && add_cell_user(b, o) < 0)
		return -1;

	if ((o->before_sys && o->before_sys(o->arg, e) < 0) || build_sys(b) < 0)
		return -1;
	if (o->resolv_conf && o->resolv_conf[0] && bind_resolv_conf(b, o->resolv_conf) < 0)
		return -1;

	/* Read-only from now on: the scaffold (the cell cannot add entries to "/")
	 * and /dev (the cell cannot create files there; devices stay usable). */
	struct mount_attr ro = {.attr_set = MOUNT_ATTR_RDONLY};
	if (mount_setattr(b->dev, "", AT_EMPTY_PATH, &ro, sizeof ro) < 0 ||
	    mount_setattr(b->root, "", AT_EMPTY_PATH, &ro, sizeof ro) < 0)
		return err_sys(e, errno, "cell filesystem: make the scaffold read-only");

	/* pivot_root(".", "."): the old root ends up stacked on the new one and is
	 * detached at once, so no path of the cell leads to the host's root. */
	if (fchdir(b->root) < 0 || syscall(SYS_pivot_root, ".", ".") < 0)
		return err_sys(e, errno, "cell filesystem: pivot_root");
	if (umount2(".", MNT_DETACH) < 0 || chdir("/") < 0)
		return err_sys(e, errno, "cell filesystem: detach the host's root");
	return 0;
}

int cellfs_build(const struct cellfs_opts *o, struct err *e)
{
	struct builder b = {.root = -1, .dev = -1, .e = e, .mask_dir = -1, .mask_file = -1,
			    .uid = o->owner_uid, .gid = o->owner_gid};
	for (size_t k = 0; k < CELLFS_MOUNTS_MAX; k++)
		b.trees[k] = -1;
	if (o->n_mounts > CELLFS_MOUNTS_MAX)
		return err_set(e, "spec.run.mounts: more than %d entries", CELLFS_MOUNTS_MAX);
	/* Modes are given exactly (0666 devices, 1777 /tmp). */
	mode_t old = umask(0);
	int rc = build(&b, o);
	umask(old);
	if (b.mask_dir >= 0)
		close(b.mask_dir);
	if (b.mask_file >= 0)
		close(b.mask_file);
	if (b.dev >= 0)
		close(b.dev);
	if (b.root >= 0)
		close(b.root);
	for (size_t k = 0; k < o->n_mounts; k++)
		if (b.trees[k] >= 0)
			close(b.trees[k]);
	return rc;
}

static bool listed(const char *const *names, const char *name)
{
	for (const char *const *n = names; n && *n; n++)
		if (strcmp(*n, name) == 0)
			return true;
	return false;
}

/* A mount point of the runtime's: made where it is missing (make_path's rules),
 * and of the kind the mount needs. */
static int scaffold_point(struct builder *b, const struct cellfs_point *p)
{
	char rel[PATH_MAX];
	snprintf(rel, sizeof rel, "%s", p->path + 1);
	if (make_path(b, rel, !p->dir, p->field, p->path) < 0) {
		size_t len = strlen(b->e->msg);
		if (p->hint)
			snprintf(b->e->msg + len, sizeof b->e->msg - len, "%s", p->hint);
		return -1;
	}
	int fd = openat_in(b->root, rel, O_PATH);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		close_keep_errno(fd);
		return err_sys(b->e, errno, "%s %s: open in the cell's root", p->field, p->path);
	}
	close(fd);
	if (p->dir != S_ISDIR(st.st_mode))
		return err_set(b->e, "%s %s: the cell's root has it, but not as a %s%s", p->field, p->path,
			       p->dir ? "directory" : "file", p->hint ? p->hint : "");
	return 0;
}

static int scaffold(struct builder *b, const char *at, const struct cellfs_scaffold_opts *o)
{
	b->root = new_fs("tmpfs", "mode=0755,size=1m", MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
	if (b->root < 0)
		return err_sys(b->e, errno, "cell root: new tmpfs");
	if (attach(b->root, AT_FDCWD, at) < 0)
		return err_sys(b->e, errno, "cell root: attach the scaffold on %s", at);
	own_mount(b, b->root);
	DIR *d = opendir(o->source);
	if (!d)
		return err_sys(b->e, errno, "cell root: %s", o->source);
	int rc = 0;
	struct dirent *de;
	while (rc == 0 && (de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") && !listed(o->fresh, de->d_name))
			rc = add_host_entry(b, o->source, de->d_name);
	closedir(d);
	if (rc < 0)
		return -1;
	for (const char *const *f = o->fresh; f && *f; f++)
		if (mkdirat(b->root, *f, 0755) < 0 && errno != EEXIST)
			return err_sys(b->e, errno, "cell root: mkdir /%s", *f);
	for (size_t i = 0; i < o->n_points; i++)
		if (scaffold_point(b, &o->points[i]) < 0)
			return -1;
	struct mount_attr ro = {.attr_set = HOST_RO};
	if (mount_setattr(b->root, "", AT_EMPTY_PATH | AT_RECURSIVE, &ro, sizeof ro) < 0)
		return err_sys(b->e, errno, "cell root: make %s read-only", at);
	return 0;
}

int cellfs_build_scaffold(const char *at, const struct cellfs_scaffold_opts *o, struct err *e)
{
	struct builder b = {.root = -1, .dev = -1, .e = e, .mask_dir = -1, .mask_file = -1};
	mode_t old = umask(0);
	int rc = scaffold(&b, at, o);
	umask(old);
	if (b.root >= 0)
		close(b.root);
	return rc;
}
