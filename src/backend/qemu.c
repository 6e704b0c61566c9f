/* The `qemu` backend (SPEC §6.3): the workload inside a microVM, QEMU's
 * `-M microvm`, KVM when usable else TCG.
 *
 * create: the guest image is verified (backend/vm_image.h) through fds that stay
 *         open and are what QEMU loads (/proc/self/fd/N); the VM is sized
 *         (backend/vm_limits.h); the cell's cgroup leaf gets the VMM's limits
 *         (guest memory plus CELLOS_VM_OVERHEAD_MIB); a run directory
 *         /run/cellos/vm/<name> (owned by the run's uid) gets the per-boot
 *         initramfs: the image's, with the job archive appended
 *         (backend/vm_job.h); a network namespace of the cell holds the TAP
 *         (and, under CELLOS_NETWORK=gateway, the gateway's veth the TAP's
 *         traffic is routed out through).
 * start:  QEMU is forked into the leaf and the netns, as the run's uid with no
 *         capabilities, no new privileges and its own seccomp filter
 *         (-sandbox), dying with us (PR_SET_PDEATHSIG).
 * The guest's stdout and stderr come back on two virtio-serial ports, each into
 *         a pipe that a thread of ours copies to the cell's stdout/stderr,
 *         byte for byte; the exit report (util/vm_frame.h) on a third, a
 *         socket both ways (our stop request goes in on it: qemu_signal), read
 *         once QEMU has exited; the kernel log (ttyS0) into console.log of the
 *         run directory, logged at debug level. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <stdarg.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backend/backend.h"
#include "backend/vm_image.h"
#include "backend/vm_job.h"
#include "backend/vm_share.h"
#include "backend/vm_limits.h"
#include "isolate/cgroup.h"
#include "isolate/netdev.h"
#include "isolate/nft.h"
#include "isolate/tap.h"
#include "secrets/broker.h"
#include "util/dirs.h"
#include "util/ids.h"
#include "isolate/runreg.h"
#include "util/log.h"
#include "util/vm_frame.h"

#define VM_RUN_DIR "/run/cellos/vm"
/* Under TCG only: the kernel's string routines as unrolled loops rather than
 * `rep` string instructions, which TCG runs one element at a time (the CPU
 * model's ERMS is turned off on -cpu; REP_GOOD is the kernel's own flag, only
 * clearable here: it marks the kernel tainted "CPU out of spec", nothing else).
 * Boot time: bench/README.md. */
#define TCG_GUEST_KERNEL_ARGS "clearcpuid=rep_good"
#define NARGS 96

struct relay {
	int from, to;
	long long cap;          /* bytes written at most (the rest is drained), 0: no cap */
	pthread_t thread;
	bool started;
};

struct qemu {
	struct cgroup_cell cg;
	struct runreg reg;
	struct vm_image img;
	struct vm_shape shape;
	struct vm_net net;      /* the cell's network namespace, where QEMU runs (vm_share.h) */
	int tap;                /* the guest's interface in it, -1 without egress */
	unsigned char *key;
	char dir[PATH_MAX];
	int lock;               /* flocked VM_RUN_DIR/<name>/lock: a live owner */
	int initrd;             /* the per-boot initramfs */
	int exit_rd, chan_wr[VM_CHAN_N];
	struct relay relay[3];  /* stdout, stderr, artifacts (into a file of the run directory) */
	int mount_fds[SPEC_MOUNTS_MAX];
	size_t n_mount_fds;
	pid_t pid;
	int pidfd;
	bool reaped, killed;
	bool stop_sent;         /* the guest was asked to stop (qemu_signal) */
	int wstatus;
	char *args[NARGS];
	size_t n_args;
};

static struct qemu *priv(struct cell *c) { return c->priv; }

/* ---- small helpers ---- */

static int add_arg(struct qemu *q, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int add_arg(struct qemu *q, const char *fmt, ...)
{
	if (q->n_args + 1 >= NARGS)
		return -1;
	va_list ap;
	va_start(ap, fmt);
	int n = vasprintf(&q->args[q->n_args], fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	q->n_args++;
	return 0;
}

/* Run directories whose owner died (its lock can be taken) are removed. A
 * directory is made under a dot name and renamed into place once its lock is
 * held, so a dot name younger than a few seconds may be one being set up. */
static void sweep_run_dirs(void)
{
	DIR *d = opendir(VM_RUN_DIR);
	struct dirent *de;
	time_t now = time(NULL);
	while (d && (de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		char p[PATH_MAX];
		snprintf(p, sizeof p, VM_RUN_DIR "/%s", de->d_name);
		struct stat st;
		if (lstat(p, &st) < 0 || !S_ISDIR(st.st_mode) || (de->d_name[0] == '.' && now - st.st_mtime < 10))
			continue;
		char lp[PATH_MAX + 8];
		snprintf(lp, sizeof lp, "%s/lock", p);
		int fd = open(lp, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) < 0) {
			close(fd);
			continue;
		}
		if (fd >= 0)
			close(fd);
		log_debug("qemu: removing %s, left by a run that is gone", p);
		dirs_rmtree(p);
	}
	if (d)
		closedir(d);
}

/* The host's TSC frequency in kHz, for the guest's tsc_early_khz: the guest
 * under TCG cannot calibrate it in reasonable time. 0: unknown. */
static long host_tsc_khz(void)
{
	FILE *f = fopen("/proc/cpuinfo", "re");
	if (!f)
		return 0;
	char line[256];
	double mhz = 0;
	while (fgets(line, sizeof line, f))
		if (strncmp(line, "cpu MHz", 7) == 0) {
			char *colon = strchr(line, ':');
			mhz = colon ? strtod(colon + 1, NULL) : 0;
			break;
		}
	fclose(f);
	return (long)(mhz * 1000);
}

/* ---- the per-boot initramfs ---- */

/* The image's initramfs followed by the job archive, in a file of the run
 * directory only the run's uid (the VMM) can read. */
static int make_initrd(struct cell *c, struct qemu *q, const struct vm_job *job, bool argv_in_job, struct err *e)
{
	char p[PATH_MAX + 16];
	snprintf(p, sizeof p, "%s/initrd", q->dir);
	q->initrd = open(p, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0400);
	if (q->initrd < 0)
		return err_sys(e, errno, "%s", p);
	if (fchown(q->initrd, c->uid, c->gid) < 0)
		return err_sys(e, errno, "%s", p);
	int src = q->img.f[VM_IMG_INITRAMFS].fd;
	struct stat st;
	if (fstat(src, &st) < 0)
		return err_sys(e, errno, "initramfs");
	off_t in = 0;
	for (size_t left = (size_t)st.st_size; left;) {
		ssize_t n = copy_file_range(src, &in, q->initrd, NULL, left, 0);
		if (n <= 0)
			return err_sys(e, n < 0 ? errno : EIO, "%s", p);
		left -= (size_t)n;
	}
	return vm_job_write(q->initrd, job, argv_in_job, e);
}

/* ---- run.mounts: a read-only ext4 image of each source ---- */

static int make_mount_images(struct cell *c, struct qemu *q, struct vm_job_mount *jm, char devs[][16], struct err *e)
{
	const struct spec *s = c->spec;
	for (size_t i = 0; i < s->n_mounts; i++) {
		if (!s->mounts[i].read_only)
			return err_set(e, "run.mounts[%zu]: the qemu backend shows mounts read-only only (readOnly: false)", i);
		char img[PATH_MAX + 32];
		snprintf(img, sizeof img, "%s/mount%zu.ext4", q->dir, i);
		char what[32];
		snprintf(what, sizeof what, "run.mounts[%zu]", i);
		if (vm_disk_image(s->mounts[i].source, img, what, e) < 0)
			return -1;
		int fd = open(img, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return err_sys(e, errno, "%s", img);
		q->mount_fds[q->n_mount_fds++] = fd;
		/* The root image, when there is one, is the first disk (vda). */
		snprintf(devs[i], 16, "/dev/vd%c", (char)('a' + (q->img.f[VM_IMG_ROOTFS].present ? 1 : 0) + (int)i));
		jm[i] = (struct vm_job_mount){.device = devs[i], .target = s->mounts[i].target};
	}
	return 0;
}

/* ---- the command line ---- */

/* Fds QEMU inherits, at these numbers. */
enum { FD_KERNEL = 3, FD_INITRD, FD_ROOTFS, FD_EXIT, FD_OUT, FD_ERR, FD_ART, FD_TAP, FD_MOUNT0 };

/* The guest's link, inside the cell's own netns (so the same addresses in
 * every cell collide with nothing): the netns end and the guest's. */
#define TAP_NAME "tap0"
#define TAP_HOST "10.0.2.1"
#define TAP_GUEST "10.0.2.2"
#define TAP_PREFIX 30

static int build_args(struct cell *c, struct qemu *q, const char *argv_opt)
{
	const struct config *cfg = c->cfg;
	int rc = 0;
	rc |= add_arg(q, "%s", cfg->qemu_binary);
	rc |= add_arg(q, "-M");
	/* microvm: no PCI, no firmware tables beyond ACPI, no option ROMs; the
	 * ISA serial port carries the kernel log; the RTC must stay (without it
	 * the guest's clock setup stalls under TCG). */
	rc |= add_arg(q, "microvm,x-option-roms=off,isa-serial=on,rtc=on");
	static const char *const fixed[] = {"-nodefaults", "-no-user-config", "-nographic", "-no-reboot", "-cpu"};
	for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
		rc |= add_arg(q, "%s", fixed[i]);
	/* Under TCG a `rep movs/stos` runs one translated iteration per element:
	 * without ERMS the guest kernel's memset/memcpy/clear_page use 8-byte
	 * elements, and without REP_GOOD (TCG_GUEST_KERNEL_ARGS) unrolled loops.
	 * Native string instructions are fast under KVM: the host's CPU as it is. */
	rc |= add_arg(q, "%s", cfg->qemu_kvm ? "max" : "max,erms=off");
	rc |= add_arg(q, "-accel");
	if (cfg->qemu_kvm) {
		rc |= add_arg(q, "kvm");
	} else {
		/* The translation cache is guest-independent memory of the VMM: bound
		 * it within the VMM's overhead allowance (TCG's default is 1 GiB).
		 * One vCPU gains nothing from a thread per vCPU (MTTCG), whose
		 * cross-thread TB and TLB maintenance it still pays: one thread. */
		long long tb = cfg->vm_overhead_mib / 2;
		rc |= add_arg(q, "tcg,tb-size=%lld%s", tb < 16 ? 16 : tb, q->shape.vcpus == 1 ? ",thread=single" : "");
	}
	rc |= add_arg(q, "-m");
	rc |= add_arg(q, "%lldM", q->shape.mem_mib);
	rc |= add_arg(q, "-smp");
	rc |= add_arg(q, "%lld", q->shape.vcpus);
	/* QEMU's own system-call filter: no spawning, no setuid, no obsolete
	 * calls, no scheduler/resource changes. */
	rc |= add_arg(q, "-sandbox");
	rc |= add_arg(q, "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny");
	rc |= add_arg(q, "-kernel");
	rc |= add_arg(q, "/proc/self/fd/%d", FD_KERNEL);
	rc |= add_arg(q, "-initrd");
	rc |= add_arg(q, "/proc/self/fd/%d", FD_INITRD);
	long khz = cfg->qemu_kvm ? 0 : host_tsc_khz();
	char tsc[48] = "";
	if (khz > 0)
		snprintf(tsc, sizeof tsc, " tsc_early_khz=%ld", khz);
	/* panic=-1: a guest kernel panic ends the VM at once (-no-reboot turns the
	 * reboot into an exit) rather than hanging until the deadline. */
	rc |= add_arg(q, "-append");
	/* Boot work the guest does not need: tsc=reliable stops the clocksource
	 * watchdog (under TCG the TSC looks skewed and the kernel spends boot time
	 * switching clocks), one 8250 port is all there is, no PS/2 probing, no PCI
	 * (microvm has no PCI bus: its devices are virtio-mmio, found through ACPI;
	 * probing for one is port I/O that TCG emulates one access at a time); and
	 * what every microVM guest gets (VM_GUEST_KERNEL_ARGS). */
	rc |= add_arg(q, "console=ttyS0 quiet loglevel=4 panic=-1 reboot=t tsc=reliable no_timer_check "
			 "8250.nr_uarts=1 i8042.noaux i8042.nomux i8042.nopnp i8042.dumbkbd pci=off " VM_GUEST_KERNEL_ARGS "%s%s%s%s",
		      cfg->qemu_kvm ? "" : " " TCG_GUEST_KERNEL_ARGS, tsc, argv_opt ? " " : "", argv_opt ? argv_opt : "");
	rc |= add_arg(q, "-chardev");
	rc |= add_arg(q, "file,id=con,path=%s/console.log", q->dir);
	rc |= add_arg(q, "-serial");
	rc |= add_arg(q, "chardev:con");
	rc |= add_arg(q, "-device");
	rc |= add_arg(q, "virtio-serial-device,max_ports=%d", VM_CHAN_N + 1);
	static const int chan_fd[VM_CHAN_N] = {FD_EXIT, FD_OUT, FD_ERR, FD_ART};
	for (int i = 0; i < VM_CHAN_N; i++) {
		/* The exit channel is a socket, both ways (the report out, our stop
		 * request in); the others are pipes, the run's uid's (create), so
		 * QEMU may open them again through /proc/self/fd. */
		rc |= add_arg(q, "-chardev");
		if (i == VM_CHAN_EXIT)
			rc |= add_arg(q, "socket,id=ch%d,fd=%d", i, chan_fd[i]);
		else
			rc |= add_arg(q, "file,id=ch%d,path=/proc/self/fd/%d", i, chan_fd[i]);
		rc |= add_arg(q, "-device");
		rc |= add_arg(q, "virtserialport,chardev=ch%d,name=%s", i, vm_chan_names[i]);
	}
	if (q->img.f[VM_IMG_ROOTFS].present) {
		rc |= add_arg(q, "-drive");
		rc |= add_arg(q, "id=root,file=/proc/self/fd/%d,format=raw,if=none,read-only=on", FD_ROOTFS);
		rc |= add_arg(q, "-device");
		rc |= add_arg(q, "virtio-blk-device,drive=root");
	}
	if (c->n_egress) {
		rc |= add_arg(q, "-netdev");
		rc |= add_arg(q, "tap,id=net0,fd=%d,vhost=off", FD_TAP);
		rc |= add_arg(q, "-device");
		rc |= add_arg(q, "virtio-net-device,netdev=net0");
	}
	for (size_t i = 0; i < q->n_mount_fds; i++) {
		rc |= add_arg(q, "-drive");
		rc |= add_arg(q, "id=m%zu,file=/proc/self/fd/%d,format=raw,if=none,read-only=on", i, FD_MOUNT0 + (int)i);
		rc |= add_arg(q, "-device");
		rc |= add_arg(q, "virtio-blk-device,drive=m%zu", i);
	}
	return rc ? -1 : 0;
}

/* ---- create ---- */

static void qemu_destroy(struct cell *c);
static int make_tap(void *arg, struct err *e);

static int make_run_dir(struct cell *c, struct qemu *q, struct err *e)
{
	if (dirs_run_base() < 0 || (mkdir(VM_RUN_DIR, 0711) < 0 && errno != EEXIST))
		return err_sys(e, errno, "%s", VM_RUN_DIR);
	sweep_run_dirs();
	char tmp[PATH_MAX];
	snprintf(tmp, sizeof tmp, VM_RUN_DIR "/.%s", c->name);
	if (mkdir(tmp, 0700) < 0)
		return err_sys(e, errno, "%s", tmp);
	char lp[PATH_MAX + 8];
	snprintf(lp, sizeof lp, "%s/lock", tmp);
	q->lock = open(lp, O_RDONLY | O_CREAT | O_CLOEXEC, 0600);
	if (q->lock < 0 || flock(q->lock, LOCK_EX) < 0) {
		int errnum = errno;
		dirs_rmtree(tmp);
		return err_sys(e, errnum, "%s", lp);
	}
	snprintf(q->dir, sizeof q->dir, VM_RUN_DIR "/%s", c->name);
	if (rename(tmp, q->dir) < 0) {
		int errnum = errno;
		dirs_rmtree(tmp);
		q->dir[0] = '\0';
		return err_sys(e, errnum, VM_RUN_DIR "/%s", c->name);
	}
	/* The VMM writes its console log here and reads the per-boot initramfs. */
	if (chown(q->dir, c->uid, c->gid) < 0)
		return err_sys(e, errno, "%s", q->dir);
	return 0;
}

static int qemu_create(struct cell *c, struct err *e)
{
	struct qemu *q = calloc(1, sizeof *q);
	if (!q)
		return err_set(e, "out of memory");
	q->lock = q->initrd = q->exit_rd = q->pidfd = q->net.netns = q->tap = -1;
	q->pid = -1;
	for (int i = 0; i < VM_CHAN_N; i++)
		q->chan_wr[i] = -1;
	for (int i = 0; i < 3; i++)
		q->relay[i].from = q->relay[i].to = -1;
	for (int i = 0; i < VM_IMG_N; i++)
		q->img.f[i].fd = -1;
	cgroup_cell_init(&q->cg);
	q->reg.fd = -1;
	c->priv = q;
	const struct config *cfg = c->cfg;
	const struct spec *s = c->spec;
	int64_t t = mono_us();

	/* What the events report of the isolation: the VMM's netns, QEMU's filter. */
	c->ns = NS_NET;
	c->facts.seccomp = "qemu-sandbox";
	/* The image first: a changed byte is a failed create, before anything runs. */
	if (vm_image_open(&q->img, cfg->vm_image_dir, e) < 0)
		goto fail;
	snprintf(c->facts.vm_kernel_digest, sizeof c->facts.vm_kernel_digest, "%s", vm_image_kernel_digest(&q->img));
	snprintf(c->facts.vm_rootfs_digest, sizeof c->facts.vm_rootfs_digest, "%s", vm_image_rootfs_digest(&q->img));
	log_step(&t, "create.image");

	vm_shape_of(s->memory_max_bytes, s->cpu_quota_micros, s->cpu_period_micros, cfg->vm_memory_mib, cfg->vm_vcpus,
		    cfg->vm_overhead_mib, &q->shape);
	/* The VMM's leaf: memory for the guest and QEMU itself; the CPU quota of
	 * the document as it is; the guest's processes are the guest kernel's
	 * (pids.max would count QEMU's threads). */
	struct cgroup_limits lim = c->limits;
	lim.memory_max = q->shape.vmm_mem_max;
	lim.pids_max = 0;
	if (backend_cgroup_setup(c, &q->cg, &lim, &q->reg, e) < 0)
		goto fail;
	if (cgroup_cell_apply(&q->cg, &lim, e) < 0)
		goto fail;
	/* A fact: what the profile makes of limits not in force is the supervisor's decision. */
	c->facts.limits_applied = (q->cg.applied & q->cg.want) == q->cg.want;
	snprintf(c->facts.limits_error, sizeof c->facts.limits_error, "%s",
		 c->facts.limits_applied ? "" : q->cg.error);
	log_step(&t, "create.cgroup");

	if (make_run_dir(c, q, e) < 0)
		goto fail;

	struct vm_job_mount jm[SPEC_MOUNTS_MAX];
	char devs[SPEC_MOUNTS_MAX][16];
	if (make_mount_images(c, q, jm, devs, e) < 0)
		goto fail;
	log_step(&t, "create.mounts");

	/* The VMM's own network namespace: loopback only, plus the TAP when the
	 * cell declares egress, and the gateway's veth under CELLOS_NETWORK=gateway
	 * (its DNS proxy's address goes in the job). */
	if (vm_net_make(c, &q->net, c->n_egress ? make_tap : NULL, q, e) < 0)
		goto fail;
	log_step(&t, "create.net");

	if (!(q->key = vm_job_key_new(e)))
		goto fail;
	bool too_long = false;
	char *argv_opt = vm_job_cmdline_argv(s->argv, &too_long, e);
	if (!argv_opt && !too_long)
		goto fail;
	const char **arts = calloc(s->n_artifacts + 1, sizeof *arts);
	/* virtio-mmio devices found through ACPI; the console ports always, disks
	 * and the network only when there are some (each module costs boot time). */
	const char *mods[5] = {"virtio_mmio", "virtio_console", NULL, NULL, NULL};
	size_t nm = 2;
	if (q->img.f[VM_IMG_ROOTFS].present || q->n_mount_fds)
		mods[nm++] = "virtio_blk";
	if (c->n_egress)
		mods[nm++] = "virtio_net";
	struct vm_job_file files[SPEC_MOUNTS_MAX];
	char paths[SPEC_MOUNTS_MAX][VM_SECRET_PATH_MAX];
	struct vm_job job = {
		.run_id = c->run_id,
		.argv = s->argv,
		.envp = c->envp,
		.workdir = s->working_directory,
		.files = files,
		.n_files = vm_secret_files(c->secrets, files, paths, SPEC_MOUNTS_MAX),
		.mounts = jm,
		.n_mounts = s->n_mounts,
		.root_device = q->img.f[VM_IMG_ROOTFS].present ? "/dev/vda" : NULL,
		.artifacts = arts,
		.modules = mods,
		.uid = c->uid,
		.gid = c->gid,
		.net_address = c->n_egress ? TAP_GUEST : NULL,
		.net_prefix = TAP_PREFIX,
		.net_gateway = TAP_HOST,
		.net_dns = q->net.dns[0] ? q->net.dns : NULL,
		.key = q->key,
	};
	for (size_t i = 0; arts && i < s->n_artifacts; i++)
		arts[i] = s->artifacts[i].path;
	int rc = arts ? make_initrd(c, q, &job, too_long, e) : err_set(e, "out of memory");
	free(arts);
	if (rc == 0 && build_args(c, q, argv_opt) < 0)
		rc = err_set(e, "qemu: command line: out of memory");
	free(argv_opt);
	if (rc < 0)
		goto fail;
	log_step(&t, "create.job");

	/* The channels: QEMU writes, we read (and, on the exit channel, may ask
	 * the guest to stop). */
	for (int i = 0; i < VM_CHAN_N; i++) {
		int p[2];
		if ((i == VM_CHAN_EXIT ? socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p) : pipe2(p, O_CLOEXEC)) < 0) {
			err_sys(e, errno, "pipe");
			goto fail;
		}
		q->chan_wr[i] = p[1];
		if (i != VM_CHAN_EXIT && fchown(p[1], c->uid, c->gid) < 0) {
			close(p[0]);
			err_sys(e, errno, "pipe");
			goto fail;
		}
		if (i == VM_CHAN_EXIT)
			q->exit_rd = p[0];
		else
			q->relay[i - 1].from = p[0];
	}
	q->relay[0].to = c->stdio[0] >= 0 ? c->stdio[0] : 1;
	q->relay[1].to = c->stdio[1] >= 0 ? c->stdio[1] : 2;
	/* Artifacts: each at most CELLOS_EXPORT_MAX_BYTES plus its header. */
	char ap[PATH_MAX + 16];
	snprintf(ap, sizeof ap, "%s/artifacts", q->dir);
	if ((q->relay[2].to = open(ap, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) < 0) {
		err_sys(e, errno, "%s", ap);
		goto fail;
	}
	q->relay[2].cap = (long long)s->n_artifacts * (cfg->export_max_bytes + VM_ART_HDR);

	return 0;
fail:
	qemu_destroy(c);
	return -1;
}

/* In the cell's netns: the guest's TAP (vm_net_make does the rest). */
static int make_tap(void *arg, struct err *e)
{
	struct qemu *q = arg;
	return (q->tap = tap_open(TAP_NAME, TAP_HOST, TAP_PREFIX, e)) < 0 ? -1 : 0;
}

/* ---- start ---- */

static int write_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = write(fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static void *relay_main(void *arg)
{
	struct relay *r = arg;
	char buf[65536];
	bool sink_ok = true;
	long long written = 0;
	for (;;) {
		ssize_t n = read(r->from, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (r->cap && written + n > r->cap)
			sink_ok = false;
		/* A reader that went away, or past the cap: keep draining, or QEMU
		 * would block. */
		if (sink_ok && write_all(r->to, buf, (size_t)n) < 0)
			sink_ok = false;
		written += n;
	}
	return NULL;
}

/* The child that becomes QEMU: into the cell's leaf and netns, fds in place,
 * the run's identity, then exec. Never returns. */
static void vmm_child(struct cell *c, struct qemu *q, pid_t parent, int log_fd)
{
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (q->cg.v2.fd >= 0) {
		int fd = openat(q->cg.v2.fd, "cgroup.procs", O_WRONLY | O_CLOEXEC);
		if (fd < 0 || write(fd, "0", 1) != 1)
			_exit(125);
		close(fd);
	}
	cgroup_cell_enter(&q->cg);
	if (setns(q->net.netns, CLONE_NEWNET) < 0)
		_exit(125);
	/* Every fd QEMU gets, moved above the range first, then into place. */
	int src[FD_MOUNT0 + SPEC_MOUNTS_MAX];
	int n = FD_MOUNT0 + (int)q->n_mount_fds;
	for (int i = 0; i < n; i++)
		src[i] = -1;
	src[0] = open("/dev/null", O_RDONLY | O_CLOEXEC);
	src[1] = log_fd;
	src[2] = log_fd;
	src[FD_KERNEL] = q->img.f[VM_IMG_VMLINUX].fd;
	src[FD_INITRD] = q->initrd;
	src[FD_ROOTFS] = q->img.f[VM_IMG_ROOTFS].fd;
	src[FD_EXIT] = q->chan_wr[VM_CHAN_EXIT];
	src[FD_OUT] = q->chan_wr[VM_CHAN_STDOUT];
	src[FD_ERR] = q->chan_wr[VM_CHAN_STDERR];
	src[FD_ART] = q->chan_wr[VM_CHAN_ARTIFACTS];
	src[FD_TAP] = q->tap;
	for (size_t i = 0; i < q->n_mount_fds; i++)
		src[FD_MOUNT0 + i] = q->mount_fds[i];
	for (int i = 0; i < n; i++)
		if (src[i] >= 0 && (src[i] = fcntl(src[i], F_DUPFD_CLOEXEC, 256)) < 0)
			_exit(125);
	for (int i = 0; i < n; i++) {
		if (src[i] < 0) {
			int null = open("/dev/null", O_RDONLY);
			if (null != i) {
				dup2(null, i);
				close(null);
			}
		} else if (dup2(src[i], i) < 0) {
			_exit(125);
		}
	}
	syscall(SYS_close_range, (unsigned)n, ~0U, 0);
	/* Under KVM, /dev/kvm's group when its mode asks for it (util/kvm_dev.h);
	 * no other group. */
	gid_t groups[1] = {c->cfg->qemu_kvm_gid};
	bool kvm_group = c->cfg->qemu_kvm && c->cfg->qemu_kvm_gid != (gid_t)-1;
	if (setgroups(kvm_group ? 1 : 0, groups) < 0 || setresgid(c->gid, c->gid, c->gid) < 0 || setresuid(c->uid, c->uid, c->uid) < 0)
		_exit(125);
	/* After the identity change, which clears it; a parent already gone
	 * means nobody would ever kill this VM. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
		_exit(125);
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		_exit(125);
	execv(c->cfg->qemu_binary, q->args);
	_exit(127);
}

static int qemu_start(struct cell *c, struct spawn_result *r, struct err *e)
{
	struct qemu *q = priv(c);
	memset(r, 0, sizeof *r);
	snprintf(r->program, sizeof r->program, "%s", c->spec->argv[0]);
	char lp[PATH_MAX + 16];
	snprintf(lp, sizeof lp, "%s/vmm.log", q->dir);
	int log_fd = open(lp, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (log_fd < 0)
		return err_sys(e, errno, "%s", lp);
	if (c->cfg->log_level >= LOG_DEBUG) {
		char line[8192];
		size_t n = 0;
		for (size_t i = 0; i < q->n_args && n < sizeof line; i++)
			n += (size_t)snprintf(line + n, sizeof line - n, "%s%s", i ? " " : "", q->args[i]);
		log_debug("qemu: %s", line);
	}
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0) {
		close(log_fd);
		return err_sys(e, errno, "fork");
	}
	if (pid == 0)
		vmm_child(c, q, parent, log_fd);
	close(log_fd);
	q->pid = pid;
	q->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (q->pidfd < 0) {
		kill(pid, SIGKILL);
		return err_sys(e, errno, "pidfd_open");
	}
	/* Only QEMU holds the write ends now: its exit is their end of file. */
	for (int i = 0; i < VM_CHAN_N; i++) {
		close(q->chan_wr[i]);
		q->chan_wr[i] = -1;
	}
	for (int i = 0; i < 3; i++) {
		if (pthread_create(&q->relay[i].thread, NULL, relay_main, &q->relay[i]) != 0) {
			kill(pid, SIGKILL);
			return err_set(e, "qemu: cannot start the output relay");
		}
		q->relay[i].started = true;
	}
	r->spawned = true;
	r->pid = pid;
	return 0;
}

static int qemu_wait_fd(struct cell *c) { return priv(c)->pidfd; }

static void reap(struct qemu *q)
{
	if (q->reaped || q->pid <= 0)
		return;
	int ws;
	while (waitpid(q->pid, &ws, 0) < 0)
		if (errno != EINTR)
			return;
	q->wstatus = ws;
	q->reaped = true;
}

static void join_relays(struct qemu *q)
{
	for (int i = 0; i < 3; i++)
		if (q->relay[i].started) {
			pthread_join(q->relay[i].thread, NULL);
			q->relay[i].started = false;
		}
}

/* The last lines of the guest's kernel log and QEMU's own messages, for a
 * run that ended without a valid report. */
static void log_tail(const char *dir, const char *file)
{
	char p[PATH_MAX + 32];
	snprintf(p, sizeof p, "%s/%s", dir, file);
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	char buf[1500];
	off_t size = lseek(fd, 0, SEEK_END);
	off_t from = size > (off_t)sizeof buf - 1 ? size - (off_t)sizeof buf + 1 : 0;
	ssize_t n = pread(fd, buf, sizeof buf - 1, from);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = 0;
	for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n"))
		log_warn("qemu %s: %s", file, line);
}

static void qemu_collect(struct cell *c, struct run_status *st)
{
	struct qemu *q = priv(c);
	memset(st, 0, sizeof *st);
	reap(q);
	join_relays(q);
	unsigned char frame[VM_FRAME_BYTES + 1];
	size_t got = 0;
	while (got < sizeof frame) {
		ssize_t n = read(q->exit_rd, frame + got, sizeof frame - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	int32_t status;
	/* One frame, exactly: anything else on the channel is not a report. */
	if (got == VM_FRAME_BYTES && vm_frame_check(q->key, c->run_id, frame, got, &status) == 0 && status >= 0 &&
	    status <= 255) {
		st->have_status = true;
		st->wstatus = (status & 0xff) << 8;
	} else {
		st->no_report = true;
		if (got)
			log_warn("qemu: the exit channel carried %zu bytes that are not a valid exit report (ignored)", got);
		/* QEMU's own messages also when we killed it (a deadline): a VM
		 * stopped by KVM ("KVM internal error", docs/DESIGN.md) waits
		 * for the deadline, and only those lines say why. */
		log_tail(q->dir, "vmm.log");
		if (!q->killed)
			log_tail(q->dir, "console.log");
	}
	c->facts.vm_terminal_state = st->have_status && !q->killed ? "clean" : "forced";
	cgroup_cell_signal(&q->cg, SIGKILL, 0);
	backend_cgroup_usage(&q->cg, st);
}

/* Whether QEMU has ended (by itself or not), without reaping it. */
static bool vmm_ended(struct qemu *q)
{
	if (q->reaped)
		return true;
	siginfo_t si = {0};
	return waitid(P_PID, (id_t)q->pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == q->pid;
}

/* SIGTERM: a stop request to the guest (a byte on the exit channel: cellos-init
 * sends SIGTERM to the workload, reports its end and powers off, a clean end);
 * QEMU itself would end the VM at once on SIGTERM, so it gets none. SIGKILL:
 * QEMU is killed, unless it already ended by itself. */
static void qemu_signal(struct cell *c, int sig)
{
	struct qemu *q = priv(c);
	if (q->pid <= 0 || vmm_ended(q))
		return;
	if (sig == SIGTERM) {
		if (!q->stop_sent && send(q->exit_rd, "T", 1, MSG_DONTWAIT | MSG_NOSIGNAL) == 1)
			q->stop_sent = true;
		return;
	}
	q->killed = true;
	kill(q->pid, SIGKILL);
	cgroup_cell_signal(&q->cg, SIGKILL, 0);
}

static int qemu_read_counters(struct cell *c, struct nft_counter **out, size_t *n, struct err *e)
{
	return vm_net_read_counters(&priv(c)->net, out, n, e);
}

/* SPEC §10: the guest sent its artifacts after the workload ended; the one at
 * `path` becomes an unnamed file of the run directory (backend/vm_share.h). */
static int qemu_open_artifact(struct cell *c, const char *path, int *fd, struct err *e)
{
	struct qemu *q = priv(c);
	int dir = open(q->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir < 0)
		return err_sys(e, errno, "%s", q->dir);
	int rc = vm_open_artifact(c, q->relay[2].to, dir, path, fd, e);
	close(dir);
	return rc;
}

static void qemu_destroy(struct cell *c)
{
	struct qemu *q = priv(c);
	if (!q)
		return;
	if (q->pid > 0 && !q->reaped) {
		kill(q->pid, SIGKILL);
		cgroup_cell_signal(&q->cg, SIGKILL, 0);
		reap(q);
	}
	join_relays(q);
	struct err e = {0};
	if (cgroup_cell_leave(&q->cg, &e) < 0 || cgroup_cell_destroy(&q->cg, &e) < 0)
		log_error("%s", e.msg);
	else
		runreg_release(&q->reg);
	if (q->reg.fd >= 0)
		close(q->reg.fd);
	/* The gateway's host side before the netns it leads into is let go. */
	vm_net_release(c, &q->net);
	int *fds[] = {&q->initrd, &q->exit_rd, &q->pidfd, &q->tap, &q->relay[0].from, &q->relay[1].from,
		      &q->relay[2].from, &q->relay[2].to, &q->chan_wr[0], &q->chan_wr[1], &q->chan_wr[2], &q->chan_wr[3]};
	for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
		if (*fds[i] >= 0) {
			close(*fds[i]);
			*fds[i] = -1;
		}
	for (size_t i = 0; i < q->n_mount_fds; i++)
		close(q->mount_fds[i]);
	vm_image_close(&q->img);
	vm_job_key_free(q->key);
	if (q->dir[0])
		dirs_rmtree(q->dir);
	if (q->lock >= 0)
		close(q->lock);
	for (size_t i = 0; i < q->n_args; i++)
		free(q->args[i]);
	free(q);
	c->priv = NULL;
}

const struct backend_ops backend_qemu = {
	.name = "qemu",
	.create = qemu_create,
	.start = qemu_start,
	.wait_fd = qemu_wait_fd,
	.collect = qemu_collect,
	.signal = qemu_signal,
	.read_counters = qemu_read_counters,
	.open_artifact = qemu_open_artifact,
	.destroy = qemu_destroy,
};
