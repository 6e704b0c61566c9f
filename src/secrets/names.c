/* The brokers' variable names (SPEC §5): CELLOS_SECRET_<KEY> for the env broker,
 * CELLOS_SECRET_FILE_<KEY> for the file broker. The rest of the configuration
 * is read once by config.c; these variables are named by the document, so each
 * broker looks up the ones its cell asks for, when it asks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "secrets/broker.h"

extern char **environ;

void secret_env_var(const char *ref, char *buf, size_t size)
{
	char key[160];
	spec_secret_key(ref, key, sizeof key);
	snprintf(buf, size, "CELLOS_SECRET_%s", key);
}

char *secret_env_value(const char *ref)
{
	char name[176];
	secret_env_var(ref, name, sizeof name);
	size_t n = strlen(name);
	/* The live environ entry, so that the broker can wipe the value in place. */
	for (char **ep = environ; *ep; ep++)
		if (strncmp(*ep, name, n) == 0 && (*ep)[n] == '=')
			return *ep + n + 1;
	return NULL;
}

void secret_file_var(const char *ref, char *buf, size_t size)
{
	char key[160];
	spec_secret_key(ref, key, sizeof key);
	snprintf(buf, size, "CELLOS_SECRET_FILE_%s", key);
}

const char *secret_file_path(const char *ref)
{
	char name[176];
	secret_file_var(ref, name, sizeof name);
	const char *v = getenv(name);
	return (v && *v) ? v : NULL; /* empty counts as unset, as in config.c */
}
