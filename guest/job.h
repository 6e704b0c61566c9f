/* cellos-init's job (SPEC §6.3): the argv from the kernel command line
 * (`cellos.argv=<base64 of the JSON argv array>`, upstream's format) and the
 * rest from the job file the host appends to the initramfs
 * (src/backend/vm_job.h writes both). Pure parsing: unit-tested on the host
 * (tests/unit/test_guest_job.c). */
#ifndef CELLOS_GUEST_JOB_H
#define CELLOS_GUEST_JOB_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "util/vm_frame.h"

struct job_file {
	char *path;
	unsigned char *data;
	size_t len;
	mode_t mode;
};

struct job_mount {
	char *device;
	char *target;
};

struct job {
	char *run_id;
	char **argv;            /* NULL-terminated; NULL until known */
	char **env;             /* NULL-terminated, never NULL after job_parse */
	char *workdir;          /* NULL: the workspace */
	struct job_file *files;
	size_t n_files;
	struct job_mount *mounts;
	size_t n_mounts;
	char *root_device;      /* NULL: the initramfs is the root */
	char **artifacts;       /* NULL-terminated, never NULL after job_parse */
	uid_t uid;              /* the workload's uid/gid in the guest, 0: the default */
	gid_t gid;
	char *net_address;      /* eth0's IPv4 address, NULL: no network */
	int net_prefix;
	char *net_gateway;
	char *net_dns;          /* the resolver for /etc/resolv.conf, NULL: none */
	char **modules;         /* the kernel modules the boot needs (with their
				   dependencies); NULL: every module of the image */
	bool reset;             /* end with a reset rather than power-off */
	bool have_key;
	unsigned char *key;     /* VM_KEY_BYTES, caller-provided (locked) memory */
};

/* Parse the job file's text into *j (j->key must point at VM_KEY_BYTES the caller
 * owns). 0, or -1 with a one-line reason in err. */
int job_parse(const char *text, size_t len, struct job *j, char *err, size_t errsz);

/* Find `cellos.argv=` in a kernel command line and decode it into j->argv
 * (replacing none: a job file's argv wins). 1 when found and decoded, 0 when
 * absent, -1 with a reason when malformed. */
int job_argv_from_cmdline(const char *cmdline, struct job *j, char *err, size_t errsz);

void job_free(struct job *j);

#endif
