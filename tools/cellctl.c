/* cellctl: the operator's tool (SPEC §1, §9): validate a document, verify a signed
 * event log, make a signing key.
 *
 * Exit status: 0 all is well; 1 the document is invalid or the log does not
 * verify (one line per problem on stdout); 2 usage or operational error (a file
 * that cannot be read, a malformed keys file), on stderr. */
#include <errno.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "events/canon.h"
#include "events/sign.h"
#include "events/verify.h"
#include "spec/spec.h"
#include "util/b64url.h"
#include "util/log.h"

#define VERSION "0.5.1-c"
#define KEYS_MAX_BYTES (1024 * 1024)

static const char usage[] =
	"usage: cellctl validate SPEC.json|-\n"
	"       cellctl verify EVENTS.jsonl|- [--keys KEYS.json] [--hmac-key-env VAR]\n"
	"       cellctl keygen --kid KID\n"
	"       cellctl --help | --version\n";

static const char help[] =
	"\n"
	"validate   parse and validate an ExecutionCell document with the supervisor's own\n"
	"           checks (CELLOS_STRICT_SPEC, the deployment profile and the rest of the\n"
	"           supervisor's configuration apply); prints every problem.\n"
	"verify     check a signed event log: every signature, every run's sequence and\n"
	"           digest chain, and that every run ended. Runs may be interleaved.\n"
	"           KEYS.json: {\"<kid>\": \"<base64url Ed25519 public key>\"}, or one such\n"
	"           object per line. --hmac-key-env names a variable holding the base64url\n"
	"           HMAC key. Prints FILE:LINE: problem, one per line.\n"
	"keygen     make an Ed25519 key: line 1 is the seed for\n"
	"           CELLOS_EVENT_SIGNING_KEY_BASE64 (keep it secret), line 2 the public key\n"
	"           as a JSON line for the keys file.\n"
	"\n"
	"Exit status: 0 all is well; 1 invalid document or log; 2 usage or I/O error.\n";

static int usage_error(const char *fmt, const char *arg)
{
	fprintf(stderr, "cellctl: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\n%s", usage);
	return 2;
}

/* ---- validate ---- */

static int cmd_validate(int argc, char **argv)
{
	if (argc != 1)
		return usage_error("validate takes one document%s", "");
	const char *path = argv[0];
	struct config cfg;
	struct err e = {0};
	if (config_load(&cfg, &e) < 0) {
		printf("%s: configuration: %s\n", path, e.msg);
		config_free(&cfg);
		return 1;
	}
	struct spec spec;
	struct problems probs = {0};
	int status = 1;
	if (spec_load(path, cfg.strict_spec, &spec, &probs) < 0) {
		for (size_t i = 0; i < probs.n; i++)
			printf("%s: %s\n", path, probs.items[i]);
		problems_free(&probs);
		config_free(&cfg);
		return 1;
	}
	if (config_check_profile(&cfg, spec.has_run ? spec.argv[0] : NULL, &e) < 0) {
		printf("%s: %s\n", path, e.msg);
	} else {
		printf("%s: valid: cell %s, %s, %zu secret(s), %zu egress rule(s), ttl %llds\n", path, spec.id,
		       spec.has_run ? "runs a command" : "export only", spec.n_secret_refs, spec.n_egress,
		       spec.ttl_seconds);
		status = 0;
	}
	spec_free(&spec);
	config_free(&cfg);
	return status;
}

/* ---- verify ---- */

static char *read_file(const char *path, size_t max, size_t *len, struct err *e)
{
	FILE *f = fopen(path, "re");
	if (!f) {
		err_sys(e, errno, "cannot open '%s'", path);
		return NULL;
	}
	char *buf = malloc(max + 1);
	size_t n = buf ? fread(buf, 1, max + 1, f) : 0;
	int bad = ferror(f);
	fclose(f);
	if (!buf || bad || n > max) {
		free(buf);
		err_set(e, "cannot read '%s'%s", path, n > max ? ": larger than 1 MiB" : "");
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

static int cmd_verify(int argc, char **argv)
{
	const char *path = NULL, *keys_path = NULL, *hmac_var = NULL;
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--keys") == 0 && i + 1 < argc)
			keys_path = argv[++i];
		else if (strcmp(argv[i], "--hmac-key-env") == 0 && i + 1 < argc)
			hmac_var = argv[++i];
		else if (argv[i][0] == '-' && argv[i][1] != '\0')
			return usage_error("verify: unknown option or missing value: %s", argv[i]);
		else if (path)
			return usage_error("verify: more than one log given (%s)", argv[i]);
		else
			path = argv[i];
	}
	if (!path)
		return usage_error("verify: no log given%s", "");
	if (!keys_path && !hmac_var)
		return usage_error("verify: give --keys KEYS.json and/or --hmac-key-env VAR%s", "");

	struct verifier v;
	struct err e = {0};
	int status = 2;
	char *keys = NULL, *line = NULL;
	FILE *f = NULL;
	if (verifier_init(&v, &e) < 0)
		goto out;
	if (keys_path) {
		size_t klen = 0;
		if (!(keys = read_file(keys_path, KEYS_MAX_BYTES, &klen, &e)) || verifier_load_keys(&v, keys, klen, &e) < 0)
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
	}
	if (ferror(f)) {
		err_sys(&e, errno, "cannot read '%s'", path);
		goto out;
	}
	verifier_finish(&v);
	for (size_t i = 0; i < v.n_problems; i++) {
		if (v.problems[i].line)
			printf("%s:%zu: %s\n", path, v.problems[i].line, v.problems[i].msg);
		else
			printf("%s: %s\n", path, v.problems[i].msg);
	}
	fprintf(stderr, "cellctl verify: %s: %zu line(s), %zu signed event(s), %zu run(s): %s%zu problem(s)\n", path,
		lineno, v.n_events, v.n_runs, v.n_problems ? "" : "ok, ", v.n_problems);
	status = v.n_problems ? 1 : 0;
out:
	if (status == 2)
		fprintf(stderr, "cellctl verify: %s\n", e.msg);
	if (f && f != stdin)
		fclose(f);
	free(line);
	free(keys);
	verifier_free(&v);
	return status;
}

/* ---- keygen ---- */

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int cmd_keygen(int argc, char **argv)
{
	if (argc != 2 || strcmp(argv[0], "--kid") != 0)
		return usage_error("keygen takes --kid KID%s", "");
	const char *kid = argv[1];
	if (!config_is_kid(kid))
		return usage_error("keygen: the kid must be 1-128 printable ASCII characters without spaces (%s)", kid);
	unsigned char *seed = sodium_malloc(SIGN_ED25519_SEED_BYTES);
	char *seed_b64 = sodium_malloc(B64URL_ENCODED_LEN(SIGN_ED25519_SEED_BYTES));
	unsigned char pk[SIGN_ED25519_PK_BYTES];
	char pk_b64[B64URL_ENCODED_LEN(SIGN_ED25519_PK_BYTES)];
	struct err e = {0};
	int status = 2;
	char *line = NULL;
	json_t *o = NULL;
	if (!seed || !seed_b64) {
		err_set(&e, "cannot allocate locked memory");
		goto out;
	}
	randombytes_buf(seed, SIGN_ED25519_SEED_BYTES);
	if (sign_ed25519_public_key(seed, pk, &e) < 0)
		goto out;
	b64url_encode(seed, SIGN_ED25519_SEED_BYTES, seed_b64);
	b64url_encode(pk, sizeof pk, pk_b64);
	o = json_pack("{s:s}", kid, pk_b64);
	if (!o || !(line = canon_dump(o, NULL))) {
		err_set(&e, "out of memory");
		goto out;
	}
	/* The seed goes straight to the descriptor: through stdio it would also sit
	 * in a heap buffer nobody wipes. */
	size_t slen = strlen(seed_b64);
	seed_b64[slen] = '\n';
	if (write_all(STDOUT_FILENO, seed_b64, slen + 1) < 0 || printf("%s\n", line) < 0 || fflush(stdout) != 0) {
		err_sys(&e, errno, "cannot write the key");
		goto out;
	}
	status = 0;
out:
	if (status)
		fprintf(stderr, "cellctl keygen: %s\n", e.msg);
	json_decref(o);
	free(line);
	sodium_free(seed); /* both zeroed before unmapping */
	sodium_free(seed_b64);
	return status;
}

int main(int argc, char **argv)
{
	log_set_program("cellctl");
	if (argc < 2) {
		fputs(usage, stderr);
		return 2;
	}
	const char *cmd = argv[1];
	if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
		fputs(usage, stdout);
		fputs(help, stdout);
		return 0;
	}
	if (strcmp(cmd, "--version") == 0) {
		puts("cellctl " VERSION);
		return 0;
	}
	if (sodium_init() < 0) {
		fputs("cellctl: libsodium failed to initialise\n", stderr);
		return 2;
	}
	if (strcmp(cmd, "validate") == 0)
		return cmd_validate(argc - 2, argv + 2);
	if (strcmp(cmd, "verify") == 0)
		return cmd_verify(argc - 2, argv + 2);
	if (strcmp(cmd, "keygen") == 0)
		return cmd_keygen(argc - 2, argv + 2);
	return usage_error("unknown command '%s'", cmd);
}
