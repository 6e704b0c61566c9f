/* Text made safe for a log line read on a terminal (SPEC §4): nothing in it can
 * end the line, start a forged one, or drive the terminal.
 *
 * Every control character is written as \xNN (lowercase hex, one per byte):
 * C0 including newline and tab (ESC -> \x1b), DEL (\x7f), and the C1 controls
 * U+0080..U+009F, which some terminals obey like ESC sequences (U+009B, CSI, ->
 * \xc2\x9b). Every byte of an ill-formed UTF-8 sequence (util/utf8.h) is written
 * the same way (0xff -> \xff), so the exact bytes stay readable. Well-formed
 * text, non-ASCII included, is copied. A backslash is not escaped: text that
 * reads "\x1b" is only text, and cannot act on the terminal. */
#ifndef CELLOS_ESCAPE_H
#define CELLOS_ESCAPE_H

#include <stddef.h>

/* Escape the `n` bytes of `in` into `out` (capacity `size` >= 1, always
 * NUL-terminated). Only whole escapes and whole characters are written: when
 * the next one does not fit, the text ends there. Returns the length written. */
size_t escape_controls(char *out, size_t size, const char *in, size_t n);

#endif
