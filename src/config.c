#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern char **environ;

/* A variable that is set but empty counts as unset, like upstream. */
static const char *env(const char *name)
{
	const char *v = getenv(name);
	return (v && *v) ? v : NULL;
}

static int parse_pos_ll(const char *s, long long *out)
{
	if (!s || !*s || !isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	char *end;
	long long v = strtoll(s, &end, 10);
	if (errno || *end || v <= 0)
		return -1;
	*out = v;
	return 0;
}

static bool is_true(const char *v) { return v && strcmp(v, "1") == 0; }

/* CELLOS_SUBPROCESS_UNSHARE grammar (SPEC §3). */
static int parse_unshare(const char *v, unsigned *out, struct err *e)
{
	*out = 0;
	if (!v || strcmp(v, "0") == 0)
		return 0;
	if (strcmp(v, "1") == 0) {
		*out = NS_PID | NS_IPC | NS_MNT | NS_NET;
		return 0;
	}
	if (strcmp(v, "all") == 0) {
		*out = NS_NET | NS_MNT | NS_PID | NS_IPC | NS_UTS | NS_CGROUP;
		return 0;
	}
	static const struct { const char *n; unsigned bit; } names[] = {
		{"net", NS_NET}, {"mnt", NS_MNT}, {"mount", NS_MNT}, {"pid", NS_PID},
		{"ipc", NS_IPC}, {"uts", NS_UTS}, {"user", NS_USER}, {"cgroup", NS_CGROUP},
	};
	const char *p = v;
	while (*p) {
		size_t len = strcspn(p, ",");
		bool found = false;
		for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
			if (strlen(names[i].n) == len && strncmp(p, names[i].n, len) == 0) {
				*out |= names[i].bit;
				found = true;
			}
		if (!found)
			return err_set(e, "CELLOS_SUBPROCESS_UNSHARE: unknown namespace '%.*s' (expected 0, 1, all, or a comma list of net, mnt, pid, ipc, uts, user, cgroup)",
				       (int)len, p);
		p += len;
		if (*p == ',')
			p++;
	}
	/* A private /proc for the PID namespace needs a mount namespace. */
	if (*out & NS_PID)
		*out |= NS_MNT;
	return 0;
}

static bool is_uuid(const char *s)
{
	if (strlen(s) != 36)
		return false;
	for (int i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return false;
		} else if (!isxdigit((unsigned char)s[i])) {
			return false;
		}
	}
	return true;
}

static char **split_prefixes(const char *v, struct err *e)
{
	size_t n = 1;
	for (const char *p = v; *p; p++)
		n += *p == ',';
	char **out = calloc(n + 1, sizeof *out);
	if (!out)
		return NULL;
	size_t k = 0;
	const char *p = v;
	while (*p) {
		size_t len = strcspn(p, ",");
		if (len) {
			if (p[0] != '/') {
				err_set(e, "CELLOS_RUN_ARGV0_ALLOW_PREFIXES: '%.*s' is not an absolute directory", (int)len, p);
				goto fail;
			}
			out[k++] = strndup(p, len);
		}
		p += len;
		if (*p == ',')
			p++;
	}
	return out;
fail:
	for (size_t i = 0; i < k; i++)
		free(out[i]);
	free(out);
	return NULL;
}

int config_load(struct config *cfg, struct err *e)
{
	memset(cfg, 0, sizeof *cfg);
	const char *v;

	cfg->log_level = LOG_INFO;
	if ((v = env("CELLOS_LOG"))) {
		static const char *const lv[] = {"error", "warn", "info", "debug"};
		int found = -1;
		for (int i = 0; i < 4; i++)
			if (strcmp(v, lv[i]) == 0)
				found = i;
		if (found < 0)
			return err_set(e, "CELLOS_LOG: invalid value '%s' (expected error, warn, info, debug)", v);
		cfg->log_level = (enum log_level)found;
	}
	log_set_level(cfg->log_level);

	cfg->strict_config = is_true(env("CELLOS_STRICT_CONFIG"));
	cfg->strict_spec = is_true(env("CELLOS_STRICT_SPEC"));

	v = env("CELLOS_CELL_BACKEND");
	if (!v || strcmp(v, "stub") == 0 || strcmp(v, "host") == 0)
		cfg->backend = BACKEND_STUB;
	else if (strcmp(v, "gvisor") == 0 || strcmp(v, "firecracker") == 0 || strcmp(v, "qemu") == 0)
		return err_set(e, "CELLOS_CELL_BACKEND: backend '%s' is not available in this build (use stub)", v);
	else
		return err_set(e, "CELLOS_CELL_BACKEND: unknown backend '%s' (expected stub, host, gvisor, firecracker, qemu)", v);

	v = env("CELLOS_DEPLOYMENT_PROFILE");
	if (!v || strcmp(v, "portable") == 0)
		cfg->hardened = false;
	else if (strcmp(v, "hardened") == 0)
		cfg->hardened = true;
	else
		return err_set(e, "CELLOS_DEPLOYMENT_PROFILE: unknown profile '%s' (expected portable, hardened)", v);

	if (parse_unshare(env("CELLOS_SUBPROCESS_UNSHARE"), &cfg->ns, e) < 0)
		return -1;

	cfg->cgroup_parent = env("CELLOS_CGROUP_PARENT");
	if (cfg->cgroup_parent && cfg->cgroup_parent[0] != '/')
		return err_set(e, "CELLOS_CGROUP_PARENT: '%s' is not an absolute path", cfg->cgroup_parent);

	if ((v = env("CELLOS_CGROUP_CPU_MAX"))) {
		char q[32], p[32], extra;
		if (sscanf(v, "%31s %31s %c", q, p, &extra) != 2 || parse_pos_ll(q, &cfg->cpu_quota) < 0 ||
		    parse_pos_ll(p, &cfg->cpu_period) < 0)
			return err_set(e, "CELLOS_CGROUP_CPU_MAX: expected \"<quota> <period>\" in microseconds, got '%s'", v);
	}

	cfg->seccomp = "off";
	if ((v = env("CELLOS_SECCOMP")) && strcmp(v, "off") != 0)
		return err_set(e, "CELLOS_SECCOMP: '%s' is not available in this build (only off)", v);

	if ((v = env("CELLOS_RUN_TIMEOUT_MS")) && parse_pos_ll(v, &cfg->run_timeout_ms) < 0)
		return err_set(e, "CELLOS_RUN_TIMEOUT_MS: expected a positive integer, got '%s'", v);

	if ((v = env("CELLOS_RUN_ARGV0_ALLOW_PREFIXES"))) {
		cfg->argv0_prefixes = split_prefixes(v, e);
		if (!cfg->argv0_prefixes)
			return e && e->msg[0] ? -1 : err_set(e, "CELLOS_RUN_ARGV0_ALLOW_PREFIXES: out of memory");
	}

	v = env("CELLOS_BROKER");
	if (!v || strcmp(v, "env") == 0)
		cfg->broker = BROKER_ENV;
	else if (strcmp(v, "file") == 0)
		return err_set(e, "CELLOS_BROKER: broker 'file' is not available in this build (use env)");
	else
		return err_set(e, "CELLOS_BROKER: unknown broker '%s' (expected env, file)", v);

	cfg->jsonl_path = env("CELL_OS_JSONL_EVENTS");
	v = env("CELL_OS_JSONL_FSYNC");
	if (!v || strcmp(v, "close") == 0)
		cfg->jsonl_fsync = FSYNC_CLOSE;
	else if (strcmp(v, "event") == 0)
		cfg->jsonl_fsync = FSYNC_EVENT;
	else if (strcmp(v, "none") == 0)
		cfg->jsonl_fsync = FSYNC_NONE;
	else
		return err_set(e, "CELL_OS_JSONL_FSYNC: invalid value '%s' (expected close, event, none)", v);

	cfg->noop_sink = is_true(env("CELL_OS_USE_NOOP_SINK"));
	/* Events that were asked to go to NATS must not silently vanish. */
	if (env("CELLOS_NATS_URL") && !cfg->noop_sink)
		return err_set(e, "CELLOS_NATS_URL: the NATS JetStream sink is not available in this build");
	if (is_true(env("CELL_OS_REQUIRE_JETSTREAM")))
		return err_set(e, "CELL_OS_REQUIRE_JETSTREAM: JetStream is required but not available in this build");

	if ((v = env("CELLOS_EVENT_SIGNING")) && strcmp(v, "off") != 0) {
		if (cfg->strict_config)
			return err_set(e, "CELLOS_EVENT_SIGNING: signing '%s' is not available in this build", v);
		log_warn("CELLOS_EVENT_SIGNING: signing '%s' is not available in this build; events are unsigned", v);
	}

	if ((v = env("CELLOS_RUN_ID"))) {
		if (!is_uuid(v))
			return err_set(e, "CELLOS_RUN_ID: '%s' is not a UUID", v);
		for (int i = 0; i < 36; i++)
			cfg->run_id[i] = (char)tolower((unsigned char)v[i]);
	}
	return 0;
}

void config_free(struct config *cfg)
{
	if (cfg->argv0_prefixes) {
		for (char **p = cfg->argv0_prefixes; *p; p++)
			free(*p);
		free(cfg->argv0_prefixes);
	}
	cfg->argv0_prefixes = NULL;
}

int config_check_profile(const struct config *cfg, const char *argv0, struct err *e)
{
	if (!cfg->hardened)
		return 0;
	/* SPEC §7: name every missing piece at once. */
	char missing[768] = "";
	size_t len = 0;
#define MISSING(...) len += (size_t)snprintf(missing + len, len < sizeof missing ? sizeof missing - len : 0, __VA_ARGS__)
	unsigned need = NS_NET | NS_MNT | NS_PID | NS_IPC | NS_UTS;
	if (cfg->backend == BACKEND_STUB && (cfg->ns & need) != need)
		MISSING("%snamespaces net,mnt,pid,ipc,uts (CELLOS_SUBPROCESS_UNSHARE)", len ? "; " : "");
	if (strcmp(cfg->seccomp, "off") == 0)
		MISSING("%sa seccomp filter (CELLOS_SECCOMP)", len ? "; " : "");
	MISSING("%ssigned events (CELLOS_EVENT_SIGNING; not available in this build)", len ? "; " : "");
	if (!cfg->jsonl_path || cfg->noop_sink)
		MISSING("%sa durable sink (CELL_OS_JSONL_EVENTS, without CELL_OS_USE_NOOP_SINK)", len ? "; " : "");
	if (argv0 && argv0[0] != '/')
		MISSING("%san absolute run.argv[0]", len ? "; " : "");
#undef MISSING
	if (len)
		return err_set(e, "CELLOS_DEPLOYMENT_PROFILE=hardened: refusing to start, missing: %s", missing);
	return 0;
}

void config_secret_var(const char *ref, char *buf, size_t size)
{
	size_t n = (size_t)snprintf(buf, size, "CELLOS_SECRET_");
	for (const char *p = ref; *p && n + 1 < size; p++)
		buf[n++] = (*p == '-' || *p == '.') ? '_' : (char)toupper((unsigned char)*p);
	buf[n] = '\0';
}

char *config_secret_env(const char *ref)
{
	char name[160];
	config_secret_var(ref, name, sizeof name);
	size_t n = strlen(name);
	/* Return the live environ entry so the broker can wipe the value in place. */
	for (char **ep = environ; *ep; ep++)
		if (strncmp(*ep, name, n) == 0 && (*ep)[n] == '=')
			return *ep + n + 1;
	return NULL;
}

const char *config_backend_name(enum backend_kind b)
{
	switch (b) {
	case BACKEND_STUB: return "stub";
	case BACKEND_GVISOR: return "gvisor";
	case BACKEND_FIRECRACKER: return "firecracker";
	case BACKEND_QEMU: return "qemu";
	}
	return "?";
}
