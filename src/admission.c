/* Admission: see admission.h. */
#include "admission.h"

#include <jansson.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/oci_seccomp.h"
#include "export/export.h"
#include "hostmount/hostmount.h"
#include "isolate/cgroup.h"
#include "secrets/broker.h"
#include "util/escape.h"
#include "util/log.h"

/* SPEC §7: what the hardened profile requires of the configuration and the
 * document, every missing piece named at once. What only the cell's creation
 * can tell (nftables in force, a leaf with its limits) is the supervisor's
 * decision on the backend's facts (supervisor.c). */
int admission_check_profile(const struct config *cfg, const char *argv0, struct err *e)
{
	if (!cfg->hardened)
		return 0;
	/* SPEC §7: name every missing piece at once. */
	char missing[768] = "";
	size_t len = 0;
#define MISSING(...) len += (size_t)snprintf(missing + len, len < sizeof missing ? sizeof missing - len : 0, __VA_ARGS__)
	unsigned need = NS_NET | NS_MNT | NS_PID | NS_IPC | NS_UTS | NS_USER;
	if (cfg->backend == BACKEND_STUB && (cfg->ns & need) != need)
		MISSING("%snamespaces net,mnt,pid,ipc,uts,user (CELLOS_SUBPROCESS_UNSHARE)", len ? "; " : "");
	if (strcmp(cfg->seccomp, "off") == 0)
		MISSING("%sa seccomp filter (CELLOS_SECCOMP)", len ? "; " : "");
	if (cfg->signing == SIGN_OFF)
		MISSING("%ssigned events (CELLOS_EVENT_SIGNING, _KID, _KEY_BASE64)", len ? "; " : "");
	/* JetStream (file storage) is durable too, when a run cannot start without it. */
	if ((!cfg->jsonl_path || cfg->noop_sink) && !(cfg->nats_on && cfg->require_jetstream))
		MISSING("%sa durable sink (CELL_OS_JSONL_EVENTS, without CELL_OS_USE_NOOP_SINK, or CELLOS_NATS_URL with "
			"CELL_OS_REQUIRE_JETSTREAM=1)",
			len ? "; " : "");
	if (argv0 && argv0[0] != '/')
		MISSING("%san absolute run.argv[0]", len ? "; " : "");
	struct err ce = {0};
	if (cfg->backend == BACKEND_STUB && cgroup_probe_limits(cfg->cgroup_parent, &ce) < 0)
		MISSING("%sa cgroup leaf with limits (%s)", len ? "; " : "", ce.msg);
#undef MISSING
	if (len)
		return err_set(e, "CELLOS_DEPLOYMENT_PROFILE=hardened: refusing to start, missing: %s", missing);
	return 0;
}

int admission_check(const struct config *cfg, const struct spec *spec, enum admission_mode mode,
		    struct problems *probs)
{
	int rc = 0;
	struct err e = {0};
	if (admission_check_profile(cfg, spec->has_run ? spec->argv[0] : NULL, &e) < 0) {
		problems_add(probs, "%s", e.msg);
		rc = -1;
	}
	e = (struct err){0};
	if (secrets_admit(cfg, spec, &e) < 0) {
		problems_add(probs, "%s", e.msg);
		rc = -1;
	}
	if (mode == ADMIT_VALIDATE && secrets_probe(cfg, spec, probs) < 0)
		rc = -1;
	const struct backend_ops *be = backend_for(cfg);
	const struct export_backend_facts xb = {
		.name = be->name, .reads_artifacts = be->open_artifact != NULL, .sees_host_fs = backend_sees_host_fs(cfg)};
	if (export_admit(cfg, spec, &xb, cfg->hardened, probs) < 0)
		rc = -1;
	e = (struct err){0};
	if (mounts_admit(cfg, spec, cfg->hardened, &e) < 0) {
		problems_add(probs, "%s", e.msg);
		rc = -1;
	}
	return rc;
}

/* The checks of a configuration on its own that need another module: the
 * gvisor and oci backends put the filter into the bundle as linux.seccomp, in
 * the runtime's dialect, so a rule it cannot enforce as written is refused now,
 * before anything is created. The baseline always translates, so the default
 * never refuses. */
static int admit_config(const struct config *cfg, struct err *e)
{
	if ((cfg->backend != BACKEND_GVISOR && cfg->backend != BACKEND_OCI) || !cfg->seccomp_policy)
		return 0;
	enum oci_seccomp_dialect d = cfg->backend == BACKEND_GVISOR ? OCI_SECCOMP_RUNSC : OCI_SECCOMP_LIBSECCOMP;
	json_t *sc = oci_seccomp_json(cfg->seccomp_policy, d, e);
	if (!sc) {
		/* "CELLOS_SECCOMP: <file> line N: ...", as for a rule that does not parse. */
		char why[ERR_MSG_MAX];
		snprintf(why, sizeof why, "%s", e->msg);
		return err_set(e, "CELLOS_SECCOMP: %s %s", cfg->seccomp_file ? cfg->seccomp_file : "baseline", why);
	}
	json_decref(sc);
	return 0;
}

bool admission_denied_by_policy(const struct admission *a)
{
	return a->n_policy > 0 && a->n_policy == a->problems.n;
}

static void collect_warning(void *arg, const char *msg)
{
	problems_add(&((struct admission *)arg)->warnings, "%s", msg);
}

int admission_load(struct admission *a, const char *path, enum admission_mode mode, struct err *e)
{
	memset(a, 0, sizeof *a);
	/* Warnings of the configuration and of the checks are logged where they
	 * are found; --format json lists them too. */
	log_set_warn_hook(collect_warning, a);
	int rc = -1;

	/* A bad configuration does not stop here: the document's own problems
	 * are worth knowing too, so that one round fixes everything. */
	struct err ce = {0};
	a->have_cfg = config_load(&a->cfg, &ce) == 0 && admit_config(&a->cfg, &ce) == 0;
	if (!a->have_cfg) {
		problems_add(&a->problems, "%s", ce.msg);
		a->refused = true;
	}

	/* The pack is configuration: one that cannot be read or is not a pack
	 * refuses every cell (never fails open), naming its path and field. */
	if (a->have_cfg && a->cfg.policy_pack) {
		a->have_pack = policy_load(&a->pack, a->cfg.policy_pack, &a->problems) == 0;
		if (!a->have_pack)
			a->refused = true;
	}

	char *buf = NULL;
	size_t len = 0;
	if (spec_read(path, &buf, &len, e) < 0)
		goto out;
	/* spec_parse logs the document's warnings (unknown keys): the hook above
	 * collects them with the others. */
	a->have_spec = spec_parse(buf, len, a->cfg.strict_spec || a->cfg.hardened, &a->spec, &a->problems) == 0;
	free(buf);
	if (!a->have_spec)
		a->refused = true;
	if (a->have_cfg && a->have_spec && admission_check(&a->cfg, &a->spec, mode, &a->problems) < 0)
		a->refused = true;
	/* Last, so that the violations are the tail of the list; all of them at once. */
	if (a->have_cfg && a->have_spec && a->have_pack &&
	    (a->n_policy = policy_check(&a->pack, &a->cfg, &a->spec, &a->problems)) > 0)
		a->refused = true;
	rc = a->refused ? 1 : 0;
out:
	log_set_warn_hook(NULL, NULL);
	return rc;
}

void admission_free(struct admission *a)
{
	if (a->have_spec)
		spec_free(&a->spec);
	config_free(&a->cfg);
	if (a->have_pack)
		policy_free(&a->pack);
	problems_free(&a->problems);
	problems_free(&a->warnings);
}

/* ---- --format json ---- */

/* Text from the environment may hold anything: JSON gets it with control
 * characters and ill-formed UTF-8 escaped, as a log line would show it. */
static json_t *text(const char *s, size_t n)
{
	char buf[8192]; /* a problem line is at most ~2 KiB; every byte escaped is 4 */
	escape_controls(buf, sizeof buf, s, n);
	return json_string(buf);
}

/* {"path", "message"} of one line. The path is the field path or variable the
 * line starts with, when it is followed by ": " (then the message is the rest),
 * "=" or " (" (then the message is the whole line, which says more about it:
 * "CELLOS_DEPLOYMENT_PROFILE=hardened: ...", "spec.export.artifacts[0] (name): ...").
 * A line that starts with neither has an empty path. */
static json_t *finding(const char *line)
{
	static const char path_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-[]";
	size_t n = strspn(line, path_chars);
	const char *msg = line;
	if (n && strncmp(line + n, ": ", 2) == 0)
		msg = line + n + 2;
	else if (!n || (line[n] != '=' && strncmp(line + n, " (", 2) != 0))
		n = 0;
	return json_pack("{s:o, s:o}", "path", text(line, n), "message", text(msg, strlen(msg)));
}

static json_t *findings(const struct problems *p)
{
	json_t *a = json_array();
	for (size_t i = 0; a && i < p->n; i++)
		if (json_array_append_new(a, finding(p->items[i])) < 0) {
			json_decref(a);
			return NULL;
		}
	return a;
}

static json_t *string_array(const char *const *items, size_t n)
{
	json_t *a = json_array();
	for (size_t i = 0; a && i < n; i++)
		json_array_append_new(a, json_string(items[i]));
	return a;
}

static void set_positive(json_t *o, const char *key, long long v)
{
	if (v > 0)
		json_object_set_new(o, key, json_integer(v));
}

/* What would run: the human summary of --validate, as data. */
static json_t *summary(const struct admission *a)
{
	json_t *o = json_object();
	if (!o || !a->have_spec)
		return o;
	const struct spec *s = &a->spec;
	json_object_set_new(o, "id", json_string(s->id));
	json_object_set_new(o, "ttlSeconds", json_integer(s->ttl_seconds));
	json_object_set_new(o, "argv", s->has_run ? string_array(s->argv, s->argc) : json_null());
	if (s->has_run) {
		json_object_set_new(o, "secretDelivery", json_string(s->delivery == DELIVERY_FILE ? "file" : "env"));
		if (s->working_directory)
			json_object_set_new(o, "workingDirectory", json_string(s->working_directory));
		set_positive(o, "timeoutMs", s->timeout_ms);
		json_t *lim = json_object();
		set_positive(lim, "memoryMaxBytes", s->memory_max_bytes);
		if (s->cpu_quota_micros)
			json_object_set_new(lim, "cpuMax", json_pack("{s:I, s:I}", "quotaMicros",
								     (json_int_t)s->cpu_quota_micros, "periodMicros",
								     (json_int_t)s->cpu_period_micros));
		set_positive(lim, "pidsMax", s->pids_max);
		json_object_set_new(o, "limits", lim);
		json_t *mounts = json_array();
		for (size_t i = 0; mounts && i < s->n_mounts; i++)
			json_array_append_new(mounts, json_pack("{s:s, s:s, s:b}", "source", s->mounts[i].source, "target",
								s->mounts[i].target, "readOnly", s->mounts[i].read_only));
		json_object_set_new(o, "mounts", mounts);
	}
	json_object_set_new(o, "secretRefs", string_array(s->secret_refs, s->n_secret_refs));
	json_t *eg = json_array();
	for (size_t i = 0; eg && i < s->n_egress; i++)
		json_array_append_new(eg, json_pack("{s:s, s:i, s:s}", "host", s->egress[i].host, "port",
						    s->egress[i].port, "protocol",
						    s->egress[i].proto == PROTO_UDP ? "udp" : "tcp"));
	json_object_set_new(o, "egressRules", eg);
	json_t *art = json_array();
	for (size_t i = 0; art && i < s->n_artifacts; i++)
		json_array_append_new(art, json_string(s->artifacts[i].name));
	json_object_set_new(o, "artifacts", art);
	if (a->have_cfg) {
		json_object_set_new(o, "backend", json_string(config_backend_name(a->cfg.backend)));
		json_object_set_new(o, "profile", json_string(a->cfg.hardened ? "hardened" : "portable"));
	}
	if (a->have_pack)
		json_object_set_new(o, "policyPack", json_pack("{s:s, s:s}", "id", a->pack.id, "version", a->pack.version));
	return o;
}

int admission_print_json(const struct admission *a, FILE *out)
{
	json_t *o = json_pack("{s:b, s:o, s:o, s:o}", "valid", !a->refused, "problems", findings(&a->problems),
			      "warnings", findings(&a->warnings), "summary", summary(a));
	if (!o)
		return -1;
	char *s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (!s)
		return -1;
	int rc = fprintf(out, "%s\n", s) < 0 || fflush(out) != 0 ? -1 : 0;
	free(s);
	return rc;
}
