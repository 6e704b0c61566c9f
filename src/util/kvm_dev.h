/* Whether a KVM device is usable by a VMM that runs as the run's own uid (the
 * qemu and firecracker backends, SPEC §6.3): a character device this process
 * opens read-write; when it is KVM's own (misc 10:232), one that answers
 * KVM_GET_API_VERSION with the stable API (12); and one whose mode lets the
 * unprivileged VMM open it too, through its "other" bits or as a member of its
 * group, which the VMM is then given as its only supplementary group.
 *
 * What this cannot tell: whether KVM runs a guest. A nested hypervisor may open
 * and answer and still fail the guest's first instruction it has to emulate
 * (docs/DESIGN.md, "KVM that cannot run the guest"). */
#ifndef CELLOS_KVM_DEV_H
#define CELLOS_KVM_DEV_H

#include <stddef.h>
#include <sys/types.h>

/* 0 and *gid (the device's group when the VMM needs it, else (gid_t)-1), or -1
 * with why (one line naming `dev`). */
int kvm_dev_check(const char *dev, gid_t *gid, char *why, size_t size);

#endif
