/* RFC 8785 JSON Canonicalization Scheme for the JSON we emit (SPEC §9).
 *
 * Keys sorted by UTF-16 code units, no whitespace, ES6 string escaping (short forms
 * \b \t \n \f \r, other controls as lowercase \u00xx, '"' and '\\' escaped, all else
 * raw UTF-8). Numbers: integers are printed in decimal; reals with the ES6
 * Number.prototype.toString algorithm (shortest round-trip). */
#ifndef CELLOS_CANON_H
#define CELLOS_CANON_H

#include <jansson.h>
#include <stddef.h>

/* Returns a malloc'd NUL-terminated canonical serialisation of `v` (length in
 * *len if not NULL), or NULL on allocation failure / invalid input (e.g. NaN). */
char *canon_dump(const json_t *v, size_t *len);

#endif
