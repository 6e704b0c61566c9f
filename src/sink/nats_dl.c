#include "sink/nats_dl.h"

#include <dlfcn.h>

/* Process-wide by nature: the library stays loaded once loaded. */
static struct nats_api api;
static int loaded;

const struct nats_api *nats_api_load(struct err *e)
{
	if (loaded)
		return &api;
	void *h = dlopen("libnats.so.3.4", RTLD_NOW | RTLD_LOCAL);
	if (!h)
		h = dlopen("libnats.so", RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		err_set(e, "libnats (the NATS C client, Debian libnats3.4) cannot be loaded: %s", dlerror());
		return NULL;
	}
#define NATS_DL_LOOKUP(name)                                                                                       \
	if (!(*(void **)&api.name = dlsym(h, #name))) {                                                           \
		err_set(e, "libnats: missing symbol %s", #name);                                                  \
		dlclose(h);                                                                                        \
		return NULL;                                                                                       \
	}
	NATS_DL_FUNCTIONS(NATS_DL_LOOKUP)
#undef NATS_DL_LOOKUP
	loaded = 1;
	return &api;
}
