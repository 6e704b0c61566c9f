#include "export/curl_dl.h"

#include <dlfcn.h>
#include <stddef.h>

/* Process-wide by nature: the library stays loaded once loaded. */
static struct curl_api api;
static int loaded;

const struct curl_api *curl_api_load(struct err *e)
{
	if (loaded)
		return &api;
	void *h = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		err_set(e, "libcurl: %s", dlerror());
		return NULL;
	}
	static const struct { const char *name; size_t off; } syms[] = {
		{"curl_global_init", offsetof(struct curl_api, global_init)},
		{"curl_global_cleanup", offsetof(struct curl_api, global_cleanup)},
		{"curl_easy_init", offsetof(struct curl_api, easy_init)},
		{"curl_easy_setopt", offsetof(struct curl_api, easy_setopt)},
		{"curl_easy_perform", offsetof(struct curl_api, easy_perform)},
		{"curl_easy_getinfo", offsetof(struct curl_api, easy_getinfo)},
		{"curl_easy_cleanup", offsetof(struct curl_api, easy_cleanup)},
		{"curl_easy_strerror", offsetof(struct curl_api, easy_strerror)},
		{"curl_slist_append", offsetof(struct curl_api, slist_append)},
		{"curl_slist_free_all", offsetof(struct curl_api, slist_free_all)},
		{"curl_version_info", offsetof(struct curl_api, version_info)},
	};
	for (size_t i = 0; i < sizeof syms / sizeof syms[0]; i++) {
		void *f = dlsym(h, syms[i].name);
		if (!f) {
			err_set(e, "libcurl: missing symbol %s", syms[i].name);
			dlclose(h);
			return NULL;
		}
		*(void **)((char *)&api + syms[i].off) = f;
	}
	loaded = 1;
	return &api;
}
