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

static int file_fetch(const char *ref, struct secret *out, struct err *e)
{
	char var[176];
	config_secret_file_var(ref, var, sizeof var);
	const char *path = config_secret_file(ref);
	if (!path)
		return err_set(e, "secret %s: not found (file broker: %s is not set)", ref, var);

	/* O_PATH first: nothing is opened for reading until we know what it is.
	 * O_NOFOLLOW: a symbolic link as the last component is refused. */
	cleanup_close int pfd = open(path, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (pfd < 0 && errno == ELOOP)
		return err_set(e, "secret %s: %s=%s is a symbolic link (not followed)", ref, var, path);
	if (pfd < 0)
		return err_sys(e, errno, "secret %s: %s=%s", ref, var, path);
	struct stat st;
	if (fstat(pfd, &st) < 0)
		return err_sys(e, errno, "secret %s: %s=%s", ref, var, path);
	if (S_ISLNK(st.st_mode))
		return err_set(e, "secret %s: %s=%s is a symbolic link (not followed)", ref, var, path);
	if (!S_ISREG(st.st_mode))
		return err_set(e, "secret %s: %s=%s is %s, not a regular file", ref, var, path, file_kind(st.st_mode));
	if (st.st_size > SECRET_FILE_MAX)
		return err_set(e, "secret %s: %s=%s is larger than 1 MiB (%lld bytes)", ref, var, path,
			       (long long)st.st_size);
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

const struct secret_broker broker_file = {.name = "file", .fetch = file_fetch};
