/* The export phase (SPEC §4 step 7, §10): targets, reading, events. */
#include "export/curl_dl.h"
#include "export/export.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/log.h"
#include "util/path.h"

void export_target_suffix(const char *target, char *buf, size_t size)
{
	size_t n = 0;
	for (const char *p = target; *p && n + 1 < size; p++) {
		char ch = (char)toupper((unsigned char)*p);
		buf[n++] = ((ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9')) ? ch : '_';
	}
	buf[n] = '\0';
}

const char *export_target_url(const struct config *cfg, bool s3, const char *target)
{
	char suffix[160];
	export_target_suffix(target, suffix, sizeof suffix);
	const struct config_url *u = s3 ? cfg->export_s3_urls : cfg->export_http_urls;
	size_t n = s3 ? cfg->n_export_s3_urls : cfg->n_export_http_urls;
	for (size_t i = 0; i < n; i++)
		if (strcmp(u[i].suffix, suffix) == 0)
			return u[i].url;
	return NULL;
}

/* ---- the artifact stream ---- */

void export_stream_reset(struct export_stream *s)
{
	s->off = 0;
	s->error[0] = '\0';
	crypto_hash_sha256_init(&s->h);
}

ssize_t export_stream_read(struct export_stream *s, void *buf, size_t n)
{
	/* Never more than the size announced (Content-Length, the size cap). */
	long long left = s->size - s->off;
	if (left <= 0)
		return 0;
	if ((long long)n > left)
		n = (size_t)left;
	ssize_t got;
	do
		got = pread(s->fd, buf, n, s->off);
	while (got < 0 && errno == EINTR);
	if (got < 0) {
		snprintf(s->error, sizeof s->error, "read: %s", strerror(errno));
		return -1;
	}
	if (got == 0) {
		snprintf(s->error, sizeof s->error, "the artifact shrank while being read (%lld of %lld bytes)", s->off,
			 s->size);
		return -1;
	}
	crypto_hash_sha256_update(&s->h, buf, (size_t)got);
	s->off += got;
	return got;
}

int export_stream_finish(struct export_stream *s, char hex[65])
{
	char extra;
	if (pread(s->fd, &extra, 1, s->off) > 0) {
		snprintf(s->error, sizeof s->error, "the artifact grew while being read (beyond %lld bytes)", s->size);
		return -1;
	}
	unsigned char d[crypto_hash_sha256_BYTES];
	crypto_hash_sha256_final(&s->h, d);
	sodium_bin2hex(hex, 65, d, sizeof d);
	return 0;
}

/* ---- targets ---- */

struct plan {
	const struct export_sink *sink;
	const char *url;                     /* http, s3 */
	const struct export_target *target;  /* named target, or NULL */
};

static const struct export_target *find_target(const struct spec *s, const char *name, size_t *idx)
{
	for (size_t i = 0; i < s->n_targets; i++)
		if (s->targets[i].name && strcmp(s->targets[i].name, name) == 0) {
			*idx = i;
			return &s->targets[i];
		}
	return NULL;
}

/* The default target: HTTP when CELLOS_EXPORT_HTTP_BASE_URL is set, else local
 * when CELLOS_EXPORT_DIR is set. */
static bool plan_default(const struct config *cfg, struct plan *p)
{
	if (cfg->export_http_url) {
		p->sink = &export_http;
		p->url = cfg->export_http_url;
		return true;
	}
	if (cfg->export_dir[0]) {
		p->sink = &export_local;
		return true;
	}
	return false;
}

/* `warn`: log the fallbacks (once, at admission). */
static int plan_artifact(const struct config *cfg, const struct spec *s, size_t i, struct plan *p, bool warn,
			 struct err *e)
{
	const struct artifact *a = &s->artifacts[i];
	memset(p, 0, sizeof *p);
	if (!a->target) {
		if (plan_default(cfg, p))
			return 0;
		return err_set(e, "spec.export.artifacts[%zu] (%s): no export target: set CELLOS_EXPORT_HTTP_BASE_URL or "
				  "CELLOS_EXPORT_DIR, or name a target",
			       i, a->name);
	}
	size_t ti = 0;
	const struct export_target *t = find_target(s, a->target, &ti);
	if (!t || !t->kind) /* the validator guarantees both */
		return err_set(e, "spec.export.artifacts[%zu].target: unknown target %s", i, a->target);
	p->target = t;
	char suffix[160];
	export_target_suffix(t->name, suffix, sizeof suffix);
	if (strcmp(t->kind, "local") == 0) {
		if (!cfg->export_dir[0])
			return err_set(e, "spec.export.targets[%zu] (%s, kind local): CELLOS_EXPORT_DIR is not set", ti,
				       t->name);
		p->sink = &export_local;
		return 0;
	}
	if (strcmp(t->kind, "http") == 0) {
		p->sink = &export_http;
		p->url = export_target_url(cfg, false, t->name);
		if (!p->url)
			p->url = cfg->export_http_url;
		if (!p->url)
			return err_set(e, "spec.export.targets[%zu] (%s, kind http): set CELLOS_EXPORT_HTTP_BASE_URL__%s or "
					  "CELLOS_EXPORT_HTTP_BASE_URL",
				       ti, t->name, suffix);
		return 0;
	}
	/* s3 */
	if ((p->url = export_target_url(cfg, true, t->name))) {
		p->sink = &export_s3;
		return 0;
	}
	if (cfg->require_s3_export)
		return err_set(e, "CELL_OS_REQUIRE_S3_EXPORT=1: spec.export.targets[%zu] (%s, kind s3) has no "
				  "CELLOS_EXPORT_S3_PRESIGNED_URL__%s",
			       ti, t->name, suffix);
	/* Not required: the artifact still leaves the cell, by the default target
	 * (the events say which kind it took). */
	if (plan_default(cfg, p)) {
		if (warn)
			log_warn("spec.export.targets[%zu] (%s, kind s3): CELLOS_EXPORT_S3_PRESIGNED_URL__%s is not set; "
				 "artifact %s goes to the default %s target",
				 ti, t->name, suffix, a->name, p->sink->kind);
		return 0;
	}
	return err_set(e, "spec.export.targets[%zu] (%s, kind s3): set CELLOS_EXPORT_S3_PRESIGNED_URL__%s (or a default "
			  "target: CELLOS_EXPORT_HTTP_BASE_URL, CELLOS_EXPORT_DIR)",
		       ti, t->name, suffix);
}

/* A cell that reads its artifacts from the host (export-only, or without a mount
 * namespace) reads only under CELLOS_EXPORT_HOST_PATHS_ALLOW, and never when the
 * profile forbids it (hardened, SPEC §10, §7: admission decides): checked here, before anything is read. */
static int admit_host_path(const struct config *cfg, const struct spec *s, size_t i, bool forbid_host_reads,
			   struct err *e)
{
	const struct artifact *a = &s->artifacts[i];
	const char *who = s->has_run ? "a cell without a mount namespace (CELLOS_SUBPROCESS_UNSHARE)"
				     : "an export-only cell";
	if (forbid_host_reads)
		return err_set(e, "spec.export.artifacts[%zu].path (%s): CELLOS_DEPLOYMENT_PROFILE=hardened refuses "
				  "reading host paths, which %s would do",
			       i, a->name, who);
	char clean[PATH_MAX];
	if (path_clean(a->path, clean, sizeof clean) < 0 || !path_within_any(clean, cfg->export_host_allow))
		return err_set(e, "spec.export.artifacts[%zu].path (%s): %s is not under CELLOS_EXPORT_HOST_PATHS_ALLOW%s "
				  "(%s reads host paths only there)",
			       i, a->name, a->path, cfg->export_host_allow ? "" : " (unset)", who);
	return 0;
}

/* A problem of a target is found once per artifact that uses it (and, for
 * CELL_OS_REQUIRE_S3_EXPORT, once more for the target itself): list it once. */
static void add_once(struct problems *probs, const char *msg)
{
	for (size_t i = 0; i < probs->n; i++)
		if (strcmp(probs->items[i], msg) == 0)
			return;
	problems_add(probs, "%s", msg);
}

int export_admit(const struct config *cfg, const struct spec *spec, const struct export_backend_facts *be,
		 bool forbid_host_reads, struct problems *probs)
{
	int rc = 0;
	struct err e = {0};
#define PROBLEM() (add_once(probs, e.msg), rc = -1)
	/* Every declared s3 target, used or not: the operator asked for S3. */
	if (cfg->require_s3_export)
		for (size_t i = 0; i < spec->n_targets; i++) {
			const struct export_target *t = &spec->targets[i];
			char suffix[160];
			export_target_suffix(t->name, suffix, sizeof suffix);
			if (t->kind && strcmp(t->kind, "s3") == 0 && !export_target_url(cfg, true, t->name)) {
				err_set(&e, "CELL_OS_REQUIRE_S3_EXPORT=1: spec.export.targets[%zu] (%s, kind s3) has no "
					    "CELLOS_EXPORT_S3_PRESIGNED_URL__%s",
					i, t->name, suffix);
				PROBLEM();
			}
		}
	if (!spec->n_artifacts)
		return rc;
	/* A backend that cannot read its cell's filesystem would run the whole job
	 * only to fail every export: refuse before anything runs. */
	if (spec->has_run && !be->reads_artifacts) {
		err_set(&e, "spec.export.artifacts: reading artifacts from a CELLOS_CELL_BACKEND=%s cell is not available "
			    "in this build",
			be->name);
		PROBLEM();
		return rc;
	}
	struct plan p;
	for (size_t i = 0; i < spec->n_artifacts; i++)
		if (plan_artifact(cfg, spec, i, &p, true, &e) < 0)
			PROBLEM();
	bool host = !spec->has_run || be->sees_host_fs;
	for (size_t i = 0; host && i < spec->n_artifacts; i++)
		if (admit_host_path(cfg, spec, i, forbid_host_reads, &e) < 0)
			PROBLEM();
#undef PROBLEM
	return rc;
}

/* ---- the phase ---- */

static json_t *provenance(const char *started_id)
{
	return json_pack("{s:s, s:s}", "parent", started_id, "parentType", EVENT_TYPE_PREFIX "lifecycle.v1.started");
}

static void emit_failed(struct export_phase *x, const struct artifact *a, const struct plan *p,
			const char *destination, const char *reason)
{
	size_t used = strlen(x->failed_names);
	snprintf(x->failed_names + used, sizeof x->failed_names - used, "%s%s", used ? ", " : "", a->name);
	json_t *d = json_pack("{s:s, s:s, s:o, s:o}", "artifactName", a->name, "targetKind",
			      p->sink ? p->sink->kind : "LocalPath", "reason", event_text(reason), "provenance",
			      provenance(x->started_id));
	if (d && p->target)
		json_object_set_new(d, "targetName", json_string(p->target->name));
	if (d && destination && destination[0])
		json_object_set_new(d, "destination", event_text(destination));
	log_error("export %s: %s", a->name, reason);
	events_emit(x->es, "export.v2.failed", d, NULL);
}

static void emit_completed(const struct export_phase *x, const struct artifact *a, const struct plan *p,
			   const struct export_receipt *rc)
{
	json_t *receipt = json_pack("{s:i}", "attempts", rc->attempts);
	if (receipt && rc->http_status)
		json_object_set_new(receipt, "httpStatus", json_integer(rc->http_status));
	if (receipt && rc->etag[0])
		json_object_set_new(receipt, "etag", json_string(rc->etag));
	json_t *d = json_pack("{s:s, s:s, s:o, s:I, s:s, s:o, s:o}", "artifactName", a->name, "targetKind",
			      p->sink->kind, "destination", event_text(rc->destination), "bytes", (json_int_t)rc->bytes,
			      "sha256", rc->sha256, "receipt", receipt, "provenance", provenance(x->started_id));
	if (d && p->target)
		json_object_set_new(d, "targetName", json_string(p->target->name));
	log_info("export %s: %lld bytes to %s", a->name, rc->bytes, rc->destination);
	events_emit(x->es, "export.v2.completed", d, NULL);
}

/* Open and check one artifact: a regular file within the size cap. */
static int open_artifact(const struct export_phase *x, const struct artifact *a, struct export_stream *src,
			 struct err *e)
{
	int fd = -1;
	if (x->open(x->open_arg, a->path, &fd, e) < 0)
		return err_prefix(e, "%s", a->path);
	/* The opener checked this in the cell's view; we do again on what we got. */
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return err_set(e, "%s: not a regular file", a->path);
	}
	if (st.st_size > x->cfg->export_max_bytes) {
		close(fd);
		return err_set(e, "%s: %lld bytes, more than CELLOS_EXPORT_MAX_BYTES (%lld)", a->path,
			       (long long)st.st_size, x->cfg->export_max_bytes);
	}
	src->fd = fd;
	src->size = st.st_size;
	export_stream_reset(src);
	return 0;
}

size_t export_run(struct export_phase *x)
{
	x->failed_names[0] = '\0';
	const struct spec *s = x->spec;
	size_t failed = 0;
	const struct curl_api *curl = NULL;
	for (size_t i = 0; i < s->n_artifacts; i++) {
		const struct artifact *a = &s->artifacts[i];
		struct plan p;
		struct err e = {0};
		/* Admission checked every plan; the configuration has not changed. */
		if (plan_artifact(x->cfg, s, i, &p, false, &e) < 0) {
			emit_failed(x, a, &p, NULL, e.msg);
			failed++;
			continue;
		}
		const char *why = x->stop ? x->stop(x->stop_arg) : NULL;
		if (why) {
			char msg[128];
			snprintf(msg, sizeof msg, "not exported: %s", why);
			emit_failed(x, a, &p, NULL, msg);
			failed++;
			continue;
		}
		if (p.sink != &export_local && !curl) {
			curl = curl_api_load(&e);
			if (!curl || curl->global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
				emit_failed(x, a, &p, NULL, curl ? "libcurl failed to initialise" : e.msg);
				curl = NULL;
				failed++;
				continue;
			}
		}
		struct export_stream src = {.fd = -1};
		struct export_receipt rc = {0};
		struct export_item it = {.cfg = x->cfg, .cell_id = s->id, .run_id = x->es->run_id, .name = a->name,
					 .target = p.target, .url = p.url, .src = &src, .deadline_ms = x->deadline_ms,
					 .stop = x->stop, .stop_arg = x->stop_arg};
		if (open_artifact(x, a, &src, &e) < 0 || p.sink->put(&it, &rc, &e) < 0) {
			emit_failed(x, a, &p, rc.destination, e.msg);
			failed++;
		} else {
			emit_completed(x, a, &p, &rc);
		}
		if (src.fd >= 0)
			close(src.fd);
	}
	if (curl)
		curl->global_cleanup();
	return failed;
}
