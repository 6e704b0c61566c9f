/* run.mounts: see hostmount.h. */
#include "hostmount/hostmount.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "isolate/mount.h"
#include "util/fd.h"
#include "util/log.h"
#include "util/path.h"

/* What the document may hold, the cell root can take. */
_Static_assert(SPEC_MOUNTS_MAX <= CELLFS_MOUNTS_MAX, "run.mounts: the cell root takes fewer than the spec allows");

/* ---- admission ---- */

static void list_prefixes(char *const *prefixes, char *buf, size_t size)
{
	size_t n = 0;
	buf[0] = '\0';
	for (char *const *p = prefixes; p && *p && n < size; p++)
		n += (size_t)snprintf(buf + n, size - n, "%s%s", p == prefixes ? "" : ",", **p ? *p : "/");
}

int mounts_admit(const struct config *cfg, const struct spec *spec, bool forbid_rw, struct err *e)
{
	if (!spec->n_mounts)
		return 0;
	/* The stub without a mount namespace shows the workload the host's own
	 * tree: there is nowhere to mount anything but the host. The OCI runtimes
	 * always give the container one. */
	if (cfg->backend == BACKEND_STUB && !(cfg->ns & NS_MNT))
		return err_set(e, "spec.run.mounts: host mounts need a mount namespace for the cell "
				  "(CELLOS_SUBPROCESS_UNSHARE without mnt)");
	if (!cfg->host_mount_allow)
		return err_set(e, "spec.run.mounts[0].source: host mounts are not allowed: "
				  "CELLOS_HOST_MOUNT_ALLOW_PREFIXES is unset");
	for (size_t i = 0; i < spec->n_mounts; i++) {
		const struct host_mount *m = &spec->mounts[i];
		char clean[PATH_MAX];
		if (path_clean(m->source, clean, sizeof clean) < 0 || !path_within_any(clean, cfg->host_mount_allow)) {
			char list[1024];
			list_prefixes(cfg->host_mount_allow, list, sizeof list);
			return err_set(e, "spec.run.mounts[%zu].source: %s is not under CELLOS_HOST_MOUNT_ALLOW_PREFIXES (%s)",
				       i, m->source, list);
		}
		if (!m->read_only && forbid_rw)
			return err_set(e, "spec.run.mounts[%zu].readOnly: a writable host mount is refused by "
					  "CELLOS_DEPLOYMENT_PROFILE=hardened",
				       i);
		if (!m->read_only && !cfg->host_mount_rw)
			return err_set(e, "spec.run.mounts[%zu].readOnly: false (a writable host mount) needs "
					  "CELLOS_HOST_MOUNT_ALLOW_RW=1",
				       i);
	}
	return 0;
}

/* ---- opening the sources ---- */

/* The source of mount i as a detached, sealed tree, or -1 with *e set. */
static int open_source(const struct config *cfg, const struct host_mount *m, size_t i, bool *dir, struct err *e)
{
	char clean[PATH_MAX];
	/* Admission checked this already; the descriptor below is what counts, and
	 * it is opened by exactly this (clean, symlink-free) path. */
	if (path_clean(m->source, clean, sizeof clean) < 0 || !path_within_any(clean, cfg->host_mount_allow))
		return err_set(e, "spec.run.mounts[%zu].source: %s is not under CELLOS_HOST_MOUNT_ALLOW_PREFIXES", i,
			       m->source);
	/* Once, from "/", no symlink in any component (the last one included) and no
	 * magic link: the lexical path checked above is the path opened. */
	int fd = fd_openat2(AT_FDCWD, clean[0] ? clean : "/", O_PATH | O_CLOEXEC, 0,
			    RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS);
	if (fd < 0)
		return errno == ELOOP ? err_set(e, "spec.run.mounts[%zu].source: %s: a symbolic link is on the way (symlinks "
						   "are not followed: name the real path)",
						i, m->source)
				      : err_sys(e, errno, "spec.run.mounts[%zu].source: %s", i, m->source);
	struct stat st;
	if (fstat(fd, &st) < 0) {
		int errnum = errno;
		close(fd);
		return err_sys(e, errnum, "spec.run.mounts[%zu].source: %s", i, m->source);
	}
	if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode)) {
		close(fd);
		return err_set(e, "spec.run.mounts[%zu].source: %s is neither a directory nor a regular file", i,
			       m->source);
	}
	*dir = S_ISDIR(st.st_mode);
	/* Bound from that descriptor: a copy of the mount tree at it (submounts
	 * included), attached nowhere yet. */
	int t = open_tree(fd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH | AT_RECURSIVE);
	close_keep_errno(fd);
	if (t < 0)
		return err_sys(e, errno, "spec.run.mounts[%zu].source: %s: copy the mount", i, m->source);
	/* Private: nothing mounted under it in the cell may propagate to the host's
	 * peers, nor the host's to it. */
	struct mount_attr a = {.attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | (m->read_only ? MOUNT_ATTR_RDONLY : 0),
			       .propagation = MS_PRIVATE};
	if (mount_setattr(t, "", AT_EMPTY_PATH | AT_RECURSIVE, &a, sizeof a) < 0) {
		int errnum = errno;
		close(t);
		return err_sys(e, errnum, "spec.run.mounts[%zu].source: %s: make the copy %snosuid, nodev", i, m->source,
			       m->read_only ? "read-only, " : "");
	}
	return t;
}

void hostmounts_close(struct hostmounts *hm)
{
	for (size_t i = 0; hm->tree && i < hm->n; i++)
		if (hm->tree[i] >= 0)
			close(hm->tree[i]);
	free(hm->tree);
	free(hm->dir);
	free(hm->order);
	*hm = (struct hostmounts){0};
}

int hostmounts_open(const struct config *cfg, const struct spec *spec, struct hostmounts *hm, struct err *e)
{
	*hm = (struct hostmounts){0};
	size_t n = spec->n_mounts;
	if (!n)
		return 0;
	if (n > SPEC_MOUNTS_MAX)
		return err_set(e, "spec.run.mounts: more than %d entries", SPEC_MOUNTS_MAX);
	hm->tree = malloc(n * sizeof *hm->tree);
	hm->dir = calloc(n, sizeof *hm->dir);
	hm->order = malloc(n * sizeof *hm->order);
	if (!hm->tree || !hm->dir || !hm->order) {
		hostmounts_close(hm);
		return err_set(e, "spec.run.mounts: out of memory");
	}
	hm->n = n;
	for (size_t i = 0; i < n; i++)
		hm->tree[i] = -1;
	/* Outermost first (stable): a mount nested in another comes after it. */
	size_t depth[SPEC_MOUNTS_MAX];
	for (size_t i = 0; i < n; i++) {
		char clean[PATH_MAX];
		depth[i] = path_clean(spec->mounts[i].target, clean, sizeof clean) < 0 ? 0 : path_depth(clean);
		size_t k = i;
		while (k > 0 && depth[hm->order[k - 1]] > depth[i]) {
			hm->order[k] = hm->order[k - 1];
			k--;
		}
		hm->order[k] = i;
	}
	for (size_t i = 0; i < n; i++)
		if ((hm->tree[i] = open_source(cfg, &spec->mounts[i], i, &hm->dir[i], e)) < 0) {
			hostmounts_close(hm);
			return -1;
		}
	return 0;
}

long hostmounts_enclosing(const struct spec *spec, const char *clean, bool *in_workspace)
{
	long best = -1;
	size_t best_len = 0;
	*in_workspace = false;
	for (size_t i = 0; i < spec->n_mounts; i++) {
		char t[PATH_MAX];
		if (path_clean(spec->mounts[i].target, t, sizeof t) < 0)
			continue;
		size_t len = strlen(t);
		if (len < strlen(clean) && strncmp(clean, t, len) == 0 && clean[len] == '/' && len >= best_len) {
			best = (long)i;
			best_len = len;
		}
	}
	char w[PATH_MAX];
	const char *wd = spec->working_directory;
	if (wd && path_clean(wd, w, sizeof w) == 0) {
		size_t len = strlen(w);
		if (len && len < strlen(clean) && strncmp(clean, w, len) == 0 && clean[len] == '/' && len > best_len) {
			*in_workspace = true;
			best = -1;
		}
	}
	return best;
}

/* `clean` (held by mount `outer`) must exist in outer's source: a directory
 * when `want_dir`, else anything but a directory. */
static int exists_in(const struct spec *spec, const struct hostmounts *hm, size_t outer, const char *clean,
		     bool want_dir, const char *field, struct err *e)
{
	char t[PATH_MAX];
	if (path_clean(spec->mounts[outer].target, t, sizeof t) < 0)
		return 0;
	const char *rel = clean + strlen(t) + 1;
	int fd = fd_openat2(hm->tree[outer], rel, O_PATH | O_CLOEXEC, 0,
			    RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS);
	struct stat st;
	int errnum = fd < 0 || fstat(fd, &st) < 0 ? errno : 0;
	close_keep_errno(fd);
	if (errnum)
		return err_sys(e, errnum,
			       "%s: %s must already exist in %s (the source of spec.run.mounts[%zu]; nothing is created "
			       "on the host, symlinks are not followed)",
			       field, clean, spec->mounts[outer].source, outer);
	if (want_dir != S_ISDIR(st.st_mode))
		return err_set(e, "%s: %s in %s (the source of spec.run.mounts[%zu]) is %sa directory", field, clean,
			       spec->mounts[outer].source, outer, want_dir ? "not " : "");
	return 0;
}

int hostmounts_check_nested(const struct spec *spec, const struct hostmounts *hm, struct err *e)
{
	char clean[PATH_MAX], field[64];
	bool ws;
	for (size_t i = 0; i < hm->n; i++) {
		if (path_clean(spec->mounts[i].target, clean, sizeof clean) < 0)
			continue;
		long outer = hostmounts_enclosing(spec, clean, &ws);
		snprintf(field, sizeof field, "spec.run.mounts[%zu].target", i);
		if (outer >= 0 && exists_in(spec, hm, (size_t)outer, clean, hm->dir[i], field, e) < 0)
			return -1;
	}
	const char *wd = spec->working_directory;
	if (hm->n && wd && path_clean(wd, clean, sizeof clean) == 0 && clean[0]) {
		long outer = hostmounts_enclosing(spec, clean, &ws);
		if (outer >= 0 && exists_in(spec, hm, (size_t)outer, clean, true, "run.workingDirectory", e) < 0)
			return -1;
	}
	return 0;
}

/* ---- the stub's staging namespace ---- */

int hostmounts_stage(const struct hostmounts *hm, struct hostmount_stage *st, struct err *e)
{
	*st = (struct hostmount_stage){.home_ns = -1, .home_root = -1, .home_cwd = -1};
	if (!hm->n)
		return 0;
	st->home_ns = open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC);
	st->home_root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	st->home_cwd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (st->home_ns < 0 || st->home_root < 0 || st->home_cwd < 0) {
		err_sys(e, errno, "run.mounts: open our own mount namespace, root and working directory");
		goto fail;
	}
	/* A mount namespace of our own for the moment of the clone: the cell's is
	 * copied from it, holding the trees. Private, so nothing reaches the host. */
	if (unshare(CLONE_NEWNS) < 0) {
		err_sys(e, errno, "run.mounts: a private mount namespace to stage the host mounts in");
		goto fail;
	}
	st->active = true;
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
		err_sys(e, errno, "run.mounts: make the staging namespace private");
		goto fail;
	}
	int fs = fsopen("tmpfs", FSOPEN_CLOEXEC);
	int m = -1;
	if (fs >= 0 && fsconfig(fs, FSCONFIG_SET_STRING, "mode", "0711", 0) == 0 &&
	    fsconfig(fs, FSCONFIG_SET_STRING, "size", "64k", 0) == 0 && fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) == 0)
		m = fsmount(fs, FSMOUNT_CLOEXEC, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC);
	close_keep_errno(fs);
	/* Over /tmp (in this namespace only), where the cell's init also puts its
	 * scaffold: it takes the trees before that. 0711: the init, as root of the
	 * cell's user namespace, only has the "other" bits here. */
	const char *dirs[] = {"/tmp", "/mnt"};
	int rc = -1;
	for (size_t k = 0; m >= 0 && rc < 0 && k < 2; k++)
		if ((rc = move_mount(m, "", AT_FDCWD, dirs[k], MOVE_MOUNT_F_EMPTY_PATH)) == 0)
			snprintf(st->dir, sizeof st->dir, "%s", dirs[k]);
	if (rc < 0) {
		err_sys(e, errno, "run.mounts: a staging tmpfs");
		close_keep_errno(m);
		goto fail;
	}
	for (size_t i = 0; i < hm->n; i++) {
		char name[24];
		snprintf(name, sizeof name, "%zu", i);
		int made = hm->dir[i] ? mkdirat(m, name, 0700) : openat(m, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (made >= 0 && !hm->dir[i])
			close(made);
		if (made < 0 || move_mount(hm->tree[i], "", m, name, MOVE_MOUNT_F_EMPTY_PATH) < 0) {
			err_sys(e, errno, "run.mounts: stage spec.run.mounts[%zu]", i);
			close_keep_errno(m);
			goto fail;
		}
	}
	close(m);
	return 0;
fail:
	hostmounts_unstage(st);
	return -1;
}

void hostmounts_unstage(struct hostmount_stage *st)
{
	if (st->active) {
		/* setns() puts us at the namespace's root directory, with that as our
		 * working directory: the saved ones bring us back (a chroot included). */
		if (setns(st->home_ns, CLONE_NEWNS) < 0) {
			log_error("run.mounts: return to the supervisor's mount namespace: %s", strerror(errno));
			abort();
		}
		if (fchdir(st->home_root) < 0 || chroot(".") < 0 || fchdir(st->home_cwd) < 0) {
			log_error("run.mounts: return to the supervisor's root and working directory: %s", strerror(errno));
			abort();
		}
		st->active = false;
	}
	int *fds[] = {&st->home_ns, &st->home_root, &st->home_cwd};
	for (size_t i = 0; i < 3; i++)
		if (*fds[i] >= 0) {
			close(*fds[i]);
			*fds[i] = -1;
		}
}

/* ---- events ---- */

json_t *hostmounts_json(const struct spec *spec)
{
	if (!spec->n_mounts)
		return NULL;
	json_t *a = json_array();
	for (size_t i = 0; a && i < spec->n_mounts; i++) {
		const struct host_mount *m = &spec->mounts[i];
		if (json_array_append_new(a, json_pack("{s:s, s:s, s:b}", "source", m->source, "target", m->target,
						       "readOnly", m->read_only)) < 0) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}
