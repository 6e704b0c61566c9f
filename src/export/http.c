/* HTTP PUT export with libcurl (SPEC §10), and the PUT the S3 sink shares.
 *
 * One request per attempt; at most HTTP_ATTEMPTS attempts, with back-off, for
 * connection errors, timeouts and 5xx answers; a 4xx (or any other non-2xx) is
 * final. Each attempt is bounded (CELLOS_EXPORT_HTTP_TIMEOUT_MS, connect
 * HTTP_CONNECT_MS) and all of them by the cell's TTL; a SIGTERM/SIGINT aborts a
 * transfer within a progress tick.
 *
 * Credentials: the URL (userinfo, a presigned query) and the bearer token go to
 * libcurl and nowhere else; messages use the shown form of the URL and
 * curl_easy_strerror(), never the error buffer (which can quote the URL).
 * Redirects are not followed (the token must not travel to another host), and
 * proxies from the environment are not used (a proxy would see presigned URLs;
 * and the configuration is read in config.c only).
 *
 * libcurl is whatever the host has: every option is checked, and a library that
 * refuses one (too old, built without it) makes the export fail naming it,
 * rather than send the artifact without it. */
#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "export/curl_dl.h"
#include "export/export.h"
#include "util/ids.h"
#include "util/log.h"

#define HTTP_ATTEMPTS 4
#define HTTP_BACKOFF_MS 250      /* doubled after each failed attempt */
#define HTTP_CONNECT_MS 10000
/* CURLOPT_PROTOCOLS_STR exists from libcurl 7.85.0. An older library rejects it
 * (SETOPT catches that); the version check also catches one that would take
 * it and ignore it. */
#define PROTOCOLS_STR_SINCE 0x075500

struct xfer {
	const struct export_item *it;
	struct export_receipt *rc;
	bool read_failed;
	const char *stopped;     /* why the transfer was aborted, if we did */
};

static size_t on_read(char *buf, size_t size, size_t nitems, void *arg)
{
	struct xfer *x = arg;
	ssize_t n = export_stream_read(x->it->src, buf, size * nitems);
	if (n < 0) {
		x->read_failed = true;
		return CURL_READFUNC_ABORT;
	}
	return (size_t)n;
}

static size_t on_body(char *buf, size_t size, size_t nmemb, void *arg)
{
	return size * nmemb; /* the answer's body is not needed */
}

static size_t on_header(char *buf, size_t size, size_t nitems, void *arg)
{
	struct xfer *x = arg;
	size_t n = size * nitems;
	if (n > 5 && strncasecmp(buf, "etag:", 5) == 0) {
		const char *v = buf + 5;
		size_t vl = n - 5;
		while (vl && (*v == ' ' || *v == '\t'))
			v++, vl--;
		while (vl && isspace((unsigned char)v[vl - 1]))
			vl--;
		/* Printable ASCII only: it goes into an event. */
		size_t k = 0;
		for (size_t i = 0; i < vl && k + 1 < sizeof x->rc->etag; i++)
			if (v[i] >= ' ' && v[i] < 0x7f)
				x->rc->etag[k++] = v[i];
		x->rc->etag[k] = '\0';
	}
	return n;
}

static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
	struct xfer *x = arg;
	if (x->it->stop && (x->stopped = x->it->stop(x->it->stop_arg)))
		return 1;
	return 0;
}

static bool retriable(CURLcode c)
{
	switch (c) {
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
	case CURLE_SSL_CONNECT_ERROR:
		return true;
	default:
		return false;
	}
}

/* Sleep `ms`, cut short (false) by a stop request. */
static bool backoff(const struct export_item *it, int64_t ms, const char **why)
{
	int64_t end = mono_ms() + ms;
	for (int64_t now = mono_ms(); now < end; now = mono_ms()) {
		if (it->stop && (*why = it->stop(it->stop_arg)))
			return false;
		poll(NULL, 0, end - now > 50 ? 50 : (int)(end - now));
	}
	return true;
}

/* Options go through SETOPT, which checks each: the first refusal is kept and
 * no later option is set. */
struct setopts {
	const struct curl_api *cu;
	CURL *c;
	const char *failed;      /* name of the first option refused, or NULL */
	const char *why;         /* and why */
};

static void setopt_checked(struct setopts *s, const char *name, CURLcode code)
{
	if (code != CURLE_OK && !s->failed) {
		s->failed = name;
		s->why = s->cu->easy_strerror(code);
	}
}

#define SETOPT(s, opt, val) setopt_checked(&(s), #opt, (s).failed ? CURLE_OK : (s).cu->easy_setopt((s).c, opt, (val)))

/* Non-zero (with *e set) when an option was refused. */
static int options_refused(const struct setopts *s, const char *shown, struct err *e)
{
	if (!s->failed)
		return 0;
	const curl_version_info_data *v = s->cu->version_info(CURLVERSION_NOW);
	return err_set(e, "PUT %s: libcurl %s refused %s (%s); not exporting without it", shown,
		       v && v->version ? v->version : "(unknown version)", s->failed, s->why);
}

/* Our copies of the header lines hold the token: wiped before they are freed. */
static void free_headers(struct curl_slist *h)
{
	const struct curl_api *cu = curl_api_load(NULL); /* loaded by export_run */
	for (struct curl_slist *p = h; p; p = p->next)
		sodium_memzero(p->data, strlen(p->data));
	cu->slist_free_all(h);
}

static struct curl_slist *headers(const char *bearer)
{
	const struct curl_api *cu = curl_api_load(NULL);
	struct curl_slist *h = NULL, *t;
	/* No "Expect: 100-continue" round trip before the body. */
	if (!(t = cu->slist_append(h, "Expect:")))
		return NULL;
	h = t;
	if (!(t = cu->slist_append(h, "Content-Type: application/octet-stream")))
		goto fail;
	h = t;
	if (bearer) {
		size_t n = strlen("Authorization: Bearer ") + strlen(bearer) + 1;
		char *line = sodium_malloc(n);
		if (!line)
			goto fail;
		snprintf(line, n, "Authorization: Bearer %s", bearer);
		t = cu->slist_append(h, line);
		sodium_free(line);
		if (!t)
			goto fail;
		h = t;
	}
	return h;
fail:
	free_headers(h);
	return NULL;
}

int export_http_put(const struct export_item *it, const char *url, const char *bearer, const char *shown,
		    struct export_receipt *rc, struct err *e)
{
	const struct curl_api *cu = curl_api_load(e);
	if (!cu)
		return -1;
	CURL *c = cu->easy_init();
	struct curl_slist *h = headers(bearer);
	if (!c || !h) {
		cu->easy_cleanup(c);
		free_headers(h);
		return err_set(e, "PUT %s: cannot set up libcurl (out of memory)", shown);
	}
	int rcode = -1;
	struct xfer x = {.it = it, .rc = rc};
	struct setopts so = {.cu = cu, .c = c};
	SETOPT(so, CURLOPT_URL, url);
	SETOPT(so, CURLOPT_UPLOAD, 1L);
	SETOPT(so, CURLOPT_INFILESIZE_LARGE, (curl_off_t)it->src->size);
	SETOPT(so, CURLOPT_READFUNCTION, on_read);
	SETOPT(so, CURLOPT_READDATA, &x);
	SETOPT(so, CURLOPT_WRITEFUNCTION, on_body);
	SETOPT(so, CURLOPT_HEADERFUNCTION, on_header);
	SETOPT(so, CURLOPT_HEADERDATA, &x);
	SETOPT(so, CURLOPT_XFERINFOFUNCTION, on_progress);
	SETOPT(so, CURLOPT_XFERINFODATA, &x);
	SETOPT(so, CURLOPT_NOPROGRESS, 0L);
	SETOPT(so, CURLOPT_HTTPHEADER, h);
	SETOPT(so, CURLOPT_PROTOCOLS_STR, "http,https");
	SETOPT(so, CURLOPT_FOLLOWLOCATION, 0L);
	SETOPT(so, CURLOPT_PROXY, "");
	SETOPT(so, CURLOPT_NOSIGNAL, 1L);
	SETOPT(so, CURLOPT_USERAGENT, "cellos-supervisor");
	const curl_version_info_data *v = cu->version_info(CURLVERSION_NOW);
	if (!so.failed && (!v || v->version_num < PROTOCOLS_STR_SINCE)) {
		so.failed = "CURLOPT_PROTOCOLS_STR";
		so.why = "it needs libcurl 7.85.0 or later";
	}
	if (options_refused(&so, shown, e))
		goto out;

	const char *why = NULL;
	char last[300] = "";
	for (int attempt = 1; attempt <= HTTP_ATTEMPTS; attempt++) {
		rc->attempts = attempt;
		rc->etag[0] = '\0';
		rc->http_status = 0;
		if (it->stop && (why = it->stop(it->stop_arg)))
			break;
		int64_t left = it->deadline_ms - mono_ms();
		if (left <= 0) {
			why = "ttl_exceeded";
			break;
		}
		long long t = it->cfg->export_http_timeout_ms < left ? it->cfg->export_http_timeout_ms : left;
		SETOPT(so, CURLOPT_TIMEOUT_MS, (long)t);
		SETOPT(so, CURLOPT_CONNECTTIMEOUT_MS, (long)(t < HTTP_CONNECT_MS ? t : HTTP_CONNECT_MS));
		if (options_refused(&so, shown, e))
			goto out;
		export_stream_reset(it->src);
		x.read_failed = false;
		x.stopped = NULL;

		CURLcode cc = cu->easy_perform(c);
		bool again;
		if (cc == CURLE_OK) {
			cu->easy_getinfo(c, CURLINFO_RESPONSE_CODE, &rc->http_status);
			if (rc->http_status >= 200 && rc->http_status < 300) {
				if (export_stream_finish(it->src, rc->sha256) < 0) {
					err_set(e, "PUT %s: %s", shown, it->src->error);
					goto out;
				}
				rc->bytes = it->src->off;
				rcode = 0;
				goto out;
			}
			snprintf(last, sizeof last, "HTTP %ld%s", rc->http_status,
				 rc->http_status >= 300 && rc->http_status < 400 ? " (redirects are not followed)" : "");
			again = rc->http_status >= 500;
		} else if (x.read_failed) {
			err_set(e, "PUT %s: %s", shown, it->src->error);
			goto out;
		} else if (x.stopped) {
			why = x.stopped;
			break;
		} else {
			snprintf(last, sizeof last, "%s", cu->easy_strerror(cc));
			again = retriable(cc);
		}
		if (!again || attempt == HTTP_ATTEMPTS)
			break;
		int64_t wait = (int64_t)HTTP_BACKOFF_MS << (attempt - 1);
		log_warn("export %s: PUT %s attempt %d of %d failed (%s); retrying in %lld ms", it->name, shown, attempt,
			 HTTP_ATTEMPTS, last, (long long)wait);
		if (!backoff(it, wait, &why))
			break;
	}
	if (why)
		err_set(e, "PUT %s: interrupted (%s)%s%s", shown, why, last[0] ? " after " : "", last);
	else
		err_set(e, "PUT %s: %s (%d attempt%s)", shown, last, rc->attempts, rc->attempts == 1 ? "" : "s");
out:
	cu->easy_cleanup(c);
	free_headers(h);
	return rcode;
}

static int http_put(const struct export_item *it, struct export_receipt *rc, struct err *e)
{
	cleanup_free char *url = export_url_for(it->url, it->cell_id, it->name);
	if (!url)
		return err_set(e, "out of memory");
	export_url_shown(url, rc->destination, sizeof rc->destination);
	return export_http_put(it, url, it->cfg->export_bearer, rc->destination, rc, e);
}

const struct export_sink export_http = {.kind = "Http", .put = http_put};
