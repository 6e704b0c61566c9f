/* One error convention for the whole program.
 *
 * Every fallible function takes a `struct err *` as its last argument and returns
 * a negative value on failure after filling it in with err_set()/err_sys(). The
 * message is one line that names the field, variable or object concerned; callers
 * may prefix context with err_prefix(). `status` is the exit status the failure maps
 * to (SPEC §1); it defaults to 125 (supervisor failure). */
#ifndef CELLOS_ERR_H
#define CELLOS_ERR_H

#include <stdlib.h>
#include <unistd.h>

#define ERR_MSG_MAX 1024

struct err {
	int status;              /* exit status this failure maps to (default 125) */
	char msg[ERR_MSG_MAX];
};

/* Fill *e (if not NULL) and return -1. */
int err_set(struct err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Like err_set, appending ": strerror(errnum)". */
int err_sys(struct err *e, int errnum, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Prepend "prefix: " to an already-set message. Returns -1. */
int err_prefix(struct err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Cleanup helpers, in the style of crun: early returns cannot leak. */
static inline void cleanup_freep(void *p) { free(*(void **)p); }
static inline void cleanup_closep(int *fd) { if (*fd >= 0) close(*fd); }
#define cleanup_free __attribute__((cleanup(cleanup_freep)))
#define cleanup_close __attribute__((cleanup(cleanup_closep)))

#endif
