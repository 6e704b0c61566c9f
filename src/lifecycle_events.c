/* Event payloads of the lifecycle: see lifecycle_events.h. */
#include "lifecycle_events.h"

#include "config.h"
#include "events/event.h"
#include "hostmount/hostmount.h"

static json_t *correlation(const struct spec *s) { return s->correlation ? json_deep_copy(s->correlation) : NULL; }

json_t *lifecycle_failed_data(const char *spec_id, const char *phase, const char *reason, const char *message)
{
	return json_pack("{s:s, s:s, s:s, s:o}", "specId", spec_id, "phase", phase, "reason", reason, "message",
			 event_text(message));
}

json_t *network_policy_data(const struct spec *s, const char *isolation_mode)
{
	json_t *decl = json_array();
	for (size_t i = 0; i < s->n_egress; i++) {
		const struct egress_rule *er = &s->egress[i];
		json_array_append_new(decl, json_pack("{s:s, s:i, s:s}", "host", er->host, "port", er->port, "protocol",
						      er->proto == PROTO_UDP ? "udp" : "tcp"));
	}
	return json_pack("{s:s, s:I, s:o}", "isolationMode", isolation_mode, "declaredEgressCount",
			 (json_int_t)s->n_egress, "declaredEgress", decl);
}

/* started.isolation.limits (ext): the effective limits, present when any is
 * set, and whether all are in force (portable runs on without them). */
static json_t *limits_json(const struct cell *c)
{
	const struct cgroup_limits *l = &c->limits;
	if (!cgroup_limits_ctrls(l))
		return NULL;
	json_t *o = json_object();
	if (l->memory_max)
		json_object_set_new(o, "memoryMaxBytes", json_integer(l->memory_max));
	if (l->cpu_quota)
		json_object_set_new(o, "cpuMax", json_pack("{s:I, s:I}", "quotaMicros", (json_int_t)l->cpu_quota,
							   "periodMicros", (json_int_t)l->cpu_period));
	if (l->pids_max)
		json_object_set_new(o, "pidsMax", json_integer(l->pids_max));
	json_object_set_new(o, "applied", json_boolean(c->facts.limits_applied));
	if (!c->facts.limits_applied && c->facts.limits_error[0])
		json_object_set_new(o, "error", event_text(c->facts.limits_error));
	return o;
}

json_t *lifecycle_started_data(const struct spec *s, const struct cell *c, const char *backend,
			       const char *cfg_seccomp)
{
	static const struct { unsigned bit; const char *name; } names[] = {
		{NS_NET, "net"}, {NS_MNT, "mnt"}, {NS_PID, "pid"}, {NS_IPC, "ipc"},
		{NS_UTS, "uts"}, {NS_USER, "user"}, {NS_CGROUP, "cgroup"},
	};
	json_t *ns = json_array();
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (c->ns & names[i].bit)
			json_array_append_new(ns, json_string(names[i].name));
	json_t *iso = json_pack("{s:o, s:o, s:o}", "namespaces", ns, "cgroup",
				c->facts.cgroup[0] ? event_text(c->facts.cgroup) : json_null(), "seccomp",
				event_text(c->facts.seccomp ? c->facts.seccomp : cfg_seccomp));
	/* (ext) The workload's host identity, for an auditor matching host records. */
	json_object_set_new(iso, "hostUid", json_integer((json_int_t)c->uid));
	json_t *limits = limits_json(c);
	if (limits)
		json_object_set_new(iso, "limits", limits);
	json_t *mounts = hostmounts_json(s); /* run.mounts (ext) */
	if (mounts)
		json_object_set_new(iso, "mounts", mounts);
	json_t *d = json_pack("{s:s, s:s, s:o, s:I}", "specId", s->id, "backend", backend, "isolation", iso,
			      "ttlSeconds", (json_int_t)s->ttl_seconds);
	json_t *corr = correlation(s);
	if (corr)
		json_object_set_new(d, "correlation", corr);
	return d;
}

json_t *network_enforcement_data(const struct spec *s, const char *isolation_mode, const struct cell_facts *f,
				 bool ran, int exit_code, const struct nft_counter *counters, size_t n,
				 const char *counters_error)
{
	json_t *d = json_pack("{s:s, s:I, s:b, s:b}", "isolationMode", isolation_mode, "declaredEgressRuleCount",
			      (json_int_t)s->n_egress, "nftRulesApplied", f->nft_applied,
			      "supplementaryEgressFilterActive", f->nft_applied);
	if (!d)
		return NULL;
	if (ran)
		json_object_set_new(d, "commandExitCode", json_integer(exit_code));
	json_t *rules = json_array();
	if (counters_error)
		json_object_set_new(d, "nftError", event_text(counters_error));
	else if (!f->nft_applied && f->nft_error[0])
		json_object_set_new(d, "nftError", event_text(f->nft_error));
	for (size_t i = 0; i < n; i++)
		json_array_append_new(rules, json_pack("{s:o, s:I, s:I}", "rule", event_text(counters[i].rule),
						       "packets", (json_int_t)counters[i].packets, "bytes",
						       (json_int_t)counters[i].bytes));
	json_object_set_new(d, "ruleCounters", rules);
	return d;
}

json_t *compliance_summary_data(const struct spec *s, const char *backend, bool hardened, bool ran, int exit_code,
				const char *pack_id, const char *pack_version)
{
	json_t *d = json_pack("{s:s, s:I, s:I, s:I, s:s, s:s, s:s}", "specId", s->id, "lifetimeTtlSeconds",
			      (json_int_t)s->ttl_seconds, "egressRuleCount", (json_int_t)s->n_egress, "secretRefCount",
			      (json_int_t)s->n_secret_refs, "secretDeliveryMode",
			      s->delivery == DELIVERY_FILE ? "file" : "env", "backend", backend, "profile",
			      hardened ? "hardened" : "portable");
	if (!d)
		return NULL;
	if (ran)
		json_object_set_new(d, "commandExitCode", json_integer(exit_code));
	json_t *corr = correlation(s);
	if (corr)
		json_object_set_new(d, "correlation", corr);
	/* SPEC §12: the pack that admitted the cell; the document's own
	 * spec.policy is only an echo, for when none is configured. */
	if (pack_id) {
		json_object_set_new(d, "policyPackId", event_text(pack_id));
		json_object_set_new(d, "policyPackVersion", event_text(pack_version));
		return d;
	}
	json_t *v;
	if (s->policy && (v = json_object_get(s->policy, "packId")) && json_is_string(v))
		json_object_set(d, "policyPackId", v);
	if (s->policy && (v = json_object_get(s->policy, "packVersion")) && json_is_string(v))
		json_object_set(d, "policyPackVersion", v);
	return d;
}

json_t *lifecycle_destroyed_data(const struct spec *s, const char *reason, int64_t duration_ms)
{
	json_t *d = json_pack("{s:s, s:s, s:I}", "specId", s->id, "outcome", reason ? "failed" : "succeeded",
			      "durationMs", (json_int_t)duration_ms);
	if (!d)
		return NULL;
	if (reason)
		json_object_set_new(d, "reason", json_string(reason));
	/* SPEC §2: correlation is copied into started, destroyed and compliance.summary. */
	json_t *corr = correlation(s);
	if (corr)
		json_object_set_new(d, "correlation", corr);
	return d;
}
