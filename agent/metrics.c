/* Prometheus text metrics on /metrics (SPEC §11, CELLOS_AGENT_METRICS_ADDR).
 *
 * A minimal HTTP/1.0 responder served from the agent's loop: one request per
 * connection, read with a short timeout so a slow client cannot hold the
 * agent, answered and closed. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent.h"
#include "util/fileio.h"

const char *const agent_outcome_names[OUT_N] = {"succeeded", "failed", "invalid", "max_deliveries", "handed_back"};

/* Upper bounds (seconds) of cellos_agent_job_start_seconds' buckets. */
static const double start_bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
				      0.5,   1,      2.5,   5,    10,    30,    60};
#define N_BOUNDS (sizeof start_bounds / sizeof start_bounds[0])

/* How long a client may take to send its request. */
#define REQUEST_TIMEOUT_MS 500

void metrics_observe_start(struct agent_metrics *m, double seconds)
{
	if (seconds < 0)
		seconds = 0;
	for (size_t i = 0; i < N_BOUNDS; i++)
		if (seconds <= start_bounds[i])
			m->start_buckets[i]++;
	m->start_count++;
	m->start_sum += seconds;
}

int metrics_listen(const char *addr, struct err *e)
{
	char host[128];
	const char *colon = strrchr(addr, ':');
	if (!colon || colon == addr || (size_t)(colon - addr) >= sizeof host)
		return err_set(e, "CELLOS_AGENT_METRICS_ADDR: '%s' is not host:port", addr);
	memcpy(host, addr, (size_t)(colon - addr));
	host[colon - addr] = '\0';
	char *end;
	long port = strtol(colon + 1, &end, 10);
	if (!colon[1] || *end || port < 0 || port > 65535)
		return err_set(e, "CELLOS_AGENT_METRICS_ADDR: '%s': the port is not a number from 0 to 65535", addr);
	struct sockaddr_storage ss = {0};
	socklen_t sl;
	size_t hl = strlen(host);
	if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
		host[hl - 1] = '\0';
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		if (inet_pton(AF_INET6, host + 1, &s6->sin6_addr) != 1)
			return err_set(e, "CELLOS_AGENT_METRICS_ADDR: '%s' is not an IP address", host + 1);
		sl = sizeof *s6;
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		if (inet_pton(AF_INET, host, &s4->sin_addr) != 1)
			return err_set(e, "CELLOS_AGENT_METRICS_ADDR: '%s' is not an IP address (IPv6 in brackets)", host);
		sl = sizeof *s4;
	}
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return err_sys(e, errno, "CELLOS_AGENT_METRICS_ADDR: socket");
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(fd, (struct sockaddr *)&ss, sl) < 0 || listen(fd, 16) < 0) {
		int err = errno;
		close(fd);
		return err_sys(e, err, "CELLOS_AGENT_METRICS_ADDR: %s", addr);
	}
	return fd;
}

static char *exposition(const struct agent_metrics *m, size_t *len)
{
	char *buf = NULL;
	FILE *f = open_memstream(&buf, len);
	if (!f)
		return NULL;
	fprintf(f, "# HELP cellos_agent_cells_running Cells this agent runs now.\n"
		   "# TYPE cellos_agent_cells_running gauge\n"
		   "cellos_agent_cells_running %u\n",
		m->running);
	fprintf(f, "# HELP cellos_agent_cells_started_total Supervisors started for jobs.\n"
		   "# TYPE cellos_agent_cells_started_total counter\n"
		   "cellos_agent_cells_started_total %llu\n",
		(unsigned long long)m->started);
	fprintf(f, "# HELP cellos_agent_cells_finished_total Jobs this agent is done with, by outcome.\n"
		   "# TYPE cellos_agent_cells_finished_total counter\n");
	for (int i = 0; i < OUT_N; i++)
		fprintf(f, "cellos_agent_cells_finished_total{outcome=\"%s\"} %llu\n", agent_outcome_names[i],
			(unsigned long long)m->finished[i]);
	fprintf(f, "# HELP cellos_agent_fetch_errors_total Pull requests and consumer calls that failed.\n"
		   "# TYPE cellos_agent_fetch_errors_total counter\n"
		   "cellos_agent_fetch_errors_total %llu\n",
		(unsigned long long)m->fetch_errors);
	fprintf(f, "# HELP cellos_agent_warm_cells_ready Warm cells built and waiting for a job.\n"
		   "# TYPE cellos_agent_warm_cells_ready gauge\n"
		   "cellos_agent_warm_cells_ready %u\n",
		m->warm_ready);
	fprintf(f, "# HELP cellos_agent_job_start_seconds Time from a job's queueing to its supervisor's start.\n"
		   "# TYPE cellos_agent_job_start_seconds histogram\n");
	for (size_t i = 0; i < N_BOUNDS; i++)
		fprintf(f, "cellos_agent_job_start_seconds_bucket{le=\"%g\"} %llu\n", start_bounds[i],
			(unsigned long long)m->start_buckets[i]);
	fprintf(f, "cellos_agent_job_start_seconds_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)m->start_count);
	fprintf(f, "cellos_agent_job_start_seconds_sum %.6f\n", m->start_sum);
	fprintf(f, "cellos_agent_job_start_seconds_count %llu\n", (unsigned long long)m->start_count);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

void metrics_serve_one(int lfd, const struct agent_metrics *m)
{
	int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		return;
	char req[2048];
	size_t n = 0;
	/* The request line and headers, up to the blank line. */
	while (n < sizeof req - 1 && !memmem(req, n, "\r\n\r\n", 4) && !memmem(req, n, "\n\n", 2)) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, REQUEST_TIMEOUT_MS) <= 0)
			break;
		ssize_t r = read(fd, req + n, sizeof req - 1 - n);
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	req[n] = '\0';
	char head[256];
	if (strncmp(req, "GET /metrics ", 13) == 0 || strncmp(req, "GET /metrics?", 13) == 0) {
		size_t len = 0;
		char *body = exposition(m, &len);
		if (body) {
			int hl = snprintf(head, sizeof head,
					  "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
					  "Content-Length: %zu\r\nConnection: close\r\n\r\n",
					  len);
			write_all(fd, head, (size_t)hl);
			write_all(fd, body, len);
			free(body);
		}
	} else {
		static const char nf[] = "HTTP/1.0 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 21\r\n"
					 "Connection: close\r\n\r\nonly /metrics is here";
		write_all(fd, nf, sizeof nf - 1);
	}
	close(fd);
}
