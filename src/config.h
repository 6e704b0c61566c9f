/* Configuration of the supervisor (SPEC §3): the environment read into struct
 * config, each variable checked on its own (and against the others). No policy:
 * what a configuration means for a document, the hardened profile and the policy
 * pack are admission's (admission.h). Every getenv() of the program lives here,
 * except the variables a document names: the secret brokers' CELLOS_SECRET_<KEY>
 * (secrets/names.c). */
#ifndef CELLOS_CONFIG_H
#define CELLOS_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "events/sign_alg.h"
#include "isolate/gateway.h" /* struct cidr4: CELLOS_CELL_SUBNET, CELLOS_EGRESS_DENY_CIDRS */
#include "isolate/ns.h" /* NS_*: the namespaces of CELLOS_SUBPROCESS_UNSHARE */
#include "sink/fsync.h"
#include "sink/nats_opts.h"
#include "util/err.h"
#include "util/log.h"

struct seccomp_policy;

enum backend_kind { BACKEND_STUB = 0, BACKEND_GVISOR, BACKEND_FIRECRACKER, BACKEND_QEMU, BACKEND_OCI };
enum broker_kind { BROKER_ENV = 0, BROKER_FILE };
enum network_mode { NETWORK_ISOLATED = 0, NETWORK_GATEWAY };

/* CELLOS_EVENT_SIGNING_KID: 1 to this many printable ASCII characters, no spaces. */
#define CONFIG_KID_MAX SIGN_KID_MAX

/* A per-target export variable: <prefix>__<suffix>=<url>. */
struct config_url {
	char suffix[160];              /* <TARGET> as written in the variable name */
	const char *url;               /* borrowed from the environment */
};

struct config {
	enum backend_kind backend;
	bool hardened;
	unsigned ns;                   /* NS_* bits (isolate/ns.h) */
	bool user_required;            /* `user` listed by name: no fallback without it */
	bool host_mode;                /* CELLOS_SUBPROCESS_UNSHARE=0/none: explicitly none */
	/* The run's own host identity (SPEC §3): allocated per run from
	 * [uid_first, uid_last] (uid == gid), unless fixed_uid is set. */
	unsigned long uid_first, uid_last;
	unsigned long fixed_uid, fixed_gid; /* CELLOS_CELL_UID/_GID; 0: unset */
	const char *cgroup_parent;     /* NULL: default placement */
	long long cpu_quota, cpu_period; /* CELLOS_CGROUP_CPU_MAX, 0 if unset */
	const char *seccomp;           /* "off", "baseline" or "file" (CELLOS_SECCOMP, as reported) */
	struct seccomp_policy *seccomp_policy; /* parsed at admission; NULL when off */
	const char *seccomp_file;      /* CELLOS_SECCOMP when it names a filter file, else NULL */
	bool seccomp_explicit;         /* CELLOS_SECCOMP was set (gvisor, oci): a filter the runtime
	                                * cannot install is then an error, never skipped */
	long long run_timeout_ms;      /* 0: none */
	char **argv0_prefixes;         /* NULL-terminated or NULL */
	enum broker_kind broker;
	const char *jsonl_path;        /* NULL: no JSONL mirror */
	enum fsync_mode jsonl_fsync;
	bool noop_sink;
	/* NATS JetStream (SPEC §3, §8.4): the primary sink when nats_on. */
	bool nats_on;                  /* CELLOS_NATS_URL set and no CELL_OS_USE_NOOP_SINK */
	struct nats_conn_opts nats;    /* URLs (owned), credentials, TLS */
	const char *nats_subject;      /* CELLOS_NATS_SUBJECT or the default template */
	bool require_jetstream;        /* CELL_OS_REQUIRE_JETSTREAM=1 */
	bool nats_ensure_stream;       /* CELLOS_NATS_ENSURE_STREAM=1 */
	bool strict_config, strict_spec; /* CELLOS_STRICT_CONFIG=1, CELLOS_STRICT_SPEC=1 (admission adds hardened) */
	enum log_level log_level;
	char run_id[37];               /* CELLOS_RUN_ID or "" (fresh UUIDv4) */
	/* Events (SPEC §8.3, §8.5, §9). */
	char **redact_fields;          /* CELLOS_REDACT_EVENT_FIELDS, NULL-terminated; NULL: none */
	const char *dlq_dir;           /* CELLOS_DLQ_DIR or NULL; opened at admission */
	enum sign_alg signing;         /* SIGN_OFF when off, or invalid and lenient */
	const char *signing_kid;
	/* The decoded key, sodium_malloc'd (the base64 text in our environment is wiped
	 * once decoded). signer_new() wipes it as soon as it has derived its own state;
	 * config_free() releases it. */
	unsigned char *signing_key;
	size_t signing_key_len;
	/* OCI runtime backends (SPEC §6.2): gvisor (runsc) and oci (crun, runc). */
	char oci_runtime_path[4096];   /* CELLOS_GVISOR_RUNSC / CELLOS_OCI_RUNTIME, resolved in PATH */
	const char *gvisor_platform;   /* CELLOS_GVISOR_PLATFORM; NULL: detected */
	char gvisor_rootfs[4096];      /* CELLOS_GVISOR_ROOTFS (canonical); "": the host root */
	/* microVM backends (SPEC §6.3), shared by qemu and firecracker. */
	char vm_image_dir[4096];       /* CELLOS_VM_IMAGE_DIR (canonical) */
	long long vm_memory_mib;       /* CELLOS_VM_MEMORY_MIB, default 256 */
	long long vm_vcpus;            /* CELLOS_VM_VCPUS, default 1 */
	long long vm_overhead_mib;     /* CELLOS_VM_OVERHEAD_MIB, default 128 */
	char qemu_binary[4096];        /* CELLOS_QEMU_BINARY resolved in PATH */
	bool qemu_kvm;                 /* KVM (CELLOS_QEMU_ACCEL=kvm, or auto with a usable /dev/kvm), else TCG */
	gid_t qemu_kvm_gid;            /* /dev/kvm's group, which QEMU is given to open it; (gid_t)-1 without */
	/* Export (SPEC §10). URLs and the token are credentials: never logged, never
	 * in an event or an error message. */
	char export_dir[4096];         /* CELLOS_EXPORT_DIR (canonical); "": none */
	/* CELLOS_EXPORT_HOST_PATHS_ALLOW (ext): the host paths an export may read
	 * (path_clean form, NULL-terminated); NULL: none. */
	char **export_host_allow;
	const char *export_http_url;   /* CELLOS_EXPORT_HTTP_BASE_URL or NULL */
	struct config_url *export_http_urls; /* CELLOS_EXPORT_HTTP_BASE_URL__<TARGET> */
	size_t n_export_http_urls;
	struct config_url *export_s3_urls;   /* CELLOS_EXPORT_S3_PRESIGNED_URL__<TARGET> */
	size_t n_export_s3_urls;
	char *export_bearer;           /* CELLOS_EXPORT_HTTP_BEARER_TOKEN, sodium_malloc'd; NULL: none */
	bool require_s3_export;        /* CELL_OS_REQUIRE_S3_EXPORT=1 */
	long long export_max_bytes;    /* CELLOS_EXPORT_MAX_BYTES (ext), default 1 GiB */
	long long export_http_timeout_ms; /* CELLOS_EXPORT_HTTP_TIMEOUT_MS (ext): one attempt */
	/* run.mounts (ext): CELLOS_HOST_MOUNT_ALLOW_PREFIXES (path_clean form,
	 * NULL-terminated; NULL: no host mount allowed) and CELLOS_HOST_MOUNT_ALLOW_RW=1. */
	char **host_mount_allow;
	bool host_mount_rw;
	/* Network gateway (SPEC §6.4, isolate/gateway.h). */
	enum network_mode network;     /* CELLOS_NETWORK */
	struct cidr4 cell_subnet;      /* CELLOS_CELL_SUBNET (default GATEWAY_SUBNET_DEFAULT) */
	/* CELLOS_EGRESS_DENY_CIDRS, or the default list (loopback, link-local,
	 * multicast, ..., the host's own addresses, cell_subnet) under the gateway. */
	struct cidr4 *egress_deny;
	size_t n_egress_deny;
	/* CELLOS_DNS_UPSTREAM "ip:port": dns_upstream_ip "" when unset (then the
	 * first nameserver of the host's /etc/resolv.conf, for the DNS proxy). */
	char dns_upstream_ip[46];
	int dns_upstream_port;
	bool gvisor_sandbox_net;       /* CELLOS_GVISOR_NETWORK=sandbox */
	/* firecracker (SPEC §6.3). The binaries and /dev/kvm are looked at when a
	 * cell is to run (backend/fc_host.h), not here:
	 * `cellctl vm-config` must work on a machine that has neither. */
	const char *fc_binary;         /* CELLOS_FIRECRACKER_BINARY: a path, or a name in PATH */
	const char *fc_jailer;         /* CELLOS_FIRECRACKER_JAILER_BINARY or NULL: no jailer */
	const char *fc_chroot_base;    /* CELLOS_FIRECRACKER_CHROOT_BASE (jailer only) */
	const char *fc_socket_dir;     /* CELLOS_FIRECRACKER_SOCKET_DIR */
	const char *fc_kvm_device;     /* /dev/kvm; CELLOS_FIRECRACKER_KVM_DEVICE (tests only) */
	/* CELLOS_POLICY_PACK (SPEC §12): the pack's path, read and applied at
	 * admission (policy.h); NULL: none. */
	const char *policy_pack;
};

/* Where `cellctl image build` writes by default. */
#define CONFIG_VM_IMAGE_DIR_DEFAULT "/var/lib/cellos/vm-image"
#define CONFIG_FC_SOCKET_DIR_DEFAULT "/run/cellos/firecracker"
#define CONFIG_FC_CHROOT_BASE_DEFAULT "/srv/jailer"
/* Our per-cell directory under CELLOS_FIRECRACKER_SOCKET_DIR is <runId>/, and
 * Firecracker binds <dir>/<runId>/vsock.sock: its uds_path must fit the 108
 * bytes of a Unix socket address (with "_9000" and the NUL). */
#define CONFIG_FC_SOCKET_DIR_MAX 50

#define CONFIG_EXPORT_MAX_BYTES_DEFAULT (1LL << 30)
#define CONFIG_EXPORT_HTTP_TIMEOUT_MS_DEFAULT 300000LL

/* Read and check every variable. On error: -1 and a one-line message naming the
 * variable. Lenient variables only warn unless CELLOS_STRICT_CONFIG=1. */
int config_load(struct config *cfg, struct err *e);
void config_free(struct config *cfg);

/* CELLOS_NATS_URL (a comma list of nats:// or tls:// URLs), CELLOS_NATS_CREDS,
 * CELLOS_NATS_TLS_CA/_CERT/_KEY into *o; `url` (e.g. cellctl --server) replaces
 * CELLOS_NATS_URL when not NULL. 0 done, 1 no URL anywhere (o untouched), -1 with
 * *e naming the variable. Release with config_nats_free. Shared by the
 * supervisor, cellctl and the agent, so one environment serves them all. */
int config_nats_load(struct nats_conn_opts *o, const char *url, struct err *e);
void config_nats_free(struct nats_conn_opts *o);

const char *config_backend_name(enum backend_kind b);

/* The executable a variable names: an absolute path, or a name looked up in the
 * supervisor's PATH; its canonical path into out. -1 naming `var` when none. */
int config_find_program(const char *var, const char *v, char *out, size_t size, struct err *e);

/* A valid CELLOS_EVENT_SIGNING_KID: 1-CONFIG_KID_MAX printable ASCII, no spaces. */
bool config_is_kid(const char *s);

/* The value of a variable named on a tool's command line (cellctl verify
 * --hmac-key-env VAR), NULL when unset or empty; writable so it can be wiped. */
char *config_named_env(const char *name);

#endif
