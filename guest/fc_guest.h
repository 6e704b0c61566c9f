/* What cellos-init does differently under Firecracker (SPEC §6.3): its
 * channels are hybrid vsock (the guest connects to the host, CID 2, on ports
 * 9000 exit, 9001 stdout, 9002 stderr), and its virtio devices are announced on
 * the kernel command line (`virtio_mmio.device=4K@0xd0000000:5`), which reaches
 * a driver built as a module only when the init passes it to finit_module. */
#ifndef CELLOS_FC_GUEST_H
#define CELLOS_FC_GUEST_H

#include <stddef.h>

#define FC_GUEST_PORT_BASE 9000

/* Connected stream socket to the host's port, retried for about 2 s while the
 * vsock device comes up; -1 (errno) when it cannot be had. */
int fc_vsock_connect(unsigned port);

/* The parameters `cmdline` gives module `module` ("<module>.<param>=<value>"
 * words, with '-' and '_' the same in the name as the kernel takes them),
 * appended to `out` (which may hold parameters already) separated by spaces.
 * Returns the length of `out`; words that would not fit are left out. */
size_t fc_module_params(const char *cmdline, const char *module, char *out, size_t size);

#endif
