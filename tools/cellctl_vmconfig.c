/* cellctl vm-config (SPEC §6.3): the Firecracker --config-file a run of the
 * document would boot from, under this environment's configuration, printed
 * without booting anything, so that it can be checked on any machine (one
 * without KVM or Firecracker too). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admission.h"
#include "backend/fc_config.h"
#include "backend/vm_image.h"
#include "cellctl.h"
#include "util/ids.h"

const char cellctl_vmconfig_help[] =
	"usage: cellctl vm-config SPEC.json|-\n"
	"\n"
	"Print the JSON configuration Firecracker would be started with\n"
	"(firecracker --config-file) for this document under the configuration of\n"
	"this environment, exactly as the supervisor writes it, without booting\n"
	"anything: the kernel and initramfs of CELLOS_VM_IMAGE_DIR, the guest's\n"
	"memory and vCPUs (CELLOS_VM_MEMORY_MIB and CELLOS_VM_VCPUS, or\n"
	"run.limits), the drives (the image's root disk, one per run.mounts entry),\n"
	"the vsock and, when the document declares egress, the network interface.\n"
	"Paths are those of the cell's directory under CELLOS_FIRECRACKER_SOCKET_DIR\n"
	"(or of the jailer's chroot with CELLOS_FIRECRACKER_JAILER_BINARY), for the\n"
	"run id CELLOS_RUN_ID, or a fresh one. CELLOS_CELL_BACKEND, when set, must be\n"
	"firecracker. Neither KVM nor Firecracker is needed.\n"
	"\n"
	"  SPEC.json|-   the document; - reads it from standard input\n"
	"\n"
	"Exit status: 0 printed; 1 the document or the configuration is invalid (one\n"
	"line per problem on stderr); 2 usage or I/O error.\n";

int cellctl_vmconfig(const struct cellctl_cmd *cmd, int argc, char **argv)
{
	const char *pos[1];
	size_t npos;
	const struct cellctl_opt opts[] = {{0}};
	if (cellctl_args(cmd, argc, argv, opts, pos, 1, &npos) != CELLCTL_OK)
		return CELLCTL_ERROR;
	if (npos != 1)
		return cellctl_usage_error(cmd, "no document given (a file, or - for standard input)");
	const char *backend = getenv("CELLOS_CELL_BACKEND");
	if (backend && *backend && strcmp(backend, "firecracker") != 0)
		return cellctl_usage_error(cmd, "CELLOS_CELL_BACKEND is '%s': vm-config describes a firecracker cell",
					   backend);
	setenv("CELLOS_CELL_BACKEND", "firecracker", 1);

	struct admission adm;
	struct err e = {0};
	char msg[4 * ERR_MSG_MAX];
	int status = CELLCTL_ERROR;
	int rc = admission_load(&adm, pos[0], ADMIT_DESCRIBE, &e);
	if (rc < 0) {
		fprintf(stderr, "cellctl vm-config: %s\n", cellctl_shown(msg, sizeof msg, e.msg, strlen(e.msg)));
		goto out;
	}
	if (rc > 0) {
		for (size_t i = 0; i < adm.problems.n; i++) {
			const char *p = adm.problems.items[i];
			fprintf(stderr, "cellctl vm-config: %s\n", cellctl_shown(msg, sizeof msg, p, strlen(p)));
		}
		status = CELLCTL_PROBLEMS;
		goto out;
	}
	char run_id[37];
	if (adm.cfg.run_id[0])
		memcpy(run_id, adm.cfg.run_id, sizeof run_id);
	else
		uuid_v4(run_id);
	/* The jailer's chroot is named after the binary's file name: the
	 * resolved one where this machine has it, as the supervisor does. */
	char resolved[4096];
	struct err pe = {0};
	const char *exec = config_find_program("CELLOS_FIRECRACKER_BINARY", adm.cfg.fc_binary, resolved,
					       sizeof resolved, &pe) == 0 ? resolved : adm.cfg.fc_binary;
	const char *exec_name = strrchr(exec, '/') ? strrchr(exec, '/') + 1 : exec;
	/* The image as a run would find it: its manifest says whether there is a
	 * root disk (a drive of the config); every file is checked against it. */
	struct vm_image img;
	if (vm_image_open(&img, adm.cfg.vm_image_dir, &e) < 0) {
		fprintf(stderr, "cellctl vm-config: %s\n", cellctl_shown(msg, sizeof msg, e.msg, strlen(e.msg)));
		status = CELLCTL_PROBLEMS;
		goto out;
	}
	struct fc_plan plan;
	if (fc_plan_make(&plan, &adm.cfg, &adm.spec, run_id, exec_name, img.f[VM_IMG_ROOTFS].present, &e) < 0) {
		vm_image_close(&img);
		fprintf(stderr, "cellctl vm-config: %s\n", cellctl_shown(msg, sizeof msg, e.msg, strlen(e.msg)));
		status = CELLCTL_PROBLEMS;
		goto out;
	}
	if (fputs(plan.text, stdout) < 0 || fflush(stdout) != 0)
		fprintf(stderr, "cellctl vm-config: cannot write the configuration: %s\n", strerror(errno));
	else
		status = CELLCTL_OK;
	fc_plan_free(&plan);
	vm_image_close(&img);
out:
	admission_free(&adm);
	return status;
}
