/* Whether this host can run a Firecracker cell (SPEC §6.3: "without a usable
 * /dev/kvm or binary: 125 at admission naming which"), checked by admission for
 * a run and for --validate, never by `cellctl vm-config` (which must work on any
 * machine).
 *
 * Usable /dev/kvm: a character device we can open read-write; when it is KVM's
 * own (misc 10:232) it must also answer KVM_GET_API_VERSION with the stable API
 * (12). CELLOS_FIRECRACKER_KVM_DEVICE (tests only) names another device to check
 * instead: Firecracker itself always opens /dev/kvm, so on a host without KVM
 * no cell can boot whatever the variable says (the test suite's stand-in VMM is
 * the only "VMM" that runs without it). */
#ifndef CELLOS_FC_HOST_H
#define CELLOS_FC_HOST_H

#include <limits.h>
#include <sys/types.h>

#include "config.h"
#include "util/err.h"

struct fc_host {
	char binary[PATH_MAX];   /* CELLOS_FIRECRACKER_BINARY, resolved */
	char jailer[PATH_MAX];   /* CELLOS_FIRECRACKER_JAILER_BINARY, resolved; "" without */
	gid_t kvm_gid;           /* the device's group, when the VMM needs it to open it; else (gid_t)-1 */
};

/* Every problem in one line, naming each variable or device that is missing. */
int fc_host_check(const struct config *cfg, struct fc_host *h, struct err *e);

#endif
