/* Growable arrays: an element pointer, a count and a capacity kept by the
 * caller, grown by doubling. */
#ifndef CELLOS_VEC_H
#define CELLOS_VEC_H

#include <stddef.h>

/* Room for one more element in the array *arrp points to (`n` in use of
 * `*cap`, `elem` bytes each): doubled when full, `first` elements the first
 * time. 0, or -1 when out of memory (the array is then unchanged). */
int vec_reserve(void *arrp, size_t n, size_t *cap, size_t elem, size_t first);

#endif
