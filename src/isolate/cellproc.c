#include "isolate/cellproc.h"

#include <errno.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "util/log.h"

int cellproc_clone(struct cgroup_cell *cg, const struct cellproc_clone *req, pid_t *pid, int *pidfd, struct err *e)
{
	*pid = -1;
	*pidfd = -1;
	struct clone_args ca = {
		.flags = req->flags | CLONE_PIDFD,
		.pidfd = (uint64_t)(uintptr_t)pidfd,
		.exit_signal = SIGCHLD,
	};
	if (cg->v2.fd >= 0) {
		ca.flags |= CLONE_INTO_CGROUP;
		ca.cgroup = (uint64_t)cg->v2.fd;
	}
	cgroup_cell_enter(cg);
	long child = -1;
	int clone_errno = 0, rc = 0;
	if (req->before && req->before(req->arg, e) < 0) {
		rc = -1;
		clone_errno = errno;
	} else {
		child = syscall(SYS_clone3, &ca, sizeof ca);
		if (child == 0) {
			req->child(req->arg);
			_exit(125);
		}
		clone_errno = errno;
		if (req->after)
			req->after(req->arg);
		if (child < 0)
			rc = err_sys(e, clone_errno, "clone3 of %s", req->what);
	}
	struct err le = {0};
	if (cgroup_cell_leave(cg, &le) < 0) {
		if (rc < 0)
			log_error("%s", le.msg);
		else
			*e = le;
		rc = -1;
	}
	if (child > 0)
		*pid = (pid_t)child;
	else
		*pidfd = -1;
	errno = clone_errno;
	return rc;
}

void cellproc_release(struct cgroup_cell *cg, struct runreg *reg)
{
	struct err e = {0};
	if (cgroup_cell_leave(cg, &e) < 0 || cgroup_cell_destroy(cg, &e) < 0)
		log_error("%s", e.msg);
	else
		runreg_release(reg);
	if (reg->fd >= 0)
		close(reg->fd);
	reg->fd = -1;
}
