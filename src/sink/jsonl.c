/* JSONL sink: one event per line, appended with one write(2).
 *
 * O_APPEND on a local regular file makes each write(2) land atomically at the
 * end (the kernel holds the inode lock for the whole write), so many supervisors
 * can share one file without interleaving lines. Pipes (beyond PIPE_BUF) and
 * network filesystems give no such guarantee. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "sink/sink.h"
#include "util/log.h"

#define JSONL_MAX_EVENT (1024 * 1024)

struct jsonl {
	struct sink base;
	int fd;
	enum fsync_mode fsync;
	char *buf;   /* line + '\n', reused between events */
	size_t cap;
};

static int jsonl_emit(struct sink *s, const struct sink_event *ev, struct err *e)
{
	struct jsonl *j = (struct jsonl *)s;
	const char *line = ev->line;
	size_t len = ev->len;
	if (len > JSONL_MAX_EVENT)
		return err_set(e, "event of %zu bytes is over the 1 MiB limit", len);
	if (len + 1 > j->cap) {
		char *nb = realloc(j->buf, len + 1);
		if (!nb)
			return err_set(e, "out of memory");
		j->buf = nb;
		j->cap = len + 1;
	}
	memcpy(j->buf, line, len);
	j->buf[len] = '\n';
	ssize_t w;
	do
		w = write(j->fd, j->buf, len + 1);
	while (w < 0 && errno == EINTR);
	if (w < 0)
		return err_sys(e, errno, "write");
	/* A short write leaves a partial line; nothing sensible can complete it
	 * without risking interleaving, so report it. */
	if ((size_t)w != len + 1)
		return err_set(e, "short write (%zd of %zu bytes)", w, len + 1);
	if (j->fsync == FSYNC_EVENT && fdatasync(j->fd) < 0 && errno != EINVAL)
		return err_sys(e, errno, "fdatasync");
	return 0;
}

static void jsonl_close(struct sink *s)
{
	struct jsonl *j = (struct jsonl *)s;
	/* EINVAL: the target (a pipe, /dev/null) cannot be synced: nothing to do. */
	if (j->fsync == FSYNC_CLOSE && fdatasync(j->fd) < 0 && errno != EINVAL)
		log_warn("CELL_OS_JSONL_EVENTS: fdatasync: %s", strerror(errno));
	close(j->fd);
	free(j->buf);
	free(j);
}

/* SPEC §8.4: the workload inherits the supervisor's stdout and stderr, so
 * events written to the same file would sit among the workload's output (which
 * can forge events there), and a terminal is no event log. The null device is
 * the exception: nothing is kept on either side, so nothing can be mixed. */
static int check_target(int fd, const char *path, struct err *e)
{
	if (isatty(fd))
		return err_set(e, "CELL_OS_JSONL_EVENTS: '%s' is a terminal: give the path of a file for the events",
			       path);
	struct stat st;
	if (fstat(fd, &st) < 0)
		return err_sys(e, errno, "CELL_OS_JSONL_EVENTS: '%s'", path);
	if (S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3))
		return 0;
	static const char *const names[] = {NULL, "stdout", "stderr"};
	for (int std = STDOUT_FILENO; std <= STDERR_FILENO; std++) {
		struct stat so;
		if (fstat(std, &so) == 0 && so.st_dev == st.st_dev && so.st_ino == st.st_ino)
			return err_set(e,
				       "CELL_OS_JSONL_EVENTS: '%s' is the supervisor's own %s, where the workload's "
				       "output goes: give the events a file of their own",
				       path, names[std]);
	}
	return 0;
}

struct sink *sink_jsonl_open(const char *path, enum fsync_mode fsync, struct err *e)
{
	/* Checked before open(), which would create a file named "-". */
	if (strcmp(path, "-") == 0) {
		err_set(e, "CELL_OS_JSONL_EVENTS: '-' is not stdout: there is no events-to-stdout mode (stdout is the "
			   "workload's); give the path of a file");
		return NULL;
	}
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600);
	if (fd < 0) {
		err_sys(e, errno, "CELL_OS_JSONL_EVENTS: cannot open '%s'", path);
		return NULL;
	}
	if (check_target(fd, path, e) < 0) {
		close(fd);
		return NULL;
	}
	struct jsonl *j = calloc(1, sizeof *j);
	if (!j) {
		close(fd);
		err_set(e, "CELL_OS_JSONL_EVENTS: out of memory");
		return NULL;
	}
	j->base = (struct sink){.name = "jsonl", .emit = jsonl_emit, .close = jsonl_close};
	j->fd = fd;
	j->fsync = fsync;
	return &j->base;
}
