/* cellctl: the operator's tool (SPEC §1, §9): validate a document, verify an
 * event log, make a signing key, show an event log for people.
 *
 * Every command has --help (stdout, exit 0); "-" is standard input wherever a
 * file is read. Exit status (SPEC §11): 0 all is well; 1 the check found
 * problems (validate, verify: one line per problem on stdout); 2 usage or I/O
 * error (a file that cannot be read, a malformed keys file), on stderr. */
#include <errno.h>
#include <jansson.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admission.h"
#include "cellctl.h"
#include "config.h"
#include "events/sign.h"
#include "util/b64url.h"
#include "util/canon.h"
#include "util/escape.h"
#include "util/fileio.h"
#include "util/log.h"

#define VERSION "0.5.1-c"

/* ---- shared ---- */

const char *cellctl_shown(char *buf, size_t size, const char *s, size_t len)
{
	escape_controls(buf, size, s, len);
	return buf;
}

static void print_usage_lines(FILE *f, const char *help)
{
	const char *end = strstr(help, "\n\n");
	fprintf(f, "%.*s\n", end ? (int)(end - help) : (int)strlen(help), help);
}

int cellctl_usage_error(const struct cellctl_cmd *cmd, const char *fmt, ...)
{
	char msg[512], shown[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	fprintf(stderr, "cellctl %s: %s\n", cmd->name, cellctl_shown(shown, sizeof shown, msg, strlen(msg)));
	print_usage_lines(stderr, cmd->help);
	fprintf(stderr, "(cellctl %s --help tells more)\n", cmd->name);
	return CELLCTL_ERROR;
}

int cellctl_args(const struct cellctl_cmd *cmd, int argc, char **argv, const struct cellctl_opt *opts,
		 const char **pos, size_t max_pos, size_t *npos)
{
	*npos = 0;
	bool options = true;
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		if (options && strcmp(a, "--") == 0) {
			options = false;
			continue;
		}
		if (options && a[0] == '-' && a[1] != '\0') {
			const struct cellctl_opt *o = opts;
			while (o->name && strcmp(o->name, a) != 0)
				o++;
			if (!o->name)
				return cellctl_usage_error(cmd, "unknown option %s", a);
			if (o->flag) {
				*o->flag = true;
			} else if (i + 1 == argc) {
				return cellctl_usage_error(cmd, "%s needs a value", a);
			} else {
				*o->value = argv[++i];
			}
			continue;
		}
		if (*npos == max_pos)
			return cellctl_usage_error(cmd, "unexpected operand %s", a);
		pos[(*npos)++] = a;
	}
	return CELLCTL_OK;
}

/* ---- validate ---- */

static const char validate_help[] =
	"usage: cellctl validate [--format text|json] SPEC.json|-\n"
	"\n"
	"Parse and validate an ExecutionCell document with the supervisor's own\n"
	"admission, the very checks of `cellos-supervisor --validate`, including those\n"
	"that depend on the configuration, read from this environment as the\n"
	"supervisor reads it (CELLOS_STRICT_SPEC, CELLOS_DEPLOYMENT_PROFILE,\n"
	"CELLOS_SUBPROCESS_UNSHARE, CELLOS_CELL_BACKEND, the secret broker and its\n"
	"variables, the export variables, ...): e.g. a secret the broker cannot see, an\n"
	"artifact without a target, file delivery without a mount namespace. Every\n"
	"problem is reported at once. Secret values are never read.\n"
	"\n"
	"  SPEC.json|-     the document; - reads it from standard input\n"
	"  --format text   (default) one line per problem on stdout, SPEC.json:\n"
	"                  field.path: message, or SPEC.json: valid: <summary>;\n"
	"                  warnings on stderr\n"
	"  --format json   one object on stdout, the same as the supervisor's:\n"
	"                  {\"valid\": bool, \"problems\": [{\"path\", \"message\"}],\n"
	"                   \"warnings\": [{\"path\", \"message\"}], \"summary\": {...}}\n"
	"\n"
	"Exit status: 0 valid; 1 problems found; 2 usage or I/O error (a document that\n"
	"cannot be read, e.g. a missing file).\n";

static int cmd_validate(const struct cellctl_cmd *cmd, int argc, char **argv)
{
	const char *format = "text", *pos[1];
	size_t npos;
	const struct cellctl_opt opts[] = {{"--format", &format, NULL}, {0}};
	if (cellctl_args(cmd, argc, argv, opts, pos, 1, &npos) != CELLCTL_OK)
		return CELLCTL_ERROR;
	if (npos != 1)
		return cellctl_usage_error(cmd, "no document given (a file, or - for standard input)");
	bool json = strcmp(format, "json") == 0;
	if (!json && strcmp(format, "text") != 0)
		return cellctl_usage_error(cmd, "--format: expected text or json, got '%s'", format);

	const char *path = pos[0];
	char shown[1024];
	cellctl_shown(shown, sizeof shown, path, strlen(path));
	struct admission adm;
	struct err e = {0};
	int status = CELLCTL_ERROR;
	int rc = admission_load(&adm, path, ADMIT_VALIDATE, &e);
	if (rc < 0) {
		char msg[4 * sizeof e.msg];
		fprintf(stderr, "cellctl validate: %s\n", cellctl_shown(msg, sizeof msg, e.msg, strlen(e.msg)));
	} else if (json) {
		if (admission_print_json(&adm, stdout) < 0)
			fprintf(stderr, "cellctl validate: cannot write the result\n");
		else
			status = rc ? CELLCTL_PROBLEMS : CELLCTL_OK;
	} else if (rc > 0) {
		for (size_t i = 0; i < adm.problems.n; i++) {
			char msg[8192];
			const char *p = adm.problems.items[i];
			printf("%s: %s\n", shown, cellctl_shown(msg, sizeof msg, p, strlen(p)));
		}
		status = CELLCTL_PROBLEMS;
	} else {
		const struct spec *s = &adm.spec;
		printf("%s: valid: cell %s, %s, %zu secret(s), %zu egress rule(s), ttl %llds\n", shown, s->id,
		       s->has_run ? "runs a command" : "export only", s->n_secret_refs, s->n_egress, s->ttl_seconds);
		status = CELLCTL_OK;
	}
	if (status != CELLCTL_ERROR && fflush(stdout) != 0) {
		fprintf(stderr, "cellctl validate: cannot write the result: %s\n", strerror(errno));
		status = CELLCTL_ERROR;
	}
	admission_free(&adm);
	return status;
}

/* ---- keygen ---- */

static const char keygen_help[] =
	"usage: cellctl keygen --kid KID\n"
	"\n"
	"Make an Ed25519 signing key. Line 1 on stdout is the seed for\n"
	"CELLOS_EVENT_SIGNING_KEY_BASE64 (keep it secret); line 2 is the public key as\n"
	"a JSON line for a keys file (cellctl verify --keys): {\"KID\": \"<base64url>\"}.\n"
	"\n"
	"  --kid KID   the key id, as CELLOS_EVENT_SIGNING_KID: 1-128 printable ASCII\n"
	"              characters without spaces\n"
	"\n"
	"Exit status: 0 success; 2 usage or I/O error.\n";

static int cmd_keygen(const struct cellctl_cmd *cmd, int argc, char **argv)
{
	const char *kid = NULL, *pos[1];
	size_t npos;
	const struct cellctl_opt opts[] = {{"--kid", &kid, NULL}, {0}};
	if (cellctl_args(cmd, argc, argv, opts, pos, 0, &npos) != CELLCTL_OK)
		return CELLCTL_ERROR;
	if (!kid)
		return cellctl_usage_error(cmd, "--kid KID is required");
	if (!config_is_kid(kid))
		return cellctl_usage_error(cmd, "the kid must be 1-128 printable ASCII characters without spaces (%s)",
					   kid);
	unsigned char *seed = sodium_malloc(SIGN_ED25519_SEED_BYTES);
	char *seed_b64 = sodium_malloc(B64URL_ENCODED_LEN(SIGN_ED25519_SEED_BYTES));
	unsigned char pk[SIGN_ED25519_PK_BYTES];
	char pk_b64[B64URL_ENCODED_LEN(SIGN_ED25519_PK_BYTES)];
	struct err e = {0};
	int status = CELLCTL_ERROR;
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
	status = CELLCTL_OK;
out:
	if (status)
		fprintf(stderr, "cellctl keygen: %s\n", e.msg);
	json_decref(o);
	free(line);
	sodium_free(seed); /* both zeroed before unmapping */
	sodium_free(seed_b64);
	return status;
}

/* ---- the commands ---- */

static const struct cellctl_cmd commands[] = {
	{"validate", validate_help, cmd_validate},
	{"verify", cellctl_verify_help, cellctl_verify},
	{"keygen", keygen_help, cmd_keygen},
	{"show", cellctl_show_help, cellctl_show},
	{"submit", cellctl_submit_help, cellctl_submit},
	{"watch", cellctl_watch_help, cellctl_watch},
	{"queue", cellctl_queue_help, cellctl_queue},
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

static const char intro[] =
	"cellctl: the CellOS operator's tool.\n"
	"\n"
	"  validate   check an ExecutionCell document as the supervisor would\n"
	"  verify     check an event log: signatures, every run's chain, every run ended\n"
	"  keygen     make an Ed25519 key for signed events\n"
	"  show       print an event log for people (and follow it as it grows)\n"
	"  submit     queue a cell on NATS JetStream for cellos-agent (and wait for it)\n"
	"  watch      follow the events of the cells on NATS JetStream, live\n"
	"  queue      pending and in-flight jobs per pool; queue init makes the streams\n"
	"\n"
	"Each command has its own --help (also: cellctl help COMMAND); --version prints\n"
	"the version. A file operand of - is standard input.\n"
	"The distributed commands (submit, watch, queue) reach NATS through\n"
	"CELLOS_NATS_URL (or --server URL), CELLOS_NATS_CREDS and CELLOS_NATS_TLS_CA,\n"
	"_CERT, _KEY, like the supervisor.\n"
	"Exit status: 0 success; 1 the check found problems (validate, verify, an\n"
	"invalid document for submit) or the waited-for cell failed without an exit\n"
	"status; 2 usage or I/O error (NATS unreachable too); submit --wait exits with\n"
	"the cell's status.\n";

static void print_synopsis(FILE *f)
{
	for (size_t i = 0; i < N_COMMANDS; i++) {
		/* Every help starts with its one "usage: cellctl CMD ..." line. */
		const char *h = commands[i].help + strlen("usage: ");
		fprintf(f, "%s%.*s\n", i ? "       " : "usage: ", (int)strcspn(h, "\n"), h);
	}
	fprintf(f, "       cellctl --help | --version\n");
}

/* Everything: the synopsis, the overview, then every command's own help. */
static void print_full_help(void)
{
	print_synopsis(stdout);
	printf("\n%s", intro);
	for (size_t i = 0; i < N_COMMANDS; i++)
		printf("\n---- cellctl %s\n\n%s", commands[i].name, commands[i].help);
}

static const struct cellctl_cmd *find_command(const char *name)
{
	for (size_t i = 0; i < N_COMMANDS; i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

/* --help or -h among the options (before any "--") asks for the help, whatever
 * else is there: it is never taken for a file name. */
static bool wants_help(int argc, char **argv)
{
	for (int i = 0; i < argc && strcmp(argv[i], "--") != 0; i++)
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
			return true;
	return false;
}

int main(int argc, char **argv)
{
	log_set_program("cellctl");
	if (argc < 2) {
		print_synopsis(stderr);
		return CELLCTL_ERROR;
	}
	const char *name = argv[1];
	if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 || (strcmp(name, "help") == 0 && argc == 2)) {
		print_full_help();
		return CELLCTL_OK;
	}
	if (strcmp(name, "--version") == 0) {
		puts("cellctl " VERSION);
		return CELLCTL_OK;
	}
	if (strcmp(name, "help") == 0) {
		const struct cellctl_cmd *c = find_command(argv[2]);
		if (!c || argc > 3) {
			char shown[256];
			fprintf(stderr, "cellctl help: no such command '%s'\n",
				cellctl_shown(shown, sizeof shown, argv[2], strlen(argv[2])));
			print_synopsis(stderr);
			return CELLCTL_ERROR;
		}
		fputs(c->help, stdout);
		return CELLCTL_OK;
	}
	const struct cellctl_cmd *cmd = find_command(name);
	if (!cmd) {
		char shown[256];
		fprintf(stderr, "cellctl: unknown command '%s'\n", cellctl_shown(shown, sizeof shown, name, strlen(name)));
		print_synopsis(stderr);
		return CELLCTL_ERROR;
	}
	if (wants_help(argc - 2, argv + 2)) {
		fputs(cmd->help, stdout);
		return CELLCTL_OK;
	}
	if (sodium_init() < 0) {
		fputs("cellctl: libsodium failed to initialise\n", stderr);
		return CELLCTL_ERROR;
	}
	return cmd->run(cmd, argc - 2, argv + 2);
}
