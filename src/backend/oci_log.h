/* What an OCI runtime logged about its failure, as one line for an event or the
 * supervisor's log, with no secret value of the cell in it. */
#ifndef CELLOS_OCI_LOG_H
#define CELLOS_OCI_LOG_H

#include <stddef.h>

#include "backend/backend.h"

/* From the runtime's log (the memfd `logfd`, -1: none): its last error, with the
 * first one when that differs (the cause; the last is often "cannot create
 * sandbox"); for plain text, the last line. "" when there is nothing to say.
 * The secret values of `c`'s environment are masked. */
void oci_log_error(const struct cell *c, int logfd, char *out, size_t size);

#endif
