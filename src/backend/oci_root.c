/* The cell's root for an OCI runtime: what it holds (the host's root or
 * CELLOS_GVISOR_ROOTFS, read-only, with the directories the runtime mounts
 * afresh left empty), the mount points the runtime needs in it, and argv[0] as
 * the cell will find it there. Built by isolate/mount.h's scaffold builder in
 * the runtime's private mount namespace. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend/oci_cell.h"
#include "isolate/mount.h"
#include "util/path.h"

/* Directories of the cell root that the runtime mounts afresh: never taken from
 * the host root (its /run would show other cells' runtime state, its /tmp the
 * host's temp files). */
static const char *const private_dirs[] = {"proc", "sys", "dev", "tmp", "run", NULL};

static bool is_private_top(const char *name, size_t len)
{
	for (const char *const *d = private_dirs; *d; d++)
		if (strlen(*d) == len && strncmp(*d, name, len) == 0)
			return true;
	return false;
}

bool oci_root_private(const char *path)
{
	return path[0] == '/' && is_private_top(path + 1, strcspn(path + 1, "/"));
}

void oci_root_cwd(const struct cell *c, const struct oci_runtime *rt, char *out, size_t size)
{
	const char *wd = c->spec->working_directory;
	if (wd) {
		snprintf(out, size, "%s", wd);
		return;
	}
	char here[PATH_MAX];
	struct stat st;
	if (!rt->rootfs && getcwd(here, sizeof here) && !oci_root_private(here) && stat(here, &st) == 0) {
		snprintf(out, size, "%s", here);
		return;
	}
	snprintf(out, size, "/");
}

/* One candidate (absolute, in the cell) under the host directory `root`: 1 when
 * it is an executable regular file; one that exists but is not sets *denied. */
static int candidate(const char *root, const char *cand, bool *denied)
{
	char host[PATH_MAX * 2];
	struct stat st;
	snprintf(host, sizeof host, "%s%s", root, cand);
	/* Directories the runtime mounts afresh hold nothing of the host's. */
	if (cand[0] != '/' || oci_root_private(cand) || stat(host, &st) != 0)
		return 0;
	if (S_ISREG(st.st_mode) && access(host, X_OK) == 0)
		return 1;
	*denied = true;
	return 0;
}

int oci_root_resolve(struct ocirt *o, const struct cell *c, const char *cwd)
{
	const char *root = o->rt.rootfs ? o->rt.rootfs : "";
	const char *a0 = c->spec->argv[0];
	char cand[PATH_MAX];
	bool denied = false, found = false;
	if (strchr(a0, '/')) {
		snprintf(cand, sizeof cand, "%s%s%s", a0[0] == '/' ? "" : cwd, a0[0] == '/' || !strcmp(cwd, "/") ? "" : "/",
			 a0);
		found = candidate(root, cand, &denied);
	} else {
		for (const char *it = c->path; !found && path_search_next(&it, a0, true, cand, sizeof cand);)
			found = candidate(root, cand, &denied);
	}
	snprintf(o->program, sizeof o->program, "%s", found ? cand : a0);
	return found ? 0 : denied ? EACCES : ENOENT;
}

/* Where the workspace or a run.mounts target needs a mount point of ours: not
 * inside another mount (it is there: hostmounts_check_nested), not inside the
 * workspace when the runtime makes it in that tmpfs (runc), but there too when
 * the runtime binds in the root beneath (runsc's gofer: bind_points_in_root). */
static bool plan_point(const struct oci_child_args *a, const char *path, bool dir, const char *field, char *clean,
		       struct cellfs_point *pt)
{
	bool in_ws;
	if (path_clean(path, clean, PATH_MAX) < 0 || !clean[0])
		return false;
	if (hostmounts_enclosing(a->o->cell->spec, clean, &in_ws) >= 0 || (in_ws && !a->o->rt.bind_points_in_root))
		return false;
	*pt = (struct cellfs_point){
		.path = clean, .dir = dir, .field = field,
		.hint = in_ws ? " (under gVisor a mount inside the workspace needs its mount point there: choose a "
				"run.workingDirectory outside the host's directories)"
			      : NULL,
	};
	return true;
}

int oci_root_build(const struct oci_child_args *a, const char *dst, struct err *e)
{
	const struct ocirt *o = a->o;
	size_t max = 1 + o->hm.n, n = 0;
	cleanup_free struct cellfs_point *pts = calloc(max, sizeof *pts);
	cleanup_free char *paths = calloc(max, PATH_MAX);
	cleanup_free char *fields = calloc(max, 64);
	if (!pts || !paths || !fields)
		return err_set(e, "cell root: out of memory");
	if (a->workdir && strcmp(a->workdir, "/") != 0 &&
	    plan_point(a, a->workdir, true, "run.workingDirectory", paths + n * PATH_MAX, &pts[n]))
		n++;
	for (size_t i = 0; i < o->hm.n; i++) {
		snprintf(fields + n * 64, 64, "spec.run.mounts[%zu].target", i);
		if (plan_point(a, o->cell->spec->mounts[i].target, o->hm.dir[i], fields + n * 64, paths + n * PATH_MAX,
			       &pts[n]))
			n++;
	}
	struct cellfs_scaffold_opts so = {.source = a->root_src, .fresh = private_dirs, .points = pts, .n_points = n};
	return cellfs_build_scaffold(dst, &so, e);
}
