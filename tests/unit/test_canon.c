/* Unit tests for src/events/canon.c (RFC 8785 JSON Canonicalization Scheme).
 * Expected number strings were checked against JavaScript's JSON.stringify. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "util/canon.h"

/* Canonicalise v, compare with the expected bytes (which may contain anything but
 * NUL), and drop v. */
static void check(json_t *v, const char *expected)
{
	size_t len = (size_t)-1;
	char *out;

	assert_non_null(v);
	out = canon_dump(v, &len);
	assert_non_null(out);
	assert_string_equal(out, expected);
	assert_int_equal(len, strlen(expected));
	free(out);
	json_decref(v);
}

static json_t *parse(const char *text)
{
	json_error_t err;
	json_t *v = json_loads(text, JSON_DECODE_ANY, &err);

	if (!v)
		fail_msg("bad test JSON: %s", err.text);
	return v;
}

static double from_bits(uint64_t bits)
{
	double d;

	memcpy(&d, &bits, sizeof(d));
	return d;
}

/* RFC 8785 §3.2.3: keys compared as UTF-16 code units, so the emoji (surrogate pair
 * D83D DE00) sorts before U+FB33 even though its UTF-8 bytes are larger. */
static void test_rfc_sorting(void **state)
{
	check(parse("{\"\\u20ac\": \"Euro Sign\", \"\\r\": \"Carriage Return\","
		    " \"\\ufb33\": \"Hebrew Letter Dalet With Dagesh\", \"1\": \"One\","
		    " \"\\ud83d\\ude00\": \"Emoji: Grinning Face\", \"\\u0080\": \"Control\","
		    " \"\\u00f6\": \"Latin Small Letter O With Diaeresis\"}"),
	      "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\xc2\x80\":\"Control\","
	      "\"\xc3\xb6\":\"Latin Small Letter O With Diaeresis\","
	      "\"\xe2\x82\xac\":\"Euro Sign\","
	      "\"\xf0\x9f\x98\x80\":\"Emoji: Grinning Face\","
	      "\"\xef\xac\xb3\":\"Hebrew Letter Dalet With Dagesh\"}");
}

/* RFC 8785 §3.2.2 input/output example. */
static void test_rfc_example(void **state)
{
	check(parse("{\n  \"numbers\": [333333333.33333329, 1E30, 4.50, 2e-3, "
		    "0.000000000000000000000000001],\n"
		    "  \"string\": \"\\u20ac$\\u000F\\u000aA'\\u0042\\u0022\\u005c\\\\\\\"\\/\",\n"
		    "  \"literals\": [null, true, false]\n}"),
	      "{\"literals\":[null,true,false],"
	      "\"numbers\":[333333333.3333333,1e+30,4.5,0.002,1e-27],"
	      "\"string\":\"\xe2\x82\xac$\\u000f\\nA'B\\\"\\\\\\\\\\\"/\"}");
}

/* The UTF-8 / UTF-16 order disagreement at the BMP private-use / supplementary
 * boundary, in both argument orders, plus prefixes and case. */
static void test_sort_edges(void **state)
{
	json_t *o = json_object();

	json_object_set_new(o, "\xef\xbf\xbf", json_integer(1));	  /* U+FFFF */
	json_object_set_new(o, "\xee\x80\x80", json_integer(2));	  /* U+E000 */
	json_object_set_new(o, "\xf0\x90\x80\x80", json_integer(3)); /* U+10000 */
	json_object_set_new(o, "\xf4\x8f\xbf\xbf", json_integer(4)); /* U+10FFFF */
	json_object_set_new(o, "\xed\x9f\xbf", json_integer(5));	  /* U+D7FF */
	json_object_set_new(o, "ab", json_integer(6));
	json_object_set_new(o, "a", json_integer(7));
	json_object_set_new(o, "B", json_integer(8));
	json_object_set_new(o, "", json_integer(9));
	check(o, "{\"\":9,\"B\":8,\"a\":7,\"ab\":6,"
		 "\"\xed\x9f\xbf\":5,\"\xf0\x90\x80\x80\":3,\"\xf4\x8f\xbf\xbf\":4,"
		 "\"\xee\x80\x80\":2,\"\xef\xbf\xbf\":1}");

	/* Same character class on both sides, differing in a continuation byte. */
	o = json_object();
	json_object_set_new(o, "x\xf0\x9f\x98\x81", json_true());
	json_object_set_new(o, "x\xf0\x9f\x98\x80", json_false());
	json_object_set_new(o, "x\xef\xac\xb3", json_null());
	check(o, "{\"x\xf0\x9f\x98\x80\":false,\"x\xf0\x9f\x98\x81\":true,"
		 "\"x\xef\xac\xb3\":null}");
}

/* Keys may hold NUL since jansson 2.14; order and output must use the full key. */
static void test_key_with_nul(void **state)
{
	json_t *o = json_object();

	json_object_setn_new(o, "a\0b", 3, json_integer(1));
	json_object_setn_new(o, "a", 1, json_integer(2));
	json_object_setn_new(o, "a\0", 2, json_integer(3));
	check(o, "{\"a\":2,\"a\\u0000\":3,\"a\\u0000b\":1}");
}

static void test_string_escaping(void **state)
{
	char in[32];

	/* Every C0 control: short forms where ES has them, lowercase \u00xx else. */
	for (int i = 0; i < 32; i++)
		in[i] = (char)i;
	check(json_stringn(in, sizeof(in)),
	      "\"\\u0000\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007"
	      "\\b\\t\\n\\u000b\\f\\r\\u000e\\u000f"
	      "\\u0010\\u0011\\u0012\\u0013\\u0014\\u0015\\u0016\\u0017"
	      "\\u0018\\u0019\\u001a\\u001b\\u001c\\u001d\\u001e\\u001f\"");

	/* Quote and backslash escaped; '/', DEL, U+2028/2029 and non-ASCII raw. */
	check(json_string("q\"b\\s/d\x7f" "\xe2\x80\xa8\xe2\x80\xa9\xc3\xa9\xf0\x9f\x98\x80"),
	      "\"q\\\"b\\\\s/d\x7f" "\xe2\x80\xa8\xe2\x80\xa9\xc3\xa9\xf0\x9f\x98\x80\"");

	check(json_string(""), "\"\"");
	check(json_string("plain"), "\"plain\"");
}

/* NUL inside a string value must not truncate it. */
static void test_string_with_nul(void **state)
{
	check(json_stringn("a\0b", 3), "\"a\\u0000b\"");
	check(json_stringn("\0", 1), "\"\\u0000\"");
}

static void test_integers(void **state)
{
	check(json_integer(0), "0");
	check(json_integer(-1), "-1");
	check(json_integer(42), "42");
	check(json_integer(-9007199254740993LL), "-9007199254740993");
	check(json_integer(LLONG_MAX), "9223372036854775807");
	check(json_integer(LLONG_MIN), "-9223372036854775808");
}

static void test_reals(void **state)
{
	static const struct {
		double v;
		const char *s;
	} cases[] = {
		{ 1e21, "1e+21" },
		{ 1e20, "100000000000000000000" },
		{ 123e18, "123000000000000000000" },
		{ 1e-7, "1e-7" },
		{ -1e-7, "-1e-7" },
		{ 1.5e-7, "1.5e-7" },
		{ 0.000001, "0.000001" },
		{ 0.0000015, "0.0000015" },
		{ 333333333.33333329, "333333333.3333333" },
		{ -0.0, "0" },
		{ 0.0, "0" },
		{ 4.50, "4.5" },
		{ -0.5, "-0.5" },
		{ 2e-3, "0.002" },
		{ 0.1 + 0.2, "0.30000000000000004" },
		{ 1e23, "1e+23" },
		{ 1e30, "1e+30" },
		{ 1e-27, "1e-27" },
		{ 56.0, "56" },
		{ -123456789.0, "-123456789" },
		{ 9007199254740991.0, "9007199254740991" },
		{ 9007199254740992.0, "9007199254740992" },
		{ 1152921504606846976.0, "1152921504606847000" }, /* 2^60 */
		{ 5e-324, "5e-324" },
		{ 2.2250738585072014e-308, "2.2250738585072014e-308" },
		{ 1.7976931348623157e+308, "1.7976931348623157e+308" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		check(json_real(cases[i].v), cases[i].s);
}

/* RFC 8785 Appendix B: IEEE 754 bit patterns and their expected serialisations. */
static void test_rfc_appendix_b(void **state)
{
	static const struct {
		uint64_t bits;
		const char *s;
	} cases[] = {
		{ 0x0000000000000000, "0" },
		{ 0x8000000000000000, "0" },
		{ 0x0000000000000001, "5e-324" },
		{ 0x8000000000000001, "-5e-324" },
		{ 0x7fefffffffffffff, "1.7976931348623157e+308" },
		{ 0xffefffffffffffff, "-1.7976931348623157e+308" },
		{ 0x4340000000000000, "9007199254740992" },
		{ 0xc340000000000000, "-9007199254740992" },
		{ 0x4430000000000000, "295147905179352830000" },
		{ 0x44b52d02c7e14af5, "9.999999999999997e+22" },
		{ 0x44b52d02c7e14af6, "1e+23" },
		{ 0x44b52d02c7e14af7, "1.0000000000000001e+23" },
		{ 0x444b1ae4d6e2ef4e, "999999999999999700000" },
		{ 0x444b1ae4d6e2ef4f, "999999999999999900000" },
		{ 0x444b1ae4d6e2ef50, "1e+21" },
		{ 0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7" },
		{ 0x3eb0c6f7a0b5ed8d, "0.000001" },
		{ 0x41b3de4355555553, "333333333.3333332" },
		{ 0x41b3de4355555554, "333333333.33333325" },
		{ 0x41b3de4355555555, "333333333.3333333" },
		{ 0x41b3de4355555556, "333333333.3333334" },
		{ 0x41b3de4355555557, "333333333.33333343" },
		{ 0xbecbf647612f3696, "-0.0000033333333333333333" },
		{ 0x43143ff3c1cb0959, "1424953923781206.2" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		check(json_real(from_bits(cases[i].bits)), cases[i].s);
}

/* Powers of two have a narrower rounding gap below than above, so the closest
 * 16-digit decimal may not read back while the next one up does; ES still wants
 * 16 digits, not the 17 a plain "shortest precision" search would give. */
static void test_power_of_two_shortest(void **state)
{
	check(json_real(from_bits(0x0060000000000000) /* 2^-1017 */), "7.120236347223045e-307");
	check(json_real(from_bits(0x0100000000000000) /* 2^-1007 */), "7.291122019556398e-304");
	check(json_real(from_bits(0x0420000000000000) /* 2^-957 */), "8.209073602596753e-289");
	check(json_real(from_bits(0x93e0000000000000) /* -2^-705 */), "-5.940911144672375e-213");
	check(json_real(from_bits(0x4630000000000000) /* 2^100 */), "1.2676506002282294e+30");
	check(json_real(from_bits(0x0010000000000000) /* 2^-1022 */), "2.2250738585072014e-308");
}

static void test_literals(void **state)
{
	check(json_true(), "true");
	check(json_false(), "false");
	check(json_null(), "null");
}

static void test_nested(void **state)
{
	check(json_object(), "{}");
	check(json_array(), "[]");
	check(parse("{ \"b\" : [ 1 , { \"z\" : {}, \"y\" : [] } , \"s\" ],"
		    "  \"a\" : { \"d\" : { \"f\" : 1.0, \"e\" : null } , \"c\" : [ [ ] , [ true ] ] } }"),
	      "{\"a\":{\"c\":[[],[true]],\"d\":{\"e\":null,\"f\":1}},"
	      "\"b\":[1,{\"y\":[],\"z\":{}},\"s\"]}");
	/* Array order is preserved, never sorted. */
	check(parse("[3, \"b\", 1, \"a\"]"), "[3,\"b\",1,\"a\"]");
}

/* A large object forces the buffer to grow many times and qsort to do real work. */
static void test_large_object(void **state)
{
	json_t *o = json_object();
	char key[16];

	for (int i = 999; i >= 0; i--) {
		snprintf(key, sizeof(key), "k%03d", i);
		json_object_set_new(o, key, json_integer(i));
	}
	size_t len;
	char *out = canon_dump(o, &len);
	assert_non_null(out);
	assert_int_equal(len, strlen(out));
	/* braces, 1000 x "kNNN":, value digits, 999 commas */
	assert_int_equal(len, 2 + 1000 * 7 + (10 * 1 + 90 * 2 + 900 * 3) + 999);
	assert_memory_equal(out, "{\"k000\":0,\"k001\":1,", 19);
	assert_non_null(strstr(out, ",\"k998\":998,\"k999\":999}"));
	free(out);
	json_decref(o);
}

static void test_len_optional(void **state)
{
	json_t *v = json_integer(7);
	char *out = canon_dump(v, NULL);

	assert_string_equal(out, "7");
	free(out);
	json_decref(v);
}

/* Failures: no value (json_real refuses NaN/Inf, so this is how NaN shows up), and
 * nesting beyond jansson's own parser limit, which is also what a self-containing
 * value would run into. */
static void test_invalid(void **state)
{
	size_t len = 12345;

	assert_null(json_real(from_bits(0x7ff8000000000000))); /* NaN */
	assert_null(json_real(from_bits(0x7ff0000000000000))); /* +Inf */
	assert_null(canon_dump(NULL, &len));
	assert_int_equal(len, 12345);

	json_t *root = json_array(), *cur = root;
	for (int i = 0; i < 3000; i++) {
		json_t *next = json_array();
		json_array_append_new(cur, next);
		cur = next;
	}
	assert_null(canon_dump(root, &len));
	json_decref(root);

	/* Moderate depth still works. */
	root = json_array();
	cur = root;
	for (int i = 0; i < 99; i++) {
		json_t *next = json_array();
		json_array_append_new(cur, next);
		cur = next;
	}
	char *out = canon_dump(root, &len);
	assert_non_null(out);
	assert_int_equal(len, 200);
	assert_true(out[0] == '[' && out[99] == '[' && out[100] == ']' && out[199] == ']');
	free(out);
	json_decref(root);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc_sorting),
		cmocka_unit_test(test_rfc_example),
		cmocka_unit_test(test_sort_edges),
		cmocka_unit_test(test_key_with_nul),
		cmocka_unit_test(test_string_escaping),
		cmocka_unit_test(test_string_with_nul),
		cmocka_unit_test(test_integers),
		cmocka_unit_test(test_reals),
		cmocka_unit_test(test_rfc_appendix_b),
		cmocka_unit_test(test_power_of_two_shortest),
		cmocka_unit_test(test_literals),
		cmocka_unit_test(test_nested),
		cmocka_unit_test(test_large_object),
		cmocka_unit_test(test_len_optional),
		cmocka_unit_test(test_invalid),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
