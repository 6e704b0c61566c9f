/* Reading and parsing the document: size and nesting limits, duplicate keys,
 * jansson's errors made printable; the validated result or the problems. */
#include "spec/spec_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/log.h"

/* Nesting depth by a scan of the raw text, before jansson builds anything: a deep
 * document is refused at the cost of one pass over at most 1 MiB. Brackets inside
 * strings do not count; malformed input may confuse the count, but jansson rejects
 * that input anyway. */
static bool too_deep(const char *buf, size_t len)
{
	int depth = 0;
	bool in_string = false;
	for (size_t i = 0; i < len; i++) {
		char ch = buf[i];
		if (in_string) {
			if (ch == '\\')
				i++;
			else if (ch == '"')
				in_string = false;
			continue;
		}
		if (ch == '"')
			in_string = true;
		else if ((ch == '[' || ch == '{') && ++depth > SPEC_MAX_DEPTH)
			return true;
		else if (ch == ']' || ch == '}')
			depth--;
	}
	return false;
}

int spec_parse_ex(const char *buf, size_t len, bool strict, struct spec *out, struct problems *probs,
		  struct problems *warns)
{
	memset(out, 0, sizeof *out);
	if (len > SPEC_MAX_BYTES) {
		problems_add(probs, "document: larger than 1 MiB");
		return -1;
	}
	if (too_deep(buf, len)) {
		problems_add(probs, "document: nested deeper than %d levels", SPEC_MAX_DEPTH);
		return -1;
	}

	/* Duplicate keys are refused: two readers of one document could otherwise
	 * disagree on its meaning. NULs are let through to be named per field. */
	json_error_t jerr;
	json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
	if (!root) {
		/* jansson quotes the offending input, which may be invalid UTF-8. */
		char text[sizeof jerr.text * 4 + 8];
		spec_show(text, sizeof text, jerr.text, true);
		problems_add(probs, "document: %s at line %d column %d", text, jerr.line, jerr.column);
		return -1;
	}

	struct spec s = {
		.root = root,
		.cpu_period_micros = 100000,
		.graceful_shutdown_seconds = 2,
	};
	struct vctx c = {.probs = probs, .warns = warns, .strict = strict};
	spec_validate_document(&c, root, &s);
	if (c.suppressed)
		problems_add(probs, "document: %zu more problems not shown", c.suppressed);
	if (c.warn_suppressed)
		problems_add(warns, "document: %zu more warnings not shown", c.warn_suppressed);
	if (c.bad) {
		spec_free(&s);
		return -1;
	}
	*out = s;
	return 0;
}

int spec_read(const char *path, char **buf, size_t *len, struct err *e)
{
	*buf = NULL;
	*len = 0;
	bool use_stdin = strcmp(path, "-") == 0;
	char shown[256];
	spec_show(shown, sizeof shown, use_stdin ? "stdin" : path, true);

	cleanup_close int own = -1;
	int fd = STDIN_FILENO;
	if (!use_stdin) {
		own = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
		if (own < 0)
			return err_sys(e, errno, "document: cannot open %s", shown);
		fd = own;
	}

	/* Read one byte past the limit: that is how an oversized document (or an
	 * endless pipe) is told apart without reading all of it. */
	char *b = malloc(SPEC_MAX_BYTES + 1);
	if (!b)
		return err_set(e, "document: out of memory");
	size_t n = 0;
	while (n <= SPEC_MAX_BYTES) {
		ssize_t r = read(fd, b + n, SPEC_MAX_BYTES + 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int errnum = errno;
			free(b);
			return err_sys(e, errnum, "document: cannot read %s", shown);
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	*buf = b;
	*len = n;
	return 0;
}

int spec_load_ex(const char *path, bool strict, struct spec *out, struct problems *probs, struct problems *warns)
{
	memset(out, 0, sizeof *out);
	cleanup_free char *buf = NULL;
	size_t len = 0;
	struct err e = {0};
	if (spec_read(path, &buf, &len, &e) < 0) {
		problems_add(probs, "%s", e.msg);
		return -1;
	}
	return spec_parse_ex(buf, len, strict, out, probs, warns);
}

/* The callers that print rather than return warnings: on stderr, before the
 * caller prints the problems, so a misplaced key comes right before the
 * "required" problem it may explain. */
static void log_warnings(struct problems *warns)
{
	for (size_t i = 0; i < warns->n; i++)
		log_warn("%s", warns->items[i]);
	problems_free(warns);
}

int spec_parse(const char *buf, size_t len, bool strict, struct spec *out, struct problems *probs)
{
	struct problems warns = {0};
	int rc = spec_parse_ex(buf, len, strict, out, probs, &warns);
	log_warnings(&warns);
	return rc;
}

int spec_load(const char *path, bool strict, struct spec *out, struct problems *probs)
{
	struct problems warns = {0};
	int rc = spec_load_ex(path, strict, out, probs, &warns);
	log_warnings(&warns);
	return rc;
}

void spec_free(struct spec *s)
{
	free(s->secret_refs);
	free(s->egress);
	free(s->argv);
	free(s->env);
	free(s->mounts);
	free(s->artifacts);
	free(s->targets);
	json_decref(s->root);
	memset(s, 0, sizeof *s);
}
