/* TEMPORARY placeholder (replaced by the registry branch's allocator). */
#ifndef CELLOS_RUNUID_H
#define CELLOS_RUNUID_H
#include <sys/types.h>
#include "util/err.h"
struct runuid {
	unsigned long uid;
	int fd;
	char path[512];
};
int runuid_parse_range(const char *v, unsigned long *first, unsigned long *last, struct err *e);
int runuid_alloc(unsigned long first, unsigned long last, const char *run_id, struct runuid *out, struct err *e);
void runuid_release(struct runuid *u);
#endif
