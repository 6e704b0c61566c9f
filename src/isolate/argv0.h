/* CELLOS_RUN_ARGV0_ALLOW_PREFIXES (SPEC §3): which programs a cell may run. */
#ifndef CELLOS_ARGV0_H
#define CELLOS_ARGV0_H

#include <stdbool.h>
#include <stddef.h>

/* Lexical normalisation of an absolute path: repeated '/', "." and ".." are
 * folded ("/usr/bin/../../tmp/x" -> "/tmp/x"). Symlinks are not followed: the
 * prefixes name directories the operator trusts, read-only inside the cell.
 * Returns false for a relative path or one that does not fit. */
bool argv0_normalize(const char *path, char *out, size_t size);

/* Whether `program` (argv[0] after the PATH lookup) lies under one of the
 * NULL-terminated `prefixes` (whole components: /usr/bin allows /usr/bin/env,
 * not /usr/bin2/x). A NULL `prefixes` allows everything; a relative program
 * is never allowed by a non-NULL one. */
bool argv0_allowed(const char *program, char *const *prefixes);

#endif
