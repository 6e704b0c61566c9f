/* `cellctl image build` (SPEC §6.3): the guest image of the microVM backends,
 * from Debian packages already on the host.
 *
 * - the kernel: a bzImage (default: the newest /boot/vmlinuz-*-cloud-amd64, from
 *   linux-image-cloud-amd64), copied, and the uncompressed ELF `vmlinux` taken
 *   out of it (its payload is one LZ4 stream, decompressed by the lz4 tool):
 *   Firecracker loads ELF only, and QEMU boots the ELF faster than the bzImage;
 * - the initramfs: a cpio archive written here, holding /init (a static
 *   cellos-init), a static busybox with its applet links, and the virtio
 *   modules of that kernel with a list of them in dependency order;
 * - optionally a read-only ext4 root image of --rootfs DIR (mkfs.ext4 -d);
 * - manifest.json: every file with its SHA-256, and the digest of the inputs.
 * A build whose inputs have the digest of the image already in DIR does
 * nothing (cached by digest); otherwise files are written under temporary names
 * and renamed into place, the manifest last. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <glob.h>
#include <jansson.h>
#include <limits.h>
#include <sodium.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend/vm_image.h"
#include "config.h"
#include "cellctl.h"
#include "util/cpio.h"
#include "util/err.h"

#ifndef CELLOS_GUEST_DIR
#define CELLOS_GUEST_DIR "/usr/local/lib/cellos" /* the Makefile's GUESTDIR */
#endif

extern char **environ;

const char cellctl_image_help[] =
	"usage: cellctl image build [--out DIR] [--kernel PATH] [--rootfs DIR] [--init PATH] [--busybox PATH]\n"
	"\n"
	"Builds the guest image of the microVM backends (qemu, firecracker) into DIR\n"
	"(default " CONFIG_VM_IMAGE_DIR_DEFAULT ", what CELLOS_VM_IMAGE_DIR defaults to):\n"
	"  vmlinux          the kernel as an uncompressed ELF, taken out of the bzImage\n"
	"  bzImage          the kernel as given (default: the newest /boot/vmlinuz-*-cloud-amd64)\n"
	"  initramfs.cpio   cellos-init as /init, busybox, the kernel's virtio modules\n"
	"  rootfs.ext4      with --rootfs DIR: that tree as a read-only ext4 root (it\n"
	"                   should have /proc, /dev, /tmp and /workspace)\n"
	"  manifest.json    the SHA-256 of each file, checked before every boot\n"
	"--init defaults to the cellos-init next to cellctl, else " CELLOS_GUEST_DIR "/cellos-init;\n"
	"--busybox to /bin/busybox\n"
	"(Debian's busybox-static). When DIR already holds an image of the same inputs\n"
	"nothing is rebuilt.\n"
	"\n"
	"Exit status: 0 success; 2 usage or build error.\n";

/* The modules the guest needs, in no particular order: dependencies are added
 * from modules.dep and come first. */
static const char *const wanted_modules[] = {"virtio_mmio", "virtio_console", "virtio_blk", "virtio_net",
					     "vmw_vsock_virtio_transport"};

/* Changed whenever the same inputs make a different image (the cache key). */
#define IMAGE_LAYOUT "layout 2: no sbin/modprobe"

struct build {
	const char *out, *kernel, *rootfs, *init, *busybox;
	char release[128];
	char moddir[PATH_MAX];
	char **mods;                    /* relative to moddir, dependency order */
	size_t n_mods;
	crypto_hash_sha256_state inputs;
	json_t *deps;                   /* modules.dep: path -> [paths] */
};

static int run_tool(char *const argv[], const char *out_path, struct err *e)
{
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	if (out_path)
		posix_spawn_file_actions_addopen(&fa, 1, out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	pid_t pid;
	int rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (rc != 0)
		return err_sys(e, rc, "%s", argv[0]);
	int ws;
	while (waitpid(pid, &ws, 0) < 0)
		if (errno != EINTR)
			return err_sys(e, errno, "waitpid");
	if (!WIFEXITED(ws) || WEXITSTATUS(ws) != 0)
		return err_set(e, "%s failed (status %d)", argv[0], WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws));
	return 0;
}

static int hash_input(struct build *b, const char *path, struct err *e)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return err_sys(e, errno, "%s", path);
	char hex[65];
	int rc = vm_sha256_fd(fd, hex, e);
	close(fd);
	if (rc < 0)
		return err_prefix(e, "%s", path);
	crypto_hash_sha256_update(&b->inputs, (const unsigned char *)path, strlen(path) + 1);
	crypto_hash_sha256_update(&b->inputs, (const unsigned char *)hex, 64);
	return 0;
}

static int newest_kernel(char *out, size_t size, struct err *e)
{
	glob_t g;
	if (glob("/boot/vmlinuz-*-cloud-amd64", 0, NULL, &g) != 0 && glob("/boot/vmlinuz-*", 0, NULL, &g) != 0)
		return err_set(e, "--kernel: no /boot/vmlinuz-* on this host (install linux-image-cloud-amd64)");
	/* glob sorts; the versions differ in their ABI number: the last is newest. */
	snprintf(out, size, "%s", g.gl_pathv[g.gl_pathc - 1]);
	globfree(&g);
	return 0;
}

/* modules.dep: "kernel/x/a.ko: kernel/y/b.ko kernel/z/c.ko" (direct and
 * indirect dependencies of a.ko). Adds `path`'s dependencies, then it. */
static int add_module(struct build *b, json_t *dep, const char *path, int depth, struct err *e)
{
	if (depth > 32)
		return err_set(e, "modules.dep: dependency loop at %s", path);
	for (size_t i = 0; i < b->n_mods; i++)
		if (strcmp(b->mods[i], path) == 0)
			return 0;
	json_t *deps = json_object_get(dep, path);
	if (!deps)
		return err_set(e, "%s/modules.dep: no module %s", b->moddir, path);
	/* The dependencies listed last are the deepest: load them first. */
	for (size_t i = json_array_size(deps); i-- > 0;)
		if (add_module(b, dep, json_string_value(json_array_get(deps, i)), depth + 1, e) < 0)
			return -1;
	char **nm = realloc(b->mods, (b->n_mods + 1) * sizeof *nm);
	if (!nm)
		return err_sys(e, ENOMEM, "modules");
	b->mods = nm;
	b->mods[b->n_mods++] = strdup(path);
	return 0;
}

static int plan_modules(struct build *b, struct err *e)
{
	char path[PATH_MAX + 16];
	snprintf(path, sizeof path, "%s/modules.dep", b->moddir);
	FILE *f = fopen(path, "re");
	if (!f)
		return err_sys(e, errno, "%s (the modules of kernel %s)", path, b->release);
	json_t *dep = json_object(); /* path -> [deps] */
	json_t *byname = json_object(); /* module name -> path */
	char *line = NULL;
	size_t cap = 0;
	while (getline(&line, &cap, f) > 0) {
		line[strcspn(line, "\n")] = 0;
		char *colon = strchr(line, ':');
		if (!colon)
			continue;
		*colon = 0;
		json_t *a = json_array();
		for (char *t = strtok(colon + 1, " "); t; t = strtok(NULL, " "))
			json_array_append_new(a, json_string(t));
		json_object_set_new(dep, line, a);
		const char *base = strrchr(line, '/') ? strrchr(line, '/') + 1 : line;
		char name[256];
		snprintf(name, sizeof name, "%.*s", (int)strcspn(base, "."), base);
		json_object_set_new(byname, name, json_string(line));
	}
	free(line);
	fclose(f);
	int rc = 0;
	for (size_t i = 0; i < sizeof wanted_modules / sizeof wanted_modules[0] && rc == 0; i++) {
		const char *p = json_string_value(json_object_get(byname, wanted_modules[i]));
		/* A module built into this kernel is not in modules.dep: nothing to load. */
		if (p)
			rc = add_module(b, dep, p, 0, e);
	}
	b->deps = dep;
	json_decref(byname);
	return rc;
}

static int cpio_busybox(struct build *b, struct cpio *c, struct err *e)
{
	if (cpio_add_file(c, "bin/busybox", 0755, b->busybox, e) < 0)
		return -1;
	char *argv[] = {(char *)b->busybox, "--list-full", NULL};
	char tmp[] = "/tmp/cellctl-busybox-XXXXXX";
	int fd = mkstemp(tmp);
	if (fd < 0)
		return err_sys(e, errno, "temporary file");
	close(fd);
	int rc = run_tool(argv, tmp, e);
	FILE *f = rc == 0 ? fopen(tmp, "re") : NULL;
	unlink(tmp);
	if (rc < 0)
		return -1;
	if (!f)
		return err_sys(e, errno, "busybox --list-full");
	char line[256];
	static const char *const dirs[] = {"bin/", "sbin/", "usr/bin/", "usr/sbin/"};
	while (rc == 0 && fgets(line, sizeof line, f)) {
		line[strcspn(line, "\n")] = 0;
		bool known = false;
		for (size_t i = 0; i < 4; i++)
			known |= strncmp(line, dirs[i], strlen(dirs[i])) == 0;
		/* No modprobe: the guest kernel runs /sbin/modprobe for every module
		 * request (crypto templates at boot among them), which could never
		 * succeed here (the initramfs has no /lib/modules) and costs a
		 * busybox exec each under TCG; without it the request fails at once. */
		if (!known || strcmp(line, "bin/busybox") == 0 || strcmp(line, "sbin/modprobe") == 0)
			continue;
		rc = cpio_add(c, line, S_IFLNK | 0777, "/bin/busybox", strlen("/bin/busybox"), e);
	}
	fclose(f);
	return rc;
}

static int write_initramfs(struct build *b, const char *path, struct err *e)
{
	FILE *f = fopen(path, "wbe");
	if (!f)
		return err_sys(e, errno, "%s", path);
	struct cpio c = {.f = f};
	static const char *const dirs[] = {"bin", "sbin", "usr", "usr/bin", "usr/sbin", "dev", "proc", "sys", "tmp",
					   "etc", "cellos", "cellos/modules.d", "run", "workspace", "root"};
	int rc = 0;
	for (size_t i = 0; i < sizeof dirs / sizeof dirs[0] && rc == 0; i++)
		rc = cpio_add(&c, dirs[i], S_IFDIR | (strcmp(dirs[i], "tmp") == 0 ? 01777 : 0755), NULL, 0, e);
	if (rc == 0)
		rc = cpio_add_file(&c, "init", 0755, b->init, e);
	if (rc == 0)
		rc = cpio_busybox(b, &c, e);
	static const char passwd[] = "root:x:0:0:root:/root:/bin/sh\ncellos:x:1000:1000:cellos:/workspace:/bin/sh\n";
	static const char group[] = "root:x:0:\ncellos:x:1000:\n";
	if (rc == 0)
		rc = cpio_add(&c, "etc/passwd", S_IFREG | 0644, passwd, strlen(passwd), e);
	if (rc == 0)
		rc = cpio_add(&c, "etc/group", S_IFREG | 0644, group, strlen(group), e);
	/* Modules under flat names, and the list cellos-init reads: one line per
	 * module, dependencies first, "<name> <file> <deps|-> [params]" (deps by
	 * name, comma-separated), so that it loads only what a boot needs. */
	char *list = NULL;
	size_t list_len = 0;
	FILE *lf = open_memstream(&list, &list_len);
	for (size_t i = 0; i < b->n_mods && rc == 0; i++) {
		const char *base = strrchr(b->mods[i], '/') + 1;
		char name[PATH_MAX], host[PATH_MAX * 2];
		snprintf(name, sizeof name, "cellos/modules.d/%s", base);
		snprintf(host, sizeof host, "%s/%s", b->moddir, b->mods[i]);
		rc = cpio_add_file(&c, name, 0644, host, e);
		/* No module needs a parameter today; the format carries them since
		 * finit_module never sees the kernel's command line. */
		fprintf(lf, "%.*s /%s ", (int)strcspn(base, "."), base, name);
		json_t *deps = json_object_get(b->deps, b->mods[i]);
		for (size_t k = 0; k < json_array_size(deps); k++) {
			const char *d = json_string_value(json_array_get(deps, k));
			const char *db = strrchr(d, '/') ? strrchr(d, '/') + 1 : d;
			fprintf(lf, "%s%.*s", k ? "," : "", (int)strcspn(db, "."), db);
		}
		fprintf(lf, "%s\n", json_array_size(deps) ? "" : "-");
	}
	fclose(lf);
	if (rc == 0)
		rc = cpio_add(&c, "cellos/modules", S_IFREG | 0644, list, list_len, e);
	free(list);
	if (rc == 0)
		rc = cpio_finish(&c, e);
	if (fclose(f) != 0 && rc == 0)
		rc = err_sys(e, errno, "%s", path);
	return rc;
}

/* The ELF inside the bzImage: the first LZ4 legacy-frame magic starts the
 * payload; what lz4 writes must be an ELF. */
static int extract_vmlinux(struct build *b, const char *out, struct err *e)
{
	int fd = open(b->kernel, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return err_sys(e, errno, "--kernel: %s", b->kernel);
	struct stat st;
	fstat(fd, &st);
	unsigned char *d = malloc((size_t)st.st_size);
	ssize_t n = d ? read(fd, d, (size_t)st.st_size) : -1;
	close(fd);
	if (n != st.st_size) {
		free(d);
		return err_set(e, "--kernel: cannot read %s", b->kernel);
	}
	static const unsigned char magic[] = {0x02, 0x21, 0x4c, 0x18};
	unsigned char *p = memmem(d, (size_t)n, magic, sizeof magic);
	if (!p) {
		free(d);
		return err_set(e, "--kernel: %s holds no LZ4-compressed kernel (a bzImage of linux-image-cloud-amd64 does)",
			       b->kernel);
	}
	char tmp[PATH_MAX + 16];
	snprintf(tmp, sizeof tmp, "%s.lz4", out);
	int t = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	size_t len = (size_t)(d + n - p);
	bool ok = t >= 0 && write(t, p, len) == (ssize_t)len;
	if (t >= 0)
		close(t);
	free(d);
	if (!ok) {
		unlink(tmp);
		return err_sys(e, errno, "%s", tmp);
	}
	/* The payload is followed by the bzImage's trailer, which lz4 reports as
	 * garbage after the stream: the ELF check below is what counts. */
	char *argv[] = {"lz4", "-dcq", tmp, NULL};
	struct err ig = {0};
	run_tool(argv, out, &ig);
	unlink(tmp);
	unsigned char hdr[4] = {0};
	int o = open(out, O_RDONLY | O_CLOEXEC);
	ssize_t r = o >= 0 ? read(o, hdr, 4) : -1;
	if (o >= 0)
		close(o);
	if (r != 4 || memcmp(hdr, "\x7f" "ELF", 4) != 0)
		return err_set(e, "--kernel: the LZ4 payload of %s is not an ELF kernel%s%s", b->kernel,
			       ig.msg[0] ? ": " : "", ig.msg);
	return 0;
}

static int hash_tree_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw);
static crypto_hash_sha256_state *tree_state;

static int hash_tree_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	char line[PATH_MAX + 128];
	int n = snprintf(line, sizeof line, "%s %o %lld %lld.%09ld\n", path, st->st_mode, (long long)st->st_size,
			 (long long)st->st_mtim.tv_sec, st->st_mtim.tv_nsec);
	crypto_hash_sha256_update(tree_state, (const unsigned char *)line, (size_t)n);
	return 0;
}

static int write_manifest(struct build *b, const char *inputs_hex, struct err *e)
{
	json_t *files = json_object();
	static const struct { enum vm_image_part part; const char *file; } parts[] = {
		{VM_IMG_VMLINUX, "vmlinux"}, {VM_IMG_BZIMAGE, "bzImage"},
		{VM_IMG_INITRAMFS, "initramfs.cpio"}, {VM_IMG_ROOTFS, "rootfs.ext4"},
	};
	for (size_t i = 0; i < 4; i++) {
		if (parts[i].part == VM_IMG_ROOTFS && !b->rootfs)
			continue;
		char path[PATH_MAX + 32], hex[65];
		snprintf(path, sizeof path, "%s/%s", b->out, parts[i].file);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || vm_sha256_fd(fd, hex, e) < 0) {
			if (fd >= 0)
				close(fd);
			json_decref(files);
			return err_sys(e, errno, "%s", path);
		}
		close(fd);
		json_object_set_new(files, vm_image_part_name(parts[i].part),
				    json_pack("{s:s, s:s}", "path", parts[i].file, "sha256", hex));
	}
	json_t *m = json_pack("{s:i, s:s, s:s, s:o}", "version", VM_MANIFEST_VERSION, "kernelRelease", b->release,
			      "inputDigestSha256", inputs_hex, "files", files);
	char tmp[PATH_MAX + 32], path[PATH_MAX + 32];
	snprintf(tmp, sizeof tmp, "%s/.manifest.json.tmp", b->out);
	snprintf(path, sizeof path, "%s/" VM_MANIFEST, b->out);
	int rc = json_dump_file(m, tmp, JSON_INDENT(2) | JSON_SORT_KEYS);
	json_decref(m);
	if (rc != 0 || rename(tmp, path) < 0) {
		unlink(tmp);
		return err_sys(e, errno, "%s", path);
	}
	return 0;
}

static int copy_file(const char *from, const char *to, struct err *e)
{
	char *argv[] = {"cp", "--", (char *)from, (char *)to, NULL};
	return run_tool(argv, NULL, e);
}

static int build(struct build *b, struct err *e)
{
	crypto_hash_sha256_init(&b->inputs);
	/* What this build makes of the inputs: a layout change rebuilds images. */
	crypto_hash_sha256_update(&b->inputs, (const unsigned char *)IMAGE_LAYOUT, sizeof IMAGE_LAYOUT);
	if (hash_input(b, b->kernel, e) < 0 || hash_input(b, b->init, e) < 0 || hash_input(b, b->busybox, e) < 0)
		return -1;
	for (size_t i = 0; i < b->n_mods; i++) {
		char p[PATH_MAX * 2];
		snprintf(p, sizeof p, "%s/%s", b->moddir, b->mods[i]);
		if (hash_input(b, p, e) < 0)
			return -1;
	}
	if (b->rootfs) {
		tree_state = &b->inputs;
		if (nftw(b->rootfs, hash_tree_entry, 32, FTW_PHYS) != 0)
			return err_sys(e, errno, "--rootfs: %s", b->rootfs);
	}
	unsigned char h[32];
	char hex[65];
	crypto_hash_sha256_final(&b->inputs, h);
	sodium_bin2hex(hex, sizeof hex, h, sizeof h);

	/* Cached: the image in DIR was made of these inputs and is intact. */
	char mpath[PATH_MAX + 32];
	snprintf(mpath, sizeof mpath, "%s/" VM_MANIFEST, b->out);
	json_t *old = json_load_file(mpath, 0, NULL);
	const char *old_hex = json_string_value(json_object_get(old, "inputDigestSha256"));
	bool same = old_hex && strcmp(old_hex, hex) == 0;
	json_decref(old);
	struct vm_image img;
	struct err ie = {0};
	if (same && vm_image_open(&img, b->out, &ie) == 0) {
		bool complete = !b->rootfs || img.f[VM_IMG_ROOTFS].present;
		vm_image_close(&img);
		if (complete) {
			printf("%s: up to date (inputs %s)\n", b->out, hex);
			return 0;
		}
	}
	unlink(mpath); /* the image is incomplete until the new manifest is in */
	/* Each file is written under a temporary name and renamed over the old
	 * one: a file of the old image (a hard link elsewhere, an fd a VMM has
	 * open) is replaced, never rewritten in place. */
	static const char *const names[] = {"bzImage", "vmlinux", "initramfs.cpio", "rootfs.ext4"};
	char tmp[4][PATH_MAX + 32], p[PATH_MAX + 32];
	for (int i = 0; i < 4; i++) {
		snprintf(tmp[i], sizeof tmp[i], "%s/.%s.tmp", b->out, names[i]);
		unlink(tmp[i]);
	}
	int rc = copy_file(b->kernel, tmp[0], e);
	if (rc == 0)
		rc = extract_vmlinux(b, tmp[1], e);
	if (rc == 0)
		rc = write_initramfs(b, tmp[2], e);
	if (rc == 0 && b->rootfs) {
		/* Room for the tree plus a quarter, at least 16 MiB. */
		char du_out[] = "/tmp/cellctl-du-XXXXXX";
		int fd = mkstemp(du_out);
		if (fd < 0)
			return err_sys(e, errno, "temporary file");
		close(fd);
		char *du[] = {"du", "-sk", "--", (char *)b->rootfs, NULL};
		long long kb = 0;
		FILE *f = NULL;
		if (run_tool(du, du_out, e) == 0 && (f = fopen(du_out, "re")) && fscanf(f, "%lld", &kb) != 1)
			kb = 0;
		if (f)
			fclose(f);
		unlink(du_out);
		char size[32];
		snprintf(size, sizeof size, "%lldk", kb + kb / 4 + 16384);
		char *mkfs[] = {"mkfs.ext4", "-q", "-F", "-L", "cellos-root", "-O", "^has_journal", "-E", "root_owner=0:0",
				"-d", (char *)b->rootfs, tmp[3], size, NULL};
		if (run_tool(mkfs, NULL, e) < 0)
			rc = err_prefix(e, "--rootfs");
	}
	for (int i = 0; i < 4 && rc == 0; i++) {
		snprintf(p, sizeof p, "%s/%s", b->out, names[i]);
		if (i == 3 && !b->rootfs)
			unlink(p);
		else if (rename(tmp[i], p) < 0)
			rc = err_sys(e, errno, "%s", p);
	}
	if (rc < 0) {
		for (int i = 0; i < 4; i++)
			unlink(tmp[i]);
		return -1;
	}
	if (write_manifest(b, hex, e) < 0)
		return -1;
	printf("%s: built (inputs %s)\n", b->out, hex);
	return 0;
}

int cellctl_image(const struct cellctl_cmd *cmd, int argc, char **argv)
{
	struct build b = {.out = CONFIG_VM_IMAGE_DIR_DEFAULT, .busybox = "/bin/busybox"};
	const struct cellctl_opt opts[] = {
		{"--out", &b.out, NULL}, {"--kernel", &b.kernel, NULL}, {"--rootfs", &b.rootfs, NULL},
		{"--init", &b.init, NULL}, {"--busybox", &b.busybox, NULL}, {NULL, NULL, NULL},
	};
	const char *pos[1];
	size_t npos;
	if (cellctl_args(cmd, argc, argv, opts, pos, 1, &npos) != CELLCTL_OK)
		return CELLCTL_ERROR;
	if (npos != 1 || strcmp(pos[0], "build") != 0)
		return cellctl_usage_error(cmd, "expected the subcommand build");
	struct err e = {0};
	char kernel[PATH_MAX], init[PATH_MAX], self[PATH_MAX];
	int rc = 0;
	if (!b.kernel && (rc = newest_kernel(kernel, sizeof kernel, &e)) == 0)
		b.kernel = kernel;
	if (rc == 0 && !b.init) {
		ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
		self[n > 0 ? n : 0] = 0;
		char *slash = strrchr(self, '/');
		if (slash)
			*slash = 0;
		snprintf(init, sizeof init, "%s/cellos-init", self);
		if (access(init, R_OK) != 0)
			snprintf(init, sizeof init, CELLOS_GUEST_DIR "/cellos-init");
		b.init = init;
	}
	struct stat st;
	if (rc == 0 && b.rootfs && (stat(b.rootfs, &st) < 0 || !S_ISDIR(st.st_mode)))
		rc = err_set(&e, "--rootfs: %s is not a directory", b.rootfs);
	if (rc == 0 && access(b.init, R_OK) != 0)
		rc = err_sys(&e, errno, "--init: %s (build cellos-init first: make)", b.init);
	if (rc == 0) {
		/* The release is what follows "vmlinuz-" in the kernel's name. */
		const char *base = strrchr(b.kernel, '/') ? strrchr(b.kernel, '/') + 1 : b.kernel;
		snprintf(b.release, sizeof b.release, "%s", strncmp(base, "vmlinuz-", 8) == 0 ? base + 8 : base);
		snprintf(b.moddir, sizeof b.moddir, "/lib/modules/%s", b.release);
		rc = plan_modules(&b, &e);
	}
	if (rc == 0 && mkdir(b.out, 0755) < 0 && errno != EEXIST)
		rc = err_sys(&e, errno, "--out: %s", b.out);
	if (rc == 0)
		rc = build(&b, &e);
	json_decref(b.deps);
	for (size_t i = 0; i < b.n_mods; i++)
		free(b.mods[i]);
	free(b.mods);
	if (rc < 0) {
		fprintf(stderr, "cellctl image: %s\n", e.msg);
		return CELLCTL_ERROR;
	}
	return CELLCTL_OK;
}
