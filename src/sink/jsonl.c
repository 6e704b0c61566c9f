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

static int jsonl_emit(struct sink *s, const char *line, size_t len, struct err *e)
{
	struct jsonl *j = (struct jsonl *)s;
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

struct sink *sink_jsonl_open(const char *path, enum fsync_mode fsync, struct err *e)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600);
	if (fd < 0) {
		err_sys(e, errno, "CELL_OS_JSONL_EVENTS: cannot open '%s'", path);
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
