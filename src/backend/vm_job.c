#include "backend/vm_job.h"

#include <errno.h>
#include <jansson.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/cpio.h"

const char *const vm_chan_names[VM_CHAN_N] = {"cellos.exit", "cellos.stdout", "cellos.stderr", "cellos.artifacts"};

int vm_artifact_find(const unsigned char *stream, size_t len, size_t index, size_t *off, size_t *size, int *guest_errno)
{
	for (size_t pos = 0; len - pos >= VM_ART_HDR;) {
		uint32_t idx = 0;
		uint64_t sz = 0;
		for (int i = 0; i < 4; i++)
			idx |= (uint32_t)stream[pos + i] << (8 * i);
		for (int i = 0; i < 8; i++)
			sz |= (uint64_t)stream[pos + 5 + i] << (8 * i);
		size_t data = pos + VM_ART_HDR;
		if (sz > len - data)
			return -1; /* cut short */
		if (idx == index) {
			*off = data;
			*size = (size_t)sz;
			*guest_errno = stream[pos + 4];
			return 0;
		}
		pos = data + (size_t)sz;
	}
	return -1;
}

unsigned char *vm_job_key_new(struct err *e)
{
	if (sodium_init() < 0) {
		err_set(e, "libsodium: cannot initialise");
		return NULL;
	}
	unsigned char *k = sodium_malloc(VM_KEY_BYTES);
	if (!k) {
		err_sys(e, errno ? errno : ENOMEM, "per-boot key");
		return NULL;
	}
	randombytes_buf(k, VM_KEY_BYTES);
	return k;
}

void vm_job_key_free(unsigned char *key)
{
	if (key)
		sodium_free(key); /* wipes before unmapping */
}

static char *b64(const void *data, size_t len)
{
	size_t n = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
	char *out = malloc(n);
	if (out)
		sodium_bin2base64(out, n, data, len, sodium_base64_VARIANT_ORIGINAL);
	return out;
}

static json_t *argv_json(const char *const *argv)
{
	json_t *a = json_array();
	for (size_t i = 0; argv && argv[i]; i++)
		json_array_append_new(a, json_string(argv[i]));
	return a;
}

char *vm_job_cmdline_argv(const char *const *argv, bool *too_long, struct err *e)
{
	*too_long = false;
	json_t *a = argv_json(argv);
	char *text = json_dumps(a, JSON_COMPACT);
	json_decref(a);
	if (!text) {
		err_set(e, "argv: cannot encode");
		return NULL;
	}
	char *enc = b64(text, strlen(text));
	free(text);
	if (!enc) {
		err_sys(e, ENOMEM, "argv");
		return NULL;
	}
	if (strlen(enc) > VM_JOB_CMDLINE_ARGV_MAX) {
		free(enc);
		*too_long = true;
		return NULL;
	}
	char *out = NULL;
	if (asprintf(&out, "cellos.argv=%s", enc) < 0)
		out = NULL;
	free(enc);
	if (!out)
		err_sys(e, ENOMEM, "argv");
	return out;
}

static json_t *job_json(const struct vm_job *j, bool argv_in_job)
{
	json_t *o = json_object();
	json_object_set_new(o, "version", json_integer(1));
	json_object_set_new(o, "runId", json_string(j->run_id));
	char *k = b64(j->key, VM_KEY_BYTES);
	json_object_set_new(o, "key", json_string(k ? k : ""));
	if (k) {
		sodium_memzero(k, strlen(k));
		free(k);
	}
	if (argv_in_job)
		json_object_set_new(o, "argv", argv_json(j->argv));
	json_t *env = json_array();
	for (size_t i = 0; j->envp && j->envp[i]; i++)
		json_array_append_new(env, json_string(j->envp[i]));
	json_object_set_new(o, "env", env);
	if (j->workdir)
		json_object_set_new(o, "workingDirectory", json_string(j->workdir));
	json_t *files = json_array();
	for (size_t i = 0; i < j->n_files; i++) {
		char *d = b64(j->files[i].data, j->files[i].len);
		json_array_append_new(files, json_pack("{s:s, s:s, s:i}", "path", j->files[i].path, "data", d ? d : "",
						       "mode", (int)j->files[i].mode));
		if (d) {
			sodium_memzero(d, strlen(d));
			free(d);
		}
	}
	json_object_set_new(o, "files", files);
	json_t *mounts = json_array();
	for (size_t i = 0; i < j->n_mounts; i++)
		json_array_append_new(mounts,
				      json_pack("{s:s, s:s}", "device", j->mounts[i].device, "target", j->mounts[i].target));
	json_object_set_new(o, "mounts", mounts);
	if (j->root_device)
		json_object_set_new(o, "rootDevice", json_string(j->root_device));
	json_t *arts = json_array();
	for (size_t i = 0; j->artifacts && j->artifacts[i]; i++)
		json_array_append_new(arts, json_string(j->artifacts[i]));
	json_object_set_new(o, "artifacts", arts);
	if (j->uid) {
		json_object_set_new(o, "uid", json_integer((json_int_t)j->uid));
		json_object_set_new(o, "gid", json_integer((json_int_t)j->gid));
	}
	if (j->net_address) {
		json_t *net = json_pack("{s:s, s:i, s:s}", "address", j->net_address, "prefix", j->net_prefix, "gateway",
					j->net_gateway);
		if (net && j->net_dns)
			json_object_set_new(net, "dns", json_string(j->net_dns));
		json_object_set_new(o, "network", net);
	}
	if (j->modules) {
		json_t *mods = json_array();
		for (size_t i = 0; j->modules[i]; i++)
			json_array_append_new(mods, json_string(j->modules[i]));
		json_object_set_new(o, "modules", mods);
	}
	json_object_set_new(o, "end", json_string(j->reset ? "reset" : "poweroff"));
	return o;
}

int vm_job_write(int fd, const struct vm_job *j, bool argv_in_job, struct err *e)
{
	json_t *o = job_json(j, argv_in_job);
	char *text = json_dumps(o, JSON_COMPACT);
	/* The secrets' copies inside the tree: wiped with the text below is not
	 * possible for jansson's own strings, so keep the tree's life short. */
	json_decref(o);
	if (!text)
		return err_set(e, "job: cannot encode");
	int dfd = dup(fd);
	FILE *f = dfd < 0 ? NULL : fdopen(dfd, "wb");
	if (!f) {
		if (dfd >= 0)
			close(dfd);
		sodium_memzero(text, strlen(text));
		free(text);
		return err_sys(e, errno, "job archive");
	}
	struct cpio c = {.f = f};
	int rc = 0;
	if (cpio_add(&c, "cellos", S_IFDIR | 0700, NULL, 0, e) < 0 ||
	    cpio_add(&c, VM_JOB_PATH, S_IFREG | 0400, text, strlen(text), e) < 0 || cpio_finish(&c, e) < 0)
		rc = -1;
	sodium_memzero(text, strlen(text));
	free(text);
	if (fclose(f) != 0 && rc == 0)
		rc = err_sys(e, errno, "job archive");
	return rc;
}
