#include "job.h"

#include <jansson.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(char *err, size_t errsz, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errsz, fmt, ap);
	va_end(ap);
	return -1;
}

/* base64 (standard alphabet, padded) into a fresh buffer with a NUL after it. */
static unsigned char *unb64(const char *s, size_t *len)
{
	size_t n = strlen(s);
	unsigned char *out = malloc(n / 4 * 3 + 4);
	if (!out)
		return NULL;
	const char *end;
	if (sodium_base642bin(out, n / 4 * 3 + 3, s, n, NULL, len, &end, sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    *end) {
		free(out);
		return NULL;
	}
	out[*len] = 0;
	return out;
}

/* A JSON array of strings (no NUL inside) into a NULL-terminated vector. */
static char **strv(json_t *a, bool nonempty, const char *field, char *err, size_t errsz)
{
	if (!json_is_array(a) || (nonempty && json_array_size(a) == 0)) {
		fail(err, errsz, "%s: expected %sarray of strings", field, nonempty ? "a non-empty " : "an ");
		return NULL;
	}
	size_t n = json_array_size(a);
	char **v = calloc(n + 1, sizeof *v);
	if (!v) {
		fail(err, errsz, "%s: out of memory", field);
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		json_t *s = json_array_get(a, i);
		if (!json_is_string(s) || strlen(json_string_value(s)) != json_string_length(s) ||
		    !(v[i] = strdup(json_string_value(s)))) {
			for (size_t k = 0; k < i; k++)
				free(v[k]);
			free(v);
			fail(err, errsz, "%s[%zu]: expected a string without NUL", field, i);
			return NULL;
		}
	}
	return v;
}

static void strv_free(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

static bool abs_path(const char *p) { return p && p[0] == '/' && !strstr(p, "/../") && strlen(p) < 4096; }

static int parse_files(json_t *a, struct job *j, char *err, size_t errsz)
{
	if (!a)
		return 0;
	if (!json_is_array(a))
		return fail(err, errsz, "files: expected an array");
	j->files = calloc(json_array_size(a) + 1, sizeof *j->files);
	if (!j->files)
		return fail(err, errsz, "files: out of memory");
	for (size_t i = 0; i < json_array_size(a); i++) {
		json_t *o = json_array_get(a, i);
		const char *path = json_string_value(json_object_get(o, "path"));
		const char *data = json_string_value(json_object_get(o, "data"));
		json_t *mode = json_object_get(o, "mode");
		if (!abs_path(path) || !data || !json_is_integer(mode) || json_integer_value(mode) < 0 ||
		    json_integer_value(mode) > 07777)
			return fail(err, errsz, "files[%zu]: needs an absolute \"path\", base64 \"data\" and a \"mode\"", i);
		struct job_file *f = &j->files[j->n_files++];
		f->mode = (mode_t)json_integer_value(mode);
		f->path = strdup(path);
		f->data = unb64(data, &f->len);
		if (!f->path || !f->data)
			return fail(err, errsz, "files[%zu].data: not base64", i);
	}
	return 0;
}

static int parse_mounts(json_t *a, struct job *j, char *err, size_t errsz)
{
	if (!a)
		return 0;
	if (!json_is_array(a))
		return fail(err, errsz, "mounts: expected an array");
	j->mounts = calloc(json_array_size(a) + 1, sizeof *j->mounts);
	if (!j->mounts)
		return fail(err, errsz, "mounts: out of memory");
	for (size_t i = 0; i < json_array_size(a); i++) {
		json_t *o = json_array_get(a, i);
		const char *dev = json_string_value(json_object_get(o, "device"));
		const char *target = json_string_value(json_object_get(o, "target"));
		if (!dev || strncmp(dev, "/dev/", 5) != 0 || strstr(dev, "..") || !abs_path(target) ||
		    strcmp(target, "/") == 0)
			return fail(err, errsz, "mounts[%zu]: needs a /dev/ \"device\" and an absolute \"target\"", i);
		struct job_mount *m = &j->mounts[j->n_mounts++];
		m->device = strdup(dev);
		m->target = strdup(target);
		if (!m->device || !m->target)
			return fail(err, errsz, "mounts: out of memory");
	}
	return 0;
}

int job_parse(const char *text, size_t len, struct job *j, char *err, size_t errsz)
{
	json_error_t je;
	json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
	if (!o)
		return fail(err, errsz, "job: %s (line %d)", je.text, je.line);
	int rc = -1;
	json_t *v;
	if (!json_is_object(o) || !json_is_integer(v = json_object_get(o, "version")) || json_integer_value(v) != 1) {
		fail(err, errsz, "job: not a version 1 job");
		goto out;
	}
	const char *run_id = json_string_value(json_object_get(o, "runId"));
	if (!run_id || !run_id[0]) {
		fail(err, errsz, "runId: missing");
		goto out;
	}
	j->run_id = strdup(run_id);
	const char *key = json_string_value(json_object_get(o, "key"));
	size_t klen = 0;
	const char *end;
	if (!key || sodium_base642bin(j->key, VM_KEY_BYTES, key, strlen(key), NULL, &klen, &end,
				      sodium_base64_VARIANT_ORIGINAL) != 0 || *end || klen != VM_KEY_BYTES) {
		fail(err, errsz, "key: expected base64 of %d bytes", VM_KEY_BYTES);
		goto out;
	}
	j->have_key = true;
	if ((v = json_object_get(o, "argv")) && !(j->argv = strv(v, true, "argv", err, errsz)))
		goto out;
	v = json_object_get(o, "env");
	if (!(j->env = v ? strv(v, false, "env", err, errsz) : calloc(1, sizeof(char *))))
		goto out;
	for (size_t i = 0; j->env[i]; i++)
		if (!strchr(j->env[i], '=')) {
			fail(err, errsz, "env[%zu]: expected NAME=value", i);
			goto out;
		}
	if ((v = json_object_get(o, "workingDirectory"))) {
		if (!abs_path(json_string_value(v))) {
			fail(err, errsz, "workingDirectory: expected an absolute path");
			goto out;
		}
		j->workdir = strdup(json_string_value(v));
	}
	if (parse_files(json_object_get(o, "files"), j, err, errsz) < 0 ||
	    parse_mounts(json_object_get(o, "mounts"), j, err, errsz) < 0)
		goto out;
	if ((v = json_object_get(o, "rootDevice"))) {
		const char *d = json_string_value(v);
		if (!d || strncmp(d, "/dev/", 5) != 0 || strstr(d, "..")) {
			fail(err, errsz, "rootDevice: expected a /dev/ path");
			goto out;
		}
		j->root_device = strdup(d);
	}
	v = json_object_get(o, "artifacts");
	if (!(j->artifacts = v ? strv(v, false, "artifacts", err, errsz) : calloc(1, sizeof(char *))))
		goto out;
	for (size_t i = 0; j->artifacts[i]; i++)
		if (!abs_path(j->artifacts[i])) {
			fail(err, errsz, "artifacts[%zu]: expected an absolute path", i);
			goto out;
		}
	json_t *ju = json_object_get(o, "uid"), *jg = json_object_get(o, "gid");
	if (ju || jg) {
		if (!json_is_integer(ju) || !json_is_integer(jg) || json_integer_value(ju) < 1 ||
		    json_integer_value(jg) < 1 || json_integer_value(ju) > 0xfffffffe || json_integer_value(jg) > 0xfffffffe) {
			fail(err, errsz, "uid, gid: expected both, positive");
			goto out;
		}
		j->uid = (uid_t)json_integer_value(ju);
		j->gid = (gid_t)json_integer_value(jg);
	}
	if ((v = json_object_get(o, "network"))) {
		const char *a = json_string_value(json_object_get(v, "address"));
		const char *g = json_string_value(json_object_get(v, "gateway"));
		json_t *p = json_object_get(v, "prefix");
		if (!a || !g || !json_is_integer(p) || json_integer_value(p) < 1 || json_integer_value(p) > 32) {
			fail(err, errsz, "network: needs \"address\", \"gateway\" and a \"prefix\" of 1-32");
			goto out;
		}
		json_t *dns = json_object_get(v, "dns");
		if (dns && !json_is_string(dns)) {
			fail(err, errsz, "network.dns: expected a string");
			goto out;
		}
		j->net_address = strdup(a);
		j->net_gateway = strdup(g);
		j->net_prefix = (int)json_integer_value(p);
		if (dns)
			j->net_dns = strdup(json_string_value(dns));
	}
	if ((v = json_object_get(o, "modules")) && !(j->modules = strv(v, false, "modules", err, errsz)))
		goto out;
	const char *endmode = json_string_value(json_object_get(o, "end"));
	if (endmode && strcmp(endmode, "reset") != 0 && strcmp(endmode, "poweroff") != 0) {
		fail(err, errsz, "end: expected \"poweroff\" or \"reset\"");
		goto out;
	}
	j->reset = endmode && strcmp(endmode, "reset") == 0;
	rc = 0;
out:
	json_decref(o);
	return rc;
}

int job_argv_from_cmdline(const char *cmdline, struct job *j, char *err, size_t errsz)
{
	static const char opt[] = "cellos.argv=";
	const char *p = cmdline;
	const char *found = NULL;
	/* The last one wins, as for the kernel's own parameters; a word boundary
	 * keeps "xcellos.argv=" from matching. */
	while ((p = strstr(p, opt))) {
		if (p == cmdline || p[-1] == ' ')
			found = p + sizeof opt - 1;
		p += sizeof opt - 1;
	}
	if (!found)
		return 0;
	size_t n = strcspn(found, " \n");
	char *enc = strndup(found, n);
	if (!enc)
		return fail(err, errsz, "cellos.argv: out of memory");
	size_t len = 0;
	unsigned char *text = unb64(enc, &len);
	free(enc);
	if (!text)
		return fail(err, errsz, "cellos.argv: not base64");
	json_error_t je;
	json_t *a = json_loadb((const char *)text, len, 0, &je);
	free(text);
	if (!a)
		return fail(err, errsz, "cellos.argv: %s", je.text);
	char **v = strv(a, true, "cellos.argv", err, errsz);
	json_decref(a);
	if (!v)
		return -1;
	if (j->argv)
		strv_free(v);
	else
		j->argv = v;
	return 1;
}

void job_free(struct job *j)
{
	free(j->run_id);
	strv_free(j->argv);
	strv_free(j->env);
	free(j->workdir);
	for (size_t i = 0; i < j->n_files; i++) {
		free(j->files[i].path);
		if (j->files[i].data)
			sodium_memzero(j->files[i].data, j->files[i].len);
		free(j->files[i].data);
	}
	free(j->files);
	for (size_t i = 0; i < j->n_mounts; i++) {
		free(j->mounts[i].device);
		free(j->mounts[i].target);
	}
	free(j->mounts);
	free(j->root_device);
	strv_free(j->artifacts);
	strv_free(j->modules);
	free(j->net_address);
	free(j->net_gateway);
	free(j->net_dns);
	unsigned char *key = j->key;
	memset(j, 0, sizeof *j);
	j->key = key;
}
