#include "backend/oci_log.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/scrub.h"

/* The secret values of the cell's environment, into `vals` (room for one per
 * secretRef); returns how many. With file delivery there are none: the runtime
 * never sees those. */
static size_t secret_values(const struct cell *c, const char **vals)
{
	size_t n = 0;
	for (size_t i = 0; i < c->spec->n_secret_refs; i++) {
		size_t klen = strlen(c->spec->secret_refs[i]);
		for (char *const *ep = c->envp; *ep; ep++)
			if (strncmp(*ep, c->spec->secret_refs[i], klen) == 0 && (*ep)[klen] == '=') {
				vals[n++] = *ep + klen + 1;
				break;
			}
	}
	return n;
}

/* The log holds JSON objects, one after another, from runsc and the processes it
 * starts, or plain text.
 *
 * Runtimes quote the spec back in some errors (runsc prints the whole process,
 * environment included): no secret value may reach an event or a log. Each
 * message is masked while it is cut to size, so a secret at the cut cannot
 * leave its first bytes behind. The joined result is not scanned again: a
 * secret that is part of the mask would match inside it. */
void oci_log_error(const struct cell *c, int logfd, char *out, size_t size)
{
	out[0] = '\0';
	if (logfd < 0)
		return;
	cleanup_free const char **secrets = calloc(c->spec->n_secret_refs + 1, sizeof *secrets);
	if (!secrets)
		return; /* nothing said rather than a secret */
	size_t n_secrets = secret_values(c, secrets);
	struct stat st;
	if (fstat(logfd, &st) < 0 || st.st_size <= 0)
		return;
	size_t len = (size_t)st.st_size > (1 << 20) ? (1 << 20) : (size_t)st.st_size;
	cleanup_free char *buf = malloc(len + 1);
	if (!buf)
		return;
	ssize_t n = pread(logfd, buf, len, (off_t)st.st_size - (off_t)len);
	if (n <= 0)
		return;
	buf[n] = '\0';
	char first[ERR_MSG_MAX / 2] = "", last[ERR_MSG_MAX / 2] = "";
	for (size_t off = 0; off < (size_t)n;) {
		while (off < (size_t)n && (buf[off] == '\n' || buf[off] == ' '))
			off++;
		if (off >= (size_t)n)
			break;
		json_error_t je;
		json_t *j = json_loadb(buf + off, (size_t)n - off, JSON_DISABLE_EOF_CHECK, &je);
		if (!j) {
			char *line = buf + off, *nl;
			while ((nl = strchr(line, '\n')) && nl[1])
				line = nl + 1;
			scrub_copy(last, sizeof last, line, strcspn(line, "\n"), secrets, n_secrets);
			break;
		}
		const char *lvl = json_string_value(json_object_get(j, "level"));
		const char *msg = json_string_value(json_object_get(j, "msg"));
		if (msg && lvl && (strcmp(lvl, "error") == 0 || strcmp(lvl, "fatal") == 0)) {
			if (!first[0])
				scrub_copy(first, sizeof first, msg, strlen(msg), secrets, n_secrets);
			scrub_copy(last, sizeof last, msg, strlen(msg), secrets, n_secrets);
		}
		json_decref(j);
		off += je.position > 0 ? (size_t)je.position : (size_t)n;
	}
	if (first[0] && strcmp(first, last) != 0 && !strstr(last, first))
		snprintf(out, size, "%s (%s)", last, first);
	else
		snprintf(out, size, "%s", last);
}
