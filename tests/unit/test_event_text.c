/* Unit tests for event_text() and events_emit() with text that is not UTF-8:
 * every event reaches the sink, and every line is valid UTF-8 JSON. */
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

#define FFFD "\xef\xbf\xbd"

static void test_event_text(void **state)
{
	json_t *v = event_text("plain caf\xc3\xa9");
	assert_non_null(v);
	assert_string_equal(json_string_value(v), "plain caf\xc3\xa9");
	json_decref(v);
	v = event_text("/tmp/no-such-\xff and \xe2\x82");
	assert_non_null(v);
	assert_string_equal(json_string_value(v), "/tmp/no-such-" FFFD " and " FFFD);
	json_decref(v);
	assert_null(event_text(NULL));
}

/* The events of one run in a temporary JSONL file, read back line by line. */
static void test_emit_with_bad_text_and_without_data(void **state)
{
	char path[] = "/tmp/cellos-test-event-text-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	struct config cfg = {.jsonl_path = path, .jsonl_fsync = FSYNC_NONE};
	struct event_stream es;
	struct err e = {0};
	assert_int_equal(events_open(&es, &cfg, &e), 0);
	events_begin_run(&es, "cell-1", "00000000-0000-4000-8000-000000000000");
	events_emit(&es, "lifecycle.v1.failed",
		    json_pack("{s:s, s:o}", "phase", "secrets", "message", event_text("KEY=/tmp/no-such-\xff")), NULL);
	/* Data that could not be built (json_pack refuses the text): the event is
	 * still emitted, and an error is logged (expected on stderr here). */
	events_emit(&es, "lifecycle.v1.failed", json_pack("{s:s}", "message", "bad \xff"), NULL);
	assert_int_equal(es.failures, 0);
	events_close(&es);

	FILE *f = fopen(path, "r");
	assert_non_null(f);
	char line[4096];
	json_error_t je;
	assert_non_null(fgets(line, sizeof line, f));
	json_t *ev = json_loads(line, 0, &je); /* jansson's decoder insists on UTF-8 */
	assert_non_null(ev);
	assert_string_equal(json_string_value(json_object_get(json_object_get(ev, "data"), "message")),
			    "KEY=/tmp/no-such-" FFFD);
	json_decref(ev);
	assert_non_null(fgets(line, sizeof line, f));
	ev = json_loads(line, 0, &je);
	assert_non_null(ev);
	json_t *d = json_object_get(ev, "data");
	assert_string_equal(json_string_value(json_object_get(d, "cellId")), "cell-1");
	assert_null(json_object_get(d, "message"));
	assert_string_equal(json_string_value(json_object_get(ev, "sequence")), "2");
	json_decref(ev);
	assert_null(fgets(line, sizeof line, f));
	fclose(f);
	unlink(path);
}

static int setup(void **state) { return sodium_init() < 0 ? -1 : 0; }

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_event_text),
		cmocka_unit_test(test_emit_with_bad_text_and_without_data),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
