/* Unit tests for the NATS subject template (CELLOS_NATS_SUBJECT, SPEC §3) and
 * CELLOS_NATS_URL's grammar (config_nats_load). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "util/nats_subject.h"

static void test_check(void **state)
{
	struct err e = {0};
	assert_int_equal(nats_subject_check(NATS_SUBJECT_DEFAULT, &e), 0);
	assert_int_equal(nats_subject_check("x", &e), 0);
	assert_int_equal(nats_subject_check("a.{cellId}{event}", &e), 0);
	static const char *const bad[] = {"", ".a", "a.", "a..b", "a.*", "a.>", "a b", "a\tb", "{tenant}", "a.{event",
					  "a}", "{}"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		e = (struct err){0};
		assert_int_equal(nats_subject_check(bad[i], &e), -1);
		assert_non_null(strstr(e.msg, "CELLOS_NATS_SUBJECT"));
	}
}

static void test_token(void **state)
{
	char out[64];
	nats_subject_token("web.api v2*>\x01x", out, sizeof out);
	assert_string_equal(out, "web_api_v2___x");
	nats_subject_token(NULL, out, sizeof out);
	assert_string_equal(out, "_");
	nats_subject_token("", out, sizeof out);
	assert_string_equal(out, "_");
	nats_subject_token("abcdef", out, 4);
	assert_string_equal(out, "abc");
}

static void test_expand(void **state)
{
	char out[128];
	assert_int_equal(nats_subject_expand(NATS_SUBJECT_DEFAULT, "acme", "c_1", "lifecycle.v1.started", out,
					     sizeof out),
			 0);
	assert_string_equal(out, "cellos.events.acme.c_1.lifecycle.v1.started");
	assert_int_equal(nats_subject_expand("{event}.{event}", "t", "c", "e", out, sizeof out), 0);
	assert_string_equal(out, "e.e");
	assert_int_equal(nats_subject_expand(NATS_SUBJECT_DEFAULT, "t", "c", "e", out, 10), -1);
}

static void test_urls(void **state)
{
	struct nats_conn_opts o = {0};
	struct err e = {0};
	assert_int_equal(config_nats_load(&o, "nats://a:1,tls://u:p@b:2,nats://c", &e), 0);
	assert_string_equal(o.urls[0], "nats://a:1");
	assert_string_equal(o.urls[1], "tls://u:p@b:2");
	assert_string_equal(o.urls[2], "nats://c");
	assert_null(o.urls[3]);
	config_nats_free(&o);
	static const char *const bad[] = {"a:1", "http://a:1", "nats://", "nats://a:1,", "nats://a/x", "nats://a b",
					  ",nats://a"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		e = (struct err){0};
		assert_int_equal(config_nats_load(&o, bad[i], &e), -1);
		assert_non_null(strstr(e.msg, "--server"));
		assert_null(o.urls);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_check),
		cmocka_unit_test(test_token),
		cmocka_unit_test(test_expand),
		cmocka_unit_test(test_urls),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
