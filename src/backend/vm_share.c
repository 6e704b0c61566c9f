#include "backend/vm_share.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/fileio.h"

size_t vm_secret_files(const struct secrets *s, struct vm_job_file *files, char (*paths)[VM_SECRET_PATH_MAX],
		       size_t max)
{
	size_t n = 0;
	for (size_t i = 0; s && i < s->n && n < max; i++) {
		const struct secret *sec = &s->items[i];
		size_t len;
		const char *v = secret_value(sec, &len);
		snprintf(paths[n], VM_SECRET_PATH_MAX, "/run/cellos/secrets/%s", sec->name);
		files[n] = (struct vm_job_file){.path = paths[n], .data = v, .len = len, .mode = 0400};
		n++;
	}
	return n;
}

int vm_disk_image(const char *source, const char *image, const char *what, struct err *e)
{
	/* Room for the tree plus a quarter, at least 8 MiB. */
	static const char cmd[] = "kb=$(du -sk -- \"$1\" | cut -f1) && exec mkfs.ext4 -q -F -O ^has_journal "
				  "-E root_owner=0:0 -d \"$1\" \"$2\" $((kb + kb / 4 + 8192))k";
	pid_t pid = fork();
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);
		dup2(null, 0);
		dup2(null, 1);
		execl("/bin/sh", "sh", "-c", cmd, "sh", source, image, (char *)NULL);
		_exit(127);
	}
	int ws = -1;
	while (pid > 0 && waitpid(pid, &ws, 0) < 0 && errno == EINTR)
		;
	if (pid < 0 || !WIFEXITED(ws) || WEXITSTATUS(ws) != 0)
		return err_set(e, "%s: could not make an ext4 image of %s", what, source);
	return 0;
}

int vm_open_artifact(const struct cell *c, int stream, int dirfd, const char *path, int *fd, struct err *e)
{
	const struct spec *s = c->spec;
	size_t index = 0;
	while (index < s->n_artifacts && strcmp(s->artifacts[index].path, path) != 0)
		index++;
	struct stat st;
	if (index == s->n_artifacts || stream < 0 || fstat(stream, &st) < 0)
		return err_set(e, "%s: not an artifact of this cell", path);
	size_t len = (size_t)st.st_size;
	unsigned char *m = len ? mmap(NULL, len, PROT_READ, MAP_PRIVATE, stream, 0) : NULL;
	if (len && m == MAP_FAILED)
		return err_sys(e, errno, "%s: the guest's artifacts", path);
	size_t off = 0, size = 0;
	int gerr = 0, rc = 0;
	if (!m || vm_artifact_find(m, len, index, &off, &size, &gerr) < 0)
		rc = err_set(e, "%s: the guest sent no such artifact (the VM ended before it could, or it was larger than CELLOS_EXPORT_MAX_BYTES)", path);
	else if (gerr == EXDEV)
		rc = err_set(e, "%s: not inside the cell's workspace", path);
	else if (gerr)
		rc = err_set(e, "%s: %s (in the guest)", path, strerror(gerr));
	else if ((long long)size > c->cfg->export_max_bytes)
		rc = err_set(e, "%s: %zu bytes, more than CELLOS_EXPORT_MAX_BYTES (%lld)", path, size,
			     c->cfg->export_max_bytes);
	int out = -1;
	if (rc == 0 && (out = openat(dirfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600)) < 0)
		rc = err_sys(e, errno, "%s: a file for it", path);
	if (rc == 0 && write_all(out, m + off, size) < 0)
		rc = err_sys(e, errno, "%s: a file for it", path);
	if (m && m != MAP_FAILED)
		munmap(m, len);
	if (rc == 0) {
		char self[64];
		snprintf(self, sizeof self, "/proc/self/fd/%d", out);
		if ((*fd = open(self, O_RDONLY | O_CLOEXEC)) < 0)
			rc = err_sys(e, errno, "%s", path);
	}
	if (out >= 0)
		close(out);
	return rc;
}
