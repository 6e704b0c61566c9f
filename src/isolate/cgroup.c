#include "isolate/cgroup.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include "util/ids.h"
#include "util/log.h"

static const char *const ctrl_names[CG_NCTRL] = {"memory", "pids", "cpu"};

/* ---- limits (pure) ---- */

void cgroup_limits_resolve(struct cgroup_limits *l, long long memory_max, long long spec_quota,
			   long long spec_period, long long env_quota, long long env_period, long long pids_max)
{
	*l = (struct cgroup_limits){.memory_max = memory_max > 0 ? memory_max : 0,
				    .pids_max = pids_max > 0 ? pids_max : 0};
	if (spec_quota > 0) {
		l->cpu_quota = spec_quota;
		l->cpu_period = spec_period > 0 ? spec_period : 100000;
	} else if (env_quota > 0) {
		l->cpu_quota = env_quota;
		l->cpu_period = env_period > 0 ? env_period : 100000;
		l->cpu_from_env = true;
	}
	if (l->cpu_quota && l->cpu_quota < CG_CPU_QUOTA_MIN) {
		l->cpu_quota = CG_CPU_QUOTA_MIN;
		l->cpu_raised = true;
	}
}

unsigned cgroup_limits_ctrls(const struct cgroup_limits *l)
{
	return (l->memory_max ? CG_MEMORY : 0u) | (l->pids_max ? CG_PIDS : 0u) | (l->cpu_quota ? CG_CPU : 0u);
}

void cgroup_format_cpu_max(const struct cgroup_limits *l, char *buf, size_t size)
{
	long long period = l->cpu_period > 0 ? l->cpu_period : 100000;
	if (l->cpu_quota > 0)
		snprintf(buf, size, "%lld %lld", l->cpu_quota, period);
	else
		snprintf(buf, size, "max %lld", period);
}

long long cgroup_pids_max_value(const struct cgroup_limits *l) { return l->pids_max ? l->pids_max + 1 : 0; }

/* ---- where the hierarchies are (pure) ---- */

/* mountinfo escapes blanks and backslashes in paths as \ooo. */
static void unescape(char *s)
{
	char *w = s;
	for (char *r = s; *r; r++) {
		if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7' && r[3] >= '0' &&
		    r[3] <= '7') {
			*w++ = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
			r += 3;
		} else {
			*w++ = *r;
		}
	}
	*w = '\0';
}

static unsigned ctrls_of(const char *list, char sep)
{
	unsigned out = 0;
	const char *p = list;
	while (*p) {
		size_t len = strcspn(p, sep == ',' ? "," : " \n");
		for (int i = 0; i < CG_NCTRL; i++)
			if (strlen(ctrl_names[i]) == len && strncmp(p, ctrl_names[i], len) == 0)
				out |= 1u << i;
		p += len;
		while (*p == sep || *p == '\n')
			p++;
	}
	return out;
}

/* `path` lies at or below `prefix` (whole components); *rest is what follows. */
static bool path_under(const char *path, const char *prefix, const char **rest)
{
	if (strcmp(prefix, "/") == 0) {
		*rest = path;
		return path[0] == '/';
	}
	size_t n = strlen(prefix);
	if (strncmp(path, prefix, n) != 0 || (path[n] != '\0' && path[n] != '/'))
		return false;
	*rest = path + n;
	return true;
}

static bool under_sysfs_cgroup(const char *mnt)
{
	const char *rest;
	return path_under(mnt, "/sys/fs/cgroup", &rest);
}

static void parse_mount_line(struct cgroup_host *h, char *line)
{
	char *f[64];
	int n = 0;
	for (char *save = NULL, *t = strtok_r(line, " ", &save); t && n < 64; t = strtok_r(NULL, " ", &save))
		f[n++] = t;
	int sep = -1;
	for (int i = 6; i < n; i++)
		if (strcmp(f[i], "-") == 0) {
			sep = i;
			break;
		}
	if (sep < 0 || sep + 3 >= n)
		return;
	bool v2 = strcmp(f[sep + 1], "cgroup2") == 0;
	if (!v2 && strcmp(f[sep + 1], "cgroup") != 0)
		return;
	if (h->n_mounts >= CG_MAX_MOUNTS)
		return;
	unescape(f[3]);
	unescape(f[4]);
	if (strlen(f[3]) >= CG_MNT_MAX || strlen(f[4]) >= CG_MNT_MAX)
		return;
	struct cgroup_mount *m = &h->mounts[h->n_mounts];
	snprintf(m->root, sizeof m->root, "%s", f[3]);
	snprintf(m->mnt, sizeof m->mnt, "%s", f[4]);
	m->v2 = v2;
	m->ctrls = v2 ? 0 : ctrls_of(f[sep + 3], ',');
	int idx = (int)h->n_mounts++;
	/* The same hierarchy may be mounted more than once: prefer the usual place. */
	if (v2 && (h->v2 < 0 || (!under_sysfs_cgroup(h->mounts[h->v2].mnt) && under_sysfs_cgroup(m->mnt))))
		h->v2 = idx;
	for (int i = 0; i < CG_NCTRL; i++)
		if ((m->ctrls & (1u << i)) &&
		    (h->v1[i] < 0 || (!under_sysfs_cgroup(h->mounts[h->v1[i]].mnt) && under_sysfs_cgroup(m->mnt))))
			h->v1[i] = idx;
}

static void parse_self_line(struct cgroup_host *h, char *line)
{
	char *c1 = strchr(line, ':');
	char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
	if (!c2)
		return;
	*c1 = *c2 = '\0';
	const char *path = c2 + 1;
	if (strcmp(line, "0") == 0 && c1 + 1 == c2) {
		snprintf(h->own_v2, sizeof h->own_v2, "%s", path);
		return;
	}
	unsigned ctrls = ctrls_of(c1 + 1, ',');
	for (int i = 0; i < CG_NCTRL; i++)
		if (ctrls & (1u << i))
			snprintf(h->own_v1[i], sizeof h->own_v1[i], "%s", path);
}

static void each_line(struct cgroup_host *h, const char *text, void (*fn)(struct cgroup_host *, char *))
{
	char line[2 * PATH_MAX];
	for (const char *p = text; p && *p;) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		if (len < sizeof line) {
			memcpy(line, p, len);
			line[len] = '\0';
			fn(h, line);
		}
		p = nl ? nl + 1 : NULL;
	}
}

void cgroup_host_parse(struct cgroup_host *h, const char *mountinfo, const char *self_cgroup)
{
	/* Not a memset: the struct is ~50 KiB, mostly path buffers that stay unused. */
	h->n_mounts = 0;
	h->own_v2[0] = '\0';
	h->v2 = -1;
	for (int i = 0; i < CG_NCTRL; i++) {
		h->v1[i] = -1;
		h->own_v1[i][0] = '\0';
	}
	each_line(h, mountinfo, parse_mount_line);
	each_line(h, self_cgroup, parse_self_line);
}

/* A hierarchy path (as /proc/self/cgroup shows it) -> its directory under m. */
static int hier_to_dir(const struct cgroup_mount *m, const char *hp, char *out, size_t size)
{
	const char *rest;
	if (!path_under(hp, m->root, &rest))
		return -1;
	if (strcmp(rest, "/") == 0)
		rest = "";
	return snprintf(out, size, "%s%s", m->mnt, rest) < (int)size ? 0 : -1;
}

/* The mount holding directory `path` (longest mount point), and the path inside
 * the hierarchy. */
static int locate(const struct cgroup_host *h, const char *path, char *hp, size_t size)
{
	int best = -1;
	size_t best_len = 0;
	const char *rest = NULL;
	for (size_t i = 0; i < h->n_mounts; i++) {
		const char *r;
		size_t len = strlen(h->mounts[i].mnt);
		if (path_under(path, h->mounts[i].mnt, &r) && (best < 0 || len > best_len)) {
			best = (int)i;
			best_len = len;
			rest = r;
		}
	}
	if (best < 0)
		return -1;
	const char *root = h->mounts[best].root;
	int n = strcmp(root, "/") == 0 ? snprintf(hp, size, "%s", rest[0] ? rest : "/")
				       : snprintf(hp, size, "%s%s", root, rest);
	return n < (int)size ? best : -1;
}

int cgroup_leaf_parent(const struct cgroup_host *h, int which, const char *parent, char *out, size_t size,
		       bool *mapped, struct err *e)
{
	int ti = which < 0 ? h->v2 : h->v1[which];
	const char *what = which < 0 ? "cgroup v2" : ctrl_names[which];
	*mapped = false;
	if (ti < 0)
		return err_set(e, "no %s hierarchy is mounted", what);
	const struct cgroup_mount *tm = &h->mounts[ti];
	if (parent) {
		char clean[PATH_MAX];
		size_t len = (size_t)snprintf(clean, sizeof clean, "%s", parent);
		while (len > 1 && clean[len - 1] == '/')
			clean[--len] = '\0';
		char hp[PATH_MAX];
		int pi = locate(h, clean, hp, sizeof hp);
		if (pi < 0)
			return err_set(e, "%s is not inside a mounted cgroup hierarchy", parent);
		const struct cgroup_mount *pm = &h->mounts[pi];
		if (pi == ti || (which < 0 ? pm->v2 : (pm->ctrls & (1u << which)) != 0)) {
			if (snprintf(out, size, "%s", clean) >= (int)size)
				return err_set(e, "cgroup path too long");
			return 0;
		}
		*mapped = true;
		if (hier_to_dir(tm, hp, out, size) < 0)
			return err_set(e, "%s (%s) is not visible in the %s hierarchy at %s", parent, hp, what, tm->mnt);
		return 0;
	}
	const char *own = which < 0 ? h->own_v2 : h->own_v1[which];
	if (!own[0])
		return err_set(e, "the supervisor's own %s cgroup is unknown", what);
	if (hier_to_dir(tm, own, out, size) < 0)
		return err_set(e, "the supervisor's %s cgroup %s is not visible at %s", what, own, tm->mnt);
	return 0;
}

/* ---- small file helpers ---- */

static char *read_all(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	size_t cap = 8192, len = 0;
	char *buf = malloc(cap);
	while (buf) {
		ssize_t n = read(fd, buf + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
		if (len + 1 == cap) {
			char *nb = cap < (1u << 22) ? realloc(buf, cap * 2) : NULL;
			if (!nb) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = nb;
			cap *= 2;
		}
	}
	close(fd);
	if (buf)
		buf[len] = '\0';
	return buf;
}

/* Read a small file of a cgroup directory; returns its length or -1. */
static ssize_t read_at(int dirfd, const char *file, char *buf, size_t size)
{
	int fd = openat(dirfd, file, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, size - 1);
	int saved = errno;
	close(fd);
	errno = saved;
	if (n >= 0)
		buf[n] = '\0';
	return n;
}

static int write_at(int dirfd, const char *file, const char *s)
{
	int fd = openat(dirfd, file, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = write(fd, s, strlen(s));
	int saved = errno;
	close(fd);
	errno = saved;
	return n < 0 ? -1 : 0;
}

static int write_path(const char *path, const char *s) { return write_at(AT_FDCWD, path, s); }

/* "key value" lines (cpu.stat, memory.events, memory.oom_control): the values
 * of keys[0..n), in one read. True when all were found. */
static bool read_keys(int dirfd, const char *file, const char *const *keys, long long *out, int n)
{
	char buf[2048];
	if (read_at(dirfd, file, buf, sizeof buf) <= 0)
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
	if (read_at(dirfd, file, buf, sizeof buf) <= 0)
		return false;
	char *end;
	errno = 0;
	*out = strtoll(buf, &end, 10);
	return errno == 0 && end != buf;
}

static bool is_dir(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static void close_dir(struct cgroup_dir *d)
{
	if (d->fd >= 0)
		close(d->fd);
	d->fd = -1;
}

/* The usual layouts, recognised with a few statfs() calls instead of parsing
 * /proc/self/mountinfo (~100 µs, more while other cells are being set up: its
 * reader takes the mount namespace lock that every new mount namespace takes
 * for writing). Only when the supervisor's own cgroups are found where they
 * should be; anything unusual (co-mounted controllers, a bind-mounted subtree)
 * goes the mountinfo way. */
/* Add mount point `mnt` (root "/") when the supervisor's cgroup `own` is a
 * directory there; false when it is not (the layout is not the usual one). */
static bool add_fast(struct cgroup_host *h, const char *mnt, int which, const char *own, dev_t *dev)
{
	char dir[PATH_MAX + 64];
	struct stat st;
	snprintf(dir, sizeof dir, "%s%s", mnt, strcmp(own, "/") == 0 ? "" : own);
	if (!own[0] || stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
		return false;
	*dev = st.st_dev;
	struct cgroup_mount *m = &h->mounts[h->n_mounts];
	snprintf(m->mnt, sizeof m->mnt, "%s", mnt);
	snprintf(m->root, sizeof m->root, "/");
	m->v2 = which < 0;
	m->ctrls = which < 0 ? 0 : 1u << which;
	*(which < 0 ? &h->v2 : &h->v1[which]) = (int)h->n_mounts++;
	return true;
}

/* The usual layouts, recognised with a few statfs() calls instead of parsing
 * /proc/self/mountinfo (~100 µs, more while other cells are being set up: its
 * reader takes the mount namespace lock that every new mount namespace takes
 * for writing). Only when the supervisor's own cgroups are found where they
 * should be; anything unusual (co-mounted controllers, a bind-mounted subtree)
 * goes the mountinfo way. */
static bool host_fast(struct cgroup_host *h)
{
	struct statfs sf;
	dev_t dev, devs[CG_NCTRL];
	if (statfs("/sys/fs/cgroup", &sf) < 0)
		return false;
	if (sf.f_type == CGROUP2_SUPER_MAGIC) /* pure v2 */
		return add_fast(h, "/sys/fs/cgroup", -1, h->own_v2, &dev);
	if (sf.f_type != TMPFS_MAGIC)
		return false;
	/* Hybrid (v1 controllers and /sys/fs/cgroup/unified) or v1 only. */
	if (statfs("/sys/fs/cgroup/unified", &sf) == 0 && sf.f_type == CGROUP2_SUPER_MAGIC &&
	    !add_fast(h, "/sys/fs/cgroup/unified", -1, h->own_v2, &dev))
		return false;
	for (int i = 0; i < CG_NCTRL; i++) {
		char mnt[64];
		snprintf(mnt, sizeof mnt, "/sys/fs/cgroup/%s", ctrl_names[i]);
		if (statfs(mnt, &sf) < 0 || sf.f_type != CGROUP_SUPER_MAGIC)
			continue;
		if (!add_fast(h, mnt, i, h->own_v1[i], &devs[i]))
			return false;
		/* One hierarchy per controller: co-mounted ones share the device. */
		for (int j = 0; j < i; j++)
			if (h->v1[j] >= 0 && devs[j] == devs[i])
				return false;
	}
	return h->n_mounts > 0;
}

int cgroup_host_load(struct cgroup_host *h, bool fast, struct err *e)
{
	char *self = read_all("/proc/self/cgroup");
	if (!self)
		return err_sys(e, errno, "read /proc/self/cgroup");
	cgroup_host_parse(h, "", self);
	char *mi = NULL;
	int rc = 0;
	if (!fast || !host_fast(h)) {
		if (!(mi = read_all("/proc/self/mountinfo")))
			rc = err_sys(e, errno, "read /proc/self/mountinfo");
		else
			cgroup_host_parse(h, mi, self);
	}
	free(mi);
	free(self);
	return rc;
}

/* ---- one cell ---- */

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

/* The parent in hierarchy `which`, falling back to the supervisor's own cgroup
 * when a CELLOS_CGROUP_PARENT mapped from another hierarchy does not exist here. */
static int parent_dir(const struct cgroup_host *h, int which, const char *parent, char *out, size_t size,
		      struct err *e)
{
	bool mapped;
	if (cgroup_leaf_parent(h, which, parent, out, size, &mapped, e) < 0)
		return -1;
	if (mapped && !is_dir(out)) {
		log_debug("cgroup: %s has no counterpart %s; using the supervisor's own cgroup there", parent, out);
		return cgroup_leaf_parent(h, which, NULL, out, size, &mapped, e);
	}
	return 0;
}

static unsigned read_ctrl_list(const char *dir, const char *file)
{
	char path[PATH_MAX + 32], buf[512];
	snprintf(path, sizeof path, "%s/%s", dir, file);
	return read_at(AT_FDCWD, path, buf, sizeof buf) > 0 ? ctrls_of(buf, ' ') : 0;
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
	if (h->v2 >= 0 && parent_dir(h, -1, parent, dir, sizeof dir, &pe) == 0 &&
	    snprintf(cg->v2.path, sizeof cg->v2.path, "%s/%s", dir, name) < (int)sizeof cg->v2.path) {
		/* A supervisor started from inside the shared `cellos-supervisor`
		 * leaf puts its cell beside that leaf, not under it. */
		char *base = strrchr(dir, '/');
		if (!parent && base && base != dir && strcmp(base, "/cellos-supervisor") == 0) {
			*base = '\0';
			snprintf(cg->v2.path, sizeof cg->v2.path, "%s/%s", dir, name);
		}
		snprintf(cg->v2_parent, sizeof cg->v2_parent, "%s", dir);
		unsigned avail = read_ctrl_list(dir, "cgroup.controllers");
		unsigned enabled = (avail & (cg->want | CG_MEMORY)) ? read_ctrl_list(dir, "cgroup.subtree_control") : 0;
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
		if (parent_dir(h, i, parent, dir, sizeof dir, &pe) < 0 ||
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
			     ctrl_names[i]);
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

/* pid is a cellos-supervisor (its comm, cut to 15 bytes by the kernel). */
static bool is_supervisor(long pid)
{
	char path[64], comm[32];
	snprintf(path, sizeof path, "/proc/%ld/comm", pid);
	return read_at(AT_FDCWD, path, comm, sizeof comm) > 0 && strncmp(comm, "cellos-supervis", 15) == 0;
}

/* The v2 no-internal-process rule: a non-root cgroup with processes of its own
 * cannot hand controllers down. When the only processes in the parent are
 * supervisors (ours and concurrent ones), move ourselves into the sibling leaf
 * `cellos-supervisor` (shared by all of them, so it is made once and never
 * multiplies). Anything else living there is not ours to move. */
static int move_self_aside(struct cgroup_cell *cg)
{
	char path[PATH_MAX + 64];
	snprintf(path, sizeof path, "%s/cgroup.procs", cg->v2_parent);
	cleanup_free char *procs = read_all(path);
	if (!procs)
		return -1;
	bool self_here = false;
	for (char *p = procs; *p;) {
		char *end;
		long pid = strtol(p, &end, 10);
		if (end == p)
			break;
		if (pid == (long)getpid())
			self_here = true;
		else if (!is_supervisor(pid)) {
			errno = EBUSY;
			return -1;
		}
		p = end + strspn(end, "\n");
	}
	if (!self_here) {
		errno = EBUSY; /* someone else's processes, or a race: nothing of ours to move */
		return -1;
	}
	snprintf(path, sizeof path, "%s/cellos-supervisor", cg->v2_parent);
	if (mkdir(path, 0755) < 0 && errno != EEXIST)
		return -1;
	snprintf(path, sizeof path, "%s/cellos-supervisor/cgroup.procs", cg->v2_parent);
	if (write_path(path, "0") < 0)
		return -1;
	log_debug("cgroup: moved the supervisor into %s/cellos-supervisor (no-internal-process rule)", cg->v2_parent);
	return 0;
}

static int enable_v2(struct cgroup_cell *cg)
{
	char text[64] = "", path[PATH_MAX + 32];
	for (int i = 0; i < CG_NCTRL; i++)
		if (cg->v2_enable & (1u << i))
			snprintf(text + strlen(text), sizeof text - strlen(text), "%s+%s", text[0] ? " " : "",
				 ctrl_names[i]);
	snprintf(path, sizeof path, "%s/cgroup.subtree_control", cg->v2_parent);
	if (write_path(path, text) == 0)
		return 0;
	if (errno != EBUSY || move_self_aside(cg) < 0)
		return -1;
	/* Concurrent supervisors in the same parent move aside too; give them a
	 * moment rather than fail the limits on a race. */
	for (int i = 0; i < 50; i++) {
		if (write_path(path, text) == 0)
			return 0;
		if (errno != EBUSY)
			return -1;
		nanosleep(&(struct timespec){0, 1000000}, NULL);
	}
	return -1;
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
		if (cg->v2_enable && enable_v2(cg) < 0) {
			int errnum = errno;
			for (int i = 0; i < CG_NCTRL; i++)
				if (cg->v2_enable & (1u << i))
					note(cg, "%s: cannot enable the %s controller in %s/cgroup.subtree_control: %s%s",
					     field_of(cg, i), ctrl_names[i], cg->v2_parent, strerror(errnum),
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
		if (write_at(d->fd, "tasks", "0") == 0) {
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
			if (write_path(path, "0") == 0) {
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
		errnum = write_at(fd, v2 ? "memory.max" : "memory.limit_in_bytes", val) < 0 ? errno : 0;
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
	if (write_at(fd, swap, v2 ? "0" : val) < 0 && errno != ENOENT) {
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
	if (write_at(fd, "pids.max", val) < 0)
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
	if (v2 ? write_at(fd, "cpu.max", max) < 0
	       : (write_at(fd, "cpu.cfs_period_us", p) < 0 || write_at(fd, "cpu.cfs_quota_us", q) < 0))
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

/* Signal every process listed in dirfd's cgroup.procs but `except`; returns how many. */
static int signal_listed(int dirfd, int sig, pid_t except)
{
	int fd = openat(dirfd, "cgroup.procs", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	FILE *f = fdopen(fd, "r");
	if (!f) {
		close(fd);
		return 0;
	}
	int n = 0;
	long pid;
	while (fscanf(f, "%ld", &pid) == 1)
		if ((pid_t)pid != except && (pid_t)pid != getpid()) { /* never ourselves */
			kill((pid_t)pid, sig);
			n++;
		}
	fclose(f);
	return n;
}

void cgroup_cell_signal(struct cgroup_cell *cg, int sig, pid_t except)
{
	if (sig == SIGKILL && except == 0 && cg->v2.fd >= 0 && cg->has_kill &&
	    write_at(cg->v2.fd, "cgroup.kill", "1") == 0)
		return;
	int fd = procs_fd(cg);
	if (fd >= 0)
		signal_listed(fd, sig, except);
}

bool cgroup_cell_populated(struct cgroup_cell *cg)
{
	char buf[256];
	if (cg->v2.fd >= 0)
		return read_at(cg->v2.fd, "cgroup.events", buf, sizeof buf) > 0 && strstr(buf, "populated 1") != NULL;
	int fd = procs_fd(cg);
	return fd >= 0 && read_at(fd, "cgroup.procs", buf, sizeof buf) > 0;
}

bool cgroup_cell_wait_empty(struct cgroup_cell *cg, int timeout_ms)
{
	int64_t deadline = mono_ms() + timeout_ms;
	int fd = cg->v2.fd >= 0 ? openat(cg->v2.fd, "cgroup.events", O_RDONLY | O_CLOEXEC) : -1;
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
	if (fd >= 0)
		close(fd);
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

/* rmdir, retrying while the kernel finishes tearing the last processes down.
 * The wait usually takes tens of microseconds, so the back-off starts small
 * (50 us, doubling to 1 ms) instead of costing every cell a whole millisecond;
 * about 2 s in all. */
static int remove_dir(const char *path, int dirfd)
{
	long ns = 50000;
	for (int i = 0; i < 2010; i++) {
		if (rmdir(path) == 0 || errno == ENOENT)
			return 0;
		if (errno != EBUSY)
			return -1;
		if (dirfd >= 0 && !(i % 10))
			signal_listed(dirfd, SIGKILL, 0);
		nanosleep(&(struct timespec){0, ns}, NULL);
		if (ns < 1000000)
			ns *= 2;
	}
	return -1;
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
		if (!stuck && remove_dir(d->path, d->fd) < 0 && rc == 0)
			rc = err_sys(e, errno, "cgroup leaf %s: cannot remove", d->path);
		close_dir(d);
	}
	return rc;
}

int cgroup_remove_stale(const char *path, struct err *e)
{
	const char *base = strrchr(path, '/');
	struct statfs sf;
	if (path[0] != '/' || strstr(path, "/..") || !base || strncmp(base + 1, "cellos-", 7) != 0)
		return err_set(e, "stale cgroup leaf %s: not a cellos leaf path; left alone", path);
	if (statfs(path, &sf) < 0)
		return errno == ENOENT ? 0 : err_sys(e, errno, "stale cgroup leaf %s", path);
	if (sf.f_type != CGROUP2_SUPER_MAGIC && sf.f_type != CGROUP_SUPER_MAGIC)
		return err_set(e, "stale cgroup leaf %s: not on a cgroup filesystem; left alone", path);
	int dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0)
		return errno == ENOENT ? 0 : err_sys(e, errno, "stale cgroup leaf %s", path);
	if (write_at(dirfd, "cgroup.kill", "1") < 0)
		signal_listed(dirfd, SIGKILL, 0);
	int rc = remove_dir(path, dirfd) < 0 ? err_sys(e, errno, "stale cgroup leaf %s: cannot remove", path) : 0;
	close(dirfd);
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
	bool v2_ok = h->v2 >= 0 && parent_dir(h, -1, parent, dir, sizeof dir, &pe) == 0 && access(dir, W_OK) == 0;
	if (v2_ok)
		avail = read_ctrl_list(dir, "cgroup.controllers");
	for (int i = 0; i < CG_NCTRL; i++) {
		if (avail & (1u << i))
			continue;
		if (h->v1[i] >= 0 && parent_dir(h, i, parent, dir, sizeof dir, &pe) == 0 && access(dir, W_OK) == 0)
			continue;
		snprintf(missing + strlen(missing), sizeof missing - strlen(missing), "%s%s", missing[0] ? ", " : "",
			 ctrl_names[i]);
	}
	if (missing[0])
		return err_set(e, "no writable cgroup hierarchy with the %s controller%s", missing,
			       strchr(missing, ',') ? "s" : "");
	return 0;
}
