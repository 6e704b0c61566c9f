#include "backend/oci_tool.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/child.h"
#include "util/ids.h"

/* Reap `pid`: its exit status, 128+N for signal N, or -1 when its status cannot
 * be known (someone else reaped it): never a made-up "exited 0". */
static int reap_status(pid_t pid)
{
	int ws;
	pid_t w;
	while ((w = waitpid(pid, &ws, 0)) < 0 && errno == EINTR)
		;
	if (w < 0)
		return -1;
	return WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
}

static int wait_child(pid_t pid, int pidfd, int timeout_ms)
{
	struct pollfd p = {.fd = pidfd, .events = POLLIN};
	int64_t end = mono_ms() + timeout_ms;
	for (;;) {
		int64_t left = end - mono_ms();
		if (left <= 0) {
			kill(pid, SIGKILL);
			break;
		}
		int n = poll(&p, 1, (int)left);
		if (n > 0 || (n < 0 && errno != EINTR))
			break;
	}
	return reap_status(pid);
}

/* fork + exec with a memfd for output. */
int oci_tool_run_in(int mntns, const char *path, const char *const *argv, const char *const *env, int timeout_ms,
		    char *msg, size_t size)
{
	if (msg && size)
		msg[0] = '\0';
	int out = memfd_create("cellos-tool", MFD_CLOEXEC);
	if (out < 0)
		return -1;
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0) {
		close(out);
		return -1;
	}
	if (pid == 0) {
		if (child_tie(parent) < 0)
			_exit(127);
		if (mntns >= 0 && (setns(mntns, CLONE_NEWNS) < 0 || chdir("/") < 0))
			_exit(126);
		int null = open("/dev/null", O_RDONLY);
		if (null < 0 || dup2(null, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
			_exit(126);
		close_range(3, ~0U, 0);
		static const char *const deflt[] = {OCI_TOOL_PATH, NULL};
		execve(path, (char *const *)argv, (char *const *)(env ? env : deflt));
		_exit(127);
	}
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	int rc = -1;
	if (pidfd >= 0) {
		rc = wait_child(pid, pidfd, timeout_ms);
		close(pidfd);
	} else {
		rc = reap_status(pid);
	}
	if (msg && size) {
		ssize_t n = pread(out, msg, size - 1, 0);
		msg[n > 0 ? n : 0] = '\0';
	}
	close(out);
	return rc;
}

void oci_tool_last_line(char *msg)
{
	if (!msg)
		return;
	size_t len = strlen(msg);
	while (len && (msg[len - 1] == '\n' || msg[len - 1] == ' '))
		msg[--len] = '\0';
	char *nl = strrchr(msg, '\n');
	if (nl)
		memmove(msg, nl + 1, strlen(nl + 1) + 1);
}

int oci_tool_run(const char *path, const char *const *args, const char *const *env, int timeout_ms, char *msg,
		 size_t size)
{
	int rc = oci_tool_run_in(-1, path, args, env, timeout_ms, msg, size);
	if (size)
		oci_tool_last_line(msg);
	return rc;
}

/* ---- facts about a runtime binary, cached ---- */

static bool binary_key(const char *binary, char *key, size_t size)
{
	struct stat st;
	if (stat(binary, &st) < 0)
		return false;
	snprintf(key, size, "%llu %llu %lld %lld.%09ld", (unsigned long long)st.st_dev, (unsigned long long)st.st_ino,
		 (long long)st.st_size, (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
	return true;
}

bool oci_tool_cache_get(const char *cache, const char *binary, char *value, size_t size)
{
	char key[128], buf[256];
	if (!binary_key(binary, key, sizeof key))
		return false;
	int fd = open(cache, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return false;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	size_t klen = strlen(key);
	if (strncmp(buf, key, klen) != 0 || buf[klen] != ' ')
		return false;
	snprintf(value, size, "%.*s", (int)strcspn(buf + klen + 1, "\n"), buf + klen + 1);
	return value[0] != '\0';
}

void oci_tool_cache_put(const char *cache, const char *binary, const char *value)
{
	char key[128], tmp[PATH_MAX], line[256];
	if (!binary_key(binary, key, sizeof key))
		return;
	snprintf(tmp, sizeof tmp, "%s.%d", cache, (int)getpid());
	int n = snprintf(line, sizeof line, "%s %s\n", key, value);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	bool ok = write(fd, line, (size_t)n) == n;
	close(fd);
	/* rename: a concurrent reader sees the old line or the new one, never half. */
	if (!ok || rename(tmp, cache) < 0)
		unlink(tmp);
}
