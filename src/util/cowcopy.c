/* Copy-on-write pages shared with a fork, copied ahead of need: see cowcopy.h. */
#include "util/cowcopy.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

/* Larger mappings are reservations, mostly never touched (a sanitizer's
 * shadow memory is terabytes): walking their pagemap would take far longer
 * than the faults it saves. A supervisor's own heap is a few hundred kB. */
#define MAX_MAPPING (64ul << 20)

/* /proc/PID/pagemap (Documentation/admin-guide/mm/pagemap.rst). */
#define PM_PRESENT (1ull << 63)
#define PM_FILE_OR_SHARED (1ull << 61)
#define PM_EXCLUSIVE (1ull << 56)

/* Every byte it touches is read and written back as it was, wherever it lies
 * (a sanitizer's redzones included): not for the address sanitizer to check. */
__attribute__((no_sanitize("address")))
static size_t copy_range(int pagemap, uintptr_t lo, uintptr_t hi, size_t page)
{
	size_t copied = 0;
	uint64_t ent[256];
	for (uintptr_t a = lo; a < hi;) {
		size_t n = (hi - a) / page;
		if (n > sizeof ent / sizeof ent[0])
			n = sizeof ent / sizeof ent[0];
		ssize_t got = pread(pagemap, ent, n * sizeof ent[0], (off_t)(a / page * sizeof ent[0]));
		if (got <= 0)
			break;
		n = (size_t)got / sizeof ent[0];
		for (size_t i = 0; i < n; i++)
			if ((ent[i] & PM_PRESENT) && !(ent[i] & (PM_EXCLUSIVE | PM_FILE_OR_SHARED))) {
				volatile char *p = (volatile char *)(a + i * page);
				*p = *p;
				copied++;
			}
		a += n * page;
	}
	return copied;
}

size_t cowcopy_now(void)
{
	long page = sysconf(_SC_PAGESIZE);
	int pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	FILE *maps = fopen("/proc/self/maps", "re");
	size_t copied = 0;
	char line[512];
	while (page > 0 && pagemap >= 0 && maps && fgets(line, sizeof line, maps)) {
		unsigned long lo, hi;
		char perm[5];
		if (sscanf(line, "%lx-%lx %4s", &lo, &hi, perm) == 3 && perm[0] == 'r' && perm[1] == 'w' &&
		    perm[3] == 'p' && hi - lo <= MAX_MAPPING)
			copied += copy_range(pagemap, lo, hi, (size_t)page);
	}
	if (maps)
		fclose(maps);
	if (pagemap >= 0)
		close(pagemap);
	return copied;
}
