/* libcurl, loaded when the first HTTP or S3 export needs it.
 *
 * Linking libcurl pulls ~30 shared libraries (TLS, Kerberos, LDAP, ...) into every
 * supervisor start, which costs more than the whole rest of a cell (figures:
 * docs/DESIGN.md, "Measured costs behind the code"). Only cells that export over
 * HTTP pay for it this way. */
#ifndef CELLOS_CURL_DL_H
#define CELLOS_CURL_DL_H

#include <curl/curl.h>

#include "util/err.h"

struct curl_api {
	CURLcode (*global_init)(long flags);
	void (*global_cleanup)(void);
	CURL *(*easy_init)(void);
	CURLcode (*easy_setopt)(CURL *h, CURLoption opt, ...);
	CURLcode (*easy_perform)(CURL *h);
	CURLcode (*easy_getinfo)(CURL *h, CURLINFO info, ...);
	void (*easy_cleanup)(CURL *h);
	const char *(*easy_strerror)(CURLcode code);
	struct curl_slist *(*slist_append)(struct curl_slist *list, const char *s);
	void (*slist_free_all)(struct curl_slist *list);
	curl_version_info_data *(*version_info)(CURLversion stamp);
};

/* Load libcurl (once) and return its entry points, or NULL with *e set. */
const struct curl_api *curl_api_load(struct err *e);

#endif
