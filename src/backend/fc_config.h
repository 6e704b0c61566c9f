/* The Firecracker VM of one cell as one `--config-file` (SPEC §6.3): where the
 * cell's files go (the layout), and the JSON Firecracker v1.16 boots from.
 *
 * Pure: nothing here touches the host, so `cellctl vm-config` prints exactly
 * what a run would hand Firecracker, on any machine. The JSON has only the keys
 * of the API schema's definitions (BootSource, Drive, MachineConfiguration,
 * Vsock, NetworkInterface): Firecracker refuses unknown fields
 * (tests/blackbox/test_firecracker_config.py validates it against the schema).
 *
 * Layout. Without the jailer every file of the cell is in its directory
 * <CELLOS_FIRECRACKER_SOCKET_DIR>/<runId>/ and the config names them by that
 * absolute path. With the jailer Firecracker is chrooted into
 * <CELLOS_FIRECRACKER_CHROOT_BASE>/<exec name>/<runId>/root, the cell's files are
 * made there and the config names them relative to that root ("/vmlinux"). */
#ifndef CELLOS_FC_CONFIG_H
#define CELLOS_FC_CONFIG_H

#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "backend/vm_limits.h"
#include "spec/spec.h"
#include "util/err.h"

/* Guest-side vsock ports of the channels (SPEC §6.3): 9000 + the channel's
 * index of backend/vm_job.h; the host listens on <uds_path>_<port>. */
#define FC_PORT_EXIT 9000
#define FC_PORT_STDOUT 9001
#define FC_PORT_STDERR 9002
#define FC_PORT_ARTIFACTS 9003
/* The guest's context id: the vsock device is the VM's own, so one fixed CID
 * (the smallest Firecracker accepts) serves every cell. */
#define FC_GUEST_CID 3
#define FC_MAX_DRIVES (2 + SPEC_MOUNTS_MAX)

struct fc_drive {
	char id[16];             /* "rootfs", "mount0", ... */
	char host[PATH_MAX];     /* where we make or find it on the host */
	char vm[PATH_MAX];       /* the path in the config (relative to the chroot with the jailer) */
};

struct fc_layout {
	bool jailer;
	char dir[PATH_MAX];      /* the cell's directory on the host (the chroot root with the jailer) */
	char jail[PATH_MAX];     /* jailer: <base>/<exec name>/<runId> (removed whole at destroy); else "" */
	/* Each file: the host path, and the path the config names. */
	char kernel[PATH_MAX], kernel_vm[PATH_MAX];
	char initrd[PATH_MAX], initrd_vm[PATH_MAX];     /* the image's initramfs + the job archive */
	char config[PATH_MAX], config_vm[PATH_MAX];
	char api[PATH_MAX], api_vm[PATH_MAX];
	char vsock[PATH_MAX], vsock_vm[PATH_MAX];       /* listeners: vsock + "_<port>" */
	struct fc_drive drives[FC_MAX_DRIVES];
	size_t n_drives;
	size_t rootfs_drive;     /* index of the image's root disk, or SIZE_MAX */
};

/* What the VM is given. */
struct fc_vm {
	long long mem_mib;
	long long vcpus;
	const char *boot_args;   /* the complete kernel command line */
	const char *tap;         /* host_dev_name in the cell's netns, or NULL: no network interface */
	char mac[18];            /* guest_mac when tap */
};

/* The layout of the cell of run `run_id` (a UUID): `exec_name` is the basename
 * of the Firecracker binary (the jailer's directory is named after it), `rootfs`
 * whether the image has a root disk. -1 naming the variable when a path would
 * not fit. */
int fc_layout_plan(struct fc_layout *l, const struct config *cfg, const struct spec *spec, const char *run_id,
		   const char *exec_name, bool rootfs, struct err *e);

/* The guest's memory and vCPUs: the rule of every VMM (backend/vm_limits.h),
 * with at most FC_MAX_VCPUS (Firecracker's limit). */
#define FC_MAX_VCPUS 32
void fc_vm_size(const struct config *cfg, const struct spec *spec, struct vm_shape *shape);

/* The kernel command line: Firecracker's (serial console, reset on reboot and on
 * panic, no PCI probing) and the job's argv in upstream's format
 * (backend/vm_job.h), unless it is too long for it: then *argv_in_job is set
 * (the argv travels in the job file). malloc'd; NULL on error. */
char *fc_boot_args(const struct spec *spec, bool *argv_in_job, struct err *e);

/* A locally administered unicast MAC derived from the run id. */
void fc_guest_mac(const char *run_id, char out[18]);

/* The --config-file document. NULL on OOM. */
json_t *fc_config_json(const struct fc_layout *l, const struct fc_vm *vm);

/* All of the above for one run: what `cellctl vm-config` prints and what the
 * backend writes to the cell's config.json, byte for byte (`text`). The VM has
 * a network interface (a TAP, FC_TAP in the cell's netns) when the document
 * declares egress. */
#define FC_TAP "tap0"
/* Its link, inside the cell's own netns (the same addresses in every cell
 * collide with nothing), as for the qemu backend: the netns end, the guest's. */
#define FC_TAP_HOST "10.0.2.1"
#define FC_TAP_GUEST "10.0.2.2"
#define FC_TAP_PREFIX 30
struct fc_plan {
	struct fc_layout layout;
	struct fc_vm vm;
	struct vm_shape shape;   /* vmm_mem_max: the VMM's cgroup memory limit */
	bool argv_in_job;
	char *boot_args;
	char *text;              /* the config file's content, one JSON document and a newline */
};
int fc_plan_make(struct fc_plan *p, const struct config *cfg, const struct spec *spec, const char *run_id,
		 const char *exec_name, bool rootfs, struct err *e);
void fc_plan_free(struct fc_plan *p);

#endif
