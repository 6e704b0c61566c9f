/* Copy-on-write pages shared with a fork, copied ahead of need.
 *
 * A warm cell's supervisor and its init (a fork of it) share every anonymous
 * page of the supervisor's until one of them writes it; that first write after
 * a job's claim is a fault and a page copy on the job's clock (and, on a
 * paravirtualised MMU, a costly TLB flush). cowcopy_now() takes those faults
 * while the warm cell waits for its job: it writes each page of the caller's
 * private writable mappings that is present, anonymous and not exclusively
 * its own, with the value it holds. A page only ever read (the kernel's
 * shared zero page) gets a page of its own too: a little memory for pages
 * that might never be written. Only for a single-threaded process: a byte
 * another thread writes meanwhile could be put back. */
#ifndef CELLOS_COWCOPY_H
#define CELLOS_COWCOPY_H

#include <stddef.h>

/* How many pages were copied (0 when /proc could not be read). */
size_t cowcopy_now(void);

#endif
