/* cellos-supervisor: command line, admission, exit status (SPEC §1). */
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "events/event.h"
#include "export/export.h"
#include "secrets/broker.h"
#include "spec/spec.h"
#include "supervisor.h"
#include "util/ids.h"
#include "util/log.h"

#define VERSION "0.5.1-c"

static const char usage[] =
	"usage: cellos-supervisor [--validate] SPEC.json\n"
	"       cellos-supervisor [--validate] -        (document on stdin)\n"
	"       cellos-supervisor --help | --version\n";

static const char help[] =
	"Runs one CellOS ExecutionCell: validates the document, builds an isolated cell,\n"
	"runs its command, and emits a CloudEvent for every step.\n\n"
	"  --validate   parse and validate, print a summary, run nothing\n"
	"  --help       this text\n"
	"  --version    print the version\n\n"
	"Exit status: the workload's own status; 124 timeout; 125 supervisor failure\n"
	"(invalid document or configuration, backend, secrets, export); 126 cannot\n"
	"execute; 127 not found; 128+N killed by signal N.\n"
	"Configuration is read from the environment (CELLOS_*, CELL_OS_*): see SPEC.md §3.\n";

static void print_summary(const struct config *cfg, const struct spec *s)
{
	printf("cell:      %s\n", s->id);
	printf("ttl:       %llds\n", s->ttl_seconds);
	if (s->has_run) {
		printf("argv:     ");
		for (size_t i = 0; i < s->argc; i++)
			printf(" %s", s->argv[i]);
		printf("\n");
		printf("delivery:  %s\n", s->delivery == DELIVERY_FILE ? "file" : "env");
		if (s->working_directory)
			printf("workdir:   %s\n", s->working_directory);
		if (s->timeout_ms)
			printf("timeout:   %lld ms\n", s->timeout_ms);
	} else {
		printf("argv:      (none: nothing is executed)\n");
	}
	printf("secrets:   %zu", s->n_secret_refs);
	for (size_t i = 0; i < s->n_secret_refs; i++)
		printf("%s%s", i ? ", " : " (", s->secret_refs[i]);
	printf("%s\n", s->n_secret_refs ? ")" : "");
	printf("egress:    %zu rule(s)\n", s->n_egress);
	for (size_t i = 0; i < s->n_egress; i++)
		printf("           %s %s:%d\n", s->egress[i].proto == PROTO_UDP ? "udp" : "tcp", s->egress[i].host,
		       s->egress[i].port);
	if (s->memory_max_bytes || s->cpu_quota_micros || s->pids_max)
		printf("limits:    memory %lld, cpu %lld/%lld, pids %lld\n", s->memory_max_bytes, s->cpu_quota_micros,
		       s->cpu_period_micros, s->pids_max);
	printf("artifacts: %zu\n", s->n_artifacts);
	printf("backend:   %s (%s profile)\n", config_backend_name(cfg->backend), cfg->hardened ? "hardened" : "portable");
}

/* Debug: the supervisor's peak RSS (the bench reports it). */
static void log_peak_rss(void)
{
	FILE *f = fopen("/proc/self/status", "re");
	if (!f)
		return;
	char line[256];
	while (fgets(line, sizeof line, f))
		if (strncmp(line, "VmHWM:", 6) == 0) {
			line[strcspn(line, "\n")] = '\0';
			log_debug("peak rss %s", line + 6 + strspn(line + 6, " \t"));
		}
	fclose(f);
}

/* A standard descriptor we were started without would go to the next open():
 * the events file could become our stderr (log lines among the events) or be
 * handed to the workload as its stdout. /dev/null takes its place. */
static void std_fds_open(void)
{
	for (int fd = STDIN_FILENO; fd <= STDERR_FILENO; fd++)
		if (fcntl(fd, F_GETFD) < 0 && errno == EBADF)
			open("/dev/null", fd == STDIN_FILENO ? O_RDONLY : O_WRONLY); /* the lowest free fd: this one */
}

int main(int argc, char **argv)
{
	std_fds_open();
	bool validate = false;
	const char *path = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			fputs(usage, stdout);
			fputs(help, stdout);
			return 0;
		} else if (strcmp(argv[i], "--version") == 0) {
			puts("cellos-supervisor " VERSION);
			return 0;
		} else if (strcmp(argv[i], "--validate") == 0) {
			validate = true;
		} else if (argv[i][0] == '-' && argv[i][1] != '\0') {
			log_error("unknown option '%s'", argv[i]); /* escaped: any bytes may follow the '-' */
			fputs(usage, stderr);
			return 125;
		} else if (path) {
			log_error("more than one document given");
			fputs(usage, stderr);
			return 125;
		} else {
			path = argv[i];
		}
	}
	if (!path) {
		fputs(usage, stderr);
		return 125;
	}

	int64_t t0 = mono_us();
	/* Before anything that could take a while: a SIGTERM must not be lost. */
	supervisor_block_signals();
	if (sodium_init() < 0) {
		log_error("libsodium failed to initialise");
		return 125;
	}

	struct config cfg;
	struct err e = {0};
	if (config_load(&cfg, &e) < 0) {
		log_error("%s", e.msg);
		config_free(&cfg);
		return 125;
	}

	struct spec spec;
	struct problems probs = {0};
	if (spec_load(path, cfg.strict_spec, &spec, &probs) < 0) {
		for (size_t i = 0; i < probs.n; i++)
			log_error("%s", probs.items[i]);
		problems_free(&probs);
		config_free(&cfg);
		return 125;
	}
	int status = 125;
	if (config_check_profile(&cfg, spec.has_run ? spec.argv[0] : NULL, &e) < 0 ||
	    secrets_admit(&cfg, &spec, &e) < 0 || export_admit(&cfg, &spec, &e) < 0) {
		log_error("%s", e.msg);
		goto out;
	}
	if (validate) {
		print_summary(&cfg, &spec);
		status = 0;
		goto out;
	}

	struct event_stream es;
	if (events_open(&es, &cfg, &e) < 0) {
		log_error("%s", e.msg);
		goto out;
	}
	log_step(&t0, "admission");
	status = supervisor_run(&cfg, &spec, &es);
	events_close(&es);
	log_peak_rss();
out:
	spec_free(&spec);
	config_free(&cfg);
	return status;
}
