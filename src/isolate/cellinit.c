#include "isolate/cellinit.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"

static void send_msg(int fd, char tag, const void *body, size_t len)
{
	char buf[PATH_MAX + 64];
	if (len > sizeof buf - 1)
		len = sizeof buf - 1;
	buf[0] = tag;
	memcpy(buf + 1, body, len);
	ssize_t n = send(fd, buf, len + 1, MSG_NOSIGNAL);
	(void)n;
}

static _Noreturn void setup_failed(int fd, const char *what)
{
	int errnum = errno;
	char buf[300];
	memcpy(buf, &errnum, sizeof errnum);
	size_t n = (size_t)snprintf(buf + sizeof errnum, sizeof buf - sizeof errnum, "%s", what);
	send_msg(fd, 'S', buf, sizeof errnum + n);
	_exit(125);
}

/* Close every fd except those in keep[] (which need not be sorted). */
static void close_fds_except(const int *keep, int n)
{
	int sorted[8];
	for (int i = 0; i < n; i++)
		sorted[i] = keep[i];
	for (int i = 1; i < n; i++)
		for (int j = i; j > 0 && sorted[j - 1] > sorted[j]; j--) {
			int t = sorted[j];
			sorted[j] = sorted[j - 1];
			sorted[j - 1] = t;
		}
	unsigned lo = 3;
	for (int i = 0; i < n; i++) {
		if (sorted[i] < 3)
			continue;
		if ((unsigned)sorted[i] > lo)
			close_range(lo, (unsigned)sorted[i] - 1, 0);
		lo = (unsigned)sorted[i] + 1;
	}
	close_range(lo, ~0U, 0);
}

/* In-cell setup that must happen inside the new namespaces. */
static void setup(const struct cellinit_args *a)
{
	if (a->ns & NS_MNT) {
		/* Nothing we mount may propagate back to the host. */
		if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
			setup_failed(a->ctl, "make / private");
		if (a->workdir && mount("tmpfs", a->workdir, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755") < 0)
			setup_failed(a->ctl, "mount tmpfs on run.workingDirectory");
	}
	if ((a->ns & NS_PID) && mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
		setup_failed(a->ctl, "mount /proc");
	if (a->ns & NS_UTS) {
		size_t len = strlen(a->hostname);
		if (sethostname(a->hostname, len > 64 ? 64 : len) < 0)
			setup_failed(a->ctl, "sethostname");
	}
}

/* Find argv[0] the way execvp would, but in the cell's PATH, not ours. */
static int resolve(const char *file, const char *path, char *out, size_t size)
{
	if (strchr(file, '/')) {
		snprintf(out, size, "%s", file);
		return 0;
	}
	int err = ENOENT;
	const char *p = path;
	while (p && *p) {
		size_t len = strcspn(p, ":");
		snprintf(out, size, "%.*s/%s", (int)(len ? len : 1), len ? p : ".", file);
		struct stat st;
		if (stat(out, &st) == 0 && S_ISREG(st.st_mode)) {
			if (access(out, X_OK) == 0)
				return 0;
			err = EACCES;
		}
		p += len;
		if (*p == ':')
			p++;
	}
	errno = err;
	return -1;
}

static _Noreturn void exec_workload(const struct cellinit_args *a)
{
	sigset_t none;
	sigemptyset(&none);
	for (int s = 1; s < NSIG; s++)
		signal(s, SIG_DFL);
	sigprocmask(SIG_SETMASK, &none, NULL);
	prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);

	int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (null < 0 || dup2(null, STDIN_FILENO) < 0) {
		int errnum = errno;
		send_msg(a->ctl, 'E', &errnum, sizeof errnum);
		_exit(126);
	}
	int keep[] = {a->ctl};
	close_fds_except(keep, 1);
	if (a->workdir && chdir(a->workdir) < 0) {
		int errnum = errno;
		send_msg(a->ctl, 'E', &errnum, sizeof errnum);
		_exit(126);
	}

	char prog[PATH_MAX];
	if (resolve(a->argv[0], a->path, prog, sizeof prog) < 0) {
		int errnum = errno;
		send_msg(a->ctl, 'E', &errnum, sizeof errnum);
		_exit(errnum == ENOENT ? 127 : 126);
	}
	/* The supervisor has SO_PASSCRED: this message carries our pid as it sees it. */
	send_msg(a->ctl, 'P', prog, strlen(prog));
	execve(prog, a->argv, a->envp);
	int errnum = errno;
	send_msg(a->ctl, 'E', &errnum, sizeof errnum);
	_exit(errnum == ENOENT ? 127 : 126);
}

_Noreturn void cellinit_main(const struct cellinit_args *a)
{
	bool pid1 = getpid() == 1;
	sigset_t set;
	sigemptyset(&set);
	int sigs[] = {SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};
	for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
		sigaddset(&set, sigs[i]);
	sigprocmask(SIG_BLOCK, &set, NULL);

	/* With a PID namespace the kernel kills the whole cell when we die; without
	 * one we need a chance to kill it ourselves when the supervisor dies. */
	prctl(PR_SET_PDEATHSIG, pid1 ? SIGKILL : SIGUSR2, 0, 0, 0);
	if (!pid1 && getppid() != a->supervisor)
		_exit(125);
	if (!pid1)
		prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);

	int keep[] = {a->ctl, a->report, a->cgroup_kill};
	close_fds_except(keep, a->cgroup_kill >= 0 ? 3 : 2);

	char cmd;
	for (;;) {
		/* EOF: the supervisor is gone or gave up on the cell. */
		if (recv(a->ctl, &cmd, 1, 0) != 1)
			_exit(125);
		if (cmd == 'A') {
			setup(a);
			send_msg(a->ctl, 'R', "", 0);
		} else if (cmd == 'B') {
			break;
		}
	}

	pid_t child = fork();
	if (child < 0) {
		int errnum = errno;
		send_msg(a->ctl, 'E', &errnum, sizeof errnum);
		_exit(125);
	}
	if (child == 0)
		exec_workload(a);
	close(a->ctl);

	for (;;) {
		siginfo_t si;
		int sig = sigwaitinfo(&set, &si);
		if (sig == SIGCHLD) {
			int st;
			struct rusage ru;
			pid_t p;
			while ((p = wait4(-1, &st, WNOHANG, &ru)) > 0) {
				if (p != child)
					continue;
				struct cellinit_report r = {.wstatus = st, .ru = ru};
				ssize_t n = write(a->report, &r, sizeof r);
				(void)n;
				/* PID 1 exiting makes the kernel kill the rest of the cell;
				 * otherwise the supervisor kills the cgroup leaf. */
				_exit(0);
			}
		} else if (sig == SIGUSR2 && !pid1) {
			/* The supervisor died: take the whole cell down with us. */
			if (a->cgroup_kill >= 0) {
				ssize_t n = write(a->cgroup_kill, "1", 1);
				(void)n;
			}
			kill(child, SIGKILL);
			_exit(137);
		} else if (sig > 0 && sig != SIGCHLD) {
			kill(child, sig);
			if (pid1)
				kill(-1, sig); /* every other process of the cell's PID namespace */
		}
	}
}
