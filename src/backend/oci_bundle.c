#include "backend/oci_bundle.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hostmount/hostmount.h"
#include "util/path.h"

#define OCI_VERSION "1.0.2"
/* The hostname is the cell id cut to what uname(2) holds (SPEC §6.1). */
#define HOSTNAME_MAX 64

/* Paths of /proc and /sys a container must not read or change (the list runc's
 * and crun's default specs carry); gVisor's own /proc ignores them. */
static const char *const masked_paths[] = {
	"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
	"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
};
static const char *const readonly_paths[] = {
	"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
};

static json_t *strings(const char *const *v, size_t n)
{
	json_t *a = json_array();
	for (size_t i = 0; a && (n ? i < n : v[i] != NULL); i++)
		if (json_array_append_new(a, json_string(v[i])) < 0) {
			json_decref(a);
			return NULL;
		}
	return a;
}

static json_t *mount(const char *dest, const char *type, const char *const *opts)
{
	return json_pack("{s:s, s:s, s:s, s:o}", "destination", dest, "type", type, "source", type, "options",
			 strings(opts, 0));
}

static json_t *hook(const struct oci_hook *h)
{
	json_t *o = json_pack("{s:s, s:o}", "path", h->argv[0], "args", strings(h->argv, 0));
	if (o && h->env)
		json_object_set_new(o, "env", strings(h->env, 0));
	return json_pack("[o]", o);
}

static json_t *process(const struct oci_bundle_args *a)
{
	const struct cell *c = a->cell;
	static const char *const none[] = {NULL};
	/* No capability in any set: the workload is uid 0 of the container and
	 * nothing more (SPEC §6.1: CapEff and CapPrm are 0). */
	json_t *caps = json_pack("{s:o, s:o, s:o, s:o, s:o}", "bounding", strings(none, 0), "effective",
				 strings(none, 0), "inheritable", strings(none, 0), "permitted", strings(none, 0),
				 "ambient", strings(none, 0));
	json_t *rlimits = json_pack("[{s:s, s:i, s:i}, {s:s, s:i, s:i}]", "type", "RLIMIT_NOFILE", "soft", 1024,
				    "hard", 1024, "type", "RLIMIT_CORE", "soft", 0, "hard", 0);
	if (rlimits && a->pids_rlimit > 0)
		json_array_append_new(rlimits, json_pack("{s:s, s:I, s:I}", "type", "RLIMIT_NPROC", "soft",
							 (json_int_t)a->pids_rlimit, "hard", (json_int_t)a->pids_rlimit));
	return json_pack("{s:b, s:{s:i, s:i}, s:o, s:o, s:s, s:o, s:o, s:b}", "terminal", 0, "user", "uid", 0, "gid", 0,
			 "args", strings(c->spec->argv, c->spec->argc), "env", strings((const char *const *)c->envp, 0),
			 "cwd", a->cwd, "capabilities", caps, "rlimits", rlimits, "noNewPrivileges", 1);
}

static json_t *mounts(const struct oci_bundle_args *a)
{
	static const char *const proc[] = {"nosuid", "noexec", "nodev", NULL};
	static const char *const dev[] = {"nosuid", "strictatime", "mode=755", "size=65536k", NULL};
	static const char *const pts[] = {"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", NULL};
	static const char *const shm[] = {"nosuid", "noexec", "nodev", "mode=1777", "size=65536k", NULL};
	static const char *const sys[] = {"nosuid", "noexec", "nodev", "ro", NULL};
	static const char *const tmp[] = {"nosuid", "nodev", "mode=1777", NULL};
	static const char *const run[] = {"nosuid", "nodev", "mode=755", NULL};
	static const char *const work[] = {"nosuid", "nodev", "mode=755", NULL};
	json_t *m = json_pack("[o, o, o, o, o, o, o]", mount("/proc", "proc", proc), mount("/dev", "tmpfs", dev),
			      mount("/dev/pts", "devpts", pts), mount("/dev/shm", "tmpfs", shm),
			      mount("/sys", "sysfs", sys), mount("/tmp", "tmpfs", tmp), mount("/run", "tmpfs", run));
	/* The workspace: empty at start, gone with the cell (SPEC §2); and run.mounts,
	 * outermost first (a mount inside the workspace after its tmpfs). */
	static const char *const bind_ro[] = {"rbind", "ro", "nosuid", "nodev", NULL};
	static const char *const bind_rw[] = {"rbind", "rw", "nosuid", "nodev", NULL};
	const char *wd = a->cell->spec->working_directory;
	char clean[PATH_MAX];
	bool wd_done = !wd || strcmp(wd, "/") == 0 || path_clean(wd, clean, sizeof clean) < 0;
	size_t wd_depth = wd_done ? 0 : path_depth(clean);
	for (size_t k = 0; m && k <= a->n_binds; k++) {
		const struct oci_bind *b = k < a->n_binds ? &a->binds[k] : NULL;
		if (!wd_done && (!b || path_depth(b->destination) > wd_depth)) {
			wd_done = true;
			if (json_array_append_new(m, mount(wd, "tmpfs", work)) < 0)
				goto fail;
		}
		if (b && json_array_append_new(m, json_pack("{s:s, s:s, s:s, s:o}", "destination", b->destination, "type",
							    "bind", "source", b->source, "options",
							    strings(b->read_only ? bind_ro : bind_rw, 0))) < 0)
			goto fail;
	}
	return m;
fail:
	json_decref(m);
	return NULL;
}

static json_t *resources(const struct cgroup_limits *l)
{
	json_t *r = json_object();
	if (!r)
		return NULL;
	if (l->memory_max)
		json_object_set_new(r, "memory", json_pack("{s:I}", "limit", (json_int_t)l->memory_max));
	if (l->cpu_quota)
		json_object_set_new(r, "cpu", json_pack("{s:I, s:I}", "quota", (json_int_t)l->cpu_quota, "period",
							(json_int_t)(l->cpu_period ? l->cpu_period : 100000)));
	if (l->pids_max)
		json_object_set_new(r, "pids", json_pack("{s:I}", "limit", (json_int_t)l->pids_max));
	return r;
}

static json_t *linux_section(const struct oci_bundle_args *a)
{
	json_t *ns = json_pack("[{s:s}, {s:s}, {s:s}, {s:s}, {s:s}]", "type", "pid", "type", "network", "type", "ipc",
			       "type", "uts", "type", "mount");
	if (ns && a->map_user)
		json_array_append_new(ns, json_pack("{s:s}", "type", "user"));
	json_t *l = json_pack("{s:o, s:o, s:o}", "namespaces", ns, "maskedPaths",
			      strings(masked_paths, sizeof masked_paths / sizeof masked_paths[0]), "readonlyPaths",
			      strings(readonly_paths, sizeof readonly_paths / sizeof readonly_paths[0]));
	if (l && cgroup_limits_ctrls(&a->cell->limits))
		json_object_set_new(l, "resources", resources(&a->cell->limits));
	if (l && a->map_user) {
		json_object_set_new(l, "uidMappings", json_pack("[{s:i, s:I, s:i}]", "containerID", 0, "hostID",
								(json_int_t)a->cell->uid, "size", 1));
		json_object_set_new(l, "gidMappings", json_pack("[{s:i, s:I, s:i}]", "containerID", 0, "hostID",
								(json_int_t)a->cell->gid, "size", 1));
	}
	if (l && a->cgroups_path)
		json_object_set_new(l, "cgroupsPath", json_string(a->cgroups_path));
	return l;
}

json_t *oci_bundle_config(const struct oci_bundle_args *a, struct err *e)
{
	if (!a->cell->spec->has_run || !a->cell->spec->argc)
		return err_set(e, "OCI bundle: the cell has no run.argv"), NULL;
	if (a->root[0] != '/' || a->cwd[0] != '/')
		return err_set(e, "OCI bundle: root %s and cwd %s must be absolute", a->root, a->cwd), NULL;
	char hostname[HOSTNAME_MAX + 1];
	snprintf(hostname, sizeof hostname, "%s", a->cell->spec->id);
	/* First, for its own message: config.c has already refused a filter the
	 * runtime cannot enforce, so this fails only for want of memory. */
	json_t *seccomp = NULL;
	if (a->seccomp && !(seccomp = oci_seccomp_json(a->seccomp, a->seccomp_dialect, e)))
		return err_prefix(e, "OCI bundle: CELLOS_SECCOMP"), NULL;

	json_t *doc = json_pack("{s:s, s:o, s:{s:s, s:b}, s:s, s:o, s:o}", "ociVersion", OCI_VERSION, "process",
				process(a), "root", "path", a->root, "readonly", 1, "hostname", hostname, "mounts",
				mounts(a), "linux", linux_section(a));
	/* json_pack fails as a whole on any NULL member ("o" of NULL), so a NULL
	 * here covers every allocation above. */
	if (!doc) {
		json_decref(seccomp);
		return err_set(e, "OCI bundle: cannot build config.json (out of memory, or a string that is not UTF-8)"),
		       NULL;
	}
	if (seccomp && json_object_set_new(json_object_get(doc, "linux"), "seccomp", seccomp) < 0) {
		json_decref(doc);
		return err_set(e, "OCI bundle: cannot build linux.seccomp of config.json"), NULL;
	}
	if (a->prestart || a->poststart) {
		json_t *hooks = json_object();
		/* The supervisor relies on its hooks: a document without them is no document. */
		if (json_object_set_new(doc, "hooks", hooks) < 0 ||
		    (a->prestart && json_object_set_new(hooks, "prestart", hook(a->prestart)) < 0) ||
		    (a->poststart && json_object_set_new(hooks, "poststart", hook(a->poststart)) < 0)) {
			json_decref(doc);
			return err_set(e, "OCI bundle: cannot build the hooks of config.json"), NULL;
		}
	}
	return doc;
}

char *oci_bundle_text(const struct oci_bundle_args *a, struct err *e)
{
	json_t *doc = oci_bundle_config(a, e);
	if (!doc)
		return NULL;
	char *text = json_dumps(doc, JSON_COMPACT);
	json_decref(doc);
	if (!text)
		err_set(e, "OCI bundle: cannot serialise config.json");
	return text;
}
