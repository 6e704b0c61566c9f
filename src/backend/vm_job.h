/* The job of a microVM cell (SPEC §6.3), VMM-independent: what cellos-init in
 * the guest runs and how it ends.
 *
 * - the argv goes on the kernel command line as `cellos.argv=<base64 of the
 *   JSON argv array>` (upstream's format) when it fits; otherwise in the job file;
 * - everything else (run id, the per-boot key, env, workingDirectory, file
 *   secrets, mounts, artifact paths, how to end) goes in the job file
 *   `cellos/job.json`, inside a cpio archive appended to the image's initramfs
 *   (the kernel unpacks concatenated archives in order). cellos-init reads it,
 *   deletes it and wipes the key before the workload starts.
 * The exit report is util/vm_frame.h. */
#ifndef CELLOS_VM_JOB_H
#define CELLOS_VM_JOB_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "util/err.h"
#include "util/vm_frame.h"

#define VM_JOB_PATH "cellos/job.json"
/* Kernel command line budget for cellos.argv: the x86 command line is 2048
 * bytes and the VMM's own options come first. */
#define VM_JOB_CMDLINE_ARGV_MAX 1200

/* Kernel options of the guest whatever the VMM (the same Debian cloud kernel):
 * only the LSMs that mean something in a one-workload guest (no AppArmor/TOMOYO
 * policy is ever loaded there, IMA/EVM have none), lockdown at its
 * confidentiality level (the workload is never guest root; cellos-init needs
 * none of what it closes, and tracefs then is not populated at boot), and no
 * crypto self-tests (cryptomgr.notests; the CTR-KDF one ignores that flag and
 * is skipped by name). Two tracing set-ups are skipped too: trace_eval_init
 * (rewrites every trace event's format with enum values) and
 * ftrace_check_for_weak_functions (a symbol lookup per ftrace call site); with
 * tracefs locked down nobody in the guest can trace. Boot time under TCG:
 * bench/README.md. */
#define VM_GUEST_KERNEL_ARGS \
	"lsm=lockdown,capability,landlock,yama lockdown=confidentiality cryptomgr.notests " \
	"initcall_blacklist=crypto_kdf108_init,trace_eval_init,ftrace_check_for_weak_functions"

/* The guest channels (virtio-serial port names under QEMU; vsock ports under
 * Firecracker: 9000 + index). */
enum { VM_CHAN_EXIT = 0, VM_CHAN_STDOUT = 1, VM_CHAN_STDERR = 2, VM_CHAN_ARTIFACTS = 3, VM_CHAN_N };
/* "cellos.exit", "cellos.stdout", "cellos.stderr", "cellos.artifacts" */
extern const char *const vm_chan_names[VM_CHAN_N];

/* The artifacts channel carries, once the workload has ended, one record per
 * job artifact in order: a VM_ART_HDR-byte header (u32 index, u8 errno of the
 * guest's open, 0 when it worked, u64 size; little-endian), then the bytes. */
#define VM_ART_HDR 13

/* From a stream of records (what the channel carried, `len` bytes), the
 * artifact `index`: its offset and size in `stream`, or its guest errno. -1
 * when the stream holds no record of it. */
int vm_artifact_find(const unsigned char *stream, size_t len, size_t index, size_t *off, size_t *size, int *guest_errno);

struct vm_job_file {            /* a file the guest creates before the workload starts */
	const char *path;       /* absolute, in the guest */
	const void *data;
	size_t len;
	mode_t mode;
};

struct vm_job_mount {           /* a read-only ext4 block device mounted at target */
	const char *device;     /* "/dev/vdb" */
	const char *target;
};

struct vm_job {
	const char *run_id;
	const char *const *argv;        /* NULL-terminated */
	char *const *envp;              /* NULL-terminated */
	const char *workdir;            /* NULL: the workspace */
	const struct vm_job_file *files;
	size_t n_files;
	const struct vm_job_mount *mounts;
	size_t n_mounts;
	const char *root_device;        /* read-only ext4 root, NULL: the initramfs */
	const char *const *artifacts;   /* paths sent back after the workload (NULL-terminated or NULL) */
	uid_t uid;                      /* the workload's uid/gid in the guest (the run's host */
	gid_t gid;                      /* uid: run.mounts' owner bits mean the same); 0: 1000 */
	const char *net_address;        /* the guest's eth0 (IPv4), NULL: no network */
	int net_prefix;
	const char *net_gateway;        /* its default route */
	const char *net_dns;            /* its resolver (the gateway's DNS proxy), NULL: none */
	const char *const *modules;     /* kernel modules to load (NULL-terminated; NULL: all) */
	bool reset;                     /* end with a reset (Firecracker), not power-off */
	const unsigned char *key;       /* VM_KEY_BYTES */
};

/* A fresh per-boot key in locked memory (sodium_malloc); vm_job_key_free wipes it. */
unsigned char *vm_job_key_new(struct err *e);
void vm_job_key_free(unsigned char *key);

/* "cellos.argv=<base64>" (malloc'd) or NULL with *too_long set when it does not
 * fit VM_JOB_CMDLINE_ARGV_MAX (the argv then travels in the job file). */
char *vm_job_cmdline_argv(const char *const *argv, bool *too_long, struct err *e);

/* Write the job archive (cpio newc holding VM_JOB_PATH, mode 0400) to fd. With
 * argv_in_job the argv is in the file too. The JSON text holding the key is
 * wiped from our memory once written. */
int vm_job_write(int fd, const struct vm_job *j, bool argv_in_job, struct err *e);

#endif
