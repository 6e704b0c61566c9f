/* Local export (SPEC §10): <CELLOS_EXPORT_DIR>/<cellId>/<name>.
 *
 * The export root is the operator's; everything below it is resolved with
 * RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS, so a symlink planted in the root (by
 * another cell's workload that could write there, say) can never redirect a
 * write outside it. The file is written under a temporary name and renamed into
 * place: a reader never sees half an artifact, and a rename replaces a symlink
 * at <name> rather than writing through it. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "export/export.h"
#include "util/fd.h"
#include "util/fileio.h"

#define EXPORT_DIR_MODE 0755  /* <root>/<cellId>: artifact names are not secret */
#define EXPORT_FILE_MODE 0640 /* never world-readable */

static int open_beneath(int dirfd, const char *rel, int flags, mode_t mode)
{
	return fd_openat2(dirfd, rel, (uint64_t)(flags | O_CLOEXEC | O_NOFOLLOW), (flags & O_CREAT) ? mode : 0,
			  RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS);
}

static int copy(const struct export_item *it, int out, struct err *e)
{
	static char buf[1 << 16];
	for (;;) {
		const char *why = it->stop ? it->stop(it->stop_arg) : NULL;
		if (why)
			return err_set(e, "interrupted (%s)", why);
		ssize_t n = export_stream_read(it->src, buf, sizeof buf);
		if (n < 0)
			return err_set(e, "%s", it->src->error);
		if (n == 0)
			return 0;
		if (write_all(out, buf, (size_t)n) < 0)
			return err_sys(e, errno, "write");
	}
}

static int local_put(const struct export_item *it, struct export_receipt *rc, struct err *e)
{
	const char *root = it->cfg->export_dir;
	snprintf(rc->destination, sizeof rc->destination, "%s/%s/%s", root, it->cell_id, it->name);
	rc->attempts = 1;
	cleanup_close int rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		return err_sys(e, errno, "CELLOS_EXPORT_DIR %s", root);
	/* Cell ids and names are portable identifiers: one component each, never
	 * "." or "..". The umask can only take bits away: never world-writable. */
	if (mkdirat(rootfd, it->cell_id, EXPORT_DIR_MODE) < 0 && errno != EEXIST)
		return err_sys(e, errno, "create %s/%s", root, it->cell_id);
	cleanup_close int dir = open_beneath(rootfd, it->cell_id, O_RDONLY | O_DIRECTORY, 0);
	struct stat st;
	if (dir < 0 && fstatat(rootfd, it->cell_id, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))
		return err_set(e, "%s/%s is a symbolic link (not followed)", root, it->cell_id);
	if (dir < 0)
		return err_sys(e, errno, "open %s/%s", root, it->cell_id);

	char tmp[300];
	snprintf(tmp, sizeof tmp, ".%s.%.8s.part", it->name, it->run_id);
	int out = open_beneath(dir, tmp, O_WRONLY | O_CREAT | O_EXCL, EXPORT_FILE_MODE);
	if (out < 0)
		return err_sys(e, errno, "create %s/%s/%s", root, it->cell_id, tmp);
	/* Exactly that mode, whatever our umask: an artifact may hold what only its
	 * cell could read, and is never world-readable (SPEC §10). */
	int rc_copy = fchmod(out, EXPORT_FILE_MODE) < 0 ? err_sys(e, errno, "chmod %s", rc->destination) : 0;
	if (rc_copy == 0)
		rc_copy = copy(it, out, e);
	if (rc_copy == 0 && export_stream_finish(it->src, rc->sha256) < 0)
		rc_copy = err_set(e, "%s", it->src->error);
	if (rc_copy == 0 && fsync(out) < 0)
		rc_copy = err_sys(e, errno, "fsync %s", rc->destination);
	close(out);
	if (rc_copy == 0 && renameat(dir, tmp, dir, it->name) < 0)
		rc_copy = err_sys(e, errno, "rename into %s", rc->destination);
	if (rc_copy < 0) {
		unlinkat(dir, tmp, 0);
		return -1;
	}
	fsync(dir); /* the rename itself is durable too */
	rc->bytes = it->src->off;
	return 0;
}

const struct export_sink export_local = {.kind = "LocalPath", .put = local_put};
