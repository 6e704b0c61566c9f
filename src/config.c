#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <linux/magic.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "isolate/runuid.h"
#include "isolate/seccomp.h"
#include "util/nats_subject.h"
#include "util/b64url.h"
#include "util/kvm_dev.h"
#include "util/path.h"

extern char **environ;

/* A variable that is set but empty counts as unset, like upstream. */
static const char *env(const char *name)
{
	const char *v = getenv(name);
	return (v && *v) ? v : NULL;
}

static int parse_pos_ll(const char *s, long long *out)
{
	if (!s || !*s || !isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	char *end;
	long long v = strtoll(s, &end, 10);
	if (errno || *end || v <= 0)
		return -1;
	*out = v;
	return 0;
}

static bool is_true(const char *v) { return v && strcmp(v, "1") == 0; }

/* CELLOS_SUBPROCESS_UNSHARE grammar (SPEC §3). Unset means `all`: secure by
 * default. `user` that comes from `all` (or the default) may fall back where the
 * kernel refuses a user namespace; one listed by name may not (*user_required). */
static int parse_unshare(const char *v, unsigned *out, bool *user_required, bool *host_mode, struct err *e)
{
	const unsigned all = NS_NET | NS_MNT | NS_PID | NS_IPC | NS_UTS | NS_CGROUP | NS_USER;
	*out = 0;
	*user_required = false;
	*host_mode = false;
	if (!v || strcmp(v, "all") == 0) {
		*out = all;
		return 0;
	}
	if (strcmp(v, "0") == 0 || strcmp(v, "none") == 0) {
		*host_mode = true;
		return 0;
	}
	if (strcmp(v, "1") == 0) {
		*out = NS_PID | NS_IPC | NS_MNT | NS_NET;
		return 0;
	}
	static const struct { const char *n; unsigned bit; } names[] = {
		{"net", NS_NET}, {"mnt", NS_MNT}, {"mount", NS_MNT}, {"pid", NS_PID},
		{"ipc", NS_IPC}, {"uts", NS_UTS}, {"user", NS_USER}, {"cgroup", NS_CGROUP},
	};
	const char *p = v;
	while (*p) {
		size_t len = strcspn(p, ",");
		bool found = false;
		for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
			if (strlen(names[i].n) == len && strncmp(p, names[i].n, len) == 0) {
				*out |= names[i].bit;
				found = true;
			}
		if (!found)
			return err_set(e, "CELLOS_SUBPROCESS_UNSHARE: unknown namespace '%.*s' (expected 0, none, 1, all, or a comma list of net, mnt, pid, ipc, uts, user, cgroup)",
				       (int)len, p);
		p += len;
		if (*p == ',')
			p++;
	}
	*user_required = (*out & NS_USER) != 0;
	/* A private /proc for the PID namespace needs a mount namespace; and a mount
	 * namespace without a PID namespace would leave the supervisor visible to
	 * the workload, which could SIGSTOP or ptrace-attach to it by pid. */
	if (*out & (NS_PID | NS_MNT))
		*out |= NS_PID | NS_MNT;
	return 0;
}

/* CELLOS_CELL_UID / CELLOS_CELL_GID: one fixed host id, never 0 (nor -1). */
static int parse_id(const char *var, const char *v, unsigned long *out, struct err *e)
{
	long long n;
	if (parse_pos_ll(v, &n) < 0 || n > 4294967294LL)
		return err_set(e, "%s: expected a host id from 1 to 4294967294 (never 0: the workload is never host root), got '%s'",
			       var, v);
	*out = (unsigned long)n;
	return 0;
}

/* The run's own host identity (SPEC §3): a range to allocate from, or one fixed
 * uid/gid for every cell. */
static int load_identity(struct config *cfg, struct err *e)
{
	const char *v;
	cfg->uid_first = RUNUID_FIRST_DEFAULT;
	cfg->uid_last = RUNUID_LAST_DEFAULT;
	if ((v = env("CELLOS_CELL_UID_RANGE")) && runuid_parse_range(v, &cfg->uid_first, &cfg->uid_last, e) < 0)
		return -1;
	const char *u = env("CELLOS_CELL_UID"), *g = env("CELLOS_CELL_GID");
	if (!u && g)
		return err_set(e, "CELLOS_CELL_GID: set without CELLOS_CELL_UID");
	if (!u)
		return 0;
	if (parse_id("CELLOS_CELL_UID", u, &cfg->fixed_uid, e) < 0)
		return -1;
	cfg->fixed_gid = cfg->fixed_uid;
	if (g && parse_id("CELLOS_CELL_GID", g, &cfg->fixed_gid, e) < 0)
		return -1;
	/* One identity shared by cells that could see each other's processes
	 * would let one read another's /proc/<pid>/environ (secrets). */
	if (cfg->backend == BACKEND_STUB && !(cfg->ns & NS_PID))
		return err_set(e, "CELLOS_CELL_UID: one fixed identity for every cell needs a PID namespace per cell (CELLOS_SUBPROCESS_UNSHARE with pid)");
	return 0;
}

static bool is_uuid(const char *s)
{
	if (strlen(s) != 36)
		return false;
	for (int i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return false;
		} else if (!isxdigit((unsigned char)s[i])) {
			return false;
		}
	}
	return true;
}

static char **split_prefixes(const char *v, struct err *e)
{
	size_t n = 1;
	for (const char *p = v; *p; p++)
		n += *p == ',';
	char **out = calloc(n + 1, sizeof *out);
	if (!out)
		return NULL;
	size_t k = 0;
	const char *p = v;
	while (*p) {
		size_t len = strcspn(p, ",");
		if (len) {
			if (p[0] != '/') {
				err_set(e, "CELLOS_RUN_ARGV0_ALLOW_PREFIXES: '%.*s' is not an absolute directory", (int)len, p);
				goto fail;
			}
			out[k++] = strndup(p, len);
		}
		p += len;
		if (*p == ',')
			p++;
	}
	return out;
fail:
	for (size_t i = 0; i < k; i++)
		free(out[i]);
	free(out);
	return NULL;
}

/* CELLOS_REDACT_EVENT_FIELDS (SPEC §8.3): a comma list of `data` keys, where
 * "defaults" stands for argv,path,reason. Blanks around names are dropped. */
static char **parse_redact(const char *v, struct err *e)
{
	static const char *const defaults[] = {"argv", "path", "reason"};
	size_t cap = 1;
	for (const char *p = v; *p; p++)
		cap += *p == ',';
	cap *= 3; /* each item may be "defaults" */
	char **out = calloc(cap + 1, sizeof *out);
	if (!out) {
		err_set(e, "CELLOS_REDACT_EVENT_FIELDS: out of memory");
		return NULL;
	}
	size_t k = 0;
	for (const char *p = v; *p;) {
		size_t len = strcspn(p, ",");
		const char *t = p;
		size_t tl = len;
		while (tl && isspace((unsigned char)*t))
			t++, tl--;
		while (tl && isspace((unsigned char)t[tl - 1]))
			tl--;
		bool is_defaults = tl == 8 && strncmp(t, "defaults", 8) == 0;
		for (size_t d = 0; d < (is_defaults ? 3u : tl ? 1u : 0u); d++) {
			const char *name = is_defaults ? defaults[d] : t;
			size_t nl = is_defaults ? strlen(name) : tl;
			bool dup = false;
			for (size_t i = 0; i < k && !dup; i++)
				dup = strlen(out[i]) == nl && strncmp(out[i], name, nl) == 0;
			if (!dup && !(out[k++] = strndup(name, nl))) {
				for (size_t i = 0; i + 1 < k; i++)
					free(out[i]);
				free(out);
				err_set(e, "CELLOS_REDACT_EVENT_FIELDS: out of memory");
				return NULL;
			}
		}
		p += len;
		if (*p == ',')
			p++;
	}
	return out;
}

/* An invalid signing configuration: upstream warns and emits unsigned events;
 * CELLOS_STRICT_CONFIG=1 and the hardened profile make it fatal (SPEC §9). The
 * messages never contain the key. */
static int signing_invalid(struct config *cfg, struct err *e, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int signing_invalid(struct config *cfg, struct err *e, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	sodium_free(cfg->signing_key);
	cfg->signing_key = NULL;
	cfg->signing_key_len = 0;
	cfg->signing = SIGN_OFF;
	cfg->signing_kid = NULL;
	if (cfg->strict_config || cfg->hardened)
		return err_set(e, "%s", msg);
	log_warn("%s; events are emitted unsigned", msg);
	return 0;
}

bool config_is_kid(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > CONFIG_KID_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] <= ' ' || s[i] > '~')
			return false;
	return true;
}

static int load_signing(struct config *cfg, struct err *e)
{
	const char *v = env("CELLOS_EVENT_SIGNING");
	if (!v || strcmp(v, "off") == 0)
		return 0;
	if (strcmp(v, "ed25519") == 0)
		cfg->signing = SIGN_ED25519;
	else if (strcmp(v, "hmac") == 0)
		cfg->signing = SIGN_HMAC;
	else
		return signing_invalid(cfg, e, "CELLOS_EVENT_SIGNING: unknown value '%s' (expected off, ed25519, hmac)", v);

	cfg->signing_kid = env("CELLOS_EVENT_SIGNING_KID");
	if (!cfg->signing_kid)
		return signing_invalid(cfg, e, "CELLOS_EVENT_SIGNING_KID: required when CELLOS_EVENT_SIGNING=%s", v);
	if (!config_is_kid(cfg->signing_kid))
		return signing_invalid(cfg, e, "CELLOS_EVENT_SIGNING_KID: must be 1-%d printable ASCII characters without spaces",
				       CONFIG_KID_MAX);

	/* getenv, not env(): the text is wiped in place below. */
	char *text = getenv("CELLOS_EVENT_SIGNING_KEY_BASE64");
	size_t tlen = text ? strlen(text) : 0;
	if (tlen == 0)
		return signing_invalid(cfg, e, "CELLOS_EVENT_SIGNING_KEY_BASE64: required when CELLOS_EVENT_SIGNING=%s", v);
	cfg->signing_key = sodium_malloc(tlen);
	if (!cfg->signing_key) {
		sodium_memzero(text, tlen);
		return err_set(e, "CELLOS_EVENT_SIGNING_KEY_BASE64: cannot allocate locked memory for the key");
	}
	int rc = b64url_decode(text, tlen, true, cfg->signing_key, tlen, &cfg->signing_key_len);
	/* The decoded copy is the only one we keep: wipe the text in our environment
	 * (as the env broker does for secrets) so it no longer shows in
	 * /proc/<pid>/environ or a memory image. */
	sodium_memzero(text, tlen);
	if (rc < 0)
		return signing_invalid(cfg, e, "CELLOS_EVENT_SIGNING_KEY_BASE64: not valid base64url (A-Z a-z 0-9 - _, '=' padding tolerated)");
	if (cfg->signing == SIGN_ED25519 && cfg->signing_key_len != 32)
		return signing_invalid(cfg, e, "CELLOS_EVENT_SIGNING_KEY_BASE64: an Ed25519 key is a 32-byte seed, this one decodes to %zu bytes",
				       cfg->signing_key_len);
	if (cfg->signing_key_len == 0)
		return signing_invalid(cfg, e, "CELLOS_EVENT_SIGNING_KEY_BASE64: empty key");
	if (cfg->signing == SIGN_HMAC && cfg->signing_key_len < 32)
		log_warn("CELLOS_EVENT_SIGNING_KEY_BASE64: an HMAC-SHA256 key of %zu bytes is shorter than the 32 RFC 2104 recommends",
			 cfg->signing_key_len);
	return 0;
}

/* An executable named by `var`: a path, or a name looked up in our PATH (the
 * message says where it looked). */
static int find_program(const char *var, const char *v, char *out, size_t size, struct err *e)
{
	if (strchr(v, '/')) {
		if (access(v, X_OK) < 0)
			return err_sys(e, errno, "%s: %s", var, v);
		if (!realpath(v, out))
			return err_sys(e, errno, "%s: %s", var, v);
		return 0;
	}
	const char *path = env("PATH");
	if (!path)
		path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
	char cand[4096];
	for (const char *it = path; path_search_next(&it, v, false, cand, sizeof cand);)
		if (access(cand, X_OK) == 0 && realpath(cand, out))
			return 0;
	return err_set(e, "%s: %s not found (tried each directory of PATH=%s)", var, v, path);
}

int config_find_program(const char *var, const char *v, char *out, size_t size, struct err *e)
{
	return find_program(var, v, out, size, e);
}

/* The gvisor and oci backends (SPEC §6.2). The cell's namespaces are those of
 * the OCI bundle, whatever CELLOS_SUBPROCESS_UNSHARE says (it is the stub's). */
static int load_oci(struct config *cfg, struct err *e)
{
	const char *v;
	cfg->ns = NS_NET | NS_MNT | NS_PID | NS_IPC | NS_UTS;
	/* Whether the runtime's dialect can express the filter is admission's
	 * question (admission.c), asked before anything is created. */
	cfg->seccomp_explicit = env("CELLOS_SECCOMP") != NULL;
	if (cfg->backend == BACKEND_OCI) {
		/* runc by default: crun (1.8) refuses hybrid cgroup hosts outright. */
		v = env("CELLOS_OCI_RUNTIME");
		if (!v)
			v = "runc";
		const char *base = strrchr(v, '/') ? strrchr(v, '/') + 1 : v;
		if (strcmp(base, "crun") != 0 && strcmp(base, "runc") != 0)
			return err_set(e, "CELLOS_OCI_RUNTIME: '%s' is not crun or runc (a name or a path)", v);
		return find_program("CELLOS_OCI_RUNTIME", v, cfg->oci_runtime_path, sizeof cfg->oci_runtime_path, e);
	}
	v = env("CELLOS_GVISOR_RUNSC");
	if (find_program("CELLOS_GVISOR_RUNSC", v ? v : "runsc", cfg->oci_runtime_path, sizeof cfg->oci_runtime_path,
			 e) < 0)
		return -1;
	if ((v = env("CELLOS_GVISOR_PLATFORM"))) {
		if (strcmp(v, "systrap") != 0 && strcmp(v, "ptrace") != 0 && strcmp(v, "kvm") != 0)
			return err_set(e, "CELLOS_GVISOR_PLATFORM: unknown platform '%s' (expected systrap, ptrace, kvm)", v);
		cfg->gvisor_platform = v;
	}
	if ((v = env("CELLOS_GVISOR_ROOTFS"))) {
		struct stat st;
		if (v[0] != '/' || !realpath(v, cfg->gvisor_rootfs) || stat(cfg->gvisor_rootfs, &st) < 0 ||
		    !S_ISDIR(st.st_mode))
			return err_set(e, "CELLOS_GVISOR_ROOTFS: '%s' is not an absolute path to a directory", v);
		if (strcmp(cfg->gvisor_rootfs, "/") == 0)
			cfg->gvisor_rootfs[0] = '\0';
	}
	v = env("CELLOS_GVISOR_NETWORK");
	cfg->gvisor_sandbox_net = v && strcmp(v, "sandbox") == 0;
	/* SPEC §6.2: sandbox when egress rules exist and the gateway is on. */
	if (cfg->gvisor_sandbox_net && cfg->network != NETWORK_GATEWAY)
		return err_set(e, "CELLOS_GVISOR_NETWORK: 'sandbox' needs CELLOS_NETWORK=gateway (the sandbox's network is the gateway's veth)");
	if (v && strcmp(v, "none") == 0 && cfg->network == NETWORK_GATEWAY)
		return err_set(e, "CELLOS_GVISOR_NETWORK: 'none' conflicts with CELLOS_NETWORK=gateway (unset it: cells with egress get 'sandbox')");
	if (v && !cfg->gvisor_sandbox_net && strcmp(v, "none") != 0)
		return err_set(e, "CELLOS_GVISOR_NETWORK: unknown value '%s' (expected none, sandbox)", v);
	return 0;
}

/* "ip:port" or "[ipv6]:port" into ip/port; -1 when it is not one. */
static int parse_ip_port(const char *v, char *ip, size_t size, int *port)
{
	const char *colon = v[0] == '[' ? strstr(v, "]:") : strrchr(v, ':');
	if (!colon)
		return -1;
	const char *host = v[0] == '[' ? v + 1 : v;
	size_t hlen = (size_t)(colon - host);
	const char *ps = colon + (v[0] == '[' ? 2 : 1);
	if (hlen == 0 || hlen >= size)
		return -1;
	memcpy(ip, host, hlen);
	ip[hlen] = '\0';
	unsigned char buf[16];
	long long p;
	if (inet_pton(v[0] == '[' ? AF_INET6 : AF_INET, ip, buf) != 1 || parse_pos_ll(ps, &p) < 0 || p > 65535)
		return -1;
	*port = (int)p;
	return 0;
}

/* SPEC §6.4: CELLOS_NETWORK, CELLOS_CELL_SUBNET, CELLOS_EGRESS_DENY_CIDRS,
 * CELLOS_DNS_UPSTREAM. The default denied CIDRs include the host's own
 * addresses, read here once (in the supervisor's netns). */
static int load_network(struct config *cfg, struct err *e)
{
	const char *v = env("CELLOS_NETWORK");
	if (!v || strcmp(v, "isolated") == 0)
		cfg->network = NETWORK_ISOLATED;
	else if (strcmp(v, "gateway") == 0)
		cfg->network = NETWORK_GATEWAY;
	else
		return err_set(e, "CELLOS_NETWORK: unknown value '%s' (expected isolated, gateway)", v);
	if (cfg->network == NETWORK_GATEWAY && cfg->backend == BACKEND_STUB && !(cfg->ns & NS_NET))
		return err_set(e, "CELLOS_NETWORK: 'gateway' needs a private network namespace (net in CELLOS_SUBPROCESS_UNSHARE)");
	/* The oci backend's network is not wired to the gateway: a cell must not
	 * run believing it has one. */
	if (cfg->network == NETWORK_GATEWAY && cfg->backend == BACKEND_OCI)
		return err_set(e,
			       "CELLOS_NETWORK: 'gateway' is not available with CELLOS_CELL_BACKEND=%s (stub, gvisor, qemu, "
			       "firecracker)",
			       config_backend_name(cfg->backend));
	v = env("CELLOS_CELL_SUBNET");
	if (gateway_parse_subnet(v ? v : GATEWAY_SUBNET_DEFAULT, &cfg->cell_subnet, e) < 0)
		return -1;
	if ((v = env("CELLOS_EGRESS_DENY_CIDRS"))) {
		if (gateway_parse_cidrs(v, &cfg->egress_deny, &cfg->n_egress_deny, e) < 0)
			return -1;
	} else if (cfg->network == NETWORK_GATEWAY &&
		   gateway_default_deny(&cfg->cell_subnet, &cfg->egress_deny, &cfg->n_egress_deny, e) < 0) {
		return -1;
	}
	if ((v = env("CELLOS_DNS_UPSTREAM")) &&
	    parse_ip_port(v, cfg->dns_upstream_ip, sizeof cfg->dns_upstream_ip, &cfg->dns_upstream_port) < 0)
		return err_set(e, "CELLOS_DNS_UPSTREAM: '%.64s' is not ip:port (e.g. 192.0.2.53:53 or [2001:db8::53]:53)", v);
	return 0;
}

/* The microVM backends (SPEC §6.3): the image, the VM's size, the VMM. */
static int load_vm(struct config *cfg, struct err *e)
{
	const char *v;
	/* The VMM first: without it nothing else matters. */
	if (cfg->backend == BACKEND_QEMU) {
		v = env("CELLOS_QEMU_BINARY");
		if (find_program("CELLOS_QEMU_BINARY", v ? v : "qemu-system-x86_64", cfg->qemu_binary,
				 sizeof cfg->qemu_binary, e) < 0)
			return -1;
		v = env("CELLOS_QEMU_ACCEL");
		if (v && strcmp(v, "kvm") != 0 && strcmp(v, "tcg") != 0)
			return err_set(e, "CELLOS_QEMU_ACCEL: unknown accelerator '%s' (expected kvm, tcg)", v);
		/* Usable: by QEMU, which runs as the run's uid (util/kvm_dev.h). */
		char why[512];
		cfg->qemu_kvm_gid = (gid_t)-1;
		bool kvm = kvm_dev_check("/dev/kvm", &cfg->qemu_kvm_gid, why, sizeof why) == 0;
		if (v && strcmp(v, "kvm") == 0 && !kvm)
			return err_set(e, "CELLOS_QEMU_ACCEL: kvm asked for, but /dev/kvm is not usable on this host: %s", why);
		cfg->qemu_kvm = v ? strcmp(v, "kvm") == 0 : kvm;
	}
	v = env("CELLOS_VM_IMAGE_DIR");
	if (!v)
		v = CONFIG_VM_IMAGE_DIR_DEFAULT;
	struct stat st;
	if (v[0] != '/')
		return err_set(e, "CELLOS_VM_IMAGE_DIR: '%s' is not an absolute path", v);
	if (!realpath(v, cfg->vm_image_dir) || stat(cfg->vm_image_dir, &st) < 0)
		return err_sys(e, errno, "CELLOS_VM_IMAGE_DIR: %s (make the guest image with `cellctl image build --out %s`)",
			       v, v);
	if (!S_ISDIR(st.st_mode))
		return err_set(e, "CELLOS_VM_IMAGE_DIR: %s is not a directory", v);
	const struct { const char *var, *value; long long def; long long *out; } nums[] = {
		{"CELLOS_VM_MEMORY_MIB", env("CELLOS_VM_MEMORY_MIB"), 256, &cfg->vm_memory_mib},
		{"CELLOS_VM_VCPUS", env("CELLOS_VM_VCPUS"), 1, &cfg->vm_vcpus},
		{"CELLOS_VM_OVERHEAD_MIB", env("CELLOS_VM_OVERHEAD_MIB"), 128, &cfg->vm_overhead_mib},
	};
	for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
		*nums[i].out = nums[i].def;
		if (nums[i].value && (parse_pos_ll(nums[i].value, nums[i].out) < 0 || *nums[i].out > (1LL << 20)))
			return err_set(e, "%s: expected a positive integer up to 1048576, got '%s'", nums[i].var,
				       nums[i].value);
	}
	return 0;
}

/* A binary variable: a path (absolute) or a bare name looked up in PATH when a
 * cell runs; a relative path would depend on the supervisor's cwd. */
static int check_binary_var(const char *var, const char *v, struct err *e)
{
	if (strchr(v, '/') && v[0] != '/')
		return err_set(e, "%s: '%s' is neither an absolute path nor a name to look up in PATH", var, v);
	return 0;
}

static int load_firecracker(struct config *cfg, struct err *e)
{
	const char *v;
	/* The VMM runs in the cell's netns (its TAP lives there) and nowhere else:
	 * the workload's own namespaces are the guest kernel's business. */
	cfg->ns = NS_NET;
	if (cfg->vm_vcpus > 32)
		return err_set(e, "CELLOS_VM_VCPUS: Firecracker runs at most 32 vCPUs, got %lld", cfg->vm_vcpus);
	cfg->fc_binary = env("CELLOS_FIRECRACKER_BINARY");
	if (!cfg->fc_binary)
		cfg->fc_binary = "firecracker";
	if (check_binary_var("CELLOS_FIRECRACKER_BINARY", cfg->fc_binary, e) < 0)
		return -1;
	cfg->fc_jailer = env("CELLOS_FIRECRACKER_JAILER_BINARY");
	if (cfg->fc_jailer && check_binary_var("CELLOS_FIRECRACKER_JAILER_BINARY", cfg->fc_jailer, e) < 0)
		return -1;
	/* The jailer mounts and chroots before it becomes Firecracker: no filter of
	 * ours can be on it. The default leaves the VMM to Firecracker's own
	 * filters; a filter asked for explicitly cannot be honoured (SPEC §3). */
	if (cfg->fc_jailer && env("CELLOS_SECCOMP") && cfg->seccomp_policy)
		return err_set(e, "CELLOS_SECCOMP: with CELLOS_FIRECRACKER_JAILER_BINARY the VMM has Firecracker's own filters only (the jailer needs mount and chroot); use off or leave it unset");
	cfg->fc_chroot_base = env("CELLOS_FIRECRACKER_CHROOT_BASE");
	if (cfg->fc_chroot_base && !cfg->fc_jailer)
		return err_set(e, "CELLOS_FIRECRACKER_CHROOT_BASE: only used with CELLOS_FIRECRACKER_JAILER_BINARY, which is not set");
	if (!cfg->fc_chroot_base)
		cfg->fc_chroot_base = CONFIG_FC_CHROOT_BASE_DEFAULT;
	if (cfg->fc_chroot_base[0] != '/' || strstr(cfg->fc_chroot_base, "/../") ||
	    (strlen(cfg->fc_chroot_base) >= 3 && strcmp(cfg->fc_chroot_base + strlen(cfg->fc_chroot_base) - 3, "/..") == 0))
		return err_set(e, "CELLOS_FIRECRACKER_CHROOT_BASE: '%s' is not an absolute path without ..", cfg->fc_chroot_base);
	cfg->fc_socket_dir = env("CELLOS_FIRECRACKER_SOCKET_DIR");
	if (!cfg->fc_socket_dir)
		cfg->fc_socket_dir = CONFIG_FC_SOCKET_DIR_DEFAULT;
	if (cfg->fc_socket_dir[0] != '/' || strstr(cfg->fc_socket_dir, "/../"))
		return err_set(e, "CELLOS_FIRECRACKER_SOCKET_DIR: '%s' is not an absolute path without ..", cfg->fc_socket_dir);
	if (strlen(cfg->fc_socket_dir) > CONFIG_FC_SOCKET_DIR_MAX)
		return err_set(e, "CELLOS_FIRECRACKER_SOCKET_DIR: '%s' is longer than %d bytes (the VM's sockets under it must fit a Unix socket address)",
			       cfg->fc_socket_dir, CONFIG_FC_SOCKET_DIR_MAX);
	/* Test-only (docs/reference.md): the device that stands for /dev/kvm in the
	 * admission check. It changes nothing else: Firecracker opens /dev/kvm
	 * itself and fails without it, so no cell ever runs without KVM. */
	cfg->fc_kvm_device = "/dev/kvm";
	if ((v = env("CELLOS_FIRECRACKER_KVM_DEVICE"))) {
		if (v[0] != '/')
			return err_set(e, "CELLOS_FIRECRACKER_KVM_DEVICE: '%s' is not an absolute path", v);
		cfg->fc_kvm_device = v;
	}
	return 0;
}

/* An export URL: only its scheme is checked here (libcurl parses the rest). The
 * value may hold credentials, so messages name the variable, never the value. */
static int check_url(const char *var, const char *v, struct err *e)
{
	if (strncasecmp(v, "http://", 7) != 0 && strncasecmp(v, "https://", 8) != 0)
		return err_set(e, "%s: must be an http:// or https:// URL (value not shown: it may hold credentials)", var);
	for (const char *p = v; *p; p++)
		if ((unsigned char)*p <= ' ' || *p == 0x7f)
			return err_set(e, "%s: a URL may not contain spaces or control characters", var);
	return 0;
}

/* Every <prefix>__<TARGET> variable of the environment, read once here. */
static int load_target_urls(const char *prefix, struct config_url **out, size_t *n, struct err *e)
{
	size_t plen = strlen(prefix);
	for (char **ep = environ; *ep; ep++) {
		if (strncmp(*ep, prefix, plen) != 0 || strncmp(*ep + plen, "__", 2) != 0)
			continue;
		const char *name = *ep + plen + 2, *eq = strchr(name, '=');
		if (!eq || !eq[1])
			continue; /* empty counts as unset */
		char var[256];
		snprintf(var, sizeof var, "%s__%.*s", prefix, (int)(eq - name), name);
		if ((size_t)(eq - name) >= sizeof((*out)->suffix) || eq == name)
			return err_set(e, "%s: invalid target suffix", var);
		if (check_url(var, eq + 1, e) < 0)
			return -1;
		struct config_url *grown = realloc(*out, (*n + 1) * sizeof **out);
		if (!grown)
			return err_set(e, "%s: out of memory", var);
		*out = grown;
		snprintf(grown[*n].suffix, sizeof grown[*n].suffix, "%.*s", (int)(eq - name), name);
		grown[(*n)++].url = eq + 1;
	}
	return 0;
}

/* Free a NULL-terminated list of malloc'd strings and the list itself. */
static void free_list(char **list)
{
	for (char **p = list; p && *p; p++)
		free(*p);
	free(list);
}

/* CELLOS_EXPORT_HOST_PATHS_ALLOW (SPEC §10): a comma list of absolute prefixes,
 * kept in path_clean's form so that the artifact paths compare by whole
 * components (path_within_any). ".." is refused: a prefix names a directory, not
 * a walk. Empty items are skipped. CELLOS_HOST_MOUNT_ALLOW_PREFIXES (SPEC §2
 * run.mounts) has the same form. */
static char **parse_host_allow(const char *var, const char *v, struct err *e)
{
	size_t cap = 1;
	for (const char *p = v; *p; p++)
		cap += *p == ',';
	char **out = calloc(cap + 1, sizeof *out);
	if (!out) {
		err_set(e, "%s: out of memory", var);
		return NULL;
	}
	size_t k = 0;
	for (const char *p = v; *p;) {
		size_t len = strcspn(p, ",");
		if (len) {
			char item[PATH_MAX], clean[PATH_MAX];
			bool ok = p[0] == '/' && len < sizeof item;
			if (ok) {
				memcpy(item, p, len);
				item[len] = '\0';
				ok = path_clean(item, clean, sizeof clean) == 0;
			}
			if (!ok) {
				err_set(e, "%s: '%.*s' is not an absolute path without '..'", var, (int)len, p);
				goto fail;
			}
			if (!(out[k++] = strdup(clean))) {
				err_set(e, "%s: out of memory", var);
				goto fail;
			}
		}
		p += len;
		if (*p == ',')
			p++;
	}
	return out;
fail:
	free_list(out);
	return NULL;
}

/* run.mounts (SPEC §2, §3): which host paths a document may mount, and whether
 * writable. Unset: none. */
static int load_host_mounts(struct config *cfg, struct err *e)
{
	const char *v;
	if ((v = env("CELLOS_HOST_MOUNT_ALLOW_PREFIXES")) &&
	    !(cfg->host_mount_allow = parse_host_allow("CELLOS_HOST_MOUNT_ALLOW_PREFIXES", v, e)))
		return -1;
	/* A typo must not read as "no": the operator meant something. */
	if ((v = env("CELLOS_HOST_MOUNT_ALLOW_RW")) && strcmp(v, "1") != 0 && strcmp(v, "0") != 0)
		return err_set(e, "CELLOS_HOST_MOUNT_ALLOW_RW: expected 1 or 0, got '%s'", v);
	cfg->host_mount_rw = is_true(v);
	return 0;
}

/* SPEC §10. Which target each artifact uses is decided with the document
 * (export_admit); here each variable is checked on its own. */
static int load_export(struct config *cfg, struct err *e)
{
	const char *v;
	cfg->export_max_bytes = CONFIG_EXPORT_MAX_BYTES_DEFAULT;
	cfg->export_http_timeout_ms = CONFIG_EXPORT_HTTP_TIMEOUT_MS_DEFAULT;
	if ((v = env("CELLOS_EXPORT_DIR"))) {
		struct stat st;
		if (!realpath(v, cfg->export_dir) || stat(cfg->export_dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
			cfg->export_dir[0] = '\0';
			return err_set(e, "CELLOS_EXPORT_DIR: '%s' is not an existing directory", v);
		}
	}
	if ((v = env("CELLOS_EXPORT_HOST_PATHS_ALLOW")) &&
	    !(cfg->export_host_allow = parse_host_allow("CELLOS_EXPORT_HOST_PATHS_ALLOW", v, e)))
		return -1;
	if ((cfg->export_http_url = env("CELLOS_EXPORT_HTTP_BASE_URL")) &&
	    check_url("CELLOS_EXPORT_HTTP_BASE_URL", cfg->export_http_url, e) < 0)
		return -1;
	if (load_target_urls("CELLOS_EXPORT_HTTP_BASE_URL", &cfg->export_http_urls, &cfg->n_export_http_urls, e) < 0 ||
	    load_target_urls("CELLOS_EXPORT_S3_PRESIGNED_URL", &cfg->export_s3_urls, &cfg->n_export_s3_urls, e) < 0)
		return -1;
	cfg->require_s3_export = is_true(env("CELL_OS_REQUIRE_S3_EXPORT"));
	if ((v = env("CELLOS_EXPORT_MAX_BYTES")) && parse_pos_ll(v, &cfg->export_max_bytes) < 0)
		return err_set(e, "CELLOS_EXPORT_MAX_BYTES: expected a positive integer (bytes), got '%s'", v);
	if ((v = env("CELLOS_EXPORT_HTTP_TIMEOUT_MS")) && parse_pos_ll(v, &cfg->export_http_timeout_ms) < 0)
		return err_set(e, "CELLOS_EXPORT_HTTP_TIMEOUT_MS: expected a positive integer (milliseconds), got '%s'", v);

	/* getenv, not env(): the token is wiped in place below. */
	char *tok = getenv("CELLOS_EXPORT_HTTP_BEARER_TOKEN");
	size_t tlen = tok ? strlen(tok) : 0;
	if (tlen == 0)
		return 0;
	bool bad = false;
	for (size_t i = 0; i < tlen; i++)
		bad |= (unsigned char)tok[i] < ' ' || tok[i] == 0x7f; /* would split the header */
	if (!bad && (cfg->export_bearer = sodium_malloc(tlen + 1)))
		memcpy(cfg->export_bearer, tok, tlen + 1);
	/* Ours is the only copy kept, in locked memory (as for secrets and the
	 * signing key): gone from /proc/<pid>/environ and any later memory image. */
	sodium_memzero(tok, tlen);
	if (bad)
		return err_set(e, "CELLOS_EXPORT_HTTP_BEARER_TOKEN: control characters are not allowed in a token");
	if (!cfg->export_bearer)
		return err_set(e, "CELLOS_EXPORT_HTTP_BEARER_TOKEN: cannot allocate locked memory for the token");
	return 0;
}

/* A path variable that must name a readable regular file (NATS credentials,
 * TLS material): checked here so a typo is a configuration error (125) naming
 * the variable, not a connection failure later. */
static int readable_file(const char *var, const char *path, struct err *e)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return err_sys(e, errno, "%s: '%s'", var, path);
	if (!S_ISREG(st.st_mode))
		return err_set(e, "%s: '%s' is not a regular file", var, path);
	if (access(path, R_OK) < 0)
		return err_sys(e, errno, "%s: '%s' is not readable", var, path);
	return 0;
}

void config_nats_free(struct nats_conn_opts *o)
{
	free_list(o->urls);
	o->urls = NULL;
}

int config_nats_load(struct nats_conn_opts *o, const char *url, struct err *e)
{
	const char *var = url ? "--server" : "CELLOS_NATS_URL";
	const char *v = url ? url : env("CELLOS_NATS_URL");
	if (!v)
		return 1;
	size_t n = 1;
	for (const char *p = v; *p; p++)
		n += *p == ',';
	char **urls = calloc(n + 1, sizeof *urls);
	if (!urls)
		return err_set(e, "%s: out of memory", var);
	size_t k = 0;
	for (const char *p = v; *p;) {
		size_t len = strcspn(p, ",");
		/* libnats takes host:port too, but a scheme says plainly whether the
		 * link is meant to be TLS. After it: [user[:pass]@]host[:port]. */
		size_t skip = strncmp(p, "nats://", 7) == 0 ? 7 : strncmp(p, "tls://", 6) == 0 ? 6 : 0;
		bool ok = skip && len > skip;
		for (size_t i = skip; ok && i < len; i++)
			ok = p[i] != '/' && (unsigned char)p[i] > 0x20 && p[i] != 0x7f;
		if (!ok) {
			err_set(e, "%s: '%.*s' is not a nats://host:port or tls://host:port URL", var, (int)len, p);
			free_list(urls);
			return -1;
		}
		if (!(urls[k++] = strndup(p, len))) {
			free_list(urls);
			return err_set(e, "%s: out of memory", var);
		}
		p += len;
		if (*p == ',' && !*++p) {
			free_list(urls);
			return err_set(e, "%s: '%s' ends with an empty entry", var, v);
		}
	}
	if (!k) {
		free(urls);
		return err_set(e, "%s: no URL in '%s'", var, v);
	}
	struct nats_conn_opts r = {.urls = urls,
				   .creds = env("CELLOS_NATS_CREDS"),
				   .tls_ca = env("CELLOS_NATS_TLS_CA"),
				   .tls_cert = env("CELLOS_NATS_TLS_CERT"),
				   .tls_key = env("CELLOS_NATS_TLS_KEY")};
	int rc = 0;
	if (!r.tls_cert != !r.tls_key)
		rc = err_set(e, "%s: a client certificate needs both CELLOS_NATS_TLS_CERT and CELLOS_NATS_TLS_KEY",
			     r.tls_cert ? "CELLOS_NATS_TLS_KEY" : "CELLOS_NATS_TLS_CERT");
	if (rc == 0 && r.creds)
		rc = readable_file("CELLOS_NATS_CREDS", r.creds, e);
	if (rc == 0 && r.tls_ca)
		rc = readable_file("CELLOS_NATS_TLS_CA", r.tls_ca, e);
	if (rc == 0 && r.tls_cert)
		rc = readable_file("CELLOS_NATS_TLS_CERT", r.tls_cert, e);
	if (rc == 0 && r.tls_key)
		rc = readable_file("CELLOS_NATS_TLS_KEY", r.tls_key, e);
	if (rc < 0) {
		free_list(urls);
		return -1;
	}
	*o = r;
	return 0;
}

/* CELLOS_NATS_RELAY_FD: the socket cellos-agent gave its supervisor
 * (docs/DESIGN.md, "The agent's relay"): an open AF_UNIX SOCK_SEQPACKET
 * socket, kept from the cell's workload. */
static int relay_fd(const char *v, struct err *e)
{
	char *end;
	errno = 0;
	long n = strtol(v, &end, 10);
	if (!*v || *end || errno || n < 3 || n > INT_MAX)
		return err_set(e, "CELLOS_NATS_RELAY_FD: '%s' is not a descriptor number (3 or more)", v);
	int fd = (int)n;
	if (fcntl(fd, F_GETFD) < 0)
		return err_sys(e, errno, "CELLOS_NATS_RELAY_FD: descriptor %d", fd);
	int domain = 0, type = 0;
	socklen_t l1 = sizeof domain, l2 = sizeof type;
	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &l1) < 0 || getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &l2) < 0)
		return err_set(e, "CELLOS_NATS_RELAY_FD: descriptor %d is not a socket", fd);
	if (domain != AF_UNIX || type != SOCK_SEQPACKET)
		return err_set(e, "CELLOS_NATS_RELAY_FD: descriptor %d is not an AF_UNIX SOCK_SEQPACKET socket", fd);
	/* The supervisor's alone: not inherited by anything it execs. */
	fcntl(fd, F_SETFD, FD_CLOEXEC);
	return fd;
}

/* The JetStream sink (SPEC §3, §8.4). CELL_OS_USE_NOOP_SINK=1 wins over
 * CELLOS_NATS_URL (its purpose is to turn the primary sink off), so JetStream
 * is then "not configured". */
static int load_nats(struct config *cfg, struct err *e)
{
	cfg->require_jetstream = is_true(env("CELL_OS_REQUIRE_JETSTREAM"));
	cfg->nats_ensure_stream = is_true(env("CELLOS_NATS_ENSURE_STREAM"));
	const char *v = env("CELLOS_NATS_SUBJECT");
	cfg->nats_subject = v ? v : NATS_SUBJECT_DEFAULT;
	if (nats_subject_check(cfg->nats_subject, e) < 0)
		return -1;
	int rc = config_nats_load(&cfg->nats, NULL, e);
	if (rc < 0)
		return -1;
	cfg->nats_on = rc == 0 && !cfg->noop_sink;
	if ((v = env("CELLOS_NATS_RELAY_FD"))) {
		if (rc != 0)
			return err_set(e, "CELLOS_NATS_RELAY_FD: set without CELLOS_NATS_URL (the relay carries the "
					  "JetStream sink)");
		int fd = relay_fd(v, e);
		if (fd < 0) {
			config_nats_free(&cfg->nats);
			return -1;
		}
		cfg->nats.relay = true;
		cfg->nats.relay_fd = fd;
	}
	if (cfg->require_jetstream && !cfg->nats_on)
		return err_set(e, "CELL_OS_REQUIRE_JETSTREAM: JetStream is required but not configured (%s)",
			       rc ? "CELLOS_NATS_URL is not set" : "CELL_OS_USE_NOOP_SINK=1 turns it off");
	return 0;
}

int config_load(struct config *cfg, struct err *e)
{
	memset(cfg, 0, sizeof *cfg);
	const char *v;

	cfg->log_level = LOG_INFO;
	if ((v = env("CELLOS_LOG"))) {
		static const char *const lv[] = {"error", "warn", "info", "debug"};
		int found = -1;
		for (int i = 0; i < 4; i++)
			if (strcmp(v, lv[i]) == 0)
				found = i;
		if (found < 0)
			return err_set(e, "CELLOS_LOG: invalid value '%s' (expected error, warn, info, debug)", v);
		cfg->log_level = (enum log_level)found;
	}
	log_set_level(cfg->log_level);

	cfg->strict_config = is_true(env("CELLOS_STRICT_CONFIG"));
	cfg->strict_spec = is_true(env("CELLOS_STRICT_SPEC"));

	v = env("CELLOS_CELL_BACKEND");
	if (!v || strcmp(v, "stub") == 0 || strcmp(v, "host") == 0)
		cfg->backend = BACKEND_STUB;
	else if (strcmp(v, "gvisor") == 0)
		cfg->backend = BACKEND_GVISOR;
	else if (strcmp(v, "oci") == 0)
		cfg->backend = BACKEND_OCI;
	else if (strcmp(v, "firecracker") == 0)
		cfg->backend = BACKEND_FIRECRACKER;
	/* SPEC §3: list what this build can run, never the backends it lacks. */
	else if (strcmp(v, "qemu") == 0)
		cfg->backend = BACKEND_QEMU;
	else
		return err_set(e, "CELLOS_CELL_BACKEND: unknown backend '%s' (this build runs stub, host, gvisor, oci, qemu, firecracker)", v);

	v = env("CELLOS_DEPLOYMENT_PROFILE");
	if (!v || strcmp(v, "portable") == 0)
		cfg->hardened = false;
	else if (strcmp(v, "hardened") == 0)
		cfg->hardened = true;
	else
		return err_set(e, "CELLOS_DEPLOYMENT_PROFILE: unknown profile '%s' (expected portable, hardened)", v);

	if (parse_unshare(env("CELLOS_SUBPROCESS_UNSHARE"), &cfg->ns, &cfg->user_required, &cfg->host_mode, e) < 0)
		return -1;
	if (load_identity(cfg, e) < 0)
		return -1;
	if (load_network(cfg, e) < 0)
		return -1;
	if (cfg->host_mode && cfg->backend == BACKEND_STUB)
		log_warn("CELLOS_SUBPROCESS_UNSHARE=%s: host mode, the cell shares every namespace of the host (the workload still runs as the run's own uid)",
			 env("CELLOS_SUBPROCESS_UNSHARE"));

	cfg->cgroup_parent = env("CELLOS_CGROUP_PARENT");
	if (cfg->cgroup_parent && cfg->cgroup_parent[0] != '/')
		return err_set(e, "CELLOS_CGROUP_PARENT: '%s' is not an absolute path", cfg->cgroup_parent);
	struct statfs sf;
	if (cfg->cgroup_parent && (statfs(cfg->cgroup_parent, &sf) < 0 ||
				   (sf.f_type != CGROUP2_SUPER_MAGIC && sf.f_type != CGROUP_SUPER_MAGIC)))
		return err_set(e, "CELLOS_CGROUP_PARENT: '%s' is not a directory of a mounted cgroup hierarchy (v2, or a v1 controller)",
			       cfg->cgroup_parent);

	if ((v = env("CELLOS_CGROUP_CPU_MAX"))) {
		char q[32], p[32], extra;
		if (sscanf(v, "%31s %31s %c", q, p, &extra) != 2 || parse_pos_ll(q, &cfg->cpu_quota) < 0 ||
		    parse_pos_ll(p, &cfg->cpu_period) < 0)
			return err_set(e, "CELLOS_CGROUP_CPU_MAX: expected \"<quota> <period>\" in microseconds, got '%s'", v);
		if (cfg->cpu_period < 1000 || cfg->cpu_period > 1000000)
			return err_set(e, "CELLOS_CGROUP_CPU_MAX: the period must be 1000-1000000 microseconds (the kernel's range), got %lld",
				       cfg->cpu_period);
	}

	/* A filter file is parsed here, at admission: a missing or malformed one is a
	 * configuration error before anything is created (docs/seccomp.md). Unset
	 * means the baseline: secure by default. */
	cfg->seccomp = "off";
	v = env("CELLOS_SECCOMP");
	if (v && strcmp(v, "off") == 0)
		log_warn("CELLOS_SECCOMP=off: the workload may use every system call");
	if (!v || strcmp(v, "off") != 0) {
		cfg->seccomp_policy = calloc(1, sizeof *cfg->seccomp_policy);
		if (!cfg->seccomp_policy)
			return err_set(e, "CELLOS_SECCOMP: out of memory");
		int rc;
		if (!v || strcmp(v, "baseline") == 0) {
			cfg->seccomp = "baseline";
			rc = seccomp_policy_baseline(cfg->seccomp_policy, e);
		} else if (strchr(v, '/')) {
			cfg->seccomp = "file";
			cfg->seccomp_file = v;
			rc = seccomp_policy_load_file(cfg->seccomp_policy, v, e);
		} else {
			rc = err_set(e, "'%s' is neither off, baseline nor a path to a filter file", v);
		}
		if (rc < 0) {
			free(cfg->seccomp_policy);
			cfg->seccomp_policy = NULL;
			return err_prefix(e, "CELLOS_SECCOMP");
		}
	}

	if ((v = env("CELLOS_RUN_TIMEOUT_MS")) && parse_pos_ll(v, &cfg->run_timeout_ms) < 0)
		return err_set(e, "CELLOS_RUN_TIMEOUT_MS: expected a positive integer, got '%s'", v);

	if ((v = env("CELLOS_RUN_ARGV0_ALLOW_PREFIXES"))) {
		cfg->argv0_prefixes = split_prefixes(v, e);
		if (!cfg->argv0_prefixes)
			return e && e->msg[0] ? -1 : err_set(e, "CELLOS_RUN_ARGV0_ALLOW_PREFIXES: out of memory");
	}

	v = env("CELLOS_BROKER");
	if (!v || strcmp(v, "env") == 0)
		cfg->broker = BROKER_ENV;
	else if (strcmp(v, "file") == 0)
		cfg->broker = BROKER_FILE;
	else
		return err_set(e, "CELLOS_BROKER: unknown broker '%s' (expected env, file)", v);

	cfg->jsonl_path = env("CELL_OS_JSONL_EVENTS");
	v = env("CELL_OS_JSONL_FSYNC");
	if (!v || strcmp(v, "close") == 0)
		cfg->jsonl_fsync = FSYNC_CLOSE;
	else if (strcmp(v, "event") == 0)
		cfg->jsonl_fsync = FSYNC_EVENT;
	else if (strcmp(v, "none") == 0)
		cfg->jsonl_fsync = FSYNC_NONE;
	else
		return err_set(e, "CELL_OS_JSONL_FSYNC: invalid value '%s' (expected close, event, none)", v);

	cfg->noop_sink = is_true(env("CELL_OS_USE_NOOP_SINK"));
	if (load_nats(cfg, e) < 0)
		return -1;

	cfg->dlq_dir = env("CELLOS_DLQ_DIR");
	if ((v = env("CELLOS_REDACT_EVENT_FIELDS")) && !(cfg->redact_fields = parse_redact(v, e)))
		return -1;
	if (load_signing(cfg, e) < 0)
		return -1;

	if ((cfg->backend == BACKEND_QEMU || cfg->backend == BACKEND_FIRECRACKER) && load_vm(cfg, e) < 0)
		return -1;
	if ((cfg->backend == BACKEND_GVISOR || cfg->backend == BACKEND_OCI) && load_oci(cfg, e) < 0)
		return -1;
	if (cfg->backend == BACKEND_FIRECRACKER && load_firecracker(cfg, e) < 0)
		return -1;
	if (load_export(cfg, e) < 0 || load_host_mounts(cfg, e) < 0)
		return -1;
	cfg->policy_pack = env("CELLOS_POLICY_PACK");

	if ((v = env("CELLOS_RUN_ID"))) {
		if (!is_uuid(v))
			return err_set(e, "CELLOS_RUN_ID: '%s' is not a UUID", v);
		for (int i = 0; i < 36; i++)
			cfg->run_id[i] = (char)tolower((unsigned char)v[i]);
	}
	return 0;
}

void config_free(struct config *cfg)
{
	if (cfg->argv0_prefixes) {
		for (char **p = cfg->argv0_prefixes; *p; p++)
			free(*p);
		free(cfg->argv0_prefixes);
	}
	cfg->argv0_prefixes = NULL;
	if (cfg->seccomp_policy) {
		seccomp_policy_free(cfg->seccomp_policy);
		free(cfg->seccomp_policy);
		cfg->seccomp_policy = NULL;
	}
	if (cfg->redact_fields) {
		for (char **p = cfg->redact_fields; *p; p++)
			free(*p);
		free(cfg->redact_fields);
	}
	cfg->redact_fields = NULL;
	sodium_free(cfg->signing_key); /* zeroes before unmapping; NULL is fine */
	cfg->signing_key = NULL;
	free_list(cfg->export_host_allow);
	cfg->export_host_allow = NULL;
	free_list(cfg->host_mount_allow);
	cfg->host_mount_allow = NULL;
	free(cfg->egress_deny);
	cfg->egress_deny = NULL;
	cfg->n_egress_deny = 0;
	free(cfg->export_http_urls);
	free(cfg->export_s3_urls);
	cfg->export_http_urls = cfg->export_s3_urls = NULL;
	cfg->n_export_http_urls = cfg->n_export_s3_urls = 0;
	sodium_free(cfg->export_bearer);
	cfg->export_bearer = NULL;
	config_nats_free(&cfg->nats);
}

const char *config_backend_name(enum backend_kind b)
{
	switch (b) {
	case BACKEND_STUB: return "stub";
	case BACKEND_GVISOR: return "gvisor";
	case BACKEND_FIRECRACKER: return "firecracker";
	case BACKEND_QEMU: return "qemu";
	case BACKEND_OCI: return "oci";
	}
	return "?";
}

char *config_named_env(const char *name)
{
	char *v = getenv(name);
	return (v && *v) ? v : NULL;
}
