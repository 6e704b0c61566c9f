/* Unit tests for src/events/verify.c: logs produced by the real event path
 * (events_emit with a signer), interleaved and then tampered with in every way
 * the SPEC names; each must be caught, with the right line number. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "events/event.h"
#include "events/sign.h"
#include "events/verify.h"
#include "util/b64url.h"
#include "util/canon.h"

#define MAX_LINES 64

struct log {
	char *line[MAX_LINES];
	size_t n;
};

static unsigned char seed[32], pk[32], other_seed[32];
static char keys_json[128];

static void log_free(struct log *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->line[i]);
	l->n = 0;
}

static void read_into(struct log *l, const char *path)
{
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	while ((n = getline(&line, &cap, f)) > 0) {
		assert_true(l->n < MAX_LINES);
		line[n - 1] = '\0';
		l->line[l->n++] = strdup(line);
	}
	free(line);
	fclose(f);
}

/* One run of `n_events` events (the last one `last_type`), signed with `key`. */
static void make_run(struct log *out, enum sign_alg alg, const unsigned char *key, const char *kid, const char *run_id,
		     int n_events, const char *last_type)
{
	char path[] = "/tmp/unit-verify-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	unsigned char *k = sodium_malloc(32);
	memcpy(k, key, 32);
	struct config cfg = {.jsonl_path = path, .jsonl_fsync = FSYNC_NONE, .signing = alg, .signing_kid = kid,
			     .signing_key = k, .signing_key_len = 32};
	struct event_stream es;
	assert_int_equal(events_open(&es, &cfg, NULL), 0);
	events_begin_run(&es, "cell", run_id);
	events_emit(&es, "observability.v1.network_policy", json_pack("{s:i}", "declaredEgressCount", 0), NULL);
	int i = 1;
	/* A run that fails before starting has no started event (SPEC §4). */
	if (strcmp(last_type, "lifecycle.v1.failed") != 0) {
		events_emit(&es, "lifecycle.v1.started", json_pack("{s:s}", "specId", "cell"), NULL);
		i++;
	}
	for (; i < n_events - 1; i++)
		events_emit(&es, "command.v1.completed", json_pack("{s:i}", "exitCode", i), NULL);
	events_emit(&es, last_type, json_pack("{s:s}", "outcome", "succeeded"), NULL);
	events_close(&es);
	sodium_free(k);
	read_into(out, path);
	unlink(path);
}

/* Three runs of five events interleaved round-robin: lines 1,4,7,.. are run A. */
static void make_interleaved(struct log *l)
{
	struct log r[3] = {0};
	static const char *const ids[] = {"aaaaaaaa-0000-4000-8000-000000000001", "bbbbbbbb-0000-4000-8000-000000000002",
					  "cccccccc-0000-4000-8000-000000000003"};
	for (int i = 0; i < 3; i++)
		make_run(&r[i], SIGN_ED25519, seed, "ops-1", ids[i], 5, "lifecycle.v1.destroyed");
	for (size_t j = 0; j < 5; j++)
		for (int i = 0; i < 3; i++) {
			l->line[l->n++] = r[i].line[j];
			r[i].line[j] = NULL;
		}
}

struct result {
	size_t n;
	size_t line[MAX_LINES];
	char msg[MAX_LINES][512];
};

static void verify(struct log *l, const unsigned char *hmac, struct result *res)
{
	struct verifier v;
	assert_int_equal(verifier_init(&v, NULL), 0);
	assert_int_equal(verifier_load_keys(&v, keys_json, strlen(keys_json), NULL), 0);
	if (hmac)
		assert_int_equal(verifier_set_hmac_key(&v, hmac, 32, NULL), 0);
	for (size_t i = 0; i < l->n; i++)
		if (l->line[i])
			verifier_line(&v, i + 1, l->line[i], strlen(l->line[i]));
	verifier_finish(&v);
	memset(res, 0, sizeof *res);
	for (size_t i = 0; i < v.n_problems && i < MAX_LINES; i++) {
		res->line[i] = v.problems[i].line;
		snprintf(res->msg[i], sizeof res->msg[i], "%s", v.problems[i].msg);
	}
	res->n = v.n_problems;
	verifier_free(&v);
}

static void expect(struct result *r, size_t line, const char *needle)
{
	for (size_t i = 0; i < r->n; i++)
		if (r->line[i] == line && strstr(r->msg[i], needle))
			return;
	char all[4096] = "";
	for (size_t i = 0; i < r->n; i++)
		snprintf(all + strlen(all), sizeof all - strlen(all), "\n  %zu: %s", r->line[i], r->msg[i]);
	fail_msg("no problem '%s' at line %zu; got:%s", needle, line, all);
}

static void test_clean_log(void **state)
{
	struct log l = {0};
	struct result r;
	make_interleaved(&l);
	assert_int_equal(l.n, 15);
	verify(&l, NULL, &r);
	if (r.n)
		fail_msg("clean log: %zu problems, first at line %zu: %s", r.n, r.line[0], r.msg[0]);
	log_free(&l);
}

/* Change exitCode of run B's third event (line 8) without re-signing. */
static void test_altered_field(void **state)
{
	struct log l = {0};
	struct result r;
	make_interleaved(&l);
	char *p = strstr(l.line[7], "\"exitCode\":2");
	assert_non_null(p);
	p[11] = '9';
	verify(&l, NULL, &r);
	assert_int_equal(r.n, 1);
	expect(&r, 8, "bad Ed25519 signature");
	log_free(&l);
}

/* The wrapper is not signed, but must agree with the event. */
static void test_altered_wrapper(void **state)
{
	struct log l = {0};
	struct result r;
	make_interleaved(&l);
	json_t *w = json_loads(l.line[4], 0, NULL);
	json_object_set_new(w, "time", json_string("2030-01-01T00:00:00.000000Z"));
	free(l.line[4]);
	l.line[4] = canon_dump(w, NULL);
	json_decref(w);
	verify(&l, NULL, &r);
	assert_int_equal(r.n, 1);
	expect(&r, 5, "time differs from the signed event's");
	log_free(&l);
}

static void test_dropped(void **state)
{
	struct log l = {0};
	struct result r;
	make_interleaved(&l);
	/* Run A's sequence 3 is line 7; line 10 (A's 4) is where the gap shows. */
	free(l.line[6]);
	l.line[6] = NULL;
	verify(&l, NULL, &r);
	assert_int_equal(r.n, 1);
	expect(&r, 10, "sequence 3 is missing");
	log_free(&l);
}

static void test_duplicated(void **state)
{
	struct log l = {0};
	struct result r;
	make_interleaved(&l);
	l.line[l.n++] = strdup(l.line[3]); /* run A's 2 again, at the end (line 16) */
	verify(&l, NULL, &r);
	assert_int_equal(r.n, 1);
	expect(&r, 16, "duplicate of line 4");
	log_free(&l);
}

static void test_reordered(void **state)
{
	struct log l = {0};
	struct result r;
	make_interleaved(&l);
	/* Swap run C's sequence 2 (line 6) and 3 (line 9). */
	char *t = l.line[5];
	l.line[5] = l.line[8];
	l.line[8] = t;
	verify(&l, NULL, &r);
	assert_int_equal(r.n, 1);
	expect(&r, 9, "sequence 2 comes after sequence 3 (line 6): events out of order");
	log_free(&l);
}

static void test_missing_last(void **state)
{
	struct log l = {0};
	struct result r;
	make_interleaved(&l);
	free(l.line[13]); /* run B's destroyed; its last remaining event is line 11 */
	l.line[13] = NULL;
	verify(&l, NULL, &r);
	assert_int_equal(r.n, 1);
	expect(&r, 11, "started but did not end");
	log_free(&l);
}

/* A run that failed before starting ends with lifecycle.v1.failed: fine. */
static void test_failed_run_ends(void **state)
{
	struct log l = {0};
	struct result r;
	make_run(&l, SIGN_ED25519, seed, "ops-1", "dddddddd-0000-4000-8000-000000000004", 2, "lifecycle.v1.failed");
	assert_int_equal(l.n, 2);
	verify(&l, NULL, &r);
	assert_int_equal(r.n, 0);
	/* ... but not without it. */
	free(l.line[1]);
	l.line[1] = NULL;
	verify(&l, NULL, &r);
	assert_int_equal(r.n, 1);
	expect(&r, 1, "began but did not end");
	log_free(&l);
}

/* Signed with another key: same kid (bad signature) or an unknown kid. */
static void test_foreign(void **state)
{
	struct log l = {0}, f = {0};
	struct result r;
	make_interleaved(&l);
	make_run(&f, SIGN_ED25519, other_seed, "ops-1", "aaaaaaaa-0000-4000-8000-000000000001", 5,
		 "lifecycle.v1.destroyed");
	free(l.line[6]);
	l.line[6] = f.line[2]; /* run A's sequence 3, forged */
	f.line[2] = NULL;
	verify(&l, NULL, &r);
	expect(&r, 7, "bad Ed25519 signature");
	assert_int_equal(r.n, 1);
	log_free(&f);

	make_run(&f, SIGN_ED25519, other_seed, "intruder", "aaaaaaaa-0000-4000-8000-000000000001", 5,
		 "lifecycle.v1.destroyed");
	free(l.line[6]);
	l.line[6] = f.line[2];
	f.line[2] = NULL;
	verify(&l, NULL, &r);
	expect(&r, 7, "unknown key 'intruder'");
	assert_int_equal(r.n, 1);
	log_free(&f);
	log_free(&l);
}

/* HMAC: verified with the key, refused without it or with another. */
static void test_hmac(void **state)
{
	struct log l = {0};
	struct result r;
	make_run(&l, SIGN_HMAC, other_seed, "hmac-1", "eeeeeeee-0000-4000-8000-000000000005", 4, "lifecycle.v1.destroyed");
	verify(&l, other_seed, &r);
	assert_int_equal(r.n, 0);
	verify(&l, NULL, &r);
	assert_int_equal(r.n, 4);
	expect(&r, 1, "no HMAC key was given");
	verify(&l, seed, &r);
	assert_int_equal(r.n, 4);
	expect(&r, 4, "bad HMAC-SHA256 signature");
	log_free(&l);
}

/* Unsigned events, garbage lines, wrapper defects: one problem each. */
static void test_malformed(void **state)
{
	struct log l = {0};
	struct result r;
	make_interleaved(&l);
	/* line 16: the inner event of line 1 without its wrapper */
	json_t *w = json_loads(l.line[0], 0, NULL);
	l.line[l.n++] = canon_dump(json_object_get(json_object_get(w, "data"), "event"), NULL);
	json_decref(w);
	l.line[l.n++] = strdup("not json");                                 /* 17 */
	l.line[l.n++] = strdup("[1,2]");                                    /* 18 */
	l.line[l.n++] = strdup("{\"type\":\"" SIGNED_ENVELOPE_TYPE "\"}");  /* 19 */
	l.line[l.n++] = strdup("{\"a\":1,\"a\":2}");                        /* 20: duplicate keys */
	verify(&l, NULL, &r);
	expect(&r, 16, "unsigned event");
	expect(&r, 16, "duplicate of line 1");
	expect(&r, 17, "not a JSON event");
	expect(&r, 18, "not an event");
	expect(&r, 19, "no data.event");
	expect(&r, 20, "not a JSON event");
	if (r.n != 6)
		expect(&r, 0, "(exactly six problems)");
	log_free(&l);
}

static void test_keys_file(void **state)
{
	struct verifier v;
	struct err e = {0};
	char pk_b64[B64URL_ENCODED_LEN(32)], text[512];
	b64url_encode(pk, 32, pk_b64);
	assert_int_equal(verifier_init(&v, NULL), 0);
	/* several objects, one per line, padding tolerated */
	snprintf(text, sizeof text, "{\"a\":\"%s\"}\n{\"b\":\"%s=\", \"a\":\"%s\"}\n\n", pk_b64, pk_b64, pk_b64);
	assert_int_equal(verifier_load_keys(&v, text, strlen(text), &e), 0);
	assert_int_equal(v.n_keys, 2);
	/* Same kid, another key: the last character changed (the random key's own
	 * last character may be 'A'; 'E' is the other valid one with those bits). */
	snprintf(text, sizeof text, "{\"a\":\"%.42s%c\"}", pk_b64, pk_b64[42] == 'A' ? 'E' : 'A');
	assert_int_equal(verifier_load_keys(&v, text, strlen(text), &e), -1);
	assert_non_null(strstr(e.msg, "listed twice"));
	assert_int_equal(verifier_load_keys(&v, "{\"c\":\"abc\"}", 11, &e), -1);
	assert_non_null(strstr(e.msg, "not a base64url Ed25519 public key"));
	assert_int_equal(verifier_load_keys(&v, "{\"c\":", 5, &e), -1);
	assert_int_equal(verifier_load_keys(&v, "[]", 2, &e), -1);
	verifier_free(&v);
}

/* Without keys (cellctl verify with neither --keys nor --hmac-key-env): an
 * unsigned log's chains are checked; a signed envelope is only noted. */
static void verify_unsigned(struct log *l, struct result *res, size_t *first_signed)
{
	struct verifier v;
	assert_int_equal(verifier_init(&v, NULL), 0);
	v.unsigned_log = true;
	for (size_t i = 0; i < l->n; i++)
		if (l->line[i])
			verifier_line(&v, i + 1, l->line[i], strlen(l->line[i]));
	verifier_finish(&v);
	memset(res, 0, sizeof *res);
	for (size_t i = 0; i < v.n_problems && i < MAX_LINES; i++) {
		res->line[i] = v.problems[i].line;
		snprintf(res->msg[i], sizeof res->msg[i], "%s", v.problems[i].msg);
	}
	res->n = v.n_problems;
	*first_signed = v.first_signed_line;
	verifier_free(&v);
}

static void test_unsigned_log_chains(void **state)
{
	struct log l = {0};
	struct result r;
	size_t signed_at;
	make_run(&l, SIGN_OFF, seed, NULL, "dddddddd-0000-4000-8000-000000000004", 5, "lifecycle.v1.destroyed");
	assert_int_equal(l.n, 5);
	verify_unsigned(&l, &r, &signed_at);
	if (r.n)
		fail_msg("clean unsigned log: %zu problems, first at line %zu: %s", r.n, r.line[0], r.msg[0]);
	assert_int_equal(signed_at, 0);

	/* An altered event breaks the link to the next one. */
	char *p = strstr(l.line[2], "\"exitCode\":2");
	assert_non_null(p);
	p[11] = '7';
	verify_unsigned(&l, &r, &signed_at);
	assert_int_equal(r.n, 1);
	expect(&r, 4, "cellosprevdigest does not match");

	/* A dropped last event: the run did not end. */
	free(l.line[4]);
	l.line[4] = NULL;
	p[11] = '2';
	verify_unsigned(&l, &r, &signed_at);
	assert_int_equal(r.n, 1);
	expect(&r, 4, "started but did not end");
	log_free(&l);

	/* A signed log is noted at its first line, never taken as checked. */
	make_interleaved(&l);
	verify_unsigned(&l, &r, &signed_at);
	assert_int_equal(signed_at, 1);
	log_free(&l);
}

static int setup(void **state)
{
	if (sodium_init() < 0)
		return -1;
	randombytes_buf(seed, sizeof seed);
	randombytes_buf(other_seed, sizeof other_seed);
	if (sign_ed25519_public_key(seed, pk, NULL) < 0)
		return -1;
	char b64[B64URL_ENCODED_LEN(32)];
	b64url_encode(pk, 32, b64);
	snprintf(keys_json, sizeof keys_json, "{\"ops-1\":\"%s\"}", b64);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_clean_log),       cmocka_unit_test(test_altered_field),
		cmocka_unit_test(test_altered_wrapper), cmocka_unit_test(test_dropped),
		cmocka_unit_test(test_duplicated),      cmocka_unit_test(test_reordered),
		cmocka_unit_test(test_missing_last),    cmocka_unit_test(test_failed_run_ends),
		cmocka_unit_test(test_foreign),         cmocka_unit_test(test_hmac),
		cmocka_unit_test(test_malformed),       cmocka_unit_test(test_keys_file),
		cmocka_unit_test(test_unsigned_log_chains),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
