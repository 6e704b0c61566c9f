#include "backend/fc_config.h"

#include <sodium.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "backend/vm_job.h"

/* A path into buf; -1 when it does not fit (the caller names the variable). */
static int fmt_path(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fmt_path(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	return n < 0 || (size_t)n >= size ? -1 : 0;
}

/* One file of the cell: its host path, and the path the config names. */
static int place(const struct fc_layout *l, const char *name, char *host, char *vm)
{
	if (fmt_path(host, PATH_MAX, "%s/%s", l->dir, name) < 0)
		return -1;
	return l->jailer ? fmt_path(vm, PATH_MAX, "/%s", name) : fmt_path(vm, PATH_MAX, "%s", host);
}

int fc_layout_plan(struct fc_layout *l, const struct config *cfg, const struct spec *spec, const char *run_id,
		   const char *exec_name, bool rootfs, struct err *e)
{
	memset(l, 0, sizeof *l);
	l->jailer = cfg->fc_jailer != NULL;
	l->rootfs_drive = SIZE_MAX;
	const char *var = l->jailer ? "CELLOS_FIRECRACKER_CHROOT_BASE" : "CELLOS_FIRECRACKER_SOCKET_DIR";
	if (l->jailer) {
		if (fmt_path(l->jail, sizeof l->jail, "%s/%s/%s", cfg->fc_chroot_base, exec_name, run_id) < 0 ||
		    fmt_path(l->dir, sizeof l->dir, "%s/root", l->jail) < 0)
			return err_set(e, "%s: the jailer's directory for this cell is too long", var);
	} else if (fmt_path(l->dir, sizeof l->dir, "%s/%s", cfg->fc_socket_dir, run_id) < 0) {
		return err_set(e, "%s: the cell's directory is too long", var);
	}
	if (place(l, "vmlinux", l->kernel, l->kernel_vm) < 0 || place(l, "initrd.cpio", l->initrd, l->initrd_vm) < 0 ||
	    place(l, "config.json", l->config, l->config_vm) < 0 || place(l, "api.sock", l->api, l->api_vm) < 0 ||
	    place(l, "vsock.sock", l->vsock, l->vsock_vm) < 0)
		return err_set(e, "%s: the paths of the cell's files are too long", var);
	/* Our listeners bind through /proc/self/fd of the directory (any length);
	 * Firecracker binds the paths it is given, which must fit sun_path (108
	 * bytes, NUL included) with "_9000" on the vsock one. */
	if (strlen(l->vsock_vm) + strlen("_9000") >= 108 || strlen(l->api_vm) >= 108)
		return err_set(e, "%s: the VM's socket paths under it would not fit a Unix socket address (108 bytes)", var);
	if (rootfs) {
		struct fc_drive *d = &l->drives[l->n_drives];
		snprintf(d->id, sizeof d->id, "rootfs");
		if (place(l, "rootfs.ext4", d->host, d->vm) < 0)
			return err_set(e, "%s: the paths of the cell's files are too long", var);
		l->rootfs_drive = l->n_drives++;
	}
	/* run.mounts: each one an ext4 image made at create, in the order of the
	 * document (the job tells the guest which disk goes where). */
	for (size_t i = 0; i < spec->n_mounts && l->n_drives < FC_MAX_DRIVES; i++) {
		struct fc_drive *d = &l->drives[l->n_drives++];
		char name[32];
		snprintf(d->id, sizeof d->id, "mount%zu", i);
		snprintf(name, sizeof name, "mount%zu.ext4", i);
		if (place(l, name, d->host, d->vm) < 0)
			return err_set(e, "%s: the paths of the cell's files are too long", var);
	}
	return 0;
}

void fc_vm_size(const struct config *cfg, const struct spec *spec, struct vm_shape *shape)
{
	vm_shape_of(spec->memory_max_bytes, spec->cpu_quota_micros, spec->cpu_period_micros, cfg->vm_memory_mib,
		    cfg->vm_vcpus, cfg->vm_overhead_mib, shape);
	if (shape->vcpus > FC_MAX_VCPUS)
		shape->vcpus = FC_MAX_VCPUS;
}

char *fc_boot_args(const struct spec *spec, bool *argv_in_job, struct err *e)
{
	/* reboot=k: the guest's reboot is a reset through the keyboard controller,
	 * on which Firecracker exits (it has no power-off); panic=1: a guest whose
	 * init dies resets too, instead of hanging; pci=off: Firecracker has no PCI
	 * bus, probing for one only costs boot time. */
	static const char base[] = "console=ttyS0 reboot=k panic=1 pci=off quiet " VM_GUEST_KERNEL_ARGS;
	char *argv = vm_job_cmdline_argv(spec->argv, argv_in_job, e);
	if (!argv && !*argv_in_job)
		return NULL;
	char *out = NULL;
	if (asprintf(&out, "%s%s%s", base, argv ? " " : "", argv ? argv : "") < 0) {
		err_set(e, "firecracker: out of memory");
		out = NULL;
	}
	free(argv);
	return out;
}

void fc_guest_mac(const char *run_id, char out[18])
{
	unsigned char h[crypto_generichash_BYTES_MIN];
	crypto_generichash(h, sizeof h, (const unsigned char *)run_id, strlen(run_id), NULL, 0);
	/* 0x02: locally administered, unicast. */
	snprintf(out, 18, "02:%02x:%02x:%02x:%02x:%02x", h[0], h[1], h[2], h[3], h[4]);
}

json_t *fc_config_json(const struct fc_layout *l, const struct fc_vm *vm)
{
	json_t *drives = json_array();
	for (size_t i = 0; drives && i < l->n_drives; i++)
		/* The guest boots from the initramfs: no drive is the root device
		 * (Firecracker would put root= on the command line). Every disk is
		 * read-only: the image's root and run.mounts (SPEC §6.3). */
		json_array_append_new(drives, json_pack("{s:s, s:s, s:b, s:b}", "drive_id", l->drives[i].id,
							 "path_on_host", l->drives[i].vm, "is_root_device", 0,
							 "is_read_only", 1));
	json_t *o = json_pack("{s:{s:s, s:s, s:s}, s:o, s:{s:I, s:I, s:b}, s:{s:i, s:s}}",
			      "boot-source", "kernel_image_path", l->kernel_vm, "initrd_path", l->initrd_vm, "boot_args",
			      vm->boot_args, "drives", drives, "machine-config", "vcpu_count", (json_int_t)vm->vcpus,
			      "mem_size_mib", (json_int_t)vm->mem_mib, "smt", 0, "vsock", "guest_cid", FC_GUEST_CID,
			      "uds_path", l->vsock_vm);
	if (o && vm->tap) {
		json_t *nics = json_pack("[{s:s, s:s, s:s}]", "iface_id", "eth0", "host_dev_name", vm->tap, "guest_mac",
					 vm->mac);
		if (!nics) {
			json_decref(o);
			return NULL;
		}
		json_object_set_new(o, "network-interfaces", nics);
	}
	return o;
}

int fc_plan_make(struct fc_plan *p, const struct config *cfg, const struct spec *spec, const char *run_id,
		 const char *exec_name, bool rootfs, struct err *e)
{
	memset(p, 0, sizeof *p);
	if (fc_layout_plan(&p->layout, cfg, spec, run_id, exec_name, rootfs, e) < 0)
		return -1;
	fc_vm_size(cfg, spec, &p->shape);
	p->vm.mem_mib = p->shape.mem_mib;
	p->vm.vcpus = p->shape.vcpus;
	if (!(p->boot_args = fc_boot_args(spec, &p->argv_in_job, e)))
		return -1;
	p->vm.boot_args = p->boot_args;
	if (spec->n_egress) {
		p->vm.tap = FC_TAP;
		fc_guest_mac(run_id, p->vm.mac);
	}
	json_t *o = fc_config_json(&p->layout, &p->vm);
	char *text = o ? json_dumps(o, JSON_INDENT(2)) : NULL;
	json_decref(o);
	if (text && asprintf(&p->text, "%s\n", text) < 0)
		p->text = NULL;
	free(text);
	if (!p->text) {
		fc_plan_free(p);
		return err_set(e, "firecracker: out of memory");
	}
	return 0;
}

void fc_plan_free(struct fc_plan *p)
{
	free(p->boot_args);
	free(p->text);
	p->boot_args = p->text = NULL;
}
