/* Unit tests for the event path with SPEC §8.3–§9 switched on: the configuration
 * of signing, redaction and the DLQ (config.c), redaction (redact.c), events_emit
 * with signing (the wrapper, the chain on the inner events) and dead letters. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "admission.h"
#include "config.h"
#include "events/event.h"
#include "events/redact.h"
#include "events/sign.h"
#include "util/b64url.h"
#include "util/canon.h"

static const char *const vars[] = {
	"CELLOS_EVENT_SIGNING", "CELLOS_EVENT_SIGNING_KID", "CELLOS_EVENT_SIGNING_KEY_BASE64",
	"CELLOS_STRICT_CONFIG", "CELLOS_DEPLOYMENT_PROFILE", "CELLOS_REDACT_EVENT_FIELDS",
	"CELLOS_DLQ_DIR", "CELL_OS_JSONL_EVENTS", "CELLOS_LOG", "CELLOS_NATS_URL", "CELLOS_SECCOMP",
	"CELL_OS_REQUIRE_JETSTREAM", "CELLOS_CELL_BACKEND", "CELLOS_BROKER", "CELLOS_SUBPROCESS_UNSHARE",
};

static int clean_env(void **state)
{
	for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
		unsetenv(vars[i]);
	setenv("CELLOS_LOG", "error", 1); /* the lenient warnings are expected here */
	return 0;
}

/* A seed and its base64url text. */
static const char SEED_B64[] = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"; /* RFC 8032 TEST 1 */

/* ---- configuration ---- */

static void test_config_signing_valid(void **state)
{
	struct config cfg;
	struct err e = {0};
	setenv("CELLOS_EVENT_SIGNING", "ed25519", 1);
	setenv("CELLOS_EVENT_SIGNING_KID", "ops-1", 1);
	setenv("CELLOS_EVENT_SIGNING_KEY_BASE64", "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=", 1); /* padded */
	assert_int_equal(config_load(&cfg, &e), 0);
	assert_int_equal(cfg.signing, SIGN_ED25519);
	assert_string_equal(cfg.signing_kid, "ops-1");
	assert_int_equal(cfg.signing_key_len, 32);
	assert_int_equal(cfg.signing_key[0], 0x9d);
	/* The text in our environment is wiped once decoded. */
	const char *left = getenv("CELLOS_EVENT_SIGNING_KEY_BASE64");
	assert_true(left == NULL || *left == '\0');
	config_free(&cfg);

	/* HMAC: any length, e.g. 5 bytes. */
	setenv("CELLOS_EVENT_SIGNING", "hmac", 1);
	setenv("CELLOS_EVENT_SIGNING_KEY_BASE64", "aGVsbG8", 1);
	assert_int_equal(config_load(&cfg, &e), 0);
	assert_int_equal(cfg.signing, SIGN_HMAC);
	assert_int_equal(cfg.signing_key_len, 5);
	assert_memory_equal(cfg.signing_key, "hello", 5);
	/* With signing on, hardened no longer lists signed events as missing. */
	cfg.hardened = true;
	assert_int_equal(admission_check_profile(&cfg, "/bin/true", &e), -1);
	assert_null(strstr(e.msg, "CELLOS_EVENT_SIGNING"));
	config_free(&cfg);
}

/* Each invalid configuration: lenient (warn, unsigned), fatal under
 * CELLOS_STRICT_CONFIG=1 and under the hardened profile; never the key in the message. */
static void test_config_signing_invalid(void **state)
{
	static const struct {
		const char *alg, *kid, *key, *var;
	} bad[] = {
		{"rsa", "k", SEED_B64, "CELLOS_EVENT_SIGNING:"},
		{"ed25519", NULL, SEED_B64, "CELLOS_EVENT_SIGNING_KID:"},
		{"ed25519", "has space", SEED_B64, "CELLOS_EVENT_SIGNING_KID:"},
		{"ed25519", "k", NULL, "CELLOS_EVENT_SIGNING_KEY_BASE64:"},
		{"ed25519", "k", "nWGxne+9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A", "CELLOS_EVENT_SIGNING_KEY_BASE64:"},
		{"ed25519", "k", "aGVsbG8", "CELLOS_EVENT_SIGNING_KEY_BASE64:"}, /* 5 bytes, not a seed */
		{"hmac", "k", "====", "CELLOS_EVENT_SIGNING_KEY_BASE64:"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		for (int mode = 0; mode < 3; mode++) {
			clean_env(NULL);
			setenv("CELLOS_EVENT_SIGNING", bad[i].alg, 1);
			if (bad[i].kid)
				setenv("CELLOS_EVENT_SIGNING_KID", bad[i].kid, 1);
			if (bad[i].key)
				setenv("CELLOS_EVENT_SIGNING_KEY_BASE64", bad[i].key, 1);
			if (mode == 1)
				setenv("CELLOS_STRICT_CONFIG", "1", 1);
			if (mode == 2)
				setenv("CELLOS_DEPLOYMENT_PROFILE", "hardened", 1);
			struct config cfg;
			struct err e = {0};
			int rc = config_load(&cfg, &e);
			if (mode == 0) {
				assert_int_equal(rc, 0);
				assert_int_equal(cfg.signing, SIGN_OFF);
				assert_null(cfg.signing_key);
			} else {
				assert_int_equal(rc, -1);
				if (!strstr(e.msg, bad[i].var))
					fail_msg("case %zu mode %d: '%s' does not name %s", i, mode, e.msg, bad[i].var);
				if (bad[i].key && strlen(bad[i].key) > 6 && strstr(e.msg, bad[i].key))
					fail_msg("the key is in the message: %s", e.msg);
			}
			config_free(&cfg);
		}
	}
	/* Off is off, and the hardened profile then names signing as missing. */
	clean_env(NULL);
	struct config cfg;
	struct err e = {0};
	assert_int_equal(config_load(&cfg, &e), 0);
	assert_int_equal(cfg.signing, SIGN_OFF);
	cfg.hardened = true;
	assert_int_equal(admission_check_profile(&cfg, "/bin/true", &e), -1);
	assert_non_null(strstr(e.msg, "signed events (CELLOS_EVENT_SIGNING"));
	config_free(&cfg);
}

static void test_config_redact(void **state)
{
	struct config cfg;
	struct err e = {0};
	setenv("CELLOS_REDACT_EVENT_FIELDS", " host , defaults,argv,,path ", 1);
	assert_int_equal(config_load(&cfg, &e), 0);
	const char *want[] = {"host", "argv", "path", "reason", NULL};
	for (size_t i = 0; want[i]; i++)
		assert_string_equal(cfg.redact_fields[i], want[i]);
	assert_null(cfg.redact_fields[4]);
	config_free(&cfg);
	clean_env(NULL);
	assert_int_equal(config_load(&cfg, &e), 0);
	assert_null(cfg.redact_fields);
	assert_null(cfg.dlq_dir);
	config_free(&cfg);
}

/* ---- redaction ---- */

static void test_redact(void **state)
{
	json_t *d = json_loads("{\"argv\":[\"a\",\"b\"],\"reason\":\"x\",\"path\":{\"deep\":1},\"n\":5,"
			       "\"list\":[{\"path\":\"/p\",\"keep\":true},[{\"reason\":null}]],"
			       "\"obj\":{\"inner\":{\"argv\":7,\"other\":\"o\"}},\"reasonable\":\"kept\"}",
			       0, NULL);
	assert_non_null(d);
	char *fields[] = {"argv", "path", "reason", NULL};
	assert_int_equal(redact_data(d, fields), 0);
	char *out = canon_dump(d, NULL);
	assert_string_equal(out, "{\"argv\":[\"[redacted]\"],\"list\":[{\"keep\":true,\"path\":\"[redacted]\"},"
				 "[{\"reason\":\"[redacted]\"}]],\"n\":5,"
				 "\"obj\":{\"inner\":{\"argv\":\"[redacted]\",\"other\":\"o\"}},"
				 "\"path\":{},\"reason\":\"[redacted]\",\"reasonable\":\"kept\"}");
	free(out);
	/* An empty list, or none, changes nothing. */
	char *none[] = {NULL};
	assert_int_equal(redact_data(d, none), 0);
	assert_int_equal(redact_data(d, NULL), 0);
	json_decref(d);
}

/* ---- events_emit with signing, redaction, DLQ ---- */

static char tmpdir[64];

static int make_tmpdir(void **state)
{
	clean_env(state);
	strcpy(tmpdir, "/tmp/unit-events-XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int remove_tmpdir(void **state)
{
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

/* Lines of a file (NULL-terminated, malloc'd). */
static char **read_lines(const char *path, size_t *n)
{
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	char **out = calloc(1, sizeof *out), *line = NULL;
	size_t cap = 0;
	ssize_t len;
	*n = 0;
	while ((len = getline(&line, &cap, f)) > 0) {
		assert_int_equal(line[len - 1], '\n');
		line[len - 1] = '\0';
		out = realloc(out, (*n + 2) * sizeof *out);
		out[(*n)++] = strdup(line);
		out[*n] = NULL;
	}
	free(line);
	fclose(f);
	return out;
}

static void free_lines(char **l)
{
	for (char **p = l; *p; p++)
		free(*p);
	free(l);
}

static void emit_three(struct event_stream *es)
{
	events_begin_run(es, "cell-1", "11111111-2222-4333-8444-555555555555");
	events_emit(es, "lifecycle.v1.started", json_pack("{s:s, s:[s]}", "specId", "cell-1", "argv", "/bin/x"), NULL);
	events_emit(es, "command.v1.completed",
		    json_pack("{s:[s, s], s:i, s:{s:s}, s:s, s:s}", "argv", "/bin/x", "secret-arg", "exitCode", 3,
			      "nested", "reason", "r", "cellId", "spoofed", "runId", "spoofed"),
		    NULL);
	events_emit(es, "lifecycle.v1.destroyed", json_pack("{s:s, s:s}", "outcome", "failed", "reason", "nonzero_exit"),
		    NULL);
}

static void test_emit_signed_redacted(void **state)
{
	for (int alg = SIGN_ED25519; alg <= SIGN_HMAC; alg++) {
		char path[128];
		snprintf(path, sizeof path, "%s/signed-%d.jsonl", tmpdir, alg);
		unsigned char seed[32], pk[32];
		size_t n = 0;
		assert_int_equal(b64url_decode(SEED_B64, strlen(SEED_B64), true, seed, 32, &n), 0);
		assert_int_equal(sign_ed25519_public_key(seed, pk, NULL), 0);
		unsigned char *key = sodium_malloc(32);
		memcpy(key, seed, 32);
		char *redact[] = {"argv", "path", "reason", "cellId", "runId", NULL};
		struct config cfg = {.jsonl_path = path, .jsonl_fsync = FSYNC_NONE, .signing = (enum sign_alg)alg,
				     .signing_kid = "kid-1", .signing_key = key, .signing_key_len = 32,
				     .redact_fields = redact};
		struct event_stream es;
		struct err e = {0};
		assert_int_equal(events_open(&es, &cfg, &e), 0);
		for (size_t i = 0; i < 32; i++)
			assert_int_equal(key[i], 0); /* wiped once the signer has its state */
		emit_three(&es);
		assert_int_equal(es.failures, 0);
		events_close(&es);
		sodium_free(key);

		char **lines = read_lines(path, &n);
		assert_int_equal(n, 3);
		unsigned char prev[32] = {0};
		for (size_t i = 0; i < n; i++) {
			json_t *w = json_loads(lines[i], JSON_REJECT_DUPLICATES, NULL);
			assert_non_null(w);
			char *again = canon_dump(w, NULL);
			assert_string_equal(again, lines[i]);
			free(again);
			assert_string_equal(json_string_value(json_object_get(w, "type")), SIGNED_ENVELOPE_TYPE);
			json_t *d = json_object_get(w, "data");
			json_t *ev = json_object_get(d, "event");
			assert_string_equal(json_string_value(json_object_get(d, "algorithm")),
					    alg == SIGN_ED25519 ? "ed25519" : "hmac-sha256");
			assert_string_equal(json_string_value(json_object_get(d, "signerKid")), "kid-1");
			size_t clen = 0, sl = 0;
			char *canon = canon_dump(ev, &clen);
			const char *sb = json_string_value(json_object_get(d, "signature"));
			unsigned char sig[64];
			assert_int_equal(b64url_decode(sb, strlen(sb), false, sig, sizeof sig, &sl), 0);
			if (alg == SIGN_ED25519)
				assert_true(sign_verify_ed25519(pk, canon, clen, sig, sl));
			else
				assert_true(sign_verify_hmac(seed, 32, canon, clen, sig, sl));
			/* The chain lives on the inner events. */
			char seq[8], hex[65];
			snprintf(seq, sizeof seq, "%zu", i + 1);
			assert_string_equal(json_string_value(json_object_get(ev, "sequence")), seq);
			sodium_bin2hex(hex, sizeof hex, prev, 32);
			assert_string_equal(json_string_value(json_object_get(ev, "cellosprevdigest")), hex);
			crypto_hash_sha256(prev, (unsigned char *)canon, clen);
			/* Redacted, except cellId and runId, which are always the real ones. */
			json_t *data = json_object_get(ev, "data");
			assert_string_equal(json_string_value(json_object_get(data, "cellId")), "cell-1");
			assert_string_equal(json_string_value(json_object_get(data, "runId")),
					    "11111111-2222-4333-8444-555555555555");
			json_t *argv = json_object_get(data, "argv");
			if (argv) {
				assert_int_equal(json_array_size(argv), 1);
				assert_string_equal(json_string_value(json_array_get(argv, 0)), "[redacted]");
			}
			json_t *reason = json_object_get(data, "reason");
			if (reason)
				assert_string_equal(json_string_value(reason), "[redacted]");
			json_t *nested = json_object_get(data, "nested");
			if (nested)
				assert_string_equal(json_string_value(json_object_get(nested, "reason")), "[redacted]");
			assert_null(strstr(lines[i], "secret-arg"));
			/* Envelope attributes are untouched. */
			assert_string_equal(json_string_value(json_object_get(ev, "subject")), "urn:cellos:cell:cell-1");
			free(canon);
			json_decref(w);
		}
		free_lines(lines);
	}
}

/* The errors the supervisor logs for these are expected: keep them out of the
 * test output. */
static int saved_stderr = -1;

static void quiet(void)
{
	fflush(stderr);
	saved_stderr = dup(2);
	int fd = open("/dev/null", O_WRONLY);
	assert_true(saved_stderr >= 0 && fd >= 0);
	dup2(fd, 2);
	close(fd);
}

static void loud(void)
{
	dup2(saved_stderr, 2);
	close(saved_stderr);
}

/* A sink that cannot write (/dev/full: ENOSPC) sends every event to the DLQ,
 * one file each, in the SPEC §8.5 format, and the stream carries on. */
static void test_dlq(void **state)
{
	char dlq[128];
	snprintf(dlq, sizeof dlq, "%s/dlq", tmpdir);
	assert_int_equal(mkdir(dlq, 0700), 0);
	struct config cfg = {.jsonl_path = "/dev/full", .jsonl_fsync = FSYNC_NONE, .dlq_dir = dlq};
	struct event_stream es;
	struct err e = {0};
	assert_int_equal(events_open(&es, &cfg, &e), 0);
	quiet();
	emit_three(&es);
	loud();
	assert_int_equal(es.failures, 3);
	assert_int_equal(es.dead_lettered, 3);
	events_close(&es);

	DIR *d = opendir(dlq);
	assert_non_null(d);
	struct dirent *de;
	size_t files = 0;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		files++;
		/* <unix-millis>-<event id>.jsonl */
		char *dash = strchr(de->d_name, '-');
		assert_non_null(dash);
		assert_true(dash - de->d_name == 13);
		assert_int_equal(strlen(dash + 1), 36 + 6);
		assert_string_equal(dash + 1 + 36, ".jsonl");
		char p[300];
		snprintf(p, sizeof p, "%s/%s", dlq, de->d_name);
		struct stat st;
		assert_int_equal(stat(p, &st), 0);
		assert_int_equal(st.st_mode & 0777, 0600);
		size_t n = 0;
		char **lines = read_lines(p, &n);
		assert_int_equal(n, 1);
		json_t *o = json_loads(lines[0], JSON_REJECT_DUPLICATES, NULL);
		assert_non_null(o);
		assert_int_equal(json_object_size(o), 2);
		assert_non_null(strstr(json_string_value(json_object_get(o, "error")), "No space left on device"));
		json_t *ev = json_object_get(o, "event");
		char id[37];
		snprintf(id, sizeof id, "%.36s", dash + 1);
		assert_string_equal(json_string_value(json_object_get(ev, "id")), id);
		json_decref(o);
		free_lines(lines);
	}
	closedir(d);
	assert_int_equal(files, 3);

	/* Admission: a DLQ directory that does not exist is a configuration error. */
	char missing[160];
	snprintf(missing, sizeof missing, "%s/nope", tmpdir);
	cfg.dlq_dir = missing;
	assert_int_equal(events_open(&es, &cfg, &e), -1);
	assert_non_null(strstr(e.msg, "CELLOS_DLQ_DIR"));
}

/* Without a DLQ the failure is logged and counted; nothing crashes. */
static void test_no_dlq(void **state)
{
	struct config cfg = {.jsonl_path = "/dev/full", .jsonl_fsync = FSYNC_NONE};
	struct event_stream es;
	struct err e = {0};
	assert_int_equal(events_open(&es, &cfg, &e), 0);
	quiet();
	emit_three(&es);
	loud();
	assert_int_equal(es.failures, 3);
	assert_int_equal(es.dead_lettered, 0);
	events_close(&es);
}

static int setup(void **state) { return sodium_init() < 0 ? -1 : 0; }

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_config_signing_valid, clean_env),
		cmocka_unit_test_setup(test_config_signing_invalid, clean_env),
		cmocka_unit_test_setup(test_config_redact, clean_env),
		cmocka_unit_test(test_redact),
		cmocka_unit_test_setup_teardown(test_emit_signed_redacted, make_tmpdir, remove_tmpdir),
		cmocka_unit_test_setup_teardown(test_dlq, make_tmpdir, remove_tmpdir),
		cmocka_unit_test_setup(test_no_dlq, clean_env),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
