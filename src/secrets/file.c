/* `file` broker: the file named by CELLOS_SECRET_FILE_<KEY> (SPEC §5).
 *
 * The operator names the file; the broker still refuses anything that is not
 * plainly a regular file of at most 1 MiB, so a mistake (or a file replaced by
 * someone else) cannot make the supervisor block on a FIFO, run a device
 * driver's open, or read a directory or a huge file into locked memory. */
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "secrets/broker.h"
#include "util/filekind.h"

#define SECRET_FILE_MAX (1024 * 1024)

/* The file named for `ref`, opened O_PATH and checked: a regular file of at
 * most 1 MiB. Returns the O_PATH descriptor (its stat in *st), or -1. */
static int file_open_checked(const char *ref, char var[176], const char **pathp, struct stat *st, struct err *e)
{
	secret_file_var(ref, var, 176);
	const char *path = *pathp = secret_file_path(ref);
	if (!path)
		return err_set(e, "secret %s: not found (file broker: %s is not set)", ref, var);

	/* O_PATH first: nothing is opened for reading until we know what it is.
	 * O_NOFOLLOW: a symbolic link as the last component is refused. */
	int pfd = open(path, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (pfd < 0 && errno == ELOOP)
		return err_set(e, "secret %s: %s=%s is a symbolic link (not followed)", ref, var, path);
	if (pfd < 0)
		return err_sys(e, errno, "secret %s: %s=%s", ref, var, path);
	int rc = -1;
	if (fstat(pfd, st) < 0)
		err_sys(e, errno, "secret %s: %s=%s", ref, var, path);
	else if (S_ISLNK(st->st_mode))
		err_set(e, "secret %s: %s=%s is a symbolic link (not followed)", ref, var, path);
	else if (!S_ISREG(st->st_mode))
		err_set(e, "secret %s: %s=%s is %s, not a regular file", ref, var, path, file_kind(st->st_mode));
	else if (st->st_size > SECRET_FILE_MAX)
		err_set(e, "secret %s: %s=%s is larger than 1 MiB (%lld bytes)", ref, var, path, (long long)st->st_size);
	else
		rc = 0;
	if (rc < 0) {
		close(pfd);
		return -1;
	}
	return pfd;
}

/* Validation: the file is there and is what fetch would accept; never read. */
static int file_probe(const char *ref, struct err *e)
{
	char var[176];
	const char *path;
	struct stat st;
	int pfd = file_open_checked(ref, var, &path, &st, e);
	if (pfd < 0)
		return -1;
	close(pfd);
	return 0;
}

static int file_fetch(const char *ref, struct secret *out, struct err *e)
{
	char var[176];
	const char *path;
	struct stat st;
	cleanup_close int pfd = file_open_checked(ref, var, &path, &st, e);
	if (pfd < 0)
		return -1;
	/* Reopen that very inode for reading (no second path lookup to race with). */
	char proc[64];
	snprintf(proc, sizeof proc, "/proc/self/fd/%d", pfd);
	cleanup_close int fd = open(proc, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return err_sys(e, errno, "secret %s: %s=%s: open for reading", ref, var, path);

	/* One byte more than fstat said, so a file that grew meanwhile is noticed. */
	size_t cap = (size_t)st.st_size + 1;
	char *entry = secret_entry_alloc(ref, cap);
	if (!entry)
		return err_set(e, "secret %s: cannot allocate locked memory", ref);
	size_t nl = strlen(ref), got = 0;
	char *val = entry + nl + 1;
	while (got < cap) {
		ssize_t n = read(fd, val + got, cap - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int errnum = errno;
			sodium_free(entry);
			return err_sys(e, errnum, "secret %s: %s=%s: read", ref, var, path);
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	if (got == cap) {
		sodium_free(entry);
		return err_set(e, "secret %s: %s=%s changed while being read", ref, var, path);
	}
	/* One trailing newline is what editors and `echo` add; it is not part of
	 * the secret. Only one: the rest may be the value's own. */
	if (got && val[got - 1] == '\n')
		got--;
	val[got] = '\0';
	*out = (struct secret){.name = ref, .env_entry = entry, .len = nl + 1 + got};
	return 0;
}

const struct secret_broker broker_file = {.name = "file", .probe = file_probe, .fetch = file_fetch};
