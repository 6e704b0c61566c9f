/* The OCI runtime binary as a tool: its short commands (kill, delete, --version,
 * a trial sandbox) run to completion with a bound, and facts about the binary
 * that cost such a command to learn, remembered for as long as it is the same
 * file. */
#ifndef CELLOS_OCI_TOOL_H
#define CELLOS_OCI_TOOL_H

#include <stdbool.h>
#include <stddef.h>

/* Bound of the runtime's own commands (kill, delete, probes). */
#define OCI_TOOL_TIMEOUT_MS 5000
/* The environment a runtime, its commands and its hooks get. */
#define OCI_TOOL_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* Run `path args...` (no shell) with a bound (then SIGKILL); its stdout+stderr
 * into `msg` (whole, unless `size` is 0) and its exit status (128+N for a signal,
 * -1 when it could not run or its status could not be collected). `mntns` >= 0:
 * in that mount namespace. The environment is `env` (NULL-terminated), or
 * OCI_TOOL_PATH alone when NULL. */
int oci_tool_run_in(int mntns, const char *path, const char *const *args, const char *const *env, int timeout_ms,
		    char *msg, size_t size);
/* The same in our mount namespace, `msg` cut to its last non-empty line. */
int oci_tool_run(const char *path, const char *const *args, const char *const *env, int timeout_ms, char *msg,
		 size_t size);
/* Cut `msg` to its last non-empty line (for one-line messages). */
void oci_tool_last_line(char *msg);

/* A fact about a runtime binary that costs a process (or a sandbox boot) to learn,
 * remembered in the file `cache` for as long as the binary is the same file
 * (device, inode, size, mtime): one stat per cell instead. get: false when there
 * is no answer for this binary. */
bool oci_tool_cache_get(const char *cache, const char *binary, char *value, size_t size);
void oci_tool_cache_put(const char *cache, const char *binary, const char *value);

#endif
