/* Admission: see admission.h. */
#include "admission.h"

#include <jansson.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/fc_host.h"
#include "export/export.h"
#include "hostmount/hostmount.h"
#include "secrets/broker.h"
#include "util/escape.h"
#include "util/log.h"

int admission_check(const struct config *cfg, const struct spec *spec, enum admission_mode mode,
		    struct problems *probs)
{
	int rc = 0;
	struct err e = {0};
	if (config_check_profile(cfg, spec->has_run ? spec->argv[0] : NULL, &e) < 0) {
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
	/* SPEC §6.3: no KVM or no binary is 125 at admission, naming which. */
	struct fc_host fh;
	e = (struct err){0};
	if (mode != ADMIT_DESCRIBE && cfg->backend == BACKEND_FIRECRACKER && fc_host_check(cfg, &fh, &e) < 0) {
		problems_add(probs, "%s", e.msg);
		rc = -1;
	}
	const struct backend_ops *be = backend_for(cfg);
	const struct export_backend_facts xb = {
		.name = be->name, .reads_artifacts = be->open_artifact != NULL, .sees_host_fs = backend_sees_host_fs(cfg)};
	if (export_admit(cfg, spec, &xb, probs) < 0)
		rc = -1;
	e = (struct err){0};
	if (mounts_admit(cfg, spec, &e) < 0) {
		problems_add(probs, "%s", e.msg);
		rc = -1;
	}
	return rc;
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
	a->have_cfg = config_load(&a->cfg, &ce) == 0;
	if (!a->have_cfg) {
		problems_add(&a->problems, "%s", ce.msg);
		a->refused = true;
	}

	char *buf = NULL;
	size_t len = 0;
	if (spec_read(path, &buf, &len, e) < 0)
		goto out;
	/* spec_parse logs the document's warnings (unknown keys): the hook above
	 * collects them with the others. */
	a->have_spec = spec_parse(buf, len, a->cfg.strict_spec, &a->spec, &a->problems) == 0;
	free(buf);
	if (!a->have_spec)
		a->refused = true;
	if (a->have_cfg && a->have_spec && admission_check(&a->cfg, &a->spec, mode, &a->problems) < 0)
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
