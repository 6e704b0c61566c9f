/* The `firecracker` backend (SPEC §6.3): the workload inside a Firecracker
 * microVM booted from the guest image (backend/vm_image.h) with one
 * --config-file (backend/fc_config.h).
 *
 * create   host check (binary, /dev/kvm: backend/fc_host.h); the image, each
 *          file verified against its manifest through an fd we keep; the
 *          Firecracker binary hashed through the fd we later execute (its
 *          digest is what ran); the cell's directory, locked for our life
 *          (a dead supervisor's is swept by the next); in it: symlinks to the
 *          verified kernel and root disk as /proc/self/fd/N of the VMM, the
 *          per-boot initramfs (the image's, then the job archive with the run
 *          id and a fresh key: backend/vm_job.h), config.json, and our three
 *          listeners <uds>_9000.._9002, bound before anything boots; the cell's
 *          netns (lo, TAP owned by the run's uid when egress is declared, the
 *          nftables ruleset); the cgroup leaf with the VMM's limits.
 * start    clone3 into the leaf: the child joins the netns, becomes the run's
 *          uid (and the KVM device's group) with no capability and
 *          no_new_privs, keeps the parent-death signal, and execs Firecracker
 *          (or the jailer, which does the uid, chroot and netns itself). A
 *          thread of ours then serves the channels: one connection per
 *          listener, stdout/stderr copied byte for byte, the first exit frame
 *          checked (util/vm_frame.h); it ends when the VMM is gone.
 * collect  a valid frame is the workload's status; none is no status
 *          (supervisor: 125, backend_failed); terminalState is clean when the
 *          VMM ended by itself (the guest's reset) after a valid frame.
 * destroy  kill the VMM and the leaf, join the thread, remove the directory
 *          (sockets, initramfs with the key, config) and the leaf; the netns
 *          and its TAP go with its last reference.
 *
 * The VMM's system-call filters: CELLOS_SECCOMP's (the baseline by default),
 * installed on the VMM before exec, and Firecracker's own stricter ones on top
 * (per thread, on by default). With the jailer, which needs mount and chroot,
 * only Firecracker's own. CELLOS_SECCOMP=off: neither (--no-seccomp). */
#include "backend/backend.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/sched.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend/fc_config.h"
#include "backend/fc_host.h"
#include "backend/vm_image.h"
#include "backend/vm_job.h"
#include "backend/vm_share.h"
#include "isolate/netdev.h"
#include "isolate/seccomp.h"
#include "isolate/tap.h"
#include "util/child.h"
#include "util/dirs.h"
#include "util/fileio.h"
#include "util/ids.h"
#include "util/log.h"
#include "util/vm_frame.h"

/* Fds the VMM finds the verified image files on (the symlinks of the cell's
 * directory point at /proc/self/fd/<these>); its binary is fd FD_EXEC. */
#define FD_EXEC 3
#define FD_KERNEL 10
#define FD_ROOTFS 11
/* How long a VMM may take to end after the guest reported (its reset), and how
 * long the channels are drained once the VMM is gone. */
#define RESET_GRACE_MS 3000
#define DRAIN_MS 500
#define LOG_TAIL 300

enum { CH_EXIT = VM_CHAN_EXIT, CH_STDOUT = VM_CHAN_STDOUT, CH_STDERR = VM_CHAN_STDERR, CH_ART = VM_CHAN_ARTIFACTS,
       CH_N = VM_CHAN_N };

struct fc {
	struct cell *cell;
	struct fc_host host;
	struct vm_image img;
	struct fc_plan plan;
	bool have_plan, have_img;
	const char *made_top;     /* the directory we made (its temporary name until renamed), NULL: none */
	char made_tmp[PATH_MAX];
	char run_id[37];
	int dirfd, lockfd, fcfd, logfd;
	struct vm_net net;        /* the cell's netns (vm_share.h): TAP, ruleset, gateway */
	int listen[CH_N];
	int artfd;                /* what the artifacts channel carried (an unnamed file) */
	long long art_cap;        /* at most this many bytes of it */
	struct cgroup_cell cg;
	struct runreg reg;
	pid_t pid;
	int pidfd;
	/* The channel thread and what it found (read after it is joined). */
	struct sock_fprog filter; /* CELLOS_SECCOMP's filter for the VMM; len 0: none */
	pthread_t thread;
	bool thread_started;
	int donefd;               /* eventfd: the thread is done (wait_fd) */
	int stopfd;               /* eventfd: ask the guest to stop (fc_signal's SIGTERM) */
	bool have_frame, bad_frame;
	_Atomic bool vmm_ended;   /* read by fc_signal while the thread runs */
	_Atomic bool killed;      /* we ended the VMM (it did not end by itself) */
	int32_t status;
	int vmm_status;           /* waitid's si_status of the VMM */
	bool vmm_signaled;
	unsigned char *key;       /* per-boot key, locked memory */
};

static struct fc *priv(struct cell *c) { return c->priv; }

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* ---- the cell's directory ---- */

/* Remove what dead supervisors left under `base` (CELLOS_FIRECRACKER_SOCKET_DIR
 * or the jailer's directory): a cell directory whose lock nobody holds. */
static void sweep(const char *base, const char *lockname)
{
	DIR *d = opendir(base);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (strlen(de->d_name) != 36 || de->d_name[8] != '-')
			continue;
		char lock[PATH_MAX];
		snprintf(lock, sizeof lock, "%s/%s/%s", base, de->d_name, lockname);
		int fd = open(lock, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0)
			continue;
		if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
			char dir[PATH_MAX];
			snprintf(dir, sizeof dir, "%s/%s", base, de->d_name);
			log_debug("firecracker: removing %s, left by a dead supervisor", dir);
			dirs_rmtree(dir);
		}
		close(fd);
	}
	closedir(d);
}

/* A file of the cell, owned by the run's uid (the VMM reads it), mode 0400. */
static int cell_file(struct fc *f, const char *name, struct err *e)
{
	int fd = openat(f->dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0400);
	if (fd < 0)
		return err_sys(e, errno, "firecracker: %s/%s", f->plan.layout.dir, name);
	if (fchown(fd, f->cell->uid, f->cell->gid) < 0) {
		int err = errno;
		close(fd);
		return err_sys(e, err, "firecracker: chown %s", name);
	}
	return fd;
}

/* Copy all of `src` (from offset 0) to the end of `dst`: in the kernel where
 * it can (copy_file_range), else through a buffer. */
static int copy_fd(int src, int dst)
{
	struct stat st;
	if (fstat(src, &st) < 0)
		return -1;
	off_t in = 0;
	while (in < st.st_size) {
		ssize_t n = copy_file_range(src, &in, dst, NULL, (size_t)(st.st_size - in), 0);
		if (n > 0)
			continue;
		if (n == 0 || (errno != EXDEV && errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP))
			return n == 0 ? (errno = EIO, -1) : -1;
		break; /* not between these files: the buffer below */
	}
	char buf[65536];
	while (in < st.st_size) {
		ssize_t r = pread(src, buf, sizeof buf, in);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r == 0 ? (errno = EIO, -1) : -1;
		if (write_all(dst, buf, (size_t)r) < 0)
			return -1;
		in += r;
	}
	return 0;
}

/* The per-boot initramfs: the image's (verified, through its fd), zero-padded to
 * the 4-byte boundary the kernel expects between archives, then the job. */
static int write_initrd(struct fc *f, struct err *e)
{
	struct cell *c = f->cell;
	const char *name = strrchr(f->plan.layout.initrd, '/') + 1;
	int fd = cell_file(f, name, e);
	if (fd < 0)
		return -1;
	int rc = 0;
	if (copy_fd(f->img.f[VM_IMG_INITRAMFS].fd, fd) < 0) {
		rc = err_sys(e, errno, "firecracker: copy the initramfs");
		goto out;
	}
	off_t end = lseek(fd, 0, SEEK_END);
	static const char zeros[4];
	if (end < 0 || (end % 4 && write_all(fd, zeros, (size_t)(4 - end % 4)) < 0)) {
		rc = err_sys(e, errno, "firecracker: initramfs");
		goto out;
	}
	/* Secrets: env delivery in envp, file delivery as files of the job. */
	/* Firecracker's devices are virtio-mmio; the channels are vsock. */
	const char *mods[6] = {"virtio_mmio", "vsock", "vmw_vsock_virtio_transport", NULL, NULL, NULL};
	size_t nm = 3;
	if (f->plan.layout.rootfs_drive != SIZE_MAX)
		mods[nm++] = "virtio_blk";
	if (f->plan.vm.tap)
		mods[nm++] = "virtio_net";
	const struct spec *sp = c->spec;
	const char **arts = calloc(sp->n_artifacts + 1, sizeof *arts);
	if (!arts) {
		rc = err_set(e, "firecracker: out of memory");
		goto out;
	}
	for (size_t i = 0; i < sp->n_artifacts; i++)
		arts[i] = sp->artifacts[i].path;
	struct vm_job_file files[SPEC_MOUNTS_MAX];
	char paths[SPEC_MOUNTS_MAX][VM_SECRET_PATH_MAX];
	size_t n_files = vm_secret_files(c->secrets, files, paths, SPEC_MOUNTS_MAX);
	/* run.mounts: disks after the image's root, in the document's order. */
	struct vm_job_mount jm[SPEC_MOUNTS_MAX];
	char devs[SPEC_MOUNTS_MAX][16];
	size_t first = f->plan.layout.rootfs_drive != SIZE_MAX ? 1 : 0;
	for (size_t i = 0; i < sp->n_mounts; i++) {
		snprintf(devs[i], sizeof devs[i], "/dev/vd%c", (char)('a' + first + i));
		jm[i] = (struct vm_job_mount){.device = devs[i], .target = sp->mounts[i].target};
	}
	struct vm_job job = {.run_id = f->run_id, .argv = c->spec->argv, .envp = c->envp,
			     .workdir = c->spec->working_directory, .artifacts = arts, .files = files,
			     .n_files = n_files, .mounts = jm, .n_mounts = sp->n_mounts,
			     .root_device = f->plan.layout.rootfs_drive != SIZE_MAX ? "/dev/vda" : NULL,
			     .net_address = f->plan.vm.tap ? FC_TAP_GUEST : NULL, .net_prefix = FC_TAP_PREFIX,
			     .net_gateway = FC_TAP_HOST, .net_dns = f->net.dns[0] ? f->net.dns : NULL, .modules = mods, .uid = c->uid, .gid = c->gid,
			     .reset = true, .key = f->key};
	rc = vm_job_write(fd, &job, f->plan.argv_in_job, e);
	free(arts);
out:
	close(fd);
	return rc;
}

/* One listener <uds>_<port>, bound through /proc/self/fd of the directory (our
 * path may be longer than a socket address), owned by the run's uid so that the
 * VMM can connect. One pending connection: the channel takes one. */
static int listen_port(struct fc *f, int port, struct err *e)
{
	const char *base = strrchr(f->plan.layout.vsock, '/') + 1;
	char name[64];
	snprintf(name, sizeof name, "%s_%d", base, port);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof sa.sun_path, "/proc/self/fd/%d/%s", f->dirfd, name);
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (s < 0)
		return err_sys(e, errno, "firecracker: socket for port %d", port);
	if (bind(s, (struct sockaddr *)&sa, sizeof sa) < 0 || fchownat(f->dirfd, name, f->cell->uid, f->cell->gid,
									   AT_SYMLINK_NOFOLLOW) < 0 ||
	    listen(s, 1) < 0) {
		int err = errno;
		close(s);
		return err_sys(e, err, "firecracker: listen on %s/%s", f->plan.layout.dir, name);
	}
	return s;
}

/* ---- the cell's network namespace ---- */

/* In the cell's netns: the TAP Firecracker attaches to by name, as the run's
 * uid (vm_net_make does the rest). */
static int make_tap(void *arg, struct err *e)
{
	struct fc *f = arg;
	return tap_create(f->plan.vm.tap, f->cell->uid, f->cell->gid, FC_TAP_HOST, FC_TAP_PREFIX, e);
}

/* ---- create ---- */

static int hash_binary(struct fc *f, struct err *e)
{
	f->fcfd = open(f->host.binary, O_RDONLY | O_CLOEXEC);
	if (f->fcfd < 0)
		return err_sys(e, errno, "CELLOS_FIRECRACKER_BINARY: %s", f->host.binary);
	char hex[65];
	if (vm_sha256_fd(f->fcfd, hex, e) < 0)
		return err_prefix(e, "CELLOS_FIRECRACKER_BINARY: %s", f->host.binary);
	snprintf(f->cell->facts.vm_firecracker_digest, sizeof f->cell->facts.vm_firecracker_digest, "%s", hex);
	return 0;
}

static int link_image(struct fc *f, const char *host_path, int fd, int vmfd, struct err *e)
{
	const char *name = strrchr(host_path, '/') + 1;
	if (f->plan.layout.jailer) {
		/* The jailed VMM sees its chroot only: a copy of the verified file. */
		int out = cell_file(f, name, e);
		if (out < 0)
			return -1;
		int rc = copy_fd(fd, out) < 0 ? err_sys(e, errno, "firecracker: copy %s into the jail", name) : 0;
		close(out);
		return rc;
	}
	char target[32];
	snprintf(target, sizeof target, "/proc/self/fd/%d", vmfd);
	if (symlinkat(target, f->dirfd, name) < 0)
		return err_sys(e, errno, "firecracker: %s/%s", f->plan.layout.dir, name);
	return 0;
}

static int create_cell(struct cell *c, struct err *e)
{
	const struct config *cfg = c->cfg;
	int64_t t = mono_us();
	struct fc *f = calloc(1, sizeof *f);
	if (!f)
		return err_set(e, "firecracker: out of memory");
	*f = (struct fc){.cell = c, .dirfd = -1, .lockfd = -1, .fcfd = -1, .net = {.netns = -1}, .logfd = -1,
			 .listen = {-1, -1, -1, -1}, .artfd = -1, .reg = {.fd = -1}, .pid = -1, .pidfd = -1,
			 .donefd = -1, .stopfd = -1};
	for (int i = 0; i < VM_IMG_N; i++)
		f->img.f[i].fd = -1;
	cgroup_cell_init(&f->cg);
	c->priv = f;
	/* The jailer needs the calls the filters deny (mount, chroot): the default
	 * then leaves the VMM to Firecracker's own filters, and an explicit
	 * CELLOS_SECCOMP with the jailer was refused at admission. */
	if (cfg->fc_jailer && cfg->seccomp_policy)
		c->facts.seccomp = "firecracker";
	else if (cfg->seccomp_policy && seccomp_policy_compile(cfg->seccomp_policy, &f->filter, e) < 0)
		return -1;
	snprintf(f->run_id, sizeof f->run_id, "%s", c->run_id);

	for (size_t i = 0; i < c->spec->n_mounts; i++)
		if (!c->spec->mounts[i].read_only)
			return err_set(e, "run.mounts[%zu]: the firecracker backend shows mounts read-only only (readOnly: false)",
				       i);
	if (fc_host_check(cfg, &f->host, e) < 0)
		return -1;
	if (vm_image_open(&f->img, cfg->vm_image_dir, e) < 0)
		return -1;
	f->have_img = true;
	snprintf(c->facts.vm_kernel_digest, sizeof c->facts.vm_kernel_digest, "%s", vm_image_kernel_digest(&f->img));
	snprintf(c->facts.vm_rootfs_digest, sizeof c->facts.vm_rootfs_digest, "%s", vm_image_rootfs_digest(&f->img));
	log_step(&t, "create.image");
	if (hash_binary(f, e) < 0)
		return -1;
	log_step(&t, "create.binary");
	const char *exec_name = strrchr(f->host.binary, '/') + 1;
	if (fc_plan_make(&f->plan, cfg, c->spec, f->run_id, exec_name, f->img.f[VM_IMG_ROOTFS].present, e) < 0)
		return -1;
	f->have_plan = true;
	const struct fc_layout *l = &f->plan.layout;

	/* The directory: swept of dead runs' leftovers, made, locked. */
	char base[PATH_MAX];
	snprintf(base, sizeof base, "%s", l->jailer ? l->jail : l->dir);
	*strrchr(base, '/') = '\0';
	sweep(base, ".cellos.lock");
	/* The VMM, as the run's uid, traverses every parent: /run/cellos too when
	 * the directory is beneath it (the default). */
	if ((!strncmp(base, DIRS_RUN_BASE "/", sizeof DIRS_RUN_BASE) && dirs_run_base() < 0) ||
	    dirs_mkdir_p(base, 0711) < 0)
		return err_sys(e, errno, "%s: %s", l->jailer ? "CELLOS_FIRECRACKER_CHROOT_BASE" : "CELLOS_FIRECRACKER_SOCKET_DIR",
			       base);
	/* Made under a dot name, locked, then renamed: a sweep (which looks at run
	 * ids only) never sees a directory whose lock is not yet held. */
	const char *top = l->jailer ? l->jail : l->dir;
	char tmp[PATH_MAX];
	snprintf(tmp, sizeof tmp, "%s/.%s", base, f->run_id);
	if (mkdir(tmp, 0700) < 0)
		return err_sys(e, errno, "firecracker: %s", tmp);
	snprintf(f->made_tmp, sizeof f->made_tmp, "%s", tmp);
	f->made_top = f->made_tmp;
	int topfd = open(tmp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (topfd < 0)
		return err_sys(e, errno, "firecracker: %s", tmp);
	f->lockfd = openat(topfd, ".cellos.lock", O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (f->lockfd < 0 || flock(f->lockfd, LOCK_EX | LOCK_NB) < 0) {
		int err = errno;
		close(topfd);
		return err_sys(e, err, "firecracker: lock %s", tmp);
	}
	if (l->jailer && mkdirat(topfd, "root", 0700) < 0) {
		int err = errno;
		close(topfd);
		return err_sys(e, err, "firecracker: %s/root", tmp);
	}
	if (rename(tmp, top) < 0) {
		int err = errno;
		close(topfd);
		return err_sys(e, err, "firecracker: %s", top);
	}
	f->made_top = top;
	close(topfd);
	f->dirfd = open(l->dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	/* The VMM binds its API socket and vsock here, as the run's uid. */
	if (f->dirfd < 0 || fchown(f->dirfd, c->uid, c->gid) < 0)
		return err_sys(e, errno, "firecracker: %s", l->dir);

	if (link_image(f, l->kernel, f->img.f[VM_IMG_VMLINUX].fd, FD_KERNEL, e) < 0)
		return -1;
	if (l->rootfs_drive != SIZE_MAX &&
	    link_image(f, l->drives[l->rootfs_drive].host, f->img.f[VM_IMG_ROOTFS].fd, FD_ROOTFS, e) < 0)
		return -1;
	/* run.mounts: a read-only ext4 image of each source, made here. */
	for (size_t i = 0; i < c->spec->n_mounts; i++) {
		const struct fc_drive *d = &l->drives[l->rootfs_drive != SIZE_MAX ? i + 1 : i];
		char what[32];
		snprintf(what, sizeof what, "run.mounts[%zu]", i);
		if (vm_disk_image(c->spec->mounts[i].source, d->host, what, e) < 0)
			return -1;
		if (fchownat(f->dirfd, strrchr(d->host, '/') + 1, c->uid, c->gid, AT_SYMLINK_NOFOLLOW) < 0 ||
		    fchmodat(f->dirfd, strrchr(d->host, '/') + 1, 0400, 0) < 0)
			return err_sys(e, errno, "%s: %s", what, d->host);
	}
	/* The network first: under the gateway the job carries its DNS proxy. */
	if (vm_net_make(c, &f->net, f->plan.vm.tap ? make_tap : NULL, f, e) < 0)
		return -1;
	log_step(&t, "create.net");
	if (!(f->key = vm_job_key_new(e)))
		return -1;
	if (write_initrd(f, e) < 0)
		return -1;
	int cfd = cell_file(f, strrchr(l->config, '/') + 1, e);
	if (cfd < 0)
		return -1;
	int wrc = write_all(cfd, f->plan.text, strlen(f->plan.text));
	close(cfd);
	if (wrc < 0)
		return err_sys(e, errno, "firecracker: %s", l->config);
	static const int ports[CH_N] = {FC_PORT_EXIT, FC_PORT_STDOUT, FC_PORT_STDERR, FC_PORT_ARTIFACTS};
	for (int i = 0; i < CH_N; i++)
		if ((f->listen[i] = listen_port(f, ports[i], e)) < 0)
			return -1;

	log_step(&t, "create.files");

	/* The leaf holds the VMM: the guest's memory plus the VMM's own overhead,
	 * and the document's CPU quota (SPEC §6.3). */
	struct cgroup_limits lim = c->limits;
	lim.memory_max = f->plan.shape.vmm_mem_max;
	lim.pids_max = 0; /* the guest's processes are not host processes */
	if (backend_cgroup_setup(c, &f->cg, &lim, &f->reg, e) < 0)
		return -1;
	if (cgroup_cell_apply(&f->cg, &lim, e) < 0)
		return -1;
	c->facts.limits_applied = (f->cg.applied & f->cg.want) == f->cg.want;
	snprintf(c->facts.limits_error, sizeof c->facts.limits_error, "%s", c->facts.limits_applied ? "" : f->cg.error);
	log_step(&t, "create.cgroup");
	/* The artifacts the guest sends: a file of the cell's directory without a
	 * name, so nothing of it outlives us. */
	f->artfd = openat(f->dirfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (f->artfd < 0)
		return err_sys(e, errno, "firecracker: %s: a file for the artifacts", l->dir);
	f->art_cap = (long long)c->spec->n_artifacts * (cfg->export_max_bytes + VM_ART_HDR);
	f->logfd = memfd_create("firecracker-log", MFD_CLOEXEC);
	f->donefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	f->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (f->logfd < 0 || f->donefd < 0 || f->stopfd < 0)
		return err_sys(e, errno, "firecracker: memfd/eventfd");
	return 0;
}

/* ---- start: the VMM ---- */

struct child_args {
	struct fc *f;
	const char *const *argv;
	int sync;                 /* CLOEXEC pipe: errno + text on failure, EOF on exec */
	pid_t parent;
};

static _Noreturn void child_fail(int sync, int err, const char *what)
{
	char msg[256];
	int n = snprintf(msg, sizeof msg, "%d %s", err, what);
	if (write(sync, msg, (size_t)n) < 0) {
		/* nothing more to say */
	}
	_exit(125);
}

static _Noreturn void child_main(const struct child_args *a)
{
	struct fc *f = a->f;
	const struct cell *c = f->cell;
	if (child_tie(a->parent) < 0)
		_exit(125);
	int devnull = open("/dev/null", O_RDONLY);
	if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(f->logfd, 1) < 0 || dup2(f->logfd, 2) < 0)
		child_fail(a->sync, errno, "stdio");
	/* The fds the VMM is to have, at fixed numbers; everything else closes on exec. */
	int want[][2] = {{f->fcfd, FD_EXEC}, {f->img.f[VM_IMG_VMLINUX].fd, FD_KERNEL},
			 {f->img.f[VM_IMG_ROOTFS].fd, FD_ROOTFS}, {a->sync, 20}};
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
		if (want[i][0] >= 0 && (want[i][0] = fcntl(want[i][0], F_DUPFD_CLOEXEC, 30)) < 0)
			child_fail(a->sync, errno, "dup");
	int sync = want[3][0];
	for (size_t i = 0; i < 3; i++)
		if (want[i][0] >= 0 && dup2(want[i][0], want[i][1]) < 0) /* dup2: not close-on-exec */
			child_fail(sync, errno, "dup2");
	if (syscall(SYS_close_range, 4, FD_KERNEL - 1, 0) < 0 || syscall(SYS_close_range, FD_ROOTFS + 1, ~0U,
									   CLOSE_RANGE_CLOEXEC) < 0)
		child_fail(sync, errno, "close_range");
	if (f->img.f[VM_IMG_ROOTFS].fd < 0)
		close(FD_ROOTFS);

	if (f->plan.layout.jailer) {
		/* The jailer drops to the uid, chroots and joins the netns itself. */
		execv(f->host.jailer, (char *const *)a->argv);
		child_fail(sync, errno, "exec the jailer");
	}
	if (setns(f->net.netns, CLONE_NEWNET) < 0)
		child_fail(sync, errno, "join the cell's netns");
	gid_t groups[1] = {f->host.kvm_gid};
	if (setgroups(f->host.kvm_gid != (gid_t)-1 ? 1 : 0, groups) < 0 || setresgid(c->gid, c->gid, c->gid) < 0 ||
	    setresuid(c->uid, c->uid, c->uid) < 0)
		child_fail(sync, errno, "become the run's uid");
	/* A change of credentials clears the parent-death signal: arm it again. */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
		child_fail(sync, errno, "prctl");
	struct err se = {0};
	if (f->filter.len && seccomp_install(&f->filter, &se) < 0)
		child_fail(sync, errno, "install the VMM's seccomp filter");
	if (getppid() != a->parent)
		_exit(125);
	static char *const envp[] = {NULL};
	syscall(SYS_execveat, FD_EXEC, "", a->argv, envp, AT_EMPTY_PATH);
	child_fail(sync, errno, "exec Firecracker");
}

/* The channel thread: accept, copy, check; done when the VMM is gone. */
static int out_fd(const struct cell *c, int ch) { return c->stdio[ch - 1] >= 0 ? c->stdio[ch - 1] : ch; }

static void *channels(void *arg)
{
	struct fc *f = arg;
	int conn[CH_N] = {-1, -1, -1, -1};
	long long art_len = 0;
	unsigned char frame[VM_FRAME_BYTES];
	size_t flen = 0;
	bool frame_done = false;
	/* The stop request (fc_signal) is a byte on the exit connection, the one
	 * channel the guest also reads: sent once, when both are there. */
	bool stop_wanted = false, stop_sent = false;
	int64_t deadline = INT64_MAX; /* set once the VMM is gone (drain) or the guest reported (reset) */
	for (;;) {
		if (stop_wanted && !stop_sent && conn[CH_EXIT] >= 0 && !frame_done) {
			stop_sent = true;
			if (send(conn[CH_EXIT], "T", 1, MSG_DONTWAIT | MSG_NOSIGNAL) != 1)
				log_debug("firecracker: the stop request did not reach the guest: %s", strerror(errno));
		}
		struct pollfd p[2 * CH_N + 2];
		int n = 0, idx[2 * CH_N];
		for (int i = 0; i < CH_N; i++) {
			if (f->listen[i] >= 0) {
				idx[n] = i;
				p[n++] = (struct pollfd){.fd = f->listen[i], .events = POLLIN};
			}
			if (conn[i] >= 0) {
				idx[n] = CH_N + i;
				p[n++] = (struct pollfd){.fd = conn[i], .events = POLLIN};
			}
		}
		int pidx = -1, sidx = -1;
		if (!f->vmm_ended) {
			pidx = n;
			p[n++] = (struct pollfd){.fd = f->pidfd, .events = POLLIN};
		}
		if (!stop_wanted) {
			sidx = n;
			p[n++] = (struct pollfd){.fd = f->stopfd, .events = POLLIN};
		}
		bool open_conn = conn[0] >= 0 || conn[1] >= 0 || conn[2] >= 0;
		if (f->vmm_ended && !open_conn)
			break;
		int64_t now = mono_ms();
		if (now >= deadline) {
			if (f->vmm_ended)
				break;
			/* The guest reported but did not reset: the VMM is killed. */
			syscall(SYS_pidfd_send_signal, f->pidfd, SIGKILL, NULL, 0);
			f->killed = true;
			deadline = INT64_MAX;
			continue;
		}
		int64_t left = deadline == INT64_MAX ? -1 : deadline - now;
		if (poll(p, (nfds_t)n, left < 0 ? -1 : (int)left) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (sidx >= 0 && p[sidx].revents)
			stop_wanted = true;
		if (pidx >= 0 && p[pidx].revents) {
			siginfo_t si = {0};
			if (waitid((idtype_t)P_PIDFD, (id_t)f->pidfd, &si, WEXITED) == 0) {
				f->vmm_status = si.si_status;
				f->vmm_signaled = si.si_code != CLD_EXITED;
			}
			f->vmm_ended = true;
			deadline = mono_ms() + DRAIN_MS;
			/* A connection the guest made just before the end may still be
			 * waiting in a backlog: taken, then nothing more is. */
			for (int i = 0; i < CH_N; i++) {
				if (f->listen[i] >= 0 && conn[i] < 0)
					conn[i] = accept4(f->listen[i], NULL, NULL, SOCK_CLOEXEC);
				close_fd(&f->listen[i]);
			}
		}
		for (int k = 0; k < n; k++) {
			if (k == pidx || k == sidx || !p[k].revents)
				continue;
			int i = idx[k] % CH_N;
			if (idx[k] < CH_N) {
				if (f->listen[i] < 0 || conn[i] >= 0)
					continue; /* taken above, at the VMM's end */
				/* One connection per channel: the listener goes once it is taken. */
				conn[i] = accept4(f->listen[i], NULL, NULL, SOCK_CLOEXEC);
				if (conn[i] >= 0 || (errno != EAGAIN && errno != EINTR))
					close_fd(&f->listen[i]);
				continue;
			}
			char buf[65536];
			ssize_t r = read(conn[i], buf, i == CH_EXIT ? sizeof frame - flen : sizeof buf);
			if (r < 0 && (errno == EINTR || errno == EAGAIN))
				continue;
			if (r <= 0) {
				close_fd(&conn[i]);
				continue;
			}
			if (i == CH_ART) {
				/* Each artifact at most CELLOS_EXPORT_MAX_BYTES: a guest that
				 * sends more is cut off (export then finds it incomplete). */
				if (art_len + r > f->art_cap || write_all(f->artfd, buf, (size_t)r) < 0)
					close_fd(&conn[i]);
				art_len += r;
				continue;
			}
			if (i != CH_EXIT) {
				if (write_all(out_fd(f->cell, i), buf, (size_t)r) < 0)
					close_fd(&conn[i]); /* nobody reads our output: the guest's is dropped */
				continue;
			}
			memcpy(frame + flen, buf, (size_t)r);
			flen += (size_t)r;
			if (flen < sizeof frame || frame_done)
				continue;
			/* The first frame only: whatever follows is never read. */
			frame_done = true;
			close_fd(&conn[i]);
			if (vm_frame_check(f->key, f->run_id, frame, flen, &f->status) == 0) {
				f->have_frame = true;
				if (!f->vmm_ended)
					deadline = mono_ms() + RESET_GRACE_MS;
			} else {
				f->bad_frame = true;
			}
		}
	}
	for (int i = 0; i < CH_N; i++)
		close_fd(&conn[i]);
	uint64_t one = 1;
	if (write(f->donefd, &one, sizeof one) < 0) {
		/* an eventfd write of 1 cannot fail here */
	}
	return NULL;
}

static int fc_start(struct cell *c, struct spawn_result *r, struct err *e)
{
	struct fc *f = priv(c);
	const struct fc_layout *l = &f->plan.layout;
	*r = (struct spawn_result){0};
	snprintf(r->program, sizeof r->program, "%s", c->spec->argv[0]);
	char uid[16], gid[16], netns[64];
	snprintf(uid, sizeof uid, "%u", (unsigned)c->uid);
	snprintf(gid, sizeof gid, "%u", (unsigned)c->gid);
	snprintf(netns, sizeof netns, "/proc/%d/fd/%d", (int)getpid(), f->net.netns);
	const char *argv[32];
	size_t n = 0;
	if (l->jailer) {
		const char *jargs[] = {f->host.jailer, "--id", f->run_id, "--exec-file", f->host.binary, "--uid", uid,
				       "--gid", gid, "--chroot-base-dir", c->cfg->fc_chroot_base, "--netns", netns, "--"};
		for (size_t i = 0; i < sizeof jargs / sizeof jargs[0]; i++)
			argv[n++] = jargs[i];
	} else {
		argv[n++] = f->host.binary;
	}
	argv[n++] = "--api-sock";
	argv[n++] = l->api_vm;
	argv[n++] = "--config-file";
	argv[n++] = l->config_vm;
	if (strcmp(c->cfg->seccomp, "off") == 0)
		argv[n++] = "--no-seccomp";
	argv[n] = NULL;

	int sv[2];
	if (pipe2(sv, O_CLOEXEC) < 0)
		return err_sys(e, errno, "firecracker: pipe");
	struct child_args ca = {.f = f, .argv = argv, .sync = sv[1], .parent = getpid()};
	int pidfd = -1;
	struct clone_args cl = {.flags = CLONE_PIDFD, .pidfd = (uint64_t)(uintptr_t)&pidfd, .exit_signal = SIGCHLD};
	if (f->cg.v2.fd >= 0) {
		cl.flags |= CLONE_INTO_CGROUP;
		cl.cgroup = (uint64_t)f->cg.v2.fd;
	}
	cgroup_cell_enter(&f->cg);
	long pid = syscall(SYS_clone3, &cl, sizeof cl);
	if (pid == 0) {
		close(sv[0]);
		child_main(&ca);
	}
	int clone_errno = errno;
	struct err le = {0};
	int left = cgroup_cell_leave(&f->cg, &le);
	close(sv[1]);
	if (pid < 0) {
		close(sv[0]);
		return err_sys(e, clone_errno, "firecracker: clone3");
	}
	f->pid = (pid_t)pid;
	f->pidfd = pidfd;
	char msg[256] = "";
	ssize_t got;
	while ((got = read(sv[0], msg, sizeof msg - 1)) < 0 && errno == EINTR)
		;
	close(sv[0]);
	if (left < 0) {
		*e = le;
		return -1;
	}
	if (got > 0) {
		msg[got] = '\0';
		int err = atoi(msg);
		const char *what = strchr(msg, ' ') ? strchr(msg, ' ') + 1 : msg;
		return err_sys(e, err, "firecracker: %s", what);
	}
	r->spawned = true;
	r->pid = f->pid;
	if (pthread_create(&f->thread, NULL, channels, f) != 0) {
		syscall(SYS_pidfd_send_signal, f->pidfd, SIGKILL, NULL, 0);
		return err_set(e, "firecracker: cannot start the channel thread");
	}
	f->thread_started = true;
	return 0;
}

static int fc_wait_fd(struct cell *c) { return priv(c)->donefd; }

/* The end of the VMM's log (its serial console and its own messages), for a
 * message: one line, control characters are escaped by the logger. */
static void log_tail(struct fc *f, char *out, size_t size)
{
	out[0] = '\0';
	struct stat st;
	if (fstat(f->logfd, &st) < 0 || st.st_size <= 0)
		return;
	off_t end = st.st_size;
	off_t from = end > LOG_TAIL ? end - LOG_TAIL : 0;
	ssize_t r = pread(f->logfd, out, size - 1 < LOG_TAIL ? size - 1 : LOG_TAIL, from);
	out[r > 0 ? r : 0] = '\0';
	for (char *p = out; *p; p++)
		if (*p == '\n')
			*p = ' ';
}

static void join(struct fc *f)
{
	if (!f->thread_started)
		return;
	pthread_join(f->thread, NULL);
	f->thread_started = false;
}

static void fc_collect(struct cell *c, struct run_status *st)
{
	struct fc *f = priv(c);
	memset(st, 0, sizeof st[0]);
	join(f);
	if (f->pidfd >= 0 && !f->vmm_ended) {
		siginfo_t si = {0};
		syscall(SYS_pidfd_send_signal, f->pidfd, SIGKILL, NULL, 0);
		f->killed = true;
		if (waitid((idtype_t)P_PIDFD, (id_t)f->pidfd, &si, WEXITED) == 0)
			f->vmm_ended = true;
	}
	if (f->bad_frame)
		log_warn("firecracker: an exit report with a tag that does not verify was ignored (cell %s)", c->spec->id);
	if (f->have_frame && f->status >= 0 && f->status <= 255) {
		st->have_status = true;
		st->wstatus = W_EXITCODE(f->status, 0);
	} else if (f->have_frame) {
		log_warn("firecracker: the exit report's status %d is out of range (cell %s)", (int)f->status, c->spec->id);
	}
	st->no_report = !st->have_status;
	c->facts.vm_terminal_state = st->have_status && f->vmm_ended && !f->killed ? "clean" : "forced";
	char tail[LOG_TAIL + 1];
	log_tail(f, tail, sizeof tail);
	log_debug("firecracker: VMM %s %d; the end of its output: %s", f->vmm_signaled ? "killed by signal" : "exit status",
		  f->vmm_status, tail);
	if (!st->have_status) {
		snprintf(st->vm_error, sizeof st->vm_error, "no exit report arrived from the guest%s%s%s",
			 f->bad_frame ? " (a report with a bad tag was ignored)" : "",
			 tail[0] ? "; the VMM's last output: " : "", tail);
	}
	cgroup_cell_signal(&f->cg, SIGKILL, 0);
	backend_cgroup_usage(&f->cg, st);
}

/* SIGTERM: a stop request to the guest (the channel thread sends it on the exit
 * connection: cellos-init forwards SIGTERM to the workload, reports its end and
 * resets, a clean end). SIGKILL: the VMM is killed. */
static void fc_signal(struct cell *c, int sig)
{
	struct fc *f = priv(c);
	if (!f || f->pidfd < 0 || f->vmm_ended)
		return;
	if (sig == SIGTERM) {
		uint64_t one = 1;
		if (write(f->stopfd, &one, sizeof one) < 0) {
			/* an eventfd write of 1 cannot fail here */
		}
		return;
	}
	f->killed = true;
	syscall(SYS_pidfd_send_signal, f->pidfd, SIGKILL, NULL, 0);
	cgroup_cell_signal(&f->cg, SIGKILL, 0);
}

static int fc_read_counters(struct cell *c, struct nft_counter **out, size_t *n, struct err *e)
{
	return vm_net_read_counters(&priv(c)->net, out, n, e);
}

/* SPEC §10: the guest sent its artifacts after the workload ended (read there
 * as the workload, beneath its workspace, no symlink followed); the record of
 * the one at `path` becomes an unnamed file, opened read-only. */
static int fc_open_artifact(struct cell *c, const char *path, int *fd, struct err *e)
{
	struct fc *f = priv(c);
	return vm_open_artifact(c, f->artfd, f->dirfd, path, fd, e);
}

static void fc_destroy(struct cell *c)
{
	struct fc *f = priv(c);
	if (!f)
		return;
	if (f->pidfd >= 0 && !f->vmm_ended)
		syscall(SYS_pidfd_send_signal, f->pidfd, SIGKILL, NULL, 0);
	join(f);
	if (f->pidfd >= 0 && !f->vmm_ended) {
		siginfo_t si;
		waitid((idtype_t)P_PIDFD, (id_t)f->pidfd, &si, WEXITED);
	}
	struct err e = {0};
	if (cgroup_cell_leave(&f->cg, &e) < 0 || cgroup_cell_destroy(&f->cg, &e) < 0)
		log_error("%s", e.msg);
	else
		runreg_release(&f->reg);
	if (f->reg.fd >= 0)
		close(f->reg.fd);
	if (f->made_top && dirs_rmtree(f->made_top) < 0)
		log_error("firecracker: cannot remove %s: %s", f->made_top, strerror(errno));
	if (f->have_plan)
		fc_plan_free(&f->plan);
	/* The gateway's host side before the netns it leads into is let go. */
	vm_net_release(c, &f->net);
	int *fds[] = {&f->dirfd, &f->lockfd, &f->fcfd, &f->logfd, &f->pidfd, &f->donefd, &f->stopfd, &f->artfd,
		      &f->listen[0], &f->listen[1], &f->listen[2], &f->listen[3]};
	for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
		close_fd(fds[i]);
	if (f->have_img)
		vm_image_close(&f->img);
	vm_job_key_free(f->key);
	free(f->filter.filter);
	free(f);
	c->priv = NULL;
}

/* On failure everything already made is undone (the backend port's rule). */
static int fc_create(struct cell *c, struct err *e)
{
	if (create_cell(c, e) == 0)
		return 0;
	fc_destroy(c);
	return -1;
}

const struct backend_ops backend_firecracker = {
	.name = "firecracker",
	.create = fc_create,
	.start = fc_start,
	.wait_fd = fc_wait_fd,
	.collect = fc_collect,
	.signal = fc_signal,
	.read_counters = fc_read_counters,
	.open_artifact = fc_open_artifact,
	.destroy = fc_destroy,
};
