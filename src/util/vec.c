#include "util/vec.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int vec_reserve(void *arrp, size_t n, size_t *cap, size_t elem, size_t first)
{
	if (n < *cap)
		return 0;
	if (*cap > SIZE_MAX / 2)
		return -1;
	size_t c = *cap ? *cap * 2 : first;
	if (c <= n || c > SIZE_MAX / elem)
		return -1;
	/* arrp is a pointer to some T *: read and write it as bytes. */
	void *old;
	memcpy(&old, arrp, sizeof old);
	void *p = realloc(old, c * elem);
	if (!p)
		return -1;
	memcpy(arrp, &p, sizeof p);
	*cap = c;
	return 0;
}
