/* Dead-letter directory. See dlq.h.
 *
 * Each failed event gets its own file, created O_EXCL and synced: a dead letter is
 * by definition an event that already failed once, so it is written as durably as
 * we can, and never appended to something another writer may hold. */
#include "sink/dlq.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>

#include "util/canon.h"
#include "util/fd.h"
#include "util/fileio.h"
#include "util/utf8.h"

struct dlq {
	int dirfd;
	char *path;
};

struct dlq *dlq_open(const char *dir, struct err *e)
{
	cleanup_close int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		err_sys(e, errno, "CELLOS_DLQ_DIR: cannot open directory '%s'", dir);
		return NULL;
	}
	if (faccessat(fd, ".", W_OK | X_OK, AT_EACCESS) < 0) {
		err_sys(e, errno, "CELLOS_DLQ_DIR: '%s' is not writable", dir);
		return NULL;
	}
	struct dlq *q = calloc(1, sizeof *q);
	if (!q || !(q->path = strdup(dir))) {
		free(q);
		err_set(e, "CELLOS_DLQ_DIR: out of memory");
		return NULL;
	}
	q->dirfd = steal_fd(&fd);
	return q;
}

int dlq_put(struct dlq *q, const char *event_id, const char *line, size_t len, const char *error, char *name_out,
	    size_t name_size, struct err *e)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	long long ms = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	char name[128];
	int n = snprintf(name, sizeof name, "%lld-", ms);
	for (const char *p = event_id; *p && (size_t)n + 7 < sizeof name; p++) {
		char c = *p;
		bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
			  c == '_' || c == '-';
		name[n++] = ok ? c : '_';
	}
	snprintf(name + n, sizeof name - (size_t)n, ".jsonl");
	if (name_out)
		snprintf(name_out, name_size, "%s", name);

	/* json_string refuses invalid UTF-8; our messages are ASCII but may quote a
	 * path: never lose the event over its error text (util/utf8.h). */
	cleanup_free char *text = utf8_repair(error, strlen(error));
	json_auto_t *msg = text ? json_string(text) : NULL;
	cleanup_free char *err_json = msg ? canon_dump(msg, NULL) : NULL;
	if (!err_json)
		return err_set(e, "CELLOS_DLQ_DIR: out of memory");

	cleanup_close int fd = openat(q->dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return err_sys(e, errno, "CELLOS_DLQ_DIR: cannot create %s/%s", q->path, name);
	struct iovec iov[] = {
		{.iov_base = "{\"error\":", .iov_len = 9},
		{.iov_base = err_json, .iov_len = strlen(err_json)},
		{.iov_base = ",\"event\":", .iov_len = 9},
		{.iov_base = (void *)line, .iov_len = len},
		{.iov_base = "}\n", .iov_len = 2},
	};
	if (writev_all(fd, iov, 5) < 0 || (fdatasync(fd) < 0 && errno != EINVAL)) {
		int rc = err_sys(e, errno, "CELLOS_DLQ_DIR: cannot write %s/%s", q->path, name);
		/* A truncated dead letter would be mistaken for the event: remove it. */
		unlinkat(q->dirfd, name, 0);
		return rc;
	}
	return 0;
}

void dlq_close(struct dlq *q)
{
	if (!q)
		return;
	close(q->dirfd);
	free(q->path);
	free(q);
}
