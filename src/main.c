/* cellos-supervisor: command line, admission, exit status (SPEC §1). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sodium.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admission.h"
#include "config.h"
#include "events/event.h"
#include "events/sign.h"
#include "sink/nats.h"
#include "sink/nats_wire.h"
#include "spec/spec.h"
#include "supervisor.h"
#include "util/ids.h"
#include "util/cowcopy.h"
#include "util/log.h"

#define VERSION "0.5.1-c"

static const char usage[] =
	"usage: cellos-supervisor [--validate [--format text|json]] SPEC.json\n"
	"       cellos-supervisor [--validate [--format text|json]] -   (document on stdin)\n"
	"       cellos-supervisor --warm -   (cellos-agent's warm cells: fd 3 is closed when ready)\n"
	"       cellos-supervisor --help | --version\n";

static const char help[] =
	"Runs one CellOS ExecutionCell: validates the document, builds an isolated cell,\n"
	"runs its command, and emits a CloudEvent for every step.\n\n"
	"  --validate   parse and validate, print a summary, run nothing: exit 0, or 125\n"
	"               with every problem (the checks of `cellctl validate`)\n"
	"  --format F   with --validate: text (default) or json, one object on stdout:\n"
	"               {\"valid\", \"problems\": [{\"path\", \"message\"}], \"warnings\", \"summary\"}\n"
	"  --help       this text\n"
	"  --version    print the version\n\n"
	"Exit status: the workload's own status; 124 timeout; 125 supervisor failure\n"
	"(invalid document or configuration, backend, secrets, export); 126 cannot\n"
	"execute; 127 not found; 128+N killed by signal N.\n"
	"Configuration is read from the environment (CELLOS_*, CELL_OS_*). Every field of\n"
	"the document and every variable: docs/reference.md.\n";

/* The limits the cell would get: only those that are set, so that an unset one
 * never reads as a limit of 0. */
static void print_limits(const struct config *cfg, const struct spec *s)
{
	const char *sep = "";
	printf("limits:   ");
	if (s->memory_max_bytes) {
		printf(" memory %lld bytes", s->memory_max_bytes);
		sep = ",";
	}
	if (s->cpu_quota_micros) {
		printf("%s cpu %lld/%lld us", sep, s->cpu_quota_micros, s->cpu_period_micros);
		sep = ",";
	} else if (cfg->cpu_quota) {
		printf("%s cpu %lld/%lld us (CELLOS_CGROUP_CPU_MAX)", sep, cfg->cpu_quota, cfg->cpu_period);
		sep = ",";
	}
	if (s->pids_max) {
		printf("%s pids %lld", sep, s->pids_max);
		sep = ",";
	}
	printf("%s\n", *sep ? "" : " none");
}

/* What isolation the cell would get, in the words of the configuration: "stub"
 * alone reads like a test stand-in, so each backend is explained. */
static void print_isolation(const struct config *cfg)
{
	static const struct { unsigned bit; const char *name; } ns_names[] = {
		{NS_NET, "net"}, {NS_MNT, "mnt"}, {NS_PID, "pid"}, {NS_IPC, "ipc"},
		{NS_UTS, "uts"}, {NS_CGROUP, "cgroup"}, {NS_USER, "user"},
	};
	const char *what = "?";
	const char *runtime = strrchr(cfg->oci_runtime_path, '/') ? strrchr(cfg->oci_runtime_path, '/') + 1 : "";
	switch (cfg->backend) {
	case BACKEND_STUB: what = "host processes in namespaces"; break;
	case BACKEND_GVISOR: what = "runsc: the workload runs on gVisor's user-space kernel"; break;
	case BACKEND_OCI: what = strcmp(runtime, "crun") == 0 ? "crun: a container on the host kernel"
							      : "runc: a container on the host kernel";
		break;
	case BACKEND_QEMU: what = cfg->qemu_kvm ? "a QEMU microVM under KVM: the workload runs on a guest kernel"
						: "a QEMU microVM under TCG emulation: the workload runs on a guest kernel";
		break;
	case BACKEND_FIRECRACKER: what = "Firecracker: the workload runs on a guest kernel in a microVM"; break;
	}
	printf("backend:   %s (%s), %s profile\n", config_backend_name(cfg->backend), what,
	       cfg->hardened ? "hardened" : "portable");

	/* The oci backend always maps the container's root to the run's uid. */
	unsigned ns = cfg->ns | (cfg->backend == BACKEND_OCI ? NS_USER : 0);
	if (cfg->backend == BACKEND_QEMU) {
		printf("namespaces: net (the VMM's own, holding the guest's TAP); the workload is in the guest\n");
	} else if (cfg->backend == BACKEND_STUB && cfg->host_mode) {
		printf("namespaces: none: host mode (CELLOS_SUBPROCESS_UNSHARE=0), the workload shares the host's\n");
	} else {
		printf("namespaces:");
		const char *sep = " ";
		for (size_t i = 0; i < sizeof ns_names / sizeof ns_names[0]; i++)
			if (ns & ns_names[i].bit) {
				printf("%s%s", sep, ns_names[i].name);
				sep = ", ";
			}
		/* `all` (the default) falls back without a user namespace where the
		 * kernel refuses one; a `user` listed by name does not. */
		if (cfg->backend == BACKEND_STUB && (ns & NS_USER) && !cfg->user_required)
			printf(" (user only where the kernel allows one)");
		printf("\n");
	}
	if (cfg->backend == BACKEND_QEMU)
		printf("seccomp:   the VMM under QEMU's own filter (-sandbox); the guest kernel filters nothing\n");
	else if (cfg->backend == BACKEND_FIRECRACKER && cfg->fc_jailer)
		printf("seccomp:   the VMM under Firecracker's own filters (the jailer allows no other)\n");
	else if (cfg->backend == BACKEND_FIRECRACKER && !cfg->seccomp_policy)
		printf("seccomp:   off: no filter on the VMM (Firecracker started with --no-seccomp)\n");
	else if (cfg->backend == BACKEND_FIRECRACKER)
		printf("seccomp:   the VMM under %s, and Firecracker's own filters\n",
		       strcmp(cfg->seccomp, "file") == 0 ? "the filter file of CELLOS_SECCOMP" : "the baseline");
	else
	printf("seccomp:   %s\n", strcmp(cfg->seccomp, "file") == 0 ? "the filter file of CELLOS_SECCOMP" : cfg->seccomp);

	if (cfg->backend == BACKEND_GVISOR)
		printf("uid:       the workload is no host process (gVisor's kernel runs it)\n");
	else if (cfg->backend == BACKEND_QEMU)
		printf("uid:       the workload is no host process; the VMM runs as a host uid of its own, never 0\n");
	else if (cfg->fixed_uid)
		printf("uid:       host uid %lu, gid %lu for every cell (CELLOS_CELL_UID)\n", cfg->fixed_uid, cfg->fixed_gid);
	else
		printf("uid:       a host uid of its own from %lu-%lu, never 0\n", cfg->uid_first, cfg->uid_last);
}

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
		else if (cfg->run_timeout_ms)
			printf("timeout:   %lld ms (CELLOS_RUN_TIMEOUT_MS)\n", cfg->run_timeout_ms);
		for (size_t i = 0; i < s->n_mounts; i++)
			printf("mount:     %s -> %s (%s)\n", s->mounts[i].source, s->mounts[i].target,
			       s->mounts[i].read_only ? "read-only" : "read-write");
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
	if (s->has_run)
		print_limits(cfg, s);
	printf("artifacts: %zu\n", s->n_artifacts);
	print_isolation(cfg);
}

/* Debug: the supervisor's peak RSS (the bench reports it). */
static void log_peak_rss(void)
{
	if (!log_enabled(LOG_DEBUG))
		return; /* generating /proc/self/status is not free */
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

/* --warm (cellos-agent, SPEC §11): what does not depend on the document is done
 * before it exists (docs/DESIGN.md, "Warm cells"): the process, its libraries,
 * the cell itself where the backend can (supervisor_warm_prepare: the stub's
 * leaves, namespaces, netns and base root), libnats when events go to NATS.
 * Closing fd 3 tells the agent; then the document is awaited on stdin. A
 * SIGTERM/SIGINT meanwhile ends the warm cell without a run: what it built is
 * destroyed, 128+N, no event (there is no cell id to report under). */
static struct config warm_cfg;
static bool warm_cfg_loaded;
/* fd 3 is the agent's "ready" pipe only if we were started with it (main
 * looks first): no descriptor of ours may be taken for it. */
static int ready_fd = -1;

/* config_load wipes these texts from the environment once it has read them;
 * a warm supervisor loads its configuration twice (warm_cfg, then the run's
 * own with the document), and the second load found them empty: events went
 * out unsigned (with a warning), exports without their token. So they are
 * kept from before the first load until the second, in locked memory that a
 * fork (the warm cell's init) gets zeroed, and put back just before it. */
static const char *const reloaded[] = {"CELLOS_EVENT_SIGNING_KEY_BASE64", "CELLOS_EXPORT_HTTP_BEARER_TOKEN"};
static char *kept[sizeof reloaded / sizeof reloaded[0]];

static void secrets_keep(void)
{
	for (size_t i = 0; i < sizeof reloaded / sizeof reloaded[0]; i++) {
		const char *v = getenv(reloaded[i]);
		if (v && *v && (kept[i] = sign_secure_alloc(strlen(v) + 1)))
			memcpy(kept[i], v, strlen(v) + 1);
	}
}

/* restore: into the environment (for config_load to read and wipe), or only
 * release. */
static void secrets_release(bool restore)
{
	for (size_t i = 0; i < sizeof reloaded / sizeof reloaded[0]; i++) {
		if (!kept[i])
			continue;
		if (restore)
			setenv(reloaded[i], kept[i], 1);
		sodium_memzero(kept[i], strlen(kept[i]));
		sodium_free(kept[i]);
		kept[i] = NULL;
	}
}

static int warm_wait(void)
{
	/* The cell's document-independent parts (supervisor_warm_prepare): with
	 * the configuration alone, which the document cannot change. */
	struct err ce = {0};
	secrets_keep();
	if (config_load(&warm_cfg, &ce) == 0) {
		warm_cfg_loaded = true;
		if (supervisor_warm_prepare(&warm_cfg, &ce) < 0)
			log_warn("warm cell: %s (the job's cell will be built cold)", ce.msg);
	}
	/* The init is a fork of ours: the pages we share with it are copied now,
	 * not at their first write after the claim (still one thread here). */
	size_t copied = cowcopy_now();
	log_debug("warm cell: %zu page(s) copied ahead", copied);
	/* The agent starts warm cells at a lower priority than its jobs (spare
	 * capacity, built while a job may be starting): the job this one will
	 * serve runs at the agent's. Before libnats starts its threads (a nice
	 * value is a thread's). */
	errno = 0;
	int prio = getpriority(PRIO_PROCESS, getppid());
	if (errno == 0)
		supervisor_warm_priority(prio);
	/* Under cellos-agent's relay there is no connection of ours to make. */
	if (getenv("CELLOS_NATS_URL") && !getenv("CELL_OS_USE_NOOP_SINK") && !getenv("CELLOS_NATS_RELAY_FD")) {
		/* libnats loaded and connected: most of what the sink costs a short
		 * run (bench/README.md). A failure here is the run's to report. */
		struct nats_conn_opts o = {0};
		struct err e = {0};
		if (config_nats_load(&o, NULL, &e) == 0) {
			if (nats_sink_needs_libnats(&o))
				nats_conn_prepare(&o, "cellos-supervisor (warm)", NATS_SINK_ATTEMPT_MS, &e);
			else
				nats_wire_prepare(o.urls, "cellos-supervisor (warm)", NATS_SINK_ATTEMPT_MS);
		}
		config_nats_free(&o);
	}
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	int sfd = signalfd(-1, &set, SFD_CLOEXEC);
	if (ready_fd >= 0)
		close(ready_fd);
	struct pollfd p[2] = {{.fd = STDIN_FILENO, .events = POLLIN}, {.fd = sfd, .events = POLLIN}};
	while (poll(p, sfd >= 0 ? 2 : 1, -1) < 0)
		if (errno != EINTR)
			break;
	int sig = 0;
	struct signalfd_siginfo si;
	if (sfd >= 0 && (p[1].revents & POLLIN) && read(sfd, &si, sizeof si) == (ssize_t)sizeof si)
		sig = (int)si.ssi_signo;
	if (sfd >= 0)
		close(sfd);
	return sig;
}

/* SPEC §4, §12: a cell the policy pack denied is recorded once the sinks are
 * open, in one lifecycle.v1.failed event that lists every violation. Any other
 * admission problem leaves no event: there may be no valid cell to name. */
static int deny(const struct admission *a)
{
	char msg[4096];
	size_t n = 0;
	msg[0] = '\0';
	for (size_t i = 0; i < a->problems.n && n < sizeof msg; i++)
		n += (size_t)snprintf(msg + n, sizeof msg - n, "%s%s", i ? "; " : "", a->problems.items[i]);
	struct event_stream es;
	struct err e = {0};
	if (events_open(&es, &a->cfg, &e) < 0) {
		log_error("%s", e.msg);
		return 125;
	}
	return supervisor_deny(&a->cfg, &a->spec, msg, &es);
}

int main(int argc, char **argv)
{
	if (fcntl(3, F_GETFD) >= 0)
		ready_fd = 3;
	std_fds_open();
	bool validate = false, json = false, warm = false;
	const char *path = NULL, *format = NULL;
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
		} else if (strcmp(argv[i], "--warm") == 0) {
			warm = true;
		} else if (strcmp(argv[i], "--format") == 0) {
			if (i + 1 == argc) {
				log_error("--format needs a value (text or json)");
				fputs(usage, stderr);
				return 125;
			}
			format = argv[++i];
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
	if (warm && (validate || strcmp(path, "-") != 0)) {
		log_error("--warm takes its document on stdin (-) and runs it");
		fputs(usage, stderr);
		return 125;
	}
	if (format) {
		json = strcmp(format, "json") == 0;
		if ((!json && strcmp(format, "text") != 0) || !validate) {
			log_error(validate ? "--format: expected text or json, got '%s'" : "--format '%s' goes with --validate",
				  format);
			fputs(usage, stderr);
			return 125;
		}
	}

	int64_t t0 = mono_us();
	/* Before anything that could take a while: a SIGTERM must not be lost. */
	supervisor_block_signals();
	if (sodium_init() < 0) {
		log_error("libsodium failed to initialise");
		return 125;
	}
	if (warm) {
		int sig = warm_wait();
		secrets_release(sig == 0);
		if (sig) {
			/* No run: nothing of the warm cell may stay (no event either). */
			supervisor_warm_discard();
			if (warm_cfg_loaded)
				config_free(&warm_cfg);
			return 128 + sig;
		}
		t0 = mono_us();
	}

	/* The same admission as `cellctl validate` (src/admission.h). */
	struct admission adm;
	struct err e = {0};
	int status = 125;
	int rc = admission_load(&adm, path, validate ? ADMIT_VALIDATE : ADMIT_RUN, &e);
	if (rc < 0) {
		log_error("%s", e.msg);
		goto out;
	}
	if (json) {
		if (admission_print_json(&adm, stdout) < 0)
			log_error("cannot write the validation result");
		else
			status = rc == 0 ? 0 : 125;
		goto out;
	}
	if (rc > 0) {
		for (size_t i = 0; i < adm.problems.n; i++)
			log_error("%s", adm.problems.items[i]);
		if (!validate && admission_denied_by_policy(&adm))
			status = deny(&adm);
		goto out;
	}
	if (validate) {
		print_summary(&adm.cfg, &adm.spec);
		status = 0;
		goto out;
	}

	struct event_stream es;
	if (events_open_cell(&es, &adm.cfg, adm.spec.id, adm.spec.tenant_id, &e) < 0) {
		log_error("%s", e.msg);
		goto out;
	}
	log_step(&t0, "admission");
	status = supervisor_run(&adm.cfg, &adm.spec, adm.have_pack ? &adm.pack : NULL, &es);
	events_close(&es);
	log_peak_rss();
out:
	/* A document that never reached its run (invalid, denied) leaves the warm
	 * cell unused. */
	supervisor_warm_discard();
	if (warm_cfg_loaded)
		config_free(&warm_cfg);
	admission_free(&adm);
	return status;
}
