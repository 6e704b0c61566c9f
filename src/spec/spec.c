/* The ExecutionCell document (SPEC §2): the rules of each section.
 *
 * The validator walks the known schema once, records every problem it meets as
 * "field.path: message" and keeps going, so a user can fix a document in one round.
 * It fills a scratch struct spec on the way; only a fully valid document reaches
 * the caller, anything else is released before spec_parse returns (spec_load.c).
 *
 * JSON null counts as "absent" for optional members: upstream deserialises with
 * serde, where `Option<T>` accepts null, and its documents must keep working. */
#include "spec/spec_internal.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/path.h"

#define API_VERSION "cellos.io/v1"
#define KIND "ExecutionCell"

#define ARGV_MAX_ENTRIES 4096
#define ARGV_MAX_BYTES (256 * 1024)
/* Converting milliseconds to nanoseconds must not overflow int64, and a run can
 * never outlive lifetime.ttlSeconds anyway: cap at the largest TTL in ms. */
#define TIMEOUT_MS_MAX (2147483647LL * 1000)
/* cpu.max / cpu.cfs_*: the kernel accepts a period of 1 ms to 1 s and a quota up
 * to 2^44-1 us (max_cfs_runtime); beyond that the cgroup write fails with EINVAL,
 * so say it here, naming the field. The quota's lower bound is SPEC's (>= 1) even
 * though the kernel wants >= 1000: whoever writes cpu.max has to raise it. */
#define CPU_PERIOD_MIN 1000
#define CPU_PERIOD_MAX 1000000
#define CPU_QUOTA_MAX ((1LL << 44) - 1)
/* pids.max rejects values above PID_MAX_LIMIT (4M on 64-bit), same reasoning. */
#define PIDS_MAX_LIMIT (4 * 1024 * 1024)

#define PORTABLE_ID_MSG "must match [A-Za-z0-9][A-Za-z0-9._-]{0,127} and must not contain '..'"
#define SECRET_NAME_MSG "must match [A-Za-z_][A-Za-z0-9_.-]{0,127}"
#define ENV_NAME_RULE "[A-Za-z_][A-Za-z0-9_]*"
/* Supervisor-set workload variables run.env may not replace (SPEC §2). */
static const char *const supervisor_env[] = {"CELLOS_CELL_ID", "CELLOS_RUN_ID", "CELLOS_SECRETS_DIR"};

/* ---- sections of the document ------------------------------------------------ */

static void validate_correlation(struct vctx *c, json_t *o, struct spec *s)
{
	const char *P = "spec.correlation";
	spec_check_known(c, o, P, spec_known_correlation);
	s->correlation = o;
	spec_member_string(c, o, P, "correlationId", false);
	spec_member_string(c, o, P, "platform", false);
	spec_member_string(c, o, P, "externalRunId", false);
	spec_member_string(c, o, P, "externalJobId", false);
	s->tenant_id = spec_member_string(c, o, P, "tenantId", false);
	if (s->tenant_id && !spec_is_subject_token(s->tenant_id))
		spec_fail(c, "spec.correlation.tenantId",
			  "must be non-empty without '.', '*', '>' or whitespace (it is a NATS subject token)");
	spec_member_string_map(c, o, P, "labels");
}

static void validate_secret_refs(struct vctx *c, json_t *arr, struct spec *s)
{
	size_t n = json_array_size(arr);
	if (n && !(s->secret_refs = calloc(n, sizeof *s->secret_refs))) {
		spec_oom(c);
		return;
	}
	s->n_secret_refs = n;
	json_t *seen = json_object();
	if (!seen) {
		spec_oom(c);
		return;
	}
	/* Broker variable -> the first ref that maps to it. Two refs of one variable
	 * would read one value (and the env broker wipes it once read, so the second
	 * would get an empty one). */
	json_t *vars = json_object();
	if (!vars) {
		json_decref(seen);
		spec_oom(c);
		return;
	}
	size_t i;
	json_t *v;
	json_array_foreach(arr, i, v) {
		char p[PATH_LEN], key[160], var[176];
		const char *name = spec_want_string(c, v, spec_at_index(p, "spec.authority.secretRefs", i));
		if (!name)
			continue;
		s->secret_refs[i] = name;
		if (!spec_is_secret_name(name)) {
			spec_fail(c, p, SECRET_NAME_MSG);
			continue;
		}
		if (!spec_first_use(c, seen, name)) {
			spec_fail(c, p, "duplicate name \"%s\"", name);
			continue;
		}
		spec_secret_key(name, key, sizeof key);
		snprintf(var, sizeof var, "CELLOS_SECRET_%s", key);
		json_t *first = json_object_get(vars, var);
		if (first)
			spec_fail(c, p, "\"%s\" maps to the same broker variable %s as \"%s\"", name, var,
				  json_string_value(first));
		else if (json_object_set_new(vars, var, json_string(name)) < 0)
			spec_oom(c);
	}
	json_decref(vars);
	json_decref(seen);
}

static void validate_egress_rule(struct vctx *c, json_t *r, const char *P, struct egress_rule *out)
{
	char p[PATH_LEN];
	long long port;
	if (!json_is_object(r)) {
		spec_fail(c, P, "must be an object");
		return;
	}
	spec_check_known(c, r, P, spec_known_egress_rule);
	out->host = spec_member_string(c, r, P, "host", true);
	if (out->host && spec_host_family(out->host) < 0)
		spec_fail(c, spec_at_key(p, P, "host"), "must be an IPv4/IPv6 address, a CIDR or a DNS name");
	if (spec_member_int(c, r, P, "port", true, 1, 65535, &port))
		out->port = (int)port;
	const char *proto = spec_member_string(c, r, P, "protocol", false);
	if (!proto || strcmp(proto, "tcp") == 0)
		out->proto = PROTO_TCP;
	else if (strcmp(proto, "udp") == 0)
		out->proto = PROTO_UDP;
	else
		spec_fail(c, spec_at_key(p, P, "protocol"), "must be \"tcp\" or \"udp\"");
}

static void validate_egress_rules(struct vctx *c, json_t *arr, struct spec *s)
{
	size_t n = json_array_size(arr);
	if (n && !(s->egress = calloc(n, sizeof *s->egress))) {
		spec_oom(c);
		return;
	}
	s->n_egress = n;
	size_t i;
	json_t *v;
	json_array_foreach(arr, i, v) {
		char p[PATH_LEN];
		validate_egress_rule(c, v, spec_at_index(p, "spec.authority.egressRules", i), &s->egress[i]);
	}
}

static void validate_resolver(struct vctx *c, json_t *r, const char *P)
{
	char p[PATH_LEN];
	if (!json_is_object(r)) {
		spec_fail(c, P, "must be an object");
		return;
	}
	spec_check_known(c, r, P, spec_known_resolver);
	const char *id = spec_member_string(c, r, P, "resolverId", true);
	if (id && !*id)
		spec_fail(c, spec_at_key(p, P, "resolverId"), "must not be empty");
	const char *proto = spec_member_string(c, r, P, "protocol", true);
	if (proto && strcmp(proto, "do53-udp") != 0)
		spec_fail(c, spec_at_key(p, P, "protocol"), "must be \"do53-udp\"");
	const char *addr = spec_member_string(c, r, P, "address", true);
	if (addr && !spec_is_ip_port(addr))
		spec_fail(c, spec_at_key(p, P, "address"), "must be ip:port (IPv6 as [addr]:port), port 1-65535");
}

static void validate_dns_authority(struct vctx *c, json_t *o, struct spec *s)
{
	const char *P = "spec.authority.dnsAuthority";
	size_t i;
	json_t *v, *arr;
	spec_check_known(c, o, P, spec_known_dns_authority);
	s->dns_authority = o;
	if ((arr = spec_member_array(c, o, P, "hostnameAllowlist", false))) {
		json_array_foreach(arr, i, v) {
			char p[PATH_LEN];
			const char *name =
				spec_want_string(c, v, spec_at_index(p, "spec.authority.dnsAuthority.hostnameAllowlist", i));
			if (name && !spec_is_dns_name(name))
				spec_fail(c, p, "must be a DNS name (a single leading '*.' allowed)");
		}
	}
	if ((arr = spec_member_array(c, o, P, "resolvers", false))) {
		json_array_foreach(arr, i, v) {
			char p[PATH_LEN];
			validate_resolver(c, v, spec_at_index(p, "spec.authority.dnsAuthority.resolvers", i));
		}
	}
}

static void validate_authority(struct vctx *c, json_t *o, struct spec *s)
{
	const char *P = "spec.authority";
	json_t *v;
	spec_check_known(c, o, P, spec_known_authority);
	if ((v = spec_member_array(c, o, P, "secretRefs", true)))
		validate_secret_refs(c, v, s);
	if ((v = spec_member_array(c, o, P, "egressRules", false)))
		validate_egress_rules(c, v, s);
	if ((v = spec_member_object(c, o, P, "dnsAuthority", false)))
		validate_dns_authority(c, v, s);
}

static void validate_argv(struct vctx *c, json_t *arr, struct spec *s)
{
	const char *P = "spec.run.argv";
	size_t n = json_array_size(arr);
	if (n == 0) {
		spec_fail(c, P, "must not be empty");
		return;
	}
	/* Past the limit, per-entry messages would only bury this one. */
	if (n > ARGV_MAX_ENTRIES) {
		spec_fail(c, P, "must have at most %d entries", ARGV_MAX_ENTRIES);
		return;
	}
	if (!(s->argv = calloc(n + 1, sizeof *s->argv))) {
		spec_oom(c);
		return;
	}
	s->argc = n;
	size_t total = 0, i;
	json_t *v;
	json_array_foreach(arr, i, v) {
		char p[PATH_LEN];
		const char *a = spec_want_string(c, v, spec_at_index(p, P, i));
		if (!a)
			continue;
		/* execvp("") can only fail with ENOENT: say so now. */
		if (i == 0 && !*a)
			spec_fail(c, p, "must not be empty");
		total += strlen(a) + 1; /* as execve counts it: with the terminator */
		s->argv[i] = a;
	}
	if (total > ARGV_MAX_BYTES)
		spec_fail(c, P, "must total at most %d bytes (256 KiB)", ARGV_MAX_BYTES);
}

static bool is_supervisor_env(const char *name)
{
	for (size_t i = 0; i < sizeof supervisor_env / sizeof supervisor_env[0]; i++)
		if (strcmp(name, supervisor_env[i]) == 0)
			return true;
	return false;
}

/* secret_refs is filled by then: authority is validated before run. */
static bool is_secret_ref(const struct spec *s, const char *name)
{
	for (size_t i = 0; i < s->n_secret_refs; i++)
		if (s->secret_refs[i] && strcmp(s->secret_refs[i], name) == 0)
			return true;
	return false;
}

/* env delivery sets each secret under its ref's name: it must be one the
 * environment can carry (SPEC §2). Names that already broke the general rule
 * were reported once, not again here. */
static void check_env_delivery_names(struct vctx *c, const struct spec *s)
{
	for (size_t i = 0; i < s->n_secret_refs; i++) {
		const char *name = s->secret_refs[i];
		char p[PATH_LEN];
		if (name && spec_is_secret_name(name) && !spec_is_env_name(name))
			spec_fail(c, spec_at_index(p, "spec.authority.secretRefs", i),
				  "\"%s\" is not an environment variable name (" ENV_NAME_RULE "), which "
				  "spec.run.secretDelivery \"env\" needs (rename it, or use \"file\")",
				  name);
	}
}

static void validate_env(struct vctx *c, json_t *o, struct spec *s)
{
	const char *P = "spec.run.env";
	size_t n = json_object_size(o), i = 0;
	if (n && !(s->env = calloc(n, sizeof *s->env))) {
		spec_oom(c);
		return;
	}
	s->n_env = n;
	const char *key;
	json_t *v;
	json_object_foreach(o, key, v) {
		char p[PATH_LEN];
		spec_at_key(p, P, key);
		if (!spec_is_env_name(key))
			spec_fail(c, p, "name must match " ENV_NAME_RULE);
		else if (is_supervisor_env(key))
			spec_fail(c, p, "is set by the supervisor; run.env may not set it");
		else if (is_secret_ref(s, key))
			spec_fail(c, p, "names a secret of spec.authority.secretRefs, whose value only the broker may set");
		s->env[i].key = key;
		s->env[i].value = spec_want_string(c, v, p);
		i++;
	}
}

static void validate_limits(struct vctx *c, json_t *o, struct spec *s)
{
	const char *P = "spec.run.limits";
	spec_check_known(c, o, P, spec_known_limits);
	spec_member_int(c, o, P, "memoryMaxBytes", false, 1, LLONG_MAX, &s->memory_max_bytes);
	json_t *cpu = spec_member_object(c, o, P, "cpuMax", false);
	if (cpu) {
		const char *CP = "spec.run.limits.cpuMax";
		spec_check_known(c, cpu, CP, spec_known_cpu_max);
		spec_member_int(c, cpu, CP, "quotaMicros", true, 1, CPU_QUOTA_MAX, &s->cpu_quota_micros);
		spec_member_int(c, cpu, CP, "periodMicros", false, CPU_PERIOD_MIN, CPU_PERIOD_MAX, &s->cpu_period_micros);
	}
	spec_member_int(c, o, P, "pidsMax", false, 1, PIDS_MAX_LIMIT, &s->pids_max);
	spec_member_int(c, o, P, "gracefulShutdownSeconds", false, 0, INT32_MAX, &s->graceful_shutdown_seconds);
}

/* run.mounts (SPEC §2): the document's own rules, every problem reported.
 * Whether the host allows a source (CELLOS_HOST_MOUNT_ALLOW_PREFIXES, _RW, the
 * profile) and whether the cell can have mounts at all is the configuration's
 * question, answered at admission (hostmount/hostmount.h: mounts_admit). */
static char *const mount_target_forbidden[] = {"/proc", "/sys", "/dev", "/run/cellos", NULL};

static void check_mount_target(struct vctx *c, const char *P, const char *target, const char *workdir,
			       json_t *targets, size_t i)
{
	char clean[PATH_MAX], wd[PATH_MAX];
	if (!spec_is_clean_abs_path(target) || path_clean(target, clean, sizeof clean) < 0) {
		spec_fail(c, P, "must be an absolute path without '..' components");
		return;
	}
	if (!clean[0]) {
		spec_fail(c, P, "must not be / (the cell's root)");
		return;
	}
	for (char *const *f = mount_target_forbidden; *f; f++) {
		char *const one[] = {*f, NULL};
		if (path_within_any(clean, one)) {
			spec_fail(c, P, "must not be %s or lie under it (the cell's %s belongs to the supervisor)", *f, *f);
			return;
		}
	}
	/* Nor above one of them: only /run can be ("/" is refused), and the cell's
	 * /run/cellos (its secrets directory) is made beneath it after the mounts. */
	char *const here[] = {clean, NULL};
	if (path_within_any("/run/cellos", here)) {
		spec_fail(c, P, "must not be %s: the cell's /run/cellos lies beneath it", clean);
		return;
	}
	if (strcmp(clean, "/etc/resolv.conf") == 0) {
		spec_fail(c, P, "must not be /etc/resolv.conf (the cell's resolver configuration belongs to the supervisor)");
		return;
	}
	if (workdir && spec_is_clean_abs_path(workdir) && path_clean(workdir, wd, sizeof wd) == 0 && strcmp(wd, clean) == 0) {
		spec_fail(c, P, "%s is run.workingDirectory, the cell's fresh workspace: mount inside it instead", target);
		return;
	}
	json_t *first = json_object_get(targets, clean);
	if (first) {
		spec_fail(c, P, "%s is already the target of spec.run.mounts[%lld]: no two mounts on one target", target,
			  (long long)json_integer_value(first));
		return;
	}
	if (json_object_set_new(targets, clean, json_integer((json_int_t)i)) < 0)
		spec_oom(c);
}

static void validate_mounts(struct vctx *c, json_t *arr, struct spec *s)
{
	const char *P = "spec.run.mounts";
	size_t n = json_array_size(arr);
	if (n > SPEC_MOUNTS_MAX) {
		spec_fail(c, P, "must have at most %d entries", SPEC_MOUNTS_MAX);
		return;
	}
	if (n && !(s->mounts = calloc(n, sizeof *s->mounts))) {
		spec_oom(c);
		return;
	}
	s->n_mounts = n;
	json_t *targets = json_object(); /* clean target -> index of its first mount */
	if (!targets) {
		spec_oom(c);
		return;
	}
	size_t i;
	json_t *m;
	json_array_foreach(arr, i, m) {
		char at[PATH_LEN], p[PATH_LEN];
		struct host_mount *out = &s->mounts[i];
		spec_at_index(at, P, i);
		out->read_only = true;
		if (!json_is_object(m)) {
			spec_fail(c, at, "must be an object");
			continue;
		}
		spec_check_known(c, m, at, spec_known_mount);
		out->source = spec_member_string(c, m, at, "source", true);
		if (out->source && !spec_is_clean_abs_path(out->source))
			spec_fail(c, spec_at_key(p, at, "source"), "must be an absolute path without '..' components");
		out->target = spec_member_string(c, m, at, "target", true);
		if (out->target)
			check_mount_target(c, spec_at_key(p, at, "target"), out->target, s->working_directory, targets, i);
		json_t *ro = spec_member(m, "readOnly");
		if (ro && !json_is_boolean(ro))
			spec_fail(c, spec_at_key(p, at, "readOnly"), "must be a boolean");
		else if (ro)
			out->read_only = json_is_true(ro);
	}
	json_decref(targets);
}

static void validate_run(struct vctx *c, json_t *o, struct spec *s)
{
	const char *P = "spec.run";
	json_t *v;
	spec_check_known(c, o, P, spec_known_run);
	s->has_run = true;
	if ((v = spec_member_array(c, o, P, "argv", true)))
		validate_argv(c, v, s);

	const char *d = spec_member_string(c, o, P, "secretDelivery", false);
	if (!d || strcmp(d, "env") == 0) {
		s->delivery = DELIVERY_ENV;
		if (d || !spec_member(o, "secretDelivery")) /* not after "must be a string" */
			check_env_delivery_names(c, s);
	} else if (strcmp(d, "file") == 0)
		s->delivery = DELIVERY_FILE;
	else if (strcmp(d, "runtimeBroker") == 0 || strcmp(d, "runtimeLeasedBroker") == 0)
		spec_fail(c, "spec.run.secretDelivery", "\"%s\" is not supported", d);
	else
		spec_fail(c, "spec.run.secretDelivery", "must be \"env\" or \"file\"");

	s->working_directory = spec_member_string(c, o, P, "workingDirectory", false);
	if (s->working_directory && !spec_is_clean_abs_path(s->working_directory))
		spec_fail(c, "spec.run.workingDirectory", "must be an absolute path without '..' components");
	if ((v = spec_member_object(c, o, P, "env", false)))
		validate_env(c, v, s);
	spec_member_int(c, o, P, "timeoutMs", false, 1, TIMEOUT_MS_MAX, &s->timeout_ms);
	if ((v = spec_member_object(c, o, P, "limits", false)))
		validate_limits(c, v, s);
	if ((v = spec_member_array(c, o, P, "mounts", false)))
		validate_mounts(c, v, s);
}

/* Returns false when the entry has no usable name (references to it cannot be
 * checked then). */
static bool validate_target(struct vctx *c, json_t *t, const char *P, struct export_target *out, json_t *names)
{
	char p[PATH_LEN];
	if (!json_is_object(t)) {
		spec_fail(c, P, "must be an object");
		return false;
	}
	spec_check_known(c, t, P, spec_known_target);
	out->name = spec_member_string(c, t, P, "name", true);
	if (out->name) {
		/* Recorded even when malformed, so it is reported once and not again
		 * by every reference to it. */
		bool fresh = spec_first_use(c, names, out->name);
		if (!spec_is_portable_id(out->name))
			spec_fail(c, spec_at_key(p, P, "name"), PORTABLE_ID_MSG);
		else if (!fresh)
			spec_fail(c, spec_at_key(p, P, "name"), "duplicate target name \"%s\"", out->name);
	}
	out->kind = spec_member_string(c, t, P, "kind", true);
	if (out->kind && strcmp(out->kind, "local") != 0 && strcmp(out->kind, "http") != 0 &&
	    strcmp(out->kind, "s3") != 0)
		spec_fail(c, spec_at_key(p, P, "kind"), "must be \"local\", \"http\" or \"s3\"");
	out->bucket = spec_member_string(c, t, P, "bucket", false);
	out->key_prefix = spec_member_string(c, t, P, "keyPrefix", false);
	return out->name != NULL;
}

static void validate_artifact(struct vctx *c, json_t *a, const char *P, struct artifact *out, json_t *names,
			      json_t *targets)
{
	char p[PATH_LEN];
	if (!json_is_object(a)) {
		spec_fail(c, P, "must be an object");
		return;
	}
	spec_check_known(c, a, P, spec_known_artifact);
	out->name = spec_member_string(c, a, P, "name", true);
	if (out->name) {
		/* Recorded even when malformed, so it is reported once and not again
		 * by every reference to it. */
		bool fresh = spec_first_use(c, names, out->name);
		if (!spec_is_portable_id(out->name))
			spec_fail(c, spec_at_key(p, P, "name"), PORTABLE_ID_MSG);
		else if (!fresh)
			spec_fail(c, spec_at_key(p, P, "name"), "duplicate artifact name \"%s\"", out->name);
	}
	out->path = spec_member_string(c, a, P, "path", true);
	if (out->path && !spec_is_clean_abs_path(out->path))
		spec_fail(c, spec_at_key(p, P, "path"), "must be an absolute path without '..' components");
	/* A target that names nothing declared is a typo, not a request for the
	 * default target: refusing it keeps an artifact from going somewhere else.
	 * targets is NULL when the declared list is itself broken (already reported). */
	out->target = spec_member_string(c, a, P, "target", false);
	if (out->target && targets && !json_object_get(targets, out->target))
		spec_fail(c, spec_at_key(p, P, "target"), "must name a target declared in spec.export.targets");
}

static void validate_export(struct vctx *c, json_t *o, struct spec *s)
{
	const char *P = "spec.export";
	size_t i, n;
	json_t *v, *arr;
	json_t *target_names = json_object(), *artifact_names = json_object();
	if (!target_names || !artifact_names) {
		spec_oom(c);
		goto out;
	}
	spec_check_known(c, o, P, spec_known_export);
	/* Targets first: artifacts refer to them. */
	bool names_complete = !spec_member(o, "targets") || json_is_array(spec_member(o, "targets"));
	if ((arr = spec_member_array(c, o, P, "targets", false))) {
		n = json_array_size(arr);
		if (n && !(s->targets = calloc(n, sizeof *s->targets))) {
			spec_oom(c);
			goto out;
		}
		s->n_targets = n;
		json_array_foreach(arr, i, v) {
			char p[PATH_LEN];
			if (!validate_target(c, v, spec_at_index(p, "spec.export.targets", i), &s->targets[i],
					     target_names))
				names_complete = false;
		}
	}
	if ((arr = spec_member_array(c, o, P, "artifacts", false))) {
		n = json_array_size(arr);
		if (n && !(s->artifacts = calloc(n, sizeof *s->artifacts))) {
			spec_oom(c);
			goto out;
		}
		s->n_artifacts = n;
		json_array_foreach(arr, i, v) {
			char p[PATH_LEN];
			validate_artifact(c, v, spec_at_index(p, "spec.export.artifacts", i), &s->artifacts[i],
					  artifact_names, names_complete ? target_names : NULL);
		}
	}
out:
	json_decref(target_names);
	json_decref(artifact_names);
}

static void validate_spec(struct vctx *c, json_t *o, struct spec *s)
{
	const char *P = "spec";
	json_t *v;
	spec_check_known(c, o, P, spec_known_spec);

	s->id = spec_member_string(c, o, P, "id", true);
	if (s->id && !spec_is_portable_id(s->id))
		spec_fail(c, "spec.id", PORTABLE_ID_MSG);
	if ((v = spec_member_object(c, o, P, "correlation", false)))
		validate_correlation(c, v, s);
	if ((v = spec_member_object(c, o, P, "authority", true)))
		validate_authority(c, v, s);

	/* lifetime exists only to carry ttlSeconds: when it is missing, name the
	 * field the user actually has to add. */
	v = spec_member(o, "lifetime");
	if (!v)
		spec_fail(c, "spec.lifetime.ttlSeconds", "required integer 1-2147483647");
	else if (!json_is_object(v))
		spec_fail(c, "spec.lifetime", "must be an object");
	else {
		spec_check_known(c, v, "spec.lifetime", spec_known_lifetime);
		spec_member_int(c, v, "spec.lifetime", "ttlSeconds", true, 1, INT32_MAX, &s->ttl_seconds);
	}

	if ((v = spec_member_object(c, o, P, "run", false)))
		validate_run(c, v, s);
	if ((v = spec_member_object(c, o, P, "export", false)))
		validate_export(c, v, s);
	s->policy = spec_member_string_map(c, o, P, "policy");
	s->identity = spec_member_string_map(c, o, P, "identity");
	s->placement = spec_member_string_map(c, o, P, "placement");
}

void spec_validate_document(struct vctx *c, json_t *root, struct spec *s)
{
	json_t *v;
	if (!json_is_object(root)) {
		spec_fail(c, "document", "must be a JSON object");
		return;
	}
	spec_check_known(c, root, "", spec_known_top);
	spec_member_literal(c, root, "", "apiVersion", API_VERSION);
	spec_member_literal(c, root, "", "kind", KIND);
	if ((v = spec_member_object(c, root, "", "spec", true)))
		validate_spec(c, v, s);
}
