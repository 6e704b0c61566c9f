#include "backend/vm_share.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

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
