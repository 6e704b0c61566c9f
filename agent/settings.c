/* CELLOS_AGENT_* (SPEC §11, docs/reference.md) and the supervisors' environment. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"
#include "secrets/broker.h"

extern char **environ;

/* Upper bounds that catch a typo rather than limit a real host. */
#define MAX_CELLS_LIMIT 4096
#define MAX_WARM_LIMIT 1024
#define MAX_DRAIN_SECONDS 86400

bool agent_pool_valid(const char *p)
{
	/* A subject token ('.', '*', '>' and whitespace are not) that also makes a
	 * consumer name (cellos-agent-<pool>): printable ASCII of a bounded length. */
	size_t n = strlen(p);
	if (n == 0 || n > 64)
		return false;
	for (const char *c = p; *c; c++)
		if (*c <= ' ' || *c >= 0x7f || *c == '.' || *c == '*' || *c == '>' || *c == '/' || *c == '\\')
			return false;
	return true;
}

static int parse_count(const char *name, const char *v, unsigned lo, unsigned hi, unsigned *out, struct err *e)
{
	char *end;
	errno = 0;
	unsigned long n = strtoul(v, &end, 10);
	if (!*v || *end || errno || v[0] == '-' || n < lo || n > hi)
		return err_set(e, "%s: '%s' is not a whole number from %u to %u", name, v, lo, hi);
	*out = (unsigned)n;
	return 0;
}

static void free_list(char **l)
{
	for (char **p = l; p && *p; p++)
		free(*p);
	free(l);
}

/* A comma list of non-empty items, each checked by `ok`. */
static int parse_list(const char *name, const char *v, bool (*ok)(const char *), const char *what, char ***out,
		      size_t *n_out, struct err *e)
{
	size_t n = 0;
	char **l = calloc(strlen(v) + 2, sizeof *l);
	char *copy = strdup(v);
	if (!l || !copy) {
		free(l);
		free(copy);
		return err_set(e, "%s: out of memory", name);
	}
	char *save = NULL;
	int rc = 0;
	for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		if (!ok(t)) {
			rc = err_set(e, "%s: '%s' is not %s", name, t, what);
			break;
		}
		if (!(l[n++] = strdup(t))) {
			rc = err_set(e, "%s: out of memory", name);
			break;
		}
	}
	if (rc == 0 && n == 0)
		rc = err_set(e, "%s: empty list", name);
	free(copy);
	if (rc < 0) {
		free_list(l);
		return rc;
	}
	*out = l;
	if (n_out)
		*n_out = n;
	return 0;
}

static bool secret_name_ok(const char *s)
{
	/* The names of secretRefs (SPEC §5). */
	size_t n = strlen(s);
	if (n == 0 || n > 128 || !((s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z') || s[0] == '_'))
		return false;
	for (const char *c = s; *c; c++)
		if (!((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_' ||
		      *c == '.' || *c == '-'))
			return false;
	return true;
}

/* CELLOS_AGENT_SUPERVISOR, else the cellos-supervisor beside our binary, else
 * PATH. */
static int find_supervisor(struct agent_settings *s, struct err *e)
{
	const char *v = getenv("CELLOS_AGENT_SUPERVISOR");
	if (v && *v) {
		if (strchr(v, '/')) {
			if (access(v, X_OK) < 0)
				return err_sys(e, errno, "CELLOS_AGENT_SUPERVISOR: %s", v);
			snprintf(s->supervisor, sizeof s->supervisor, "%s", v);
			return 0;
		}
	} else {
		char self[PATH_MAX];
		ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
		if (n > 0) {
			self[n] = '\0';
			char *slash = strrchr(self, '/');
			if (slash) {
				*slash = '\0';
				snprintf(s->supervisor, sizeof s->supervisor, "%s/cellos-supervisor", self);
				if (access(s->supervisor, X_OK) == 0)
					return 0;
			}
		}
		v = "cellos-supervisor";
	}
	const char *path = getenv("PATH");
	char *copy = strdup(path ? path : "/usr/local/bin:/usr/bin:/bin");
	if (!copy)
		return err_set(e, "out of memory");
	char *save = NULL;
	for (char *d = strtok_r(copy, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
		snprintf(s->supervisor, sizeof s->supervisor, "%s/%s", d, v);
		if (access(s->supervisor, X_OK) == 0) {
			free(copy);
			return 0;
		}
	}
	free(copy);
	return err_set(e, "CELLOS_AGENT_SUPERVISOR: %s not found beside cellos-agent or in PATH", v);
}

static bool has_prefix(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

/* Whether a variable of the agent's environment goes on to the supervisors. */
static bool passes(const struct agent_settings *s, char **allowed, const char *entry)
{
	/* CELLOS_NATS_RELAY_FD: the agent sets its own per supervisor. */
	if (has_prefix(entry, "CELLOS_AGENT_") || has_prefix(entry, "CELLOS_RUN_ID=") ||
	    has_prefix(entry, "CELLOS_NATS_RELAY_FD="))
		return false;
	if (!has_prefix(entry, "CELLOS_SECRET_"))
		return true;
	/* A secret input: only for the names CELLOS_AGENT_SECRETS lists. */
	size_t n = strcspn(entry, "=");
	for (char **a = allowed; a && *a; a++) {
		char var[200], fvar[220];
		secret_env_var(*a, var, sizeof var);
		secret_file_var(*a, fvar, sizeof fvar);
		if ((strlen(var) == n && strncmp(entry, var, n) == 0) || (strlen(fvar) == n && strncmp(entry, fvar, n) == 0))
			return true;
	}
	return false;
}

int agent_settings_load(struct agent_settings *s, struct err *e)
{
	memset(s, 0, sizeof *s);
	const char *v;
	if (parse_list("CELLOS_AGENT_POOLS", (v = getenv("CELLOS_AGENT_POOLS")) ? v : "default", agent_pool_valid,
		       "a pool name (a NATS subject token: no '.', '*', '>', '/', whitespace; at most 64 bytes)",
		       &s->pools, &s->n_pools, e) < 0)
		return -1;
	for (size_t i = 0; i < s->n_pools; i++)
		for (size_t j = 0; j < i; j++)
			if (strcmp(s->pools[i], s->pools[j]) == 0)
				return err_set(e, "CELLOS_AGENT_POOLS: pool '%s' is listed twice", s->pools[i]);
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	s->cpus = cpus > 0 ? (unsigned)cpus : 1;
	s->max_cells = s->cpus;
	if ((v = getenv("CELLOS_AGENT_MAX_CELLS")) && parse_count("CELLOS_AGENT_MAX_CELLS", v, 1, MAX_CELLS_LIMIT,
								 &s->max_cells, e) < 0)
		return -1;
	if ((v = getenv("CELLOS_AGENT_WARM")) && parse_count("CELLOS_AGENT_WARM", v, 0, MAX_WARM_LIMIT, &s->warm, e) < 0)
		return -1;
	s->drain_seconds = 30;
	if ((v = getenv("CELLOS_AGENT_DRAIN_SECONDS")) &&
	    parse_count("CELLOS_AGENT_DRAIN_SECONDS", v, 0, MAX_DRAIN_SECONDS, &s->drain_seconds, e) < 0)
		return -1;
	if ((v = getenv("CELLOS_AGENT_TENANT"))) {
		if (!agent_pool_valid(v))
			return err_set(e, "CELLOS_AGENT_TENANT: '%s' is not a NATS subject token (no '.', '*', '>', "
					  "whitespace; at most 64 bytes)", v);
		s->tenant = v;
	}
	if ((v = getenv("CELLOS_AGENT_METRICS_ADDR")) && *v)
		s->metrics_addr = v;
	s->relay = true;
	if ((v = getenv("CELLOS_AGENT_RELAY"))) {
		if (strcmp(v, "0") != 0 && strcmp(v, "1") != 0)
			return err_set(e, "CELLOS_AGENT_RELAY: '%s' is not 0 or 1", v);
		s->relay = v[0] == '1';
	}
	char **secrets = NULL;
	if ((v = getenv("CELLOS_AGENT_SECRETS")) && *v &&
	    parse_list("CELLOS_AGENT_SECRETS", v, secret_name_ok, "a secret name ([A-Za-z_][A-Za-z0-9_.-]*)",
		       &secrets, NULL, e) < 0)
		return -1;
	if (find_supervisor(s, e) < 0) {
		free_list(secrets);
		return -1;
	}

	size_t n = 0;
	for (char **p = environ; *p; p++)
		n++;
	/* Two more for CELLOS_RUN_ID and CELLOS_NATS_RELAY_FD (job.c), one for
	 * the terminator. */
	if (!(s->child_env = calloc(n + 3, sizeof *s->child_env))) {
		free_list(secrets);
		return err_set(e, "out of memory");
	}
	for (char **p = environ; *p; p++)
		if (passes(s, secrets, *p) && !(s->child_env[s->n_child_env++] = strdup(*p))) {
			free_list(secrets);
			return err_set(e, "out of memory");
		}
	free_list(secrets);
	return 0;
}

void agent_settings_free(struct agent_settings *s)
{
	free_list(s->pools);
	for (size_t i = 0; i < s->n_child_env; i++) {
		/* Secret values: not left in freed memory. */
		explicit_bzero(s->child_env[i], strlen(s->child_env[i]));
		free(s->child_env[i]);
	}
	free(s->child_env);
	memset(s, 0, sizeof *s);
}
