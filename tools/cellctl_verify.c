/* cellctl verify: check an event log (SPEC §9). With keys, a signed log:
 * every signature, every run's chain, every run ended. Without keys, an
 * unsigned log: the chains only, and it says so; a signed log then is an error
 * (its signatures cannot be checked, and passing it would look like they were). */
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cellctl.h"
#include "config.h"
#include "events/verify.h"
#include "util/b64url.h"

#define KEYS_MAX_BYTES (1024 * 1024)

const char cellctl_verify_help[] =
	"usage: cellctl verify [--keys KEYS.json|-] [--hmac-key-env VAR] EVENTS.jsonl|-\n"
	"\n"
	"Check an event log as the supervisor wrote it. Runs may be interleaved:\n"
	"events are grouped by data.runId. For every run: its sequence\n"
	"(no gap, duplicate or reordering), its digest chain (cellosprevdigest), and\n"
	"that it ended (lifecycle.v1.destroyed, or lifecycle.v1.failed before start).\n"
	"With --keys and/or --hmac-key-env, every line must also be a signed envelope\n"
	"whose signature verifies. Without either, the log must be unsigned: only the\n"
	"chains are checked (stderr says that signatures were not), and a signed log\n"
	"is an error: give its keys.\n"
	"\n"
	"  EVENTS.jsonl|-       the log; - reads it from standard input\n"
	"  --keys KEYS.json|-   Ed25519 public keys, {\"<kid>\": \"<base64url key>\"}, or one\n"
	"                       such object per line (as cellctl keygen prints them);\n"
	"                       - reads them from standard input (not with a log on it)\n"
	"  --hmac-key-env VAR   the variable holding the base64url HMAC-SHA256 key\n"
	"\n"
	"Output: EVENTS.jsonl:LINE: problem, one per line on stdout; a summary on stderr.\n"
	"Exit status: 0 all holds; 1 problems found; 2 usage or I/O error (a file that\n"
	"cannot be read, a malformed keys file, a signed log without keys).\n";

static char *read_keys(const char *path, size_t *len, struct err *e)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "re");
	if (!f) {
		err_sys(e, errno, "cannot open '%s'", path);
		return NULL;
	}
	char *buf = malloc(KEYS_MAX_BYTES + 1);
	size_t n = buf ? fread(buf, 1, KEYS_MAX_BYTES + 1, f) : 0;
	int bad = ferror(f);
	if (f != stdin)
		fclose(f);
	if (!buf || bad || n > KEYS_MAX_BYTES) {
		free(buf);
		err_set(e, "cannot read '%s'%s", path, n > KEYS_MAX_BYTES ? ": larger than 1 MiB" : "");
		return NULL;
	}
	buf[n] = '\0';
	*len = n;
	return buf;
}

static int load_hmac_key(struct verifier *v, const char *var, struct err *e)
{
	char *text = config_named_env(var);
	if (!text)
		return err_set(e, "--hmac-key-env: %s is not set", var);
	size_t tlen = strlen(text);
	unsigned char *key = sodium_malloc(tlen);
	if (!key)
		return err_set(e, "--hmac-key-env: cannot allocate locked memory");
	size_t n = 0;
	int rc = b64url_decode(text, tlen, true, key, tlen, &n);
	sodium_memzero(text, tlen);
	if (rc < 0)
		rc = err_set(e, "--hmac-key-env: %s is not valid base64url", var);
	else
		rc = verifier_set_hmac_key(v, key, n, e);
	sodium_free(key);
	return rc;
}

int cellctl_verify(const struct cellctl_cmd *cmd, int argc, char **argv)
{
	const char *keys_path = NULL, *hmac_var = NULL, *pos[1];
	size_t npos;
	const struct cellctl_opt opts[] = {{"--keys", &keys_path, NULL}, {"--hmac-key-env", &hmac_var, NULL}, {0}};
	if (cellctl_args(cmd, argc, argv, opts, pos, 1, &npos) != CELLCTL_OK)
		return CELLCTL_ERROR;
	if (npos != 1)
		return cellctl_usage_error(cmd, "no log given (a file, or - for standard input)");
	const char *path = pos[0];
	if (strcmp(path, "-") == 0 && keys_path && strcmp(keys_path, "-") == 0)
		return cellctl_usage_error(cmd, "the log and the keys cannot both be on standard input");

	char shown[1024];
	cellctl_shown(shown, sizeof shown, path, strlen(path));
	struct verifier v;
	struct err e = {0};
	int status = CELLCTL_ERROR;
	char *keys = NULL, *line = NULL;
	FILE *f = NULL;
	if (verifier_init(&v, &e) < 0)
		goto out;
	v.unsigned_log = !keys_path && !hmac_var;
	if (keys_path) {
		size_t klen = 0;
		if (!(keys = read_keys(keys_path, &klen, &e)) || verifier_load_keys(&v, keys, klen, &e) < 0)
			goto out;
	}
	if (hmac_var && load_hmac_key(&v, hmac_var, &e) < 0)
		goto out;
	f = strcmp(path, "-") == 0 ? stdin : fopen(path, "re");
	if (!f) {
		err_sys(&e, errno, "cannot open '%s'", path);
		goto out;
	}
	size_t cap = 0, lineno = 0;
	ssize_t n;
	while ((n = getline(&line, &cap, f)) >= 0) {
		lineno++;
		size_t len = (size_t)n;
		if (len && line[len - 1] == '\n')
			len--;
		else
			verifier_problem(&v, lineno, "the last line has no newline: a partial write?");
		if (len == 0) {
			verifier_problem(&v, lineno, "empty line");
			continue;
		}
		verifier_line(&v, lineno, line, len);
		if (v.first_signed_line) {
			err_set(&e, "%s:%zu: a signed event: give its keys (--keys KEYS.json, --hmac-key-env VAR) to "
				    "verify the log",
				shown, v.first_signed_line);
			goto out;
		}
	}
	if (ferror(f)) {
		err_sys(&e, errno, "cannot read '%s'", path);
		goto out;
	}
	verifier_finish(&v);
	for (size_t i = 0; i < v.n_problems; i++) {
		if (v.problems[i].line)
			printf("%s:%zu: %s\n", shown, v.problems[i].line, v.problems[i].msg);
		else
			printf("%s: %s\n", shown, v.problems[i].msg);
	}
	if (fflush(stdout) != 0) {
		err_sys(&e, errno, "cannot write the result");
		goto out;
	}
	fprintf(stderr, "cellctl verify: %s: %zu line(s), %zu %s event(s), %zu run(s): %s%zu problem(s)%s\n", shown,
		lineno, v.n_events, v.unsigned_log ? "unsigned" : "signed", v.n_runs, v.n_problems ? "" : "ok, ",
		v.n_problems,
		v.unsigned_log ? "; chains only, signatures not checked (no --keys or --hmac-key-env)" : "");
	status = v.n_problems ? CELLCTL_PROBLEMS : CELLCTL_OK;
out:
	if (status == CELLCTL_ERROR) {
		char msg[4 * sizeof e.msg];
		fprintf(stderr, "cellctl verify: %s\n", cellctl_shown(msg, sizeof msg, e.msg, strlen(e.msg)));
	}
	if (f && f != stdin)
		fclose(f);
	free(line);
	free(keys);
	verifier_free(&v);
	return status;
}
