#include "backend/oci_hook.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend/oci_tool.h"
#include "util/ids.h"

static const char *const hook_env[] = {OCI_TOOL_PATH, NULL};

void oci_hooks_init(struct oci_hooks *h, const char *dir)
{
	h->ev = h->go = -1;
	h->gate_open = false;
	h->len = 0;
	snprintf(h->ev_path, sizeof h->ev_path, "%s/ev", dir);
	snprintf(h->go_path, sizeof h->go_path, "%s/go", dir);
	const char *gate[] = {"/bin/sh", "-c",
			      "IFS= read -r s; printf 'C%s\\n' \"$s\" 1<>\"$1\" && IFS= read -r x <\"$2\" && "
			      "[ \"$x\" = go ]",
			      "cellos-gate", h->ev_path, h->go_path, NULL};
	const char *started[] = {"/bin/sh", "-c", "printf 'S\\n' 1<>\"$1\"", "cellos-started", h->ev_path, NULL};
	memcpy(h->gate_argv, gate, sizeof gate);
	memcpy(h->started_argv, started, sizeof started);
	h->gate = (struct oci_hook){h->gate_argv, hook_env};
	h->started = (struct oci_hook){h->started_argv, hook_env};
}

int oci_hooks_make(const char *dir, char *failed, size_t size)
{
	static const char *const fifos[] = {"ev", "go"};
	for (size_t i = 0; i < 2; i++) {
		snprintf(failed, size, "%s/%s", dir, fifos[i]);
		if (mkfifo(failed, 0600) < 0)
			return -1;
	}
	return 0;
}

int oci_hooks_open(struct oci_hooks *h, const char *root, const char *dir)
{
	char p[PATH_MAX + 64];
	snprintf(p, sizeof p, "%s%s/ev", root, dir);
	h->ev = open(p, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	snprintf(p, sizeof p, "%s%s/go", root, dir);
	h->go = open(p, O_RDWR | O_CLOEXEC);
	return h->ev < 0 || h->go < 0 ? -1 : 0;
}

int oci_hooks_release(struct oci_hooks *h)
{
	h->gate_open = true;
	return write(h->go, "go\n", 3) == 3 ? 0 : -1;
}

void oci_hooks_refuse(struct oci_hooks *h)
{
	if (h->go < 0)
		return;
	ssize_t n = write(h->go, "no\n", 3);
	(void)n;
}

int oci_hooks_wait(struct oci_hooks *h, char want, char *line, size_t size, const struct oci_hooks_waiter *w,
		   struct err *e)
{
	for (;;) {
		char *nl;
		while ((nl = memchr(h->buf, '\n', h->len))) {
			size_t l = (size_t)(nl - h->buf);
			bool hit = l > 0 && h->buf[0] == want;
			if (hit)
				snprintf(line, size, "%.*s", (int)l, h->buf);
			memmove(h->buf, nl + 1, h->len - l - 1);
			h->len -= l + 1;
			if (hit)
				return 1;
		}
		if (*w->exited)
			return 0;
		int64_t left = w->deadline - mono_ms();
		if (left <= 0)
			return err_set(e, "%s: no %s within lifetime.ttlSeconds", w->name,
				       want == 'C' ? "container" : "workload start");
		struct pollfd p[3] = {{.fd = h->ev, .events = POLLIN},
				      {.fd = w->pidfd, .events = POLLIN},
				      {.fd = w->sigfd, .events = POLLIN}};
		int n = poll(p, 3, left > 60000 ? 60000 : (int)left);
		if (n < 0 && errno != EINTR)
			return err_sys(e, errno, "poll");
		if (n <= 0)
			continue;
		if (p[2].revents)
			return err_set(e, "interrupted by a signal while %s created the container", w->name);
		if (p[0].revents & POLLIN) {
			ssize_t r = read(h->ev, h->buf + h->len, sizeof h->buf - 1 - h->len);
			if (r > 0)
				h->len += (size_t)r;
			if (h->len >= sizeof h->buf - 1)
				h->len = 0; /* never from our hooks; drop garbage */
			continue;
		}
		if (p[1].revents)
			w->reap(w->arg);
	}
}

void oci_hooks_close(struct oci_hooks *h)
{
	if (h->ev >= 0)
		close(h->ev);
	if (h->go >= 0)
		close(h->go);
	h->ev = h->go = -1;
}
