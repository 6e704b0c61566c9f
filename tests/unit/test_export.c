/* Unit tests for the pure parts of src/export/: the URL rule of SPEC §10, what
 * of a URL may be shown, S3 receipts, target variable suffixes, the artifact
 * stream (counting, hashing, a file that changes while read), and
 * CELLOS_EXPORT_HOST_PATHS_ALLOW (parsing, whole-component matching), and the HTTP
 * PUT against a libcurl whose entry points the test replaces. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config.h"
#include "export/curl_dl.h"
#include "export/export.h"
#include "util/path.h"
#include "util/ids.h"

static void url_is(const char *tmpl, const char *want)
{
	char *got = export_url_for(tmpl, "cell-1", "report.xml");
	assert_non_null(got);
	assert_string_equal(got, want);
	free(got);
}

static void test_url_rule(void **state)
{
	/* Placeholders win, wherever they are, as often as they appear. */
	url_is("https://h/{cell_id}/{artifact_name}", "https://h/cell-1/report.xml");
	url_is("https://h/x?c={cell_id}&n={artifact_name}&c2={cell_id}", "https://h/x?c=cell-1&n=report.xml&c2=cell-1");
	url_is("https://h/only/{artifact_name}", "https://h/only/report.xml");
	url_is("https://h/{cell_id}", "https://h/cell-1");
	/* A query string without placeholders: used as it is (presigned). */
	url_is("https://h/obj?X-Amz-Signature=abc", "https://h/obj?X-Amz-Signature=abc");
	/* Otherwise /<cellId>/<name> is appended, without doubling a slash. */
	url_is("https://h/base", "https://h/base/cell-1/report.xml");
	url_is("https://h/base/", "https://h/base/cell-1/report.xml");
	url_is("http://127.0.0.1:8080", "http://127.0.0.1:8080/cell-1/report.xml");
	/* Near misses are not placeholders. */
	url_is("https://h/{cellid}", "https://h/{cellid}/cell-1/report.xml");
}

static void shown_is(const char *url, const char *want)
{
	char out[512];
	export_url_shown(url, out, sizeof out);
	assert_string_equal(out, want);
}

static void test_url_shown(void **state)
{
	shown_is("https://user:pw@h:8443/a/b?sig=s3cr3t#frag", "https://h:8443/a/b");
	shown_is("https://h/a?X-Amz-Signature=x", "https://h/a");
	shown_is("http://tok@h", "http://h");
	shown_is("http://a@b:c@h/p", "http://h/p"); /* the last '@' of the authority */
	shown_is("http://h/p@q", "http://h/p@q"); /* an '@' in the path is not userinfo */
	shown_is("http://[::1]:9/x?y", "http://[::1]:9/x");
	shown_is("http://h#x", "http://h");
}

static void test_s3_destination(void **state)
{
	char out[256];
	export_s3_destination("ci", "runs", "c", "n", out, sizeof out);
	assert_string_equal(out, "s3://ci/runs/c/n");
	export_s3_destination("ci", "/runs/2026/", "c", "n", out, sizeof out);
	assert_string_equal(out, "s3://ci/runs/2026/c/n");
	export_s3_destination("ci", NULL, "c", "n", out, sizeof out);
	assert_string_equal(out, "s3://ci/c/n");
	export_s3_destination("ci", "//", "c", "n", out, sizeof out);
	assert_string_equal(out, "s3://ci/c/n");
}

static void test_target_suffix(void **state)
{
	char out[64];
	export_target_suffix("artifact-bucket", out, sizeof out);
	assert_string_equal(out, "ARTIFACT_BUCKET");
	export_target_suffix("Mixed.Case_9", out, sizeof out);
	assert_string_equal(out, "MIXED_CASE_9");
	export_target_suffix("a..b", out, sizeof out);
	assert_string_equal(out, "A__B");

	struct config_url http[] = {{.suffix = "ARTIFACT_BUCKET", .url = "http://h1"}};
	struct config_url s3[] = {{.suffix = "ARTIFACT_BUCKET", .url = "http://s3"}};
	struct config cfg = {.export_http_urls = http, .n_export_http_urls = 1, .export_s3_urls = s3,
			     .n_export_s3_urls = 1};
	assert_string_equal(export_target_url(&cfg, false, "artifact-bucket"), "http://h1");
	assert_string_equal(export_target_url(&cfg, true, "Artifact.Bucket"), "http://s3");
	assert_null(export_target_url(&cfg, false, "other"));
}

static int memfile(const char *data, size_t n)
{
	int fd = memfd_create("artifact", MFD_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, n), (ssize_t)n);
	return fd;
}

static void test_stream(void **state)
{
	const char data[] = "hello artifact";
	int fd = memfile(data, sizeof data - 1);
	struct export_stream s = {.fd = fd, .size = sizeof data - 1};
	char buf[4], hex[65];
	/* Twice, as a retried upload does: the same bytes and digest each time. */
	for (int round = 0; round < 2; round++) {
		export_stream_reset(&s);
		ssize_t n;
		size_t total = 0;
		while ((n = export_stream_read(&s, buf, sizeof buf)) > 0)
			total += (size_t)n;
		assert_int_equal(n, 0);
		assert_int_equal(total, sizeof data - 1);
		assert_int_equal(export_stream_finish(&s, hex), 0);
		unsigned char d[32];
		char want[65];
		crypto_hash_sha256(d, (const unsigned char *)data, sizeof data - 1);
		sodium_bin2hex(want, sizeof want, d, sizeof d);
		assert_string_equal(hex, want);
	}
	/* Grew after the size was taken. */
	assert_int_equal(write(fd, "!", 1), 1);
	export_stream_reset(&s);
	while (export_stream_read(&s, buf, sizeof buf) > 0)
		;
	assert_int_equal(export_stream_finish(&s, hex), -1);
	assert_non_null(strstr(s.error, "grew"));
	/* Shrank. */
	assert_int_equal(ftruncate(fd, 3), 0);
	export_stream_reset(&s);
	ssize_t n;
	while ((n = export_stream_read(&s, buf, sizeof buf)) > 0)
		;
	assert_int_equal(n, -1);
	assert_non_null(strstr(s.error, "shrank"));
	close(fd);
}

static void test_host_allow(void **state)
{
	char *prefixes[] = {"/srv/ci", "/data/out", NULL};
	assert_true(path_within_any("/srv/ci/x", prefixes));
	assert_true(path_within_any("/srv/ci/a/b", prefixes));
	assert_true(path_within_any("/srv/ci", prefixes));
	assert_true(path_within_any("/data/out/f", prefixes));
	assert_false(path_within_any("/srv/ci-evil/x", prefixes));
	assert_false(path_within_any("/srv/c", prefixes));
	assert_false(path_within_any("/srv", prefixes));
	assert_false(path_within_any("/etc/shadow", prefixes));
	assert_false(path_within_any("/etc/shadow", NULL));
	char *root[] = {"", NULL}; /* "/" in path_clean's form */
	assert_true(path_within_any("/etc/shadow", root));

	/* Kept in path_clean's form; empty items skipped. */
	struct config cfg;
	struct err e = {0};
	setenv("CELLOS_EXPORT_HOST_PATHS_ALLOW", "/srv/ci/,,/a//b/./c,/", 1);
	assert_int_equal(config_load(&cfg, &e), 0);
	assert_non_null(cfg.export_host_allow);
	assert_string_equal(cfg.export_host_allow[0], "/srv/ci");
	assert_string_equal(cfg.export_host_allow[1], "/a/b/c");
	assert_string_equal(cfg.export_host_allow[2], "");
	assert_null(cfg.export_host_allow[3]);
	config_free(&cfg);
	const char *bad[] = {"srv/ci", "/srv/../etc", "/ok,relative"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		setenv("CELLOS_EXPORT_HOST_PATHS_ALLOW", bad[i], 1);
		e.msg[0] = '\0';
		assert_int_equal(config_load(&cfg, &e), -1);
		assert_non_null(strstr(e.msg, "CELLOS_EXPORT_HOST_PATHS_ALLOW"));
		config_free(&cfg);
	}
	unsetenv("CELLOS_EXPORT_HOST_PATHS_ALLOW");
	assert_int_equal(config_load(&cfg, &e), 0);
	assert_null(cfg.export_host_allow);
	config_free(&cfg);
}

/* ---- the HTTP PUT against a libcurl that refuses an option ---- */

/* curl_api_load() hands out the process-wide table of libcurl's entry points;
 * the test swaps some of them for these (the table itself is not const). */
static CURLoption refused;  /* the option the fake library rejects; 0: none */
static int performed;
static curl_read_callback read_fn;
static void *read_arg;

static CURLcode fake_setopt(CURL *h, CURLoption opt, ...)
{
	if (opt == refused)
		return CURLE_UNKNOWN_OPTION;
	va_list ap;
	va_start(ap, opt);
	if (opt == CURLOPT_READFUNCTION)
		read_fn = va_arg(ap, curl_read_callback);
	else if (opt == CURLOPT_READDATA)
		read_arg = va_arg(ap, void *);
	va_end(ap);
	return CURLE_OK;
}

/* Sends the body nowhere, reading it as libcurl would. */
static CURLcode fake_perform(CURL *h)
{
	performed++;
	char buf[64];
	while (read_fn(buf, 1, sizeof buf, read_arg) > 0)
		;
	return CURLE_OK;
}

static CURLcode fake_getinfo(CURL *h, CURLINFO info, ...)
{
	va_list ap;
	va_start(ap, info);
	if (info == CURLINFO_RESPONSE_CODE)
		*va_arg(ap, long *) = 200;
	va_end(ap);
	return CURLE_OK;
}

static curl_version_info_data *old_version(CURLversion stamp)
{
	static curl_version_info_data v = {.version = "7.84.0", .version_num = 0x075400};
	return &v;
}

static int put_with(CURLoption refuse, struct err *e)
{
	static const struct config cfg = {.export_http_timeout_ms = 5000};
	int fd = memfile("data", 4);
	struct export_stream src = {.fd = fd, .size = 4};
	struct export_item it = {.cfg = &cfg, .cell_id = "c", .name = "a", .url = "http://127.0.0.1:9/c/a",
				 .src = &src, .deadline_ms = mono_ms() + 60000};
	struct export_receipt rc = {0};
	refused = refuse;
	performed = 0;
	read_fn = NULL;
	int r = export_http_put(&it, it.url, "tok", "http://127.0.0.1:9/c/a", &rc, e);
	close(fd);
	return r;
}

static void test_http_refuses_options_the_library_refuses(void **state)
{
	struct err e = {0};
	struct curl_api *cu = (struct curl_api *)curl_api_load(&e);
	assert_non_null(cu);
	const struct curl_api real = *cu;
	cu->easy_setopt = fake_setopt;
	cu->easy_perform = fake_perform;
	cu->easy_getinfo = fake_getinfo;

	/* Control: a library that takes every option sends the artifact. */
	assert_int_equal(put_with(0, &e), 0);
	assert_int_equal(performed, 1);
	/* One that refuses the protocol restriction (libcurl before 7.85) must not
	 * send anything: without it a redirect-free PUT could still speak any
	 * protocol libcurl has. Likewise for every other option. */
	static const CURLoption opts[] = {CURLOPT_PROTOCOLS_STR, CURLOPT_URL, CURLOPT_UPLOAD, CURLOPT_READFUNCTION,
					  CURLOPT_HTTPHEADER, CURLOPT_FOLLOWLOCATION, CURLOPT_PROXY, CURLOPT_NOSIGNAL,
					  CURLOPT_TIMEOUT_MS, CURLOPT_CONNECTTIMEOUT_MS};
	static const char *const names[] = {"CURLOPT_PROTOCOLS_STR", "CURLOPT_URL", "CURLOPT_UPLOAD",
					    "CURLOPT_READFUNCTION", "CURLOPT_HTTPHEADER", "CURLOPT_FOLLOWLOCATION",
					    "CURLOPT_PROXY", "CURLOPT_NOSIGNAL", "CURLOPT_TIMEOUT_MS",
					    "CURLOPT_CONNECTTIMEOUT_MS"};
	for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++) {
		memset(&e, 0, sizeof e);
		if (put_with(opts[i], &e) != -1 || performed != 0)
			fail_msg("%s refused, yet the PUT went ahead (performed %d)", names[i], performed);
		if (!strstr(e.msg, names[i]))
			fail_msg("%s refused: message '%s' does not name it", names[i], e.msg);
		/* The URL is a credential: the message shows the shown form only. */
		assert_null(strstr(e.msg, "tok"));
	}
	/* A library too old for CURLOPT_PROTOCOLS_STR that would take it without
	 * complaint (and ignore it) is refused all the same. */
	cu->version_info = old_version;
	memset(&e, 0, sizeof e);
	assert_int_equal(put_with(0, &e), -1);
	assert_int_equal(performed, 0);
	assert_string_equal(e.msg, "PUT http://127.0.0.1:9/c/a: libcurl 7.84.0 refused CURLOPT_PROTOCOLS_STR (it needs "
				   "libcurl 7.85.0 or later); not exporting without it");
	*cu = real;
}

static int setup(void **state) { return sodium_init() < 0 ? -1 : 0; }

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_url_rule),     cmocka_unit_test(test_url_shown), cmocka_unit_test(test_s3_destination),
		cmocka_unit_test(test_target_suffix), cmocka_unit_test(test_stream), cmocka_unit_test(test_host_allow),
		cmocka_unit_test(test_http_refuses_options_the_library_refuses),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
