/* Export of artifacts out of the cell (SPEC §10): the export-sink port, the
 * admission check, and the export phase of the lifecycle.
 *
 *   export_admit   which target each artifact goes to, and whether a host
 *                  path may be read; a document whose artifacts have nowhere to
 *                  go, or that would read a host path it may not, is refused
 *                  before anything runs
 *   export_run     per artifact: open it as the cell sees it (the caller's
 *                  opener), stream it to its sink while counting and hashing,
 *                  and emit export.v2.completed or export.v2.failed
 *
 * URLs and the bearer token are credentials: they are given to libcurl and
 * nothing else. Events, logs and messages show a URL without its userinfo, query
 * and fragment (export_url_shown). */
#ifndef CELLOS_EXPORT_H
#define CELLOS_EXPORT_H

#include <sodium.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "events/event.h"
#include "spec/spec.h"
#include "util/err.h"

/* ---- the port ---- */

/* An artifact being read: opened by the caller's opener, read with pread from
 * offset 0 on every attempt, counted and hashed as it goes. */
struct export_stream {
	int fd;
	long long size;                /* fstat at open; at most max */
	long long off;
	crypto_hash_sha256_state h;
	char error[256];               /* why a read failed, for the message */
};

struct export_item {
	const struct config *cfg;
	const char *cell_id, *run_id;
	const char *name;              /* artifact name */
	const struct export_target *target; /* the named target, or NULL (default) */
	const char *url;               /* http, s3: the URL template (a credential) */
	struct export_stream *src;
	int64_t deadline_ms;           /* monotonic: the cell's TTL */
	/* Non-NULL (the reason) when the run must stop now (signal, TTL). */
	const char *(*stop)(void *arg);
	void *stop_arg;
};

struct export_receipt {
	char destination[4400];        /* where it went, without credentials */
	long long bytes;
	char sha256[65];
	int attempts;
	long http_status;              /* http, s3: the final status, 0 otherwise */
	char etag[200];                /* http, s3: the ETag the server returned, if any */
};

struct export_sink {
	const char *kind;              /* targetKind: LocalPath, Http, S3 */
	/* Fill rc->destination first (a failed event names it too), then send the
	 * whole stream; rc->bytes and rc->sha256 describe what was sent. */
	int (*put)(const struct export_item *it, struct export_receipt *rc, struct err *e);
};

extern const struct export_sink export_local; /* local.c: CELLOS_EXPORT_DIR */
extern const struct export_sink export_http;  /* http.c: HTTP PUT */
extern const struct export_sink export_s3;    /* s3.c: presigned S3 PUT */

/* ---- for sinks ---- */

void export_stream_reset(struct export_stream *s);
/* Up to `n` bytes at the current offset; 0 at the end. -1 when the file is
 * shorter than it was (s->error says so). */
ssize_t export_stream_read(struct export_stream *s, void *buf, size_t n);
/* After the last read: the file did not grow; the digest as lowercase hex. */
int export_stream_finish(struct export_stream *s, char hex[65]);

/* SPEC §10 URL rule: {cell_id}/{artifact_name} substituted when present; else a
 * template with a query string is used as it is; else "/<cellId>/<name>" is
 * appended. malloc'd; NULL when out of memory. */
char *export_url_for(const char *tmpl, const char *cell_id, const char *name);
/* `url` without userinfo, query and fragment: what events and logs may show. */
void export_url_shown(const char *url, char *out, size_t size);
/* s3://<bucket>/<keyPrefix>/<cellId>/<name> (the prefix's own slashes trimmed). */
void export_s3_destination(const char *bucket, const char *prefix, const char *cell_id, const char *name, char *out,
			   size_t size);

/* One PUT with bounded timeouts, retried with back-off on 5xx and connection
 * errors, never on 4xx (http.c; the S3 sink uses it too). */
int export_http_put(const struct export_item *it, const char *url, const char *bearer, const char *shown,
		    struct export_receipt *rc, struct err *e);

/* ---- admission and the phase ---- */

/* A target's variable suffix (SPEC §10): the name upper-cased, every character
 * but A-Z 0-9 turned into '_'. The URL configured for a named target
 * (s3: CELLOS_EXPORT_S3_PRESIGNED_URL__<T>, else CELLOS_EXPORT_HTTP_BASE_URL__<T>),
 * NULL when none. */
void export_target_suffix(const char *target, char *buf, size_t size);
const char *export_target_url(const struct config *cfg, bool s3, const char *target);

/* What admission needs to know of the cell's backend (the caller asks it:
 * export does not depend on the backends). */
struct export_backend_facts {
	const char *name;              /* CELLOS_CELL_BACKEND, for messages */
	bool reads_artifacts;          /* it can open a file of its cell's filesystem */
	bool sees_host_fs;             /* its cell's paths are the host's (no mount namespace) */
};

/* Every artifact has a usable target; CELL_OS_REQUIRE_S3_EXPORT holds; a host
 * path is read only under CELLOS_EXPORT_HOST_PATHS_ALLOW and never in hardened.
 * Every problem found is added to *probs; -1 when there was any. */
int export_admit(const struct config *cfg, const struct spec *spec, const struct export_backend_facts *be,
		 bool forbid_host_reads, struct problems *probs);

struct export_phase {
	const struct config *cfg;
	const struct spec *spec;
	struct event_stream *es;
	const char *started_id;        /* provenance.parent */
	/* Open `path` as the cell sees it: a regular file of at most
	 * cfg->export_max_bytes, O_RDONLY, into *fd. */
	int (*open)(void *arg, const char *path, int *fd, struct err *e);
	void *open_arg;
	const char *(*stop)(void *arg);
	void *stop_arg;
	int64_t deadline_ms;
	/* Out: the names of the artifacts that failed, comma-separated (cut to fit). */
	char failed_names[256];
};

/* Export every artifact; returns how many failed. */
size_t export_run(struct export_phase *x);

#endif
