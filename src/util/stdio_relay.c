#include "util/stdio_relay.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

void stdio_relay_init(struct stdio_relay *r)
{
	for (int i = 0; i < STDIO_RELAY_POLLFDS; i++)
		r->s[i] = (struct relay_stream){.from = -1, .to = -1};
	r->cell[0] = r->cell[1] = -1;
}

/* An fd above 2: with our stdin/stdout/stderr closed, pipe2() could hand out one
 * of those numbers, and our own log lines would go into the cell's pipe. */
static int above_stdio(int fd)
{
	if (fd > 2)
		return fd;
	int moved = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	close(fd);
	return moved;
}

static bool same_terminal(void)
{
	struct stat a, b;
	return fstat(STDOUT_FILENO, &a) == 0 && fstat(STDERR_FILENO, &b) == 0 && a.st_rdev == b.st_rdev;
}

int stdio_relay_open(struct stdio_relay *r, struct err *e)
{
	stdio_relay_init(r);
	bool tty[3] = {false, isatty(STDOUT_FILENO) == 1, isatty(STDERR_FILENO) == 1};
	int n = 0, fd;
	for (fd = STDOUT_FILENO; fd <= STDERR_FILENO; fd++) {
		if (!tty[fd])
			continue;
		if (fd == STDERR_FILENO && tty[STDOUT_FILENO] && same_terminal()) {
			r->cell[1] = r->cell[0];
			continue;
		}
		int p[2];
		if (pipe2(p, O_CLOEXEC) < 0)
			goto fail;
		/* Stored at once: stdio_relay_close() then closes whatever is open. */
		struct relay_stream *s = &r->s[n++];
		*s = (struct relay_stream){.from = above_stdio(p[0]), .to = fd};
		r->cell[fd - 1] = above_stdio(p[1]);
		if (s->from < 0 || r->cell[fd - 1] < 0 || fcntl(s->from, F_SETFL, O_NONBLOCK) < 0)
			goto fail;
	}
	return 0;
fail:;
	int errnum = errno;
	stdio_relay_close(r);
	return err_sys(e, errnum, "a pipe for the workload's %s (a terminal is never shared with it)",
		       fd == STDOUT_FILENO ? "stdout" : "stderr");
}

void stdio_relay_close_cell_ends(struct stdio_relay *r)
{
	if (r->cell[1] >= 0 && r->cell[1] != r->cell[0])
		close(r->cell[1]);
	if (r->cell[0] >= 0)
		close(r->cell[0]);
	r->cell[0] = r->cell[1] = -1;
}

/* Read what the pipe holds, without waiting. Returns the bytes read: 0 when
 * there is nothing yet, or at EOF (or on an error; the end is then closed). */
static size_t fill(struct relay_stream *s)
{
	ssize_t n;
	do
		n = read(s->from, s->buf, sizeof s->buf);
	while (n < 0 && errno == EINTR);
	if (n < 0 && errno == EAGAIN)
		return 0;
	if (n <= 0) {
		/* EOF: every process of the cell that had the pipe is gone. */
		close(s->from);
		s->from = -1;
		return 0;
	}
	s->off = 0;
	s->len = s->dropping ? 0 : (size_t)n;
	return (size_t)n;
}

/* One write of what is pending. A failed stdout/stderr (closed reader, hung-up
 * terminal) does not stop the relay: the pipe is still emptied, so the workload
 * never blocks on it, and the rest is dropped. */
static void flush_some(struct relay_stream *s)
{
	ssize_t n = write(s->to, s->buf + s->off, s->len - s->off);
	if (n > 0) {
		s->off += (size_t)n;
	} else if (n < 0 && errno != EINTR && errno != EAGAIN) {
		s->dropping = true;
		s->off = s->len;
	}
	if (s->off == s->len)
		s->off = s->len = 0;
}

void stdio_relay_pollfds(const struct stdio_relay *r, struct pollfd *p)
{
	for (int i = 0; i < STDIO_RELAY_POLLFDS; i++) {
		const struct relay_stream *s = &r->s[i];
		/* Something to write: wait until the terminal can take it (not while the
		 * operator holds it with ^S); else wait for the workload's next output. */
		if (s->len > s->off)
			p[i] = (struct pollfd){.fd = s->to, .events = POLLOUT};
		else
			p[i] = (struct pollfd){.fd = s->from, .events = POLLIN};
	}
}

void stdio_relay_pump(struct stdio_relay *r, const struct pollfd *p)
{
	for (int i = 0; i < STDIO_RELAY_POLLFDS; i++) {
		struct relay_stream *s = &r->s[i];
		if (p[i].fd < 0 || !p[i].revents)
			continue;
		if (p[i].fd == s->to && s->len > s->off)
			flush_some(s);
		else if (p[i].fd == s->from)
			fill(s);
	}
}

/* Wait until `s->to` can take data: it may be a non-blocking file description
 * that the operator's shell shares with us. */
static void wait_writable(const struct relay_stream *s)
{
	struct pollfd p = {.fd = s->to, .events = POLLOUT};
	while (poll(&p, 1, -1) < 0 && errno == EINTR)
		;
}

void stdio_relay_drain(struct stdio_relay *r)
{
	for (int i = 0; i < STDIO_RELAY_POLLFDS; i++) {
		struct relay_stream *s = &r->s[i];
		for (;;) {
			while (s->len > s->off) {
				flush_some(s);
				if (s->len > s->off)
					wait_writable(s);
			}
			if (s->from < 0 || fill(s) == 0)
				break;
		}
	}
}

void stdio_relay_close(struct stdio_relay *r)
{
	stdio_relay_close_cell_ends(r);
	stdio_relay_drain(r);
	for (int i = 0; i < STDIO_RELAY_POLLFDS; i++)
		if (r->s[i].from >= 0) {
			close(r->s[i].from);
			r->s[i].from = -1;
		}
}

int stdio_relay_install(const int cell[2])
{
	for (int i = 0; i < 2; i++)
		if (cell[i] >= 0 && dup2(cell[i], i + 1) < 0)
			return -1;
	return 0;
}
