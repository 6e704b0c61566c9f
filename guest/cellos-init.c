/* cellos-init: PID 1 of a microVM cell (SPEC §6.3). Static, no allocator
 * tricks, no sanitizers (it is the guest's init, built on its own rule in the
 * Makefile).
 *
 * What it does, in order: fds 0-2 made valid; /proc, /sys, /dev mounted; the
 * virtio modules of the image loaded in the order the image lists them; the job
 * read (argv from the kernel command line, the rest from the job file), the job
 * file deleted and its text wiped; the root image (read-only), workspace, /tmp,
 * mounts and files set up; the workload run as a child under an unprivileged
 * guest uid; orphans reaped; the exit report sent; the VM ended.
 *
 * The workload runs as the job's uid/gid (the run's own host uid, so that the
 * owner bits of files in run.mounts images mean in the guest what they mean on
 * the host: "other" for the run), default WORKLOAD_ID, never as guest root: the per-boot key
 * stays in this process's locked, non-dumpable memory, and a process of another
 * uid can neither read it (/proc/1/mem) nor open the report channel (the device
 * nodes are root's, and a virtio port admits one opener). */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/openat2.h>
#include <stdint.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <signal.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <poll.h>
#include <sys/reboot.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fc_guest.h"

#include "job.h"
#include "util/vm_frame.h"

#define WORKLOAD_ID 1000
static uid_t wl_uid = WORKLOAD_ID;
static gid_t wl_gid = WORKLOAD_ID;
#define JOB_FILE "/cellos/job.json"
#define MODULE_LIST "/cellos/modules"
#define WORKSPACE "/workspace"
#define SYSROOT "/sysroot"

static const char *const chan_names[] = {"cellos.exit", "cellos.stdout", "cellos.stderr", "cellos.artifacts"};
enum { CH_EXIT, CH_OUT, CH_ERR, CH_ART, CH_N };

static void say_at(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define say(...) say_at(3, __VA_ARGS__)
/* Milestones, at KERN_NOTICE: in the kernel's buffer only, unless the console's
 * log level shows them (bench/bench-qemu.sh times the phases by them, with the
 * kernel's own notices, at loglevel=6). */
#define note(...) say_at(5, __VA_ARGS__)
/* Diagnostics go to the kernel log (the VMM's serial console), never to the
 * workload's channels. */
static void say_at(int level, const char *fmt, ...)
{
	char buf[512];
	int n = snprintf(buf, sizeof buf, "<%d>cellos-init: ", level);
	va_list ap;
	va_start(ap, fmt);
	n += vsnprintf(buf + n, sizeof buf - (size_t)n - 1, fmt, ap);
	va_end(ap);
	/* A record ends with its newline (until then readers do not see it). */
	if (n > (int)sizeof buf - 2)
		n = (int)sizeof buf - 2;
	buf[n++] = '\n';
	buf[n] = '\0';
	int fd = open("/dev/kmsg", O_WRONLY | O_CLOEXEC);
	if (fd >= 0) {
		if (write(fd, buf, strlen(buf)) < 0) {
		}
		close(fd);
	}
}

static void end_vm(bool reset)
{
	sync();
	reboot(reset ? RB_AUTOBOOT : RB_POWER_OFF);
	for (;;)
		pause();
}

static void fill_std_fds(void)
{
	for (int fd = 0; fd < 3; fd++)
		if (fcntl(fd, F_GETFD) < 0) {
			int n = open("/dev/null", O_RDWR);
			if (n >= 0 && n != fd) {
				dup2(n, fd);
				close(n);
			}
		}
}

static void mount_basics(void)
{
	mkdir("/proc", 0555);
	mkdir("/sys", 0555);
	mkdir("/dev", 0755);
	mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755");
}

/* MODULE_LIST: one module per line, dependencies first:
 * "<name> <file> <dep,dep|-> [params]". Loads the modules named in `want` (all
 * when NULL) and what they depend on, in the list's order. */
static void load_modules(char *const *want, const char *cmdline)
{
	FILE *f = fopen(MODULE_LIST, "re");
	if (!f)
		return;
	char lines[64][512];
	bool needed[64] = {false};
	size_t n = 0;
	while (n < 64 && fgets(lines[n], sizeof lines[n], f)) {
		lines[n][strcspn(lines[n], "\n")] = 0;
		n++;
	}
	fclose(f);
	char names[64][64], deps[64][256];
	for (size_t i = 0; i < n; i++)
		if (sscanf(lines[i], "%63s %*s %255s", names[i], deps[i]) != 2)
			names[i][0] = deps[i][0] = 0;
	for (size_t i = 0; i < n; i++)
		for (size_t k = 0; !want || want[k]; k++)
			if (!want || strcmp(want[k], names[i]) == 0) {
				needed[i] = true;
				break;
			}
	/* Dependencies come first in the list: walk it backwards once. */
	for (size_t i = n; i-- > 0;) {
		if (!needed[i] || strcmp(deps[i], "-") == 0)
			continue;
		for (char *d = strtok(deps[i], ","); d; d = strtok(NULL, ","))
			for (size_t k = 0; k < i; k++)
				if (strcmp(names[k], d) == 0)
					needed[k] = true;
	}
	for (size_t i = 0; i < n; i++) {
		if (!needed[i])
			continue;
		char file[256] = "", params[512] = "";
		if (sscanf(lines[i], "%*s %255s %*s %255[^\n]", file, params) < 1)
			continue;
		/* Firecracker announces its virtio-mmio devices on the command line. */
		if (cmdline)
			fc_module_params(cmdline, names[i], params, sizeof params);
		int fd = open(file, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || syscall(SYS_finit_module, fd, params, 0) < 0) {
			if (errno != EEXIST)
				say("module %s: %s", names[i], strerror(errno));
		}
		if (fd >= 0)
			close(fd);
	}
}

static char *read_all(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap + 1);
	for (ssize_t r; buf; n += (size_t)r) {
		if (n == cap) {
			char *nb = realloc(buf, 2 * cap + 1);
			if (!nb) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = nb;
			cap *= 2;
		}
		r = read(fd, buf + n, cap - n);
		if (r <= 0)
			break;
	}
	close(fd);
	if (buf)
		buf[n] = 0;
	*len = n;
	return buf;
}

/* /dev/<vportXpY> of the port named `name`, opened with `flags`. */
static int open_port(const char *name, int flags)
{
	for (int tries = 0; tries < 1000; tries++) {
		DIR *d = opendir("/sys/class/virtio-ports");
		struct dirent *de;
		while (d && (de = readdir(d))) {
			if (de->d_name[0] == '.')
				continue;
			char p[300], got[128] = "";
			snprintf(p, sizeof p, "/sys/class/virtio-ports/%s/name", de->d_name);
			int fd = open(p, O_RDONLY | O_CLOEXEC);
			if (fd < 0)
				continue;
			ssize_t n = read(fd, got, sizeof got - 1);
			close(fd);
			if (n <= 0)
				continue;
			got[n] = 0;
			got[strcspn(got, "\n")] = 0;
			if (strcmp(got, name) != 0)
				continue;
			snprintf(p, sizeof p, "/dev/%s", de->d_name);
			closedir(d);
			int out = open(p, flags | O_CLOEXEC);
			/* The node is not needed any more: nobody else opens it. */
			if (out >= 0)
				unlink(p);
			return out;
		}
		if (d)
			closedir(d);
		/* The ports come up one by one after virtio_console's probe (a
		 * few control messages each): look again soon. */
		struct timespec ts = {0, 2 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	return -1;
}

static int mkdir_p(const char *path, mode_t mode)
{
	char buf[4096];
	snprintf(buf, sizeof buf, "%s", path);
	for (char *p = buf + 1; *p; p++)
		if (*p == '/') {
			*p = 0;
			if (mkdir(buf, 0755) < 0 && errno != EEXIST)
				return -1;
			*p = '/';
		}
	return mkdir(buf, mode) < 0 && errno != EEXIST ? -1 : 0;
}

static int write_file(const char *path, const unsigned char *data, size_t len, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd < 0)
		return -1;
	for (size_t off = 0; off < len;) {
		ssize_t n = write(fd, data + off, len - off);
		if (n <= 0) {
			close(fd);
			return -1;
		}
		off += (size_t)n;
	}
	if (fchown(fd, wl_uid, wl_gid) < 0 || fchmod(fd, mode) < 0) {
		close(fd);
		return -1;
	}
	return close(fd);
}

/* The workload's filesystem: the root (the initramfs, or the read-only root
 * image at SYSROOT), a tmpfs workspace, /tmp, the mounts and files of the job.
 * Returns the root the workload is to chroot into ("/" or SYSROOT). */
static const char *setup_fs(const struct job *j)
{
	const char *root = "/";
	char p[4200];
	if (j->root_device) {
		mkdir(SYSROOT, 0755);
		if (mount(j->root_device, SYSROOT, "ext4", MS_RDONLY | MS_NODEV | MS_NOSUID, NULL) < 0) {
			say("root %s: %s", j->root_device, strerror(errno));
			return NULL;
		}
		root = SYSROOT;
		/* /proc, /dev of the guest, seen from the new root. */
		snprintf(p, sizeof p, SYSROOT "/proc");
		mount("proc", p, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
		snprintf(p, sizeof p, SYSROOT "/dev");
		mount("/dev", p, NULL, MS_BIND | MS_REC, NULL);
		if (j->net_dns && mount("/etc/resolv.conf", SYSROOT "/etc/resolv.conf", NULL, MS_BIND, NULL) < 0)
			say("resolv.conf in the root image: %s", strerror(errno));
	}
	const char *pre = j->root_device ? SYSROOT : "";
	const char *ws = j->workdir ? j->workdir : WORKSPACE;
	snprintf(p, sizeof p, "%s%s", pre, ws);
	char opts[64];
	snprintf(opts, sizeof opts, "mode=0755,uid=%u,gid=%u", (unsigned)wl_uid, (unsigned)wl_gid);
	if ((!j->root_device && mkdir_p(p, 0755) < 0) || mount("workspace", p, "tmpfs", MS_NOSUID | MS_NODEV, opts) < 0) {
		say("workspace %s: %s", ws, strerror(errno));
		return NULL;
	}
	snprintf(p, sizeof p, "%s/tmp", pre);
	if (!j->root_device)
		mkdir(p, 01777);
	if (mount("tmp", p, "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777") < 0)
		say("/tmp: %s", strerror(errno));
	for (size_t i = 0; i < j->n_mounts; i++) {
		snprintf(p, sizeof p, "%s%s", pre, j->mounts[i].target);
		if (!j->root_device)
			mkdir_p(p, 0755);
		if (mount(j->mounts[i].device, p, "ext4", MS_RDONLY | MS_NODEV | MS_NOSUID, NULL) < 0) {
			say("mount %s at %s: %s", j->mounts[i].device, j->mounts[i].target, strerror(errno));
			return NULL;
		}
	}
	if (j->n_files) {
		/* Secrets live in memory only: a tmpfs at /run/cellos of the root. */
		snprintf(p, sizeof p, "%s/run", pre);
		if (!j->root_device)
			mkdir(p, 0755);
		snprintf(p, sizeof p, "%s/run/cellos", pre);
		mkdir(p, 0755);
		if (mount("cellos", p, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0755,size=16m") < 0)
			say("/run/cellos: %s", strerror(errno));
	}
	for (size_t i = 0; i < j->n_files; i++) {
		const struct job_file *f = &j->files[i];
		snprintf(p, sizeof p, "%s%s", pre, f->path);
		char *slash = strrchr(p, '/');
		*slash = 0;
		int rc = mkdir_p(p, 0700);
		if (rc == 0 && chown(p, wl_uid, wl_gid) < 0)
			rc = -1;
		*slash = '/';
		if (rc < 0 || write_file(p, f->data, f->len, f->mode) < 0) {
			say("file %s: %s", f->path, strerror(errno));
			return NULL;
		}
	}
	return root;
}

static int if_up(int s, const char *name)
{
	struct ifreq ifr;
	memset(&ifr, 0, sizeof ifr);
	snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", name);
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
		return -1;
	ifr.ifr_flags |= IFF_UP;
	return ioctl(s, SIOCSIFFLAGS, &ifr);
}

/* lo up always; with a network in the job, eth0 with its address and the
 * default route through the host end of the TAP. */
static void setup_net(const struct job *j)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return;
	if_up(s, "lo");
	if (j->net_address) {
		struct ifreq ifr;
		memset(&ifr, 0, sizeof ifr);
		snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "eth0");
		struct sockaddr_in *sin = (struct sockaddr_in *)&ifr.ifr_addr;
		sin->sin_family = AF_INET;
		inet_pton(AF_INET, j->net_address, &sin->sin_addr);
		int rc = ioctl(s, SIOCSIFADDR, &ifr);
		sin->sin_addr.s_addr = htonl(~0u << (32 - j->net_prefix));
		if (rc == 0)
			rc = ioctl(s, SIOCSIFNETMASK, &ifr);
		if (rc == 0)
			rc = if_up(s, "eth0");
		struct rtentry rt;
		memset(&rt, 0, sizeof rt);
		struct sockaddr_in *gw = (struct sockaddr_in *)&rt.rt_gateway;
		gw->sin_family = AF_INET;
		inet_pton(AF_INET, j->net_gateway, &gw->sin_addr);
		((struct sockaddr_in *)&rt.rt_dst)->sin_family = AF_INET;
		((struct sockaddr_in *)&rt.rt_genmask)->sin_family = AF_INET;
		rt.rt_flags = RTF_UP | RTF_GATEWAY;
		if (rc == 0)
			rc = ioctl(s, SIOCADDRT, &rt);
		if (rc < 0)
			say("eth0: %s", strerror(errno));
	}
	close(s);
	/* The gateway's DNS proxy (CELLOS_NETWORK=gateway): the initramfs's
	 * resolv.conf, also bound over a root image's (setup_fs). */
	if (j->net_dns) {
		FILE *f = fopen("/etc/resolv.conf", "we");
		if (f) {
			fprintf(f, "nameserver %s\n", j->net_dns);
			fclose(f);
		} else {
			say("/etc/resolv.conf: %s", strerror(errno));
		}
	}
}

static const char *env_get(char *const *env, const char *name)
{
	size_t n = strlen(name);
	for (size_t i = 0; env && env[i]; i++)
		if (strncmp(env[i], name, n) == 0 && env[i][n] == '=')
			return env[i] + n + 1;
	return NULL;
}

/* execve of argv[0] searched in the workload's PATH, as execvpe but with the
 * job's environment. Returns the errno that matters (ENOENT only when no
 * candidate existed). */
static int exec_workload(char *const *argv, char *const *env)
{
	if (strchr(argv[0], '/')) {
		execve(argv[0], argv, env);
		return errno;
	}
	const char *path = env_get(env, "PATH");
	if (!path)
		path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
	int err = ENOENT;
	for (const char *p = path; *p;) {
		size_t n = strcspn(p, ":");
		char cand[4096];
		if (n && n + strlen(argv[0]) + 2 < sizeof cand && p[0] == '/') {
			snprintf(cand, sizeof cand, "%.*s/%s", (int)n, p, argv[0]);
			execve(cand, argv, env);
			if (errno != ENOENT && errno != ENOTDIR)
				err = errno;
		}
		p += n;
		if (*p == ':')
			p++;
	}
	return err;
}

/* The workload's own process: fds, identity, root, directory, exec. A failure
 * reaches the parent through `report` (close-on-exec) as an errno. */
static void child(const struct job *j, const char *root, int out, int errfd, int report)
{
	setsid();
	int null = open("/dev/null", O_RDONLY);
	if (null < 0 || dup2(null, 0) < 0 || dup2(out, 1) < 0 || dup2(errfd, 2) < 0)
		goto fail;
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (strcmp(root, "/") != 0 && (chroot(root) < 0 || chdir("/") < 0))
		goto fail;
	if (chdir(j->workdir ? j->workdir : WORKSPACE) < 0)
		goto fail;
	if (setgroups(0, NULL) < 0 || setgid(wl_gid) < 0 || setuid(wl_uid) < 0 ||
	    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		goto fail;
	int e = exec_workload(j->argv, j->env);
	errno = e;
fail:;
	int code = errno;
	if (write(report, &code, sizeof code) < 0) {
	}
	_exit(127);
}

/* One artifact (SPEC §10), read as the workload (its uid, its root), beneath
 * the workspace without following any symlink, into the artifacts channel as a
 * record: u32 index, u8 errno (0: ok), u64 size (little-endian), the bytes. */
static void send_artifact(const struct job *j, const char *root, size_t index, int out)
{
	const char *ws = j->workdir ? j->workdir : WORKSPACE;
	const char *path = j->artifacts[index];
	size_t wl = strlen(ws);
	int fd = -1, code = 0;
	struct stat st;
	if (strncmp(path, ws, wl) != 0 || path[wl] != '/' || !path[wl + 1]) {
		code = EXDEV; /* not in the workspace */
	} else if ((strcmp(root, "/") != 0 && chroot(root) < 0) || setgroups(0, NULL) < 0 || setgid(wl_gid) < 0 ||
		   setuid(wl_uid) < 0) {
		code = errno;
	} else {
		int dir = open(ws, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		struct open_how how = {.flags = O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK,
				       .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS};
		fd = dir < 0 ? -1 : (int)syscall(SYS_openat2, dir, path + wl + 1, &how, sizeof how);
		if (fd < 0)
			code = errno;
		else if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
			code = fstat(fd, &st) < 0 ? errno : EINVAL;
	}
	unsigned char hdr[13];
	uint64_t size = code ? 0 : (uint64_t)st.st_size;
	for (int i = 0; i < 4; i++)
		hdr[i] = (unsigned char)(index >> (8 * i));
	hdr[4] = (unsigned char)(code > 255 ? 255 : code);
	for (int i = 0; i < 8; i++)
		hdr[5 + i] = (unsigned char)(size >> (8 * i));
	if (write(out, hdr, sizeof hdr) != (ssize_t)sizeof hdr)
		_exit(1);
	char buf[65536];
	/* Exactly `size` bytes, whatever the file does meanwhile: zeros for what
	 * shrank, the rest cut off. */
	for (uint64_t left = size; left;) {
		size_t want = left < sizeof buf ? (size_t)left : sizeof buf;
		ssize_t n = read(fd, buf, want);
		if (n <= 0) {
			memset(buf, 0, want);
			n = (ssize_t)want;
		}
		if (write(out, buf, (size_t)n) != n)
			_exit(1);
		left -= (uint64_t)n;
	}
	_exit(0);
}

static void send_artifacts(const struct job *j, const char *root, int out)
{
	for (size_t i = 0; j->artifacts[i]; i++) {
		pid_t pid = fork();
		if (pid == 0)
			send_artifact(j, root, i, out);
		int ws;
		while (pid > 0 && waitpid(pid, &ws, 0) < 0 && errno == EINTR)
			;
	}
}

/* Reap every process until the workload's own (`pid`) ends: orphans are
 * re-parented to us and reaped on the way. The host's stop request (a byte on
 * the exit channel, `ctl`: the supervisor stops the cell on SIGTERM, timeout or
 * TTL and allows gracefulShutdownSeconds before it kills the VM) becomes
 * SIGTERM to every process but this one, as the host kernel's would be for a
 * stub cell; the workload's end is then reported as any other. SIGCHLD is
 * blocked (before the fork) and read from a signalfd, so no child's end is
 * missed between a reap and the poll. Returns the workload's wait status. */
static int wait_workload(pid_t pid, int ctl)
{
	sigset_t chld;
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	int sfd = signalfd(-1, &chld, SFD_CLOEXEC);
	bool listening = ctl >= 0;
	for (;;) {
		int ws;
		pid_t w;
		while ((w = waitpid(-1, &ws, WNOHANG)) > 0)
			if (w == pid) {
				if (sfd >= 0)
					close(sfd);
				return ws;
			}
		if (w < 0 && errno != EINTR)
			return 125 << 8; /* no child left: cannot happen while `pid` is unreaped */
		struct pollfd p[2] = {{.fd = sfd, .events = POLLIN}, {.fd = ctl, .events = POLLIN}};
		if (sfd < 0) {
			/* No signalfd: reap by blocking (a stop request is then not seen). */
			if ((w = waitpid(-1, &ws, 0)) == pid)
				return ws;
			continue;
		}
		if (poll(p, listening ? 2 : 1, -1) < 0)
			continue;
		if (p[0].revents) {
			struct signalfd_siginfo si;
			if (read(sfd, &si, sizeof si) < 0) {
			}
		}
		if (listening && p[1].revents) {
			char b[16];
			ssize_t n = read(ctl, b, sizeof b);
			if (n < 0 && errno == EINTR)
				continue;
			/* One request is all there is; the end of the channel (or an
			 * error) means no request will come. */
			listening = false;
			if (n > 0) {
				note("stop requested: SIGTERM to the workload");
				kill(-1, SIGTERM);
			}
		}
	}
}

/* 128+N for a signal, the exit status otherwise. */
static int32_t status_of(int ws)
{
	return WIFSIGNALED(ws) ? 128 + WTERMSIG(ws) : WEXITSTATUS(ws);
}

int main(void)
{
	prctl(PR_SET_NAME, "cellos-init");
	/* The key lives here; nothing of this process may be dumped or read. */
	prctl(PR_SET_DUMPABLE, 0);
	mount_basics();
	fill_std_fds();
	note("starts");
	if (sodium_init() < 0)
		say("libsodium: cannot initialise");

	unsigned char *key = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (key == MAP_FAILED || mlock(key, 4096) < 0)
		say("locked memory for the key: %s", strerror(errno));
	if (key != MAP_FAILED)
		madvise(key, 4096, MADV_DONTDUMP);
	struct job j = {.key = key == MAP_FAILED ? NULL : key};
	char why[256] = "";
	size_t len = 0;
	char *text = read_all(JOB_FILE, &len);
	bool ok = text && j.key && job_parse(text, len, &j, why, sizeof why) == 0;
	if (!text)
		snprintf(why, sizeof why, "%s: %s", JOB_FILE, strerror(errno));
	if (text) {
		sodium_memzero(text, len);
		free(text);
	}
	/* The job file held the key: it goes before anything else runs. */
	unlink(JOB_FILE);
	char *cmdline = read_all("/proc/cmdline", &len);
	if (ok && cmdline && job_argv_from_cmdline(cmdline, &j, why, sizeof why) < 0)
		ok = false;
	if (ok && !j.argv) {
		snprintf(why, sizeof why, "no argv (neither cellos.argv= nor the job file)");
		ok = false;
	}
	if (!ok) {
		say("%s", why);
		end_vm(j.reset);
	}
	load_modules(j.modules, cmdline);
	free(cmdline);

	if (j.uid) {
		wl_uid = j.uid;
		wl_gid = j.gid;
	}
	/* Tools that look their user up find one (the initramfs root only). */
	if (!j.root_device) {
		FILE *pw = fopen("/etc/passwd", "ae");
		if (pw) {
			fprintf(pw, "cellos-run:x:%u:%u:cellos:/workspace:/bin/sh\n", (unsigned)wl_uid, (unsigned)wl_gid);
			fclose(pw);
		}
		FILE *gr = fopen("/etc/group", "ae");
		if (gr) {
			fprintf(gr, "cellos-run:x:%u:\n", (unsigned)wl_gid);
			fclose(gr);
		}
	}
	int32_t status = 125;
	setup_net(&j);
	const char *root = setup_fs(&j);

	/* The channels, once everything else is ready: the ports come up while
	 * the file systems are set up. A job that ends with a reset is
	 * Firecracker's, whose channels are hybrid vsock (guest/fc_guest.h);
	 * QEMU's are virtio-serial ports. The exit channel goes both ways: the
	 * report out, the host's stop request in. */
	int ch[CH_N];
	for (int i = 0; i < CH_N; i++)
		if ((ch[i] = j.reset ? fc_vsock_connect(FC_GUEST_PORT_BASE + (unsigned)i)
				     : open_port(chan_names[i], i == CH_EXIT ? O_RDWR : O_WRONLY)) < 0) {
			say("channel %s: not found", chan_names[i]);
			end_vm(j.reset);
		}
	int rep[2];
	if (root && pipe2(rep, O_CLOEXEC) == 0) {
		/* Blocked before the fork (wait_workload reads it from a signalfd);
		 * the child unblocks everything. */
		sigset_t chld;
		sigemptyset(&chld);
		sigaddset(&chld, SIGCHLD);
		sigprocmask(SIG_BLOCK, &chld, NULL);
		note("workload starts");
		pid_t pid = fork();
		if (pid == 0) {
			close(rep[0]);
			child(&j, root, ch[CH_OUT], ch[CH_ERR], rep[1]);
		}
		close(rep[1]);
		int code = 0;
		bool exec_failed = pid > 0 && read(rep[0], &code, sizeof code) == (ssize_t)sizeof code;
		close(rep[0]);
		int ws = pid > 0 ? wait_workload(pid, ch[CH_EXIT]) : 0;
		if (pid < 0)
			say("fork: %s", strerror(errno));
		else if (exec_failed) {
			char msg[300];
			int n = snprintf(msg, sizeof msg, "cellos-init: %s: %s\n", j.argv[0], strerror(code));
			if (write(ch[CH_ERR], msg, (size_t)n) < 0) {
			}
			status = code == ENOENT ? 127 : 126;
		} else
			status = status_of(ws);
		/* What the workload left behind goes with it. */
		kill(-1, SIGKILL);
		while (wait(NULL) > 0 || errno == EINTR)
			;
		note("workload ended");
		send_artifacts(&j, root, ch[CH_ART]);
	}
	close(ch[CH_ART]);
	close(ch[CH_OUT]);
	close(ch[CH_ERR]);
	unsigned char frame[VM_FRAME_BYTES];
	vm_frame_make(j.key, j.run_id, status, frame);
	sodium_memzero(j.key, VM_KEY_BYTES);
	if (write(ch[CH_EXIT], frame, sizeof frame) != (ssize_t)sizeof frame)
		say("exit report: %s", strerror(errno));
	close(ch[CH_EXIT]);
	note("reported, powering off");
	end_vm(j.reset);
}
