/* TEMPORARY placeholder (replaced by the registry branch's allocator). */
#include "isolate/runuid.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
int runuid_parse_range(const char *v, unsigned long *first, unsigned long *last, struct err *e)
{
	char extra;
	if (sscanf(v, "%lu-%lu%c", first, last, &extra) != 2 || *first == 0 || *last < *first + 15 || *last > 4294967294UL)
		return err_set(e, "CELLOS_CELL_UID_RANGE: bad range '%s'", v);
	return 0;
}
int runuid_alloc(unsigned long first, unsigned long last, const char *run_id, struct runuid *out, struct err *e)
{
	mkdir("/run/cellos", 0700);
	mkdir("/run/cellos/uids", 0700);
	unsigned long span = last - first + 1, start = (unsigned long)random() % span;
	for (unsigned long i = 0; i < span && i < 4096; i++) {
		unsigned long uid = first + (start + i) % span;
		snprintf(out->path, sizeof out->path, "/run/cellos/uids/%lu.lock", uid);
		int fd = open(out->path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (fd < 0)
			return err_sys(e, errno, "%s", out->path);
		if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
			close(fd);
			continue;
		}
		out->fd = fd;
		out->uid = uid;
		return 0;
	}
	return err_set(e, "CELLOS_CELL_UID_RANGE: every uid is in use");
}
void runuid_release(struct runuid *u)
{
	if (u->fd < 0)
		return;
	unlink(u->path);
	close(u->fd);
	u->fd = -1;
}
