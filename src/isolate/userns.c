#include "isolate/userns.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <linux/securebits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "util/log.h"

static int write_proc(pid_t pid, const char *file, const char *text, struct err *e)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, file);
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return err_sys(e, errno, "user namespace: open %s", path);
	ssize_t n = write(fd, text, strlen(text));
	int errnum = errno;
	close(fd);
	if (n < 0)
		return err_sys(e, errnum, "user namespace: write %s", path);
	return 0;
}

int userns_map(pid_t pid, uid_t uid, gid_t gid, struct err *e)
{
	bool root = geteuid() == 0;
	char map[64];
	snprintf(map, sizeof map, "0 %u 1\n", root ? (unsigned)uid : (unsigned)geteuid());
	if (write_proc(pid, "uid_map", map, e) < 0 || (!root && write_proc(pid, "setgroups", "deny", e) < 0))
		return -1;
	snprintf(map, sizeof map, "0 %u 1\n", root ? (unsigned)gid : (unsigned)getegid());
	return write_proc(pid, "gid_map", map, e);
}

static void rearm_pdeathsig(const struct userns_owner *o)
{
	if (!o->pdeathsig)
		return;
	prctl(PR_SET_PDEATHSIG, o->pdeathsig);
	if (getppid() != o->ppid) /* the parent died while it was off */
		raise(o->pdeathsig);
}

int userns_become_owner(struct userns_owner *o, uid_t uid, gid_t gid, struct err *e)
{
	o->active = false;
	if (geteuid() != 0)
		return 0; /* an unprivileged supervisor owns what it makes anyway */
	o->pdeathsig = 0;
	o->ppid = getppid();
	prctl(PR_GET_PDEATHSIG, &o->pdeathsig);
	o->securebits = prctl(PR_GET_SECUREBITS);
	if (o->securebits < 0 || prctl(PR_SET_SECUREBITS, o->securebits | SECBIT_NO_SETUID_FIXUP) < 0)
		return err_sys(e, errno, "user namespace: keep capabilities while owning it (securebits)");
	if (setresgid((gid_t)-1, gid, (gid_t)-1) < 0 || setresuid((uid_t)-1, uid, (uid_t)-1) < 0) {
		int errnum = errno;
		if (setresgid((gid_t)-1, 0, (gid_t)-1) < 0 || prctl(PR_SET_SECUREBITS, o->securebits) < 0)
			abort(); /* cannot return to our own identity: nothing sane can follow */
		rearm_pdeathsig(o);
		return err_sys(e, errnum, "user namespace: take the run's uid %u as owner", (unsigned)uid);
	}
	o->active = true;
	return 0;
}

void userns_end_owner(struct userns_owner *o)
{
	if (!o->active)
		return;
	if (setresuid((uid_t)-1, 0, (uid_t)-1) < 0 || setresgid((gid_t)-1, 0, (gid_t)-1) < 0 ||
	    prctl(PR_SET_SECUREBITS, o->securebits) < 0) {
		log_error("return to the supervisor's own identity: %s", strerror(errno));
		abort();
	}
	o->active = false;
	rearm_pdeathsig(o);
}

bool userns_refused(int errnum)
{
	return errnum == ENOSPC || errnum == EPERM || errnum == EACCES || errnum == EUSERS || errnum == EINVAL;
}
