/* The name matcher of SPEC §6.4, shared by the DNS proxy and the SNI/Host check:
 * a pattern is a DNS name, matched exactly, or "*." + a name, which matches
 * every name one or more labels below it but never the name itself (the apex).
 * ASCII case is ignored and one trailing '.' on either side is the root. */
#ifndef CELLOS_HOSTMATCH_H
#define CELLOS_HOSTMATCH_H

#include <stdbool.h>

bool host_match(const char *pattern, const char *name);

#endif
