/* One cell's cgroup leaves: plan, make, enter/leave around the clone, limits,
 * signals, usage, destroy. See isolate/cgroup.h. */
#include "isolate/cgroup.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "isolate/cgroup_delegate.h"
#include "isolate/cgroup_host.h"
#include "util/fileio.h"
#include "util/ids.h"
#include "util/log.h"

/* "key value" lines (cpu.stat, memory.events, memory.oom_control): the values
 * of keys[0..n), in one read. True when all were found. */
static bool read_keys(int dirfd, const char *file, const char *const *keys, long long *out, int n)
{
	char buf[2048];
	if (file_read_at(dirfd, file, buf, sizeof buf) <= 0)
		return false;
	int found = 0;
	for (char *p = buf; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
		for (int i = 0; i < n; i++) {
			size_t klen = strlen(keys[i]);
			if (strncmp(p, keys[i], klen) == 0 && p[klen] == ' ') {
				out[i] = strtoll(p + klen + 1, NULL, 10);
				found++;
			}
		}
	return found == n;
}

static bool read_ll(int dirfd, const char *file, long long *out)
{
	char buf[64];
	if (file_read_at(dirfd, file, buf, sizeof buf) <= 0)
		return false;
	char *end;
	errno = 0;
	*out = strtoll(buf, &end, 10);
	return errno == 0 && end != buf;
}

static void close_dir(struct cgroup_dir *d)
{
	if (d->fd >= 0)
		close(d->fd);
	d->fd = -1;
}

/* ---- the leaves ---- */

/* The user-facing name of the limit carried by controller i, for messages. */
static const char *field_of(const struct cgroup_cell *cg, int i)
{
	static const char *const fields[CG_NCTRL] = {"run.limits.memoryMaxBytes", "run.limits.pidsMax",
						     "run.limits.cpuMax"};
	return (i == CG_IDX_CPU && cg->cpu_env) ? "CELLOS_CGROUP_CPU_MAX" : fields[i];
}

/* Record why (part of) the limits is not in force; the first few reasons are kept. */
static void note(struct cgroup_cell *cg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(struct cgroup_cell *cg, const char *fmt, ...)
{
	size_t len = strlen(cg->error);
	if (len + 8 >= sizeof cg->error)
		return;
	if (len)
		len += (size_t)snprintf(cg->error + len, sizeof cg->error - len, "; ");
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cg->error + len, sizeof cg->error - len, fmt, ap);
	va_end(ap);
}

void cgroup_cell_init(struct cgroup_cell *cg)
{
	memset(cg, 0, sizeof *cg);
	cg->v2.fd = -1;
	for (int i = 0; i < CG_NCTRL; i++)
		cg->v1[i].fd = -1;
}

bool cgroup_cell_any(const struct cgroup_cell *cg)
{
	if (cg->v2.fd >= 0)
		return true;
	for (int i = 0; i < CG_NCTRL; i++)
		if (cg->v1[i].fd >= 0)
			return true;
	return false;
}

int cgroup_cell_plan(struct cgroup_cell *cg, const char *parent, const char *name, const struct cgroup_limits *l,
		     struct err *e)
{
	cleanup_free struct cgroup_host *h = malloc(sizeof *h);
	if (!h)
		return err_set(e, "out of memory");
	cg->want = cgroup_limits_ctrls(l);
	cg->cpu_env = l->cpu_from_env;
	/* A CELLOS_CGROUP_PARENT may lie in any hierarchy: that needs them all. */
	if (cgroup_host_load(h, parent == NULL, e) < 0) {
		for (int i = 0; i < CG_NCTRL; i++)
			if (cg->want & (1u << i))
				note(cg, "%s: %s", field_of(cg, i), e->msg);
		return -1;
	}

	char dir[PATH_MAX];
	unsigned covered = 0, noted = 0;
	struct err pe = {0};
	if (h->v2 >= 0 && cgroup_parent_dir(h, -1, parent, dir, sizeof dir, &pe) == 0 &&
	    snprintf(cg->v2.path, sizeof cg->v2.path, "%s/%s", dir, name) < (int)sizeof cg->v2.path) {
		/* A supervisor started from inside the shared `cellos-supervisor`
		 * leaf puts its cell beside that leaf, not under it. */
		char *base = strrchr(dir, '/');
		if (!parent && base && base != dir && strcmp(base, "/cellos-supervisor") == 0) {
			*base = '\0';
			snprintf(cg->v2.path, sizeof cg->v2.path, "%s/%s", dir, name);
		}
		snprintf(cg->v2_parent, sizeof cg->v2_parent, "%s", dir);
		unsigned avail = cgroup_read_ctrls(dir, "cgroup.controllers");
		unsigned enabled = (avail & (cg->want | CG_MEMORY)) ? cgroup_read_ctrls(dir, "cgroup.subtree_control") : 0;
		/* Controllers are turned on for limits only; memory accounting comes
		 * along when the parent already hands the controller down. */
		cg->v2_ctrls = (cg->want & avail) | (CG_MEMORY & enabled);
		cg->v2_enable = cg->v2_ctrls & ~enabled;
		covered = cg->v2_ctrls;
	} else {
		cg->v2.path[0] = '\0';
		log_debug("cgroup: no v2 leaf: %s", pe.msg[0] ? pe.msg : "no cgroup v2 hierarchy");
	}

	/* v1 (hybrid hosts): memory always, for peak usage and OOM kills; pids and
	 * cpu when limited. */
	unsigned v1 = (cg->want | CG_MEMORY) & ~covered;
	for (int i = 0; i < CG_NCTRL; i++) {
		if (!(v1 & (1u << i)) || h->v1[i] < 0)
			continue;
		struct cgroup_dir *d = &cg->v1[i];
		bool mapped;
		pe = (struct err){0};
		if (cgroup_parent_dir(h, i, parent, dir, sizeof dir, &pe) < 0 ||
		    cgroup_leaf_parent(h, i, NULL, d->own, sizeof d->own, &mapped, &pe) < 0 ||
		    snprintf(d->path, sizeof d->path, "%s/%s", dir, name) >= (int)sizeof d->path) {
			d->path[0] = '\0';
			if (cg->want & (1u << i))
				note(cg, "%s: %s", field_of(cg, i), pe.msg[0] ? pe.msg : "cgroup path too long");
			noted |= 1u << i;
			continue;
		}
		covered |= 1u << i;
	}
	for (int i = 0; i < CG_NCTRL; i++)
		if ((cg->want & ~covered & ~noted) & (1u << i))
			note(cg, "%s: no cgroup hierarchy with the %s controller is available", field_of(cg, i),
			     cgroup_ctrl_names[i]);
	if (!cg->v2.path[0] && !(covered & ~cg->v2_ctrls))
		return err_set(e, "no cgroup hierarchy to make the cell's leaf in");
	return 0;
}

size_t cgroup_cell_paths(const struct cgroup_cell *cg, const char **out, size_t max)
{
	size_t n = 0;
	if (cg->v2.path[0] && n < max)
		out[n++] = cg->v2.path;
	for (int i = 0; i < CG_NCTRL; i++)
		if (cg->v1[i].path[0] && n < max)
			out[n++] = cg->v1[i].path;
	return n;
}

static int make_dir(struct cgroup_dir *d)
{
	if (mkdir(d->path, 0755) < 0)
		return -1;
	d->fd = open(d->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (d->fd < 0) {
		int saved = errno;
		rmdir(d->path);
		errno = saved;
		return -1;
	}
	return 0;
}

void cgroup_cell_make(struct cgroup_cell *cg)
{
	if (cg->v2.path[0]) {
		if (cg->v2_enable && cgroup_v2_enable(cg->v2_parent, cg->v2_enable) < 0) {
			int errnum = errno;
			for (int i = 0; i < CG_NCTRL; i++)
				if (cg->v2_enable & (1u << i))
					note(cg, "%s: cannot enable the %s controller in %s/cgroup.subtree_control: %s%s",
					     field_of(cg, i), cgroup_ctrl_names[i], cg->v2_parent, strerror(errnum),
					     errnum == EBUSY ? " (other processes live there; set CELLOS_CGROUP_PARENT"
							       " to a delegated cgroup)"
							     : "");
			cg->v2_ctrls &= ~cg->v2_enable;
		}
		if (make_dir(&cg->v2) < 0) {
			int errnum = errno;
			log_debug("cgroup: v2 leaf %s: %s", cg->v2.path, strerror(errnum));
			for (int i = 0; i < CG_NCTRL; i++)
				if (cg->v2_ctrls & cg->want & (1u << i))
					note(cg, "%s: cgroup leaf %s: %s", field_of(cg, i), cg->v2.path, strerror(errnum));
			cg->v2.path[0] = '\0';
			cg->v2_ctrls = 0;
		} else {
			cg->has_kill = faccessat(cg->v2.fd, "cgroup.kill", W_OK, 0) == 0;
		}
	}
	for (int i = 0; i < CG_NCTRL; i++) {
		struct cgroup_dir *d = &cg->v1[i];
		if (!d->path[0] || make_dir(d) == 0)
			continue;
		int errnum = errno;
		log_debug("cgroup: v1 leaf %s: %s", d->path, strerror(errnum));
		if (cg->want & (1u << i))
			note(cg, "%s: cgroup leaf %s: %s", field_of(cg, i), d->path, strerror(errnum));
		d->path[0] = '\0';
	}
}

/* Nothing can clone into a v1 cgroup, and writing another process's pid into
 * cgroup.procs takes the global cgroup_threadgroup_rwsem for writing, whose
 * RCU grace period costs ~6.5 ms (measured on 6.18). Moving only the calling
 * thread ("0" into `tasks`) skips that lock on current kernels (~60 µs; older
 * ones take it too, which is slower but still correct): the supervisor's thread
 * steps into the leaves, clones the init there, and steps back out. */
void cgroup_cell_enter(struct cgroup_cell *cg)
{
	for (int i = 0; i < CG_NCTRL; i++) {
		struct cgroup_dir *d = &cg->v1[i];
		if (d->fd < 0)
			continue;
		if (file_write_at(d->fd, "tasks", "0") == 0) {
			d->joined = true;
			continue;
		}
		int errnum = errno;
		if (cg->want & (1u << i))
			note(cg, "%s: cannot enter %s: %s", field_of(cg, i), d->path, strerror(errnum));
		close_dir(d);
		rmdir(d->path);
		d->path[0] = '\0';
	}
}

int cgroup_cell_leave(struct cgroup_cell *cg, struct err *e)
{
	int rc = 0;
	for (int i = 0; i < CG_NCTRL; i++) {
		struct cgroup_dir *d = &cg->v1[i];
		if (!d->joined)
			continue;
		/* Should our cgroup have been removed meanwhile (we were its last
		 * member for a moment), go to its nearest ancestor: anywhere but the
		 * cell's leaf. */
		char dir[PATH_MAX], path[PATH_MAX + 8];
		snprintf(dir, sizeof dir, "%s", d->own);
		for (;;) {
			snprintf(path, sizeof path, "%s/tasks", dir);
			if (file_write_at(AT_FDCWD, path, "0") == 0) {
				d->joined = false;
				break;
			}
			char *slash = strrchr(dir, '/');
			if ((errno != ENOENT && errno != ENODEV) || !slash || slash == dir) {
				rc = err_sys(e, errno, "cgroup: the supervisor cannot go back to %s", d->own);
				break;
			}
			*slash = '\0';
		}
	}
	return rc;
}

static int fd_for(const struct cgroup_cell *cg, int i, bool *v2)
{
	*v2 = (cg->v2_ctrls & (1u << i)) && cg->v2.fd >= 0;
	return *v2 ? cg->v2.fd : cg->v1[i].fd;
}

static int apply_memory(struct cgroup_cell *cg, const struct cgroup_limits *l, struct err *e)
{
	bool v2;
	int fd = fd_for(cg, CG_IDX_MEMORY, &v2);
	if (fd < 0)
		return 0;
	char val[32];
	snprintf(val, sizeof val, "%lld", l->memory_max);
	long long cur = 0;
	int errnum;
	/* A limit below what the init already holds can never be honoured: v1
	 * refuses it (EBUSY), v2 would OOM-kill the init, so check first there. */
	if (v2 && read_ll(fd, "memory.current", &cur) && cur > l->memory_max)
		errnum = EBUSY;
	else
		errnum = file_write_at(fd, v2 ? "memory.max" : "memory.limit_in_bytes", val) < 0 ? errno : 0;
	if (errnum == EBUSY) {
		if (!v2)
			read_ll(fd, "memory.usage_in_bytes", &cur);
		return err_set(e, "run.limits.memoryMaxBytes: %lld bytes is less than the cell's own init already uses (%lld bytes)",
			       l->memory_max, cur);
	}
	if (errnum) {
		note(cg, "run.limits.memoryMaxBytes: cannot write the limit: %s", strerror(errnum));
		return 0;
	}
	/* Swap must not extend the limit: v2 gets no swap, v1 counts memory+swap
	 * against the same bound. Absent files mean no swap accounting (no swap). */
	const char *swap = v2 ? "memory.swap.max" : "memory.memsw.limit_in_bytes";
	if (file_write_at(fd, swap, v2 ? "0" : val) < 0 && errno != ENOENT) {
		note(cg, "run.limits.memoryMaxBytes: cannot bound swap: %s", strerror(errno));
		return 0;
	}
	cg->applied |= CG_MEMORY;
	return 0;
}

static void apply_pids(struct cgroup_cell *cg, const struct cgroup_limits *l)
{
	bool v2;
	int fd = fd_for(cg, CG_IDX_PIDS, &v2);
	if (fd < 0)
		return;
	char val[32];
	snprintf(val, sizeof val, "%lld", cgroup_pids_max_value(l));
	if (file_write_at(fd, "pids.max", val) < 0)
		note(cg, "run.limits.pidsMax: cannot write pids.max: %s", strerror(errno));
	else
		cg->applied |= CG_PIDS;
}

static void apply_cpu(struct cgroup_cell *cg, const struct cgroup_limits *l)
{
	bool v2;
	int fd = fd_for(cg, CG_IDX_CPU, &v2);
	if (fd < 0)
		return;
	char q[32], p[32], max[64];
	snprintf(q, sizeof q, "%lld", l->cpu_quota);
	snprintf(p, sizeof p, "%lld", l->cpu_period);
	cgroup_format_cpu_max(l, max, sizeof max);
	/* v1: the period first, so the quota is checked against the right one. */
	if (v2 ? file_write_at(fd, "cpu.max", max) < 0
	       : (file_write_at(fd, "cpu.cfs_period_us", p) < 0 || file_write_at(fd, "cpu.cfs_quota_us", q) < 0))
		note(cg, "%s: cannot write the CPU quota: %s", field_of(cg, CG_IDX_CPU), strerror(errno));
	else
		cg->applied |= CG_CPU;
}

int cgroup_cell_apply(struct cgroup_cell *cg, const struct cgroup_limits *l, struct err *e)
{
	if (l->memory_max && apply_memory(cg, l, e) < 0)
		return -1;
	if (l->pids_max)
		apply_pids(cg, l);
	if (l->cpu_quota)
		apply_cpu(cg, l);
	return 0;
}

/* A leaf that can list the cell's processes: v2 first, else any v1 one. */
static int procs_fd(const struct cgroup_cell *cg)
{
	if (cg->v2.fd >= 0)
		return cg->v2.fd;
	for (int i = 0; i < CG_NCTRL; i++)
		if (cg->v1[i].fd >= 0)
			return cg->v1[i].fd;
	return -1;
}


void cgroup_cell_signal(struct cgroup_cell *cg, int sig, pid_t except)
{
	if (sig == SIGKILL && except == 0 && cg->v2.fd >= 0 && cg->has_kill &&
	    file_write_at(cg->v2.fd, "cgroup.kill", "1") == 0)
		return;
	int fd = procs_fd(cg);
	if (fd >= 0)
		cgroup_signal_listed(fd, sig, except);
}

bool cgroup_cell_populated(struct cgroup_cell *cg)
{
	char buf[256];
	if (cg->v2.fd >= 0)
		return file_read_at(cg->v2.fd, "cgroup.events", buf, sizeof buf) > 0 && strstr(buf, "populated 1") != NULL;
	int fd = procs_fd(cg);
	return fd >= 0 && file_read_at(fd, "cgroup.procs", buf, sizeof buf) > 0;
}

bool cgroup_cell_wait_empty(struct cgroup_cell *cg, int timeout_ms)
{
	int64_t deadline = mono_ms() + timeout_ms;
	cleanup_close int fd = cg->v2.fd >= 0 ? openat(cg->v2.fd, "cgroup.events", O_RDONLY | O_CLOEXEC) : -1;
	bool empty = false;
	for (;;) {
		if (fd >= 0) {
			/* cgroup.events wakes pollers (POLLPRI) on every change. */
			char buf[256];
			ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
			buf[n > 0 ? n : 0] = '\0';
			empty = n > 0 && strstr(buf, "populated 0") != NULL;
		} else {
			empty = !cgroup_cell_populated(cg);
		}
		int64_t left = deadline - mono_ms();
		if (empty || left <= 0)
			break;
		if (fd >= 0)
			poll(&(struct pollfd){.fd = fd, .events = POLLPRI}, 1, (int)left);
		else
			nanosleep(&(struct timespec){0, 1000000}, NULL);
	}
	return empty;
}

void cgroup_cell_usage(struct cgroup_cell *cg, struct cgroup_usage *u)
{
	memset(u, 0, sizeof *u);
	long long v, cpu[2];
	static const char *const cpu_keys[] = {"user_usec", "system_usec"}, *const oom_key[] = {"oom_kill"};
	if (cg->v2.fd >= 0 && read_keys(cg->v2.fd, "cpu.stat", cpu_keys, cpu, 2)) {
		u->have_cpu = true;
		u->user_us = cpu[0];
		u->sys_us = cpu[1];
	}
	bool v2;
	int fd = fd_for(cg, CG_IDX_MEMORY, &v2);
	if (fd < 0)
		return;
	if (read_ll(fd, v2 ? "memory.peak" : "memory.max_usage_in_bytes", &v)) {
		u->mem_peak = v;
		u->have_mem = true;
	}
	if (read_keys(fd, v2 ? "memory.events" : "memory.oom_control", oom_key, &v, 1))
		u->oom_kills = v;
}


int cgroup_cell_destroy(struct cgroup_cell *cg, struct err *e)
{
	int rc = 0;
	bool stuck = false;
	for (int i = 0; i < CG_NCTRL; i++)
		stuck |= cg->v1[i].joined;
	if (stuck) {
		rc = err_set(e, "cgroup: the supervisor is still inside the cell's v1 leaves; leaving them to the next sweep");
	} else if (cgroup_cell_any(cg)) {
		/* Killed processes leave the cgroup once the kernel has torn them
		 * down, which is asynchronous: bounded wait, re-killing stragglers. */
		for (int i = 0; i < 50 && cgroup_cell_populated(cg); i++) {
			cgroup_cell_signal(cg, SIGKILL, 0);
			cgroup_cell_wait_empty(cg, 100);
		}
	}
	struct cgroup_dir *dirs[1 + CG_NCTRL] = {&cg->v2, &cg->v1[0], &cg->v1[1], &cg->v1[2]};
	for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
		struct cgroup_dir *d = dirs[i];
		if (d->fd < 0)
			continue;
		if (!stuck && cgroup_leaf_remove(d->path, d->fd) < 0 && rc == 0)
			rc = err_sys(e, errno, "cgroup leaf %s: cannot remove", d->path);
		close_dir(d);
	}
	return rc;
}

int cgroup_probe_limits(const char *parent, struct err *e)
{
	cleanup_free struct cgroup_host *h = malloc(sizeof *h);
	if (!h)
		return err_set(e, "out of memory");
	if (cgroup_host_load(h, parent == NULL, e) < 0)
		return -1;
	char dir[PATH_MAX], missing[128] = "";
	struct err pe = {0};
	unsigned avail = 0;
	bool v2_ok = h->v2 >= 0 && cgroup_parent_dir(h, -1, parent, dir, sizeof dir, &pe) == 0 && access(dir, W_OK) == 0;
	if (v2_ok)
		avail = cgroup_read_ctrls(dir, "cgroup.controllers");
	for (int i = 0; i < CG_NCTRL; i++) {
		if (avail & (1u << i))
			continue;
		if (h->v1[i] >= 0 && cgroup_parent_dir(h, i, parent, dir, sizeof dir, &pe) == 0 && access(dir, W_OK) == 0)
			continue;
		snprintf(missing + strlen(missing), sizeof missing - strlen(missing), "%s%s", missing[0] ? ", " : "",
			 cgroup_ctrl_names[i]);
	}
	if (missing[0])
		return err_set(e, "no writable cgroup hierarchy with the %s controller%s", missing,
			       strchr(missing, ',') ? "s" : "");
	return 0;
}
