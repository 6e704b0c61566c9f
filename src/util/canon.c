/* RFC 8785 (JCS) serialisation of jansson values. See canon.h. */
#include "util/canon.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* jansson's own decoder refuses nesting deeper than this; we use the same bound so
 * that anything we can parse we can also canonicalise, while a value that contains
 * itself (jansson does not stop you building one) fails cleanly instead of blowing
 * the stack. */
#define CANON_MAX_DEPTH 2048

struct buf {
	char *p;
	size_t len, cap;
	bool failed;
};

static bool buf_reserve(struct buf *b, size_t extra)
{
	if (b->failed)
		return false;
	/* Strict '<' always leaves one spare byte for the final NUL. */
	if (extra < b->cap - b->len)
		return true;
	size_t cap = b->cap ? b->cap : 256;
	while (cap - b->len <= extra) {
		if (cap > SIZE_MAX / 2) {
			b->failed = true;
			return false;
		}
		cap *= 2;
	}
	char *p = realloc(b->p, cap);
	if (!p) {
		b->failed = true;
		return false;
	}
	b->p = p;
	b->cap = cap;
	return true;
}

static void buf_put(struct buf *b, const char *s, size_t n)
{
	if (!buf_reserve(b, n))
		return;
	memcpy(b->p + b->len, s, n);
	b->len += n;
}

static void buf_putc(struct buf *b, char c)
{
	if (!buf_reserve(b, 1))
		return;
	b->p[b->len++] = c;
}

/* ES6 JSON.stringify QuoteJSONString, applied to UTF-8 bytes: only '"', '\\' and
 * C0 controls are escaped; everything else (DEL, non-ASCII, U+2028/2029) is copied
 * verbatim. Runs of plain bytes are copied in one go. */
static void put_string(struct buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t run = 0;

	buf_putc(b, '"');
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		buf_put(b, s + run, i - run);
		run = i + 1;
		switch (c) {
		case '"': buf_put(b, "\\\"", 2); break;
		case '\\': buf_put(b, "\\\\", 2); break;
		case '\b': buf_put(b, "\\b", 2); break;
		case '\t': buf_put(b, "\\t", 2); break;
		case '\n': buf_put(b, "\\n", 2); break;
		case '\f': buf_put(b, "\\f", 2); break;
		case '\r': buf_put(b, "\\r", 2); break;
		default: {
			char esc[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 0xf] };
			buf_put(b, esc, sizeof(esc));
		}
		}
	}
	buf_put(b, s + run, n - run);
	buf_putc(b, '"');
}

/* Decimal digits of x (> 0, finite) per ES6 Number::toString step 5: the fewest
 * digits d1..dk such that 0.d1..dk * 10^n reads back as x, and of those the closest
 * to x. Stores n, returns k (0 on a formatting surprise).
 *
 * glibc's %e rounds correctly, so the p-digit candidate it prints is the closest
 * p-digit decimal; when the rounding interval of x is symmetric, if that one does
 * not read back as x, no p-digit decimal does. The exception is a power of two,
 * whose gap to the next smaller double is half the gap to the next larger: there
 * the closest candidate may fall just below the narrow side while the next p-digit
 * decimal up still reads back as x (2^-1017 = 7.120236347223045e-307, not the
 * 17-digit 7.1202363472230444e-307), so that neighbour is tried as well. 17 digits
 * always round-trip a double, which bounds the loop. */
static int shortest_digits(double x, char digits[17], int *n)
{
	char tmp[40];
	uint64_t bits;

	/* Zero fraction bits: a normal power of two (plain bit test keeps us off libm). */
	memcpy(&bits, &x, sizeof(bits));
	bool pow2 = (bits & ((UINT64_C(1) << 52) - 1)) == 0;

	for (int k = 1; k <= 17; k++) {
		snprintf(tmp, sizeof(tmp), "%.*e", k - 1, x);
		/* "d[.ddd]e±XX", where the separator is whatever LC_NUMERIC says: keep
		 * only the digits rather than expect a '.'. */
		int got = 0;
		const char *p = tmp;
		for (; *p && *p != 'e'; p++)
			if (*p >= '0' && *p <= '9' && got < k)
				digits[got++] = *p;
		if (*p != 'e' || got != k)
			return 0;
		int e = atoi(p + 1);
		double back = strtod(tmp, NULL);
		if (back == x) {
			*n = e + 1;
			return k;
		}
		if (!pow2 || back > x)
			continue;

		/* Next k-digit decimal up, carrying; 99..9 becomes 10..0 one decade up. */
		int i = k - 1;
		while (i >= 0 && digits[i] == '9')
			digits[i--] = '0';
		if (i >= 0) {
			digits[i]++;
		} else {
			digits[0] = '1';
			e++;
		}
		/* Written as an integer mantissa so no decimal separator is involved. */
		snprintf(tmp, sizeof(tmp), "%.*se%d", k, digits, e - (k - 1));
		if (strtod(tmp, NULL) == x) {
			*n = e + 1;
			return k;
		}
	}
	return 0;
}

/* ES6 Number::toString for a finite double. */
static bool put_real(struct buf *b, double x)
{
	char tmp[64];

	if (!isfinite(x))
		return false;
	if (x == 0) {
		/* Covers -0 as well, which ES prints as "0". */
		buf_putc(b, '0');
		return true;
	}
	/* Integral values below 2^53 are exact, so their shortest digits are just the
	 * integer itself and it never reaches the exponent form (< 1e21): skip the
	 * search. */
	if (fabs(x) < 9007199254740992.0 && x == (double)(long long)x) {
		int n = snprintf(tmp, sizeof(tmp), "%lld", (long long)x);
		buf_put(b, tmp, (size_t)n);
		return true;
	}
	if (x < 0) {
		buf_putc(b, '-');
		x = -x;
	}

	char digits[17];
	int n;
	int k = shortest_digits(x, digits, &n);
	if (k == 0)
		return false;
	while (k > 1 && digits[k - 1] == '0')
		k--;

	if (k <= n && n <= 21) {
		/* Integer: digits then n-k zeros, e.g. 1e20 -> "100000000000000000000". */
		buf_put(b, digits, (size_t)k);
		for (int i = k; i < n; i++)
			buf_putc(b, '0');
	} else if (0 < n && n <= 21) {
		/* Decimal point inside the digits, e.g. "333333333.3333333". */
		buf_put(b, digits, (size_t)n);
		buf_putc(b, '.');
		buf_put(b, digits + n, (size_t)(k - n));
	} else if (-6 < n && n <= 0) {
		/* Small magnitude without exponent, e.g. "0.000001". */
		buf_put(b, "0.", 2);
		for (int i = n; i < 0; i++)
			buf_putc(b, '0');
		buf_put(b, digits, (size_t)k);
	} else {
		/* Exponent form: "d[.ddd]e+XX" / "e-XX", sign always present. */
		buf_putc(b, digits[0]);
		if (k > 1) {
			buf_putc(b, '.');
			buf_put(b, digits + 1, (size_t)(k - 1));
		}
		int e = n - 1;
		int len = snprintf(tmp, sizeof(tmp), "e%c%d", e < 0 ? '-' : '+', abs(e));
		buf_put(b, tmp, (size_t)len);
	}
	return true;
}

struct member {
	const char *key;
	size_t klen;
	json_t *value;
};

/* Order UTF-8 strings as JavaScript compares their UTF-16 code units.
 *
 * Bytewise UTF-8 order is code point order, and that already agrees with UTF-16
 * order everywhere except one place: code points >= U+10000 become surrogates
 * (0xD800-0xDFFF), so in UTF-16 they sort before U+E000-U+FFFF, whose UTF-8 lead
 * bytes are 0xEE/0xEF, below the 0xF0-0xF4 leads of supplementary characters.
 *
 * At the first differing byte both strings share the same prefix, so either both
 * bytes are continuation bytes of characters with the same lead byte (same range,
 * bytewise order is right), or both start a character. Only in the latter case,
 * when both bytes are >= 0xEE, does the order flip: lift 0xEE/0xEF above every
 * four-byte lead. Bytes 0xF5-0xFF never occur in valid UTF-8. */
static int utf16_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	size_t n = alen < blen ? alen : blen;

	for (size_t i = 0; i < n; i++) {
		unsigned ca = (unsigned char)a[i], cb = (unsigned char)b[i];
		if (ca == cb)
			continue;
		if (ca >= 0xee && cb >= 0xee) {
			if (ca <= 0xef)
				ca += 0x10;
			if (cb <= 0xef)
				cb += 0x10;
		}
		return ca < cb ? -1 : 1;
	}
	return alen < blen ? -1 : alen > blen;
}

static int member_cmp(const void *pa, const void *pb)
{
	const struct member *a = pa, *b = pb;
	return utf16_cmp(a->key, a->klen, b->key, b->klen);
}

static bool put_value(struct buf *b, const json_t *v, int depth);

static bool put_object(struct buf *b, const json_t *v, int depth)
{
	size_t count = json_object_size(v);

	if (count == 0) {
		buf_put(b, "{}", 2);
		return true;
	}
	struct member *m = malloc(count * sizeof(*m));
	if (!m) {
		b->failed = true;
		return false;
	}
	/* jansson's iterator API takes a non-const json_t although it only reads. */
	size_t i = 0;
	for (void *it = json_object_iter((json_t *)v); it && i < count;
	     it = json_object_iter_next((json_t *)v, it), i++) {
		m[i].key = json_object_iter_key(it);
		m[i].klen = json_object_iter_key_len(it);
		m[i].value = json_object_iter_value(it);
	}
	count = i;
	qsort(m, count, sizeof(*m), member_cmp);

	bool ok = true;
	buf_putc(b, '{');
	for (i = 0; i < count && ok; i++) {
		if (i)
			buf_putc(b, ',');
		put_string(b, m[i].key, m[i].klen);
		buf_putc(b, ':');
		ok = put_value(b, m[i].value, depth + 1);
	}
	buf_putc(b, '}');
	free(m);
	return ok;
}

static bool put_value(struct buf *b, const json_t *v, int depth)
{
	char tmp[32];

	if (!v || depth > CANON_MAX_DEPTH)
		return false;
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return put_object(b, v, depth);
	case JSON_ARRAY: {
		size_t n = json_array_size(v);
		buf_putc(b, '[');
		for (size_t i = 0; i < n; i++) {
			if (i)
				buf_putc(b, ',');
			if (!put_value(b, json_array_get(v, i), depth + 1))
				return false;
		}
		buf_putc(b, ']');
		return true;
	}
	case JSON_STRING:
		put_string(b, json_string_value(v), json_string_length(v));
		return true;
	case JSON_INTEGER: {
		int n = snprintf(tmp, sizeof(tmp), "%" JSON_INTEGER_FORMAT,
				 json_integer_value(v));
		buf_put(b, tmp, (size_t)n);
		return true;
	}
	case JSON_REAL:
		return put_real(b, json_real_value(v));
	case JSON_TRUE:
		buf_put(b, "true", 4);
		return true;
	case JSON_FALSE:
		buf_put(b, "false", 5);
		return true;
	case JSON_NULL:
		buf_put(b, "null", 4);
		return true;
	}
	return false;
}

char *canon_dump(const json_t *v, size_t *len)
{
	struct buf b = { 0 };

	if (!put_value(&b, v, 0) || !buf_reserve(&b, 0)) {
		free(b.p);
		return NULL;
	}
	b.p[b.len] = '\0';
	if (len)
		*len = b.len;
	return b.p;
}
