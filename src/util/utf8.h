/* UTF-8 well-formedness (Unicode 15, table 3-7) for text we did not write:
 * paths, environment values, messages of other programs.
 *
 * An ill-formed sequence is handled as its "maximal subpart" (Unicode §3.9):
 * the longest prefix of a well-formed sequence, or else one byte. That is how
 * Python, browsers and ICU decode, so a consumer that decodes the same bytes
 * with replacement gets the same text. */
#ifndef CELLOS_UTF8_H
#define CELLOS_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* The sequence at `s` (`n` >= 1 bytes available): returns its length and sets
 * *ok when it is one well-formed character; otherwise the length of the
 * ill-formed maximal subpart (>= 1) with *ok false. */
size_t utf8_next(const char *s, size_t n, bool *ok);

/* A malloc'd, NUL-terminated copy of the `n` bytes of `s` in which every
 * ill-formed maximal subpart is replaced by U+FFFD. NULL: out of memory. */
char *utf8_repair(const char *s, size_t n);

#endif
