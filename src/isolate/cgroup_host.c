/* Where the cgroup hierarchies are, and where a leaf goes. See isolate/cgroup_host.h. */
#include "isolate/cgroup_host.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "util/fileio.h"
#include "util/log.h"

const char *const cgroup_ctrl_names[CG_NCTRL] = {"memory", "pids", "cpu"};

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
			if (strlen(cgroup_ctrl_names[i]) == len && strncmp(p, cgroup_ctrl_names[i], len) == 0)
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
	const char *what = which < 0 ? "cgroup v2" : cgroup_ctrl_names[which];
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

static bool is_dir(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

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
		snprintf(mnt, sizeof mnt, "/sys/fs/cgroup/%s", cgroup_ctrl_names[i]);
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
	char *self = file_read_all("/proc/self/cgroup");
	if (!self)
		return err_sys(e, errno, "read /proc/self/cgroup");
	cgroup_host_parse(h, "", self);
	char *mi = NULL;
	int rc = 0;
	if (!fast || !host_fast(h)) {
		if (!(mi = file_read_all("/proc/self/mountinfo")))
			rc = err_sys(e, errno, "read /proc/self/mountinfo");
		else
			cgroup_host_parse(h, mi, self);
	}
	free(mi);
	free(self);
	return rc;
}

/* The parent in hierarchy `which`, falling back to the supervisor's own cgroup
 * when a CELLOS_CGROUP_PARENT mapped from another hierarchy does not exist here. */
int cgroup_parent_dir(const struct cgroup_host *h, int which, const char *parent, char *out, size_t size,
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

unsigned cgroup_read_ctrls(const char *dir, const char *file)
{
	char path[PATH_MAX + 32], buf[512];
	snprintf(path, sizeof path, "%s/%s", dir, file);
	return file_read_at(AT_FDCWD, path, buf, sizeof buf) > 0 ? ctrls_of(buf, ' ') : 0;
}
