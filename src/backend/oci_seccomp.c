#include "backend/oci_seccomp.h"

#include <limits.h>

#include <errno.h>
#include <seccomp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/oci_run.h"
#include "backend/oci_tool.h"
#include "util/dirs.h"
#include "util/log.h"

/* An action as the runtime spells it; errno_ret 0: no errnoRet. */
struct oci_action {
	const char *name;
	int errno_ret;
};

/* The OCI name of the architecture the stub's filter is compiled for (libseccomp's
 * native one). NULL: not one runsc knows; the field is then left out and every
 * runtime filters the native architecture alone anyway. */
static const char *native_arch(void)
{
	switch (seccomp_arch_native()) {
	case SCMP_ARCH_X86_64: return "SCMP_ARCH_X86_64";
	case SCMP_ARCH_AARCH64: return "SCMP_ARCH_AARCH64";
	}
	return NULL;
}

/* Whether every ptrace call fails under p. Then no process of the cell can trace
 * another, and SCMP_ACT_TRACE (no tracer: the call fails with ENOSYS) is exactly
 * `errno ENOSYS`; with a tracer it would be the tracer's choice. */
static bool denies_ptrace(const struct seccomp_policy *p)
{
	int nr = seccomp_syscall_resolve_name("ptrace");
	enum seccomp_act act = p->default_act;
	for (size_t i = 0; i < p->n; i++)
		if (p->rules[i].nr == nr) {
			if (p->rules[i].mask)
				return false; /* only some ptrace calls are denied */
			act = p->rules[i].act;
		}
	return act == SECCOMP_ACT_ERRNO || act == SECCOMP_ACT_KILL;
}

/* The OCI action for one of ours (docs/seccomp.md, the dialects in the header).
 * `baseline`: the rule is the built-in baseline's, which must never make a
 * backend refuse a cell (SPEC §3): on runsc an errno it cannot return becomes
 * EPERM, a denial all the same. A filter file asked for that errno: refused. */
static int oci_action(enum seccomp_act act, int errnum, enum oci_seccomp_dialect d, bool no_tracer, bool baseline,
		      struct oci_action *out, struct err *e)
{
	*out = (struct oci_action){0};
	switch (act) {
	case SECCOMP_ACT_ALLOW:
		out->name = "SCMP_ACT_ALLOW";
		return 0;
	case SECCOMP_ACT_ERRNO:
		if (d == OCI_SECCOMP_RUNSC && errnum == ENOSYS) {
			if (!no_tracer)
				return err_set(e, "errno ENOSYS cannot be enforced by runsc while the filter allows ptrace "
						  "(runsc returns EPERM for every errno rule; ENOSYS is written as "
						  "SCMP_ACT_TRACE, which a tracer could let through)");
			out->name = "SCMP_ACT_TRACE";
			return 0;
		}
		if (d == OCI_SECCOMP_RUNSC && errnum != EPERM && baseline)
			errnum = EPERM;
		if (d == OCI_SECCOMP_RUNSC && errnum != EPERM) {
			char num[16];
			const char *name = strerrorname_np(errnum);
			snprintf(num, sizeof num, "%d", errnum);
			return err_set(e, "errno %s cannot be enforced by runsc (it returns EPERM for every errno rule): "
					  "use EPERM or ENOSYS",
				       name ? name : num);
		}
		out->name = "SCMP_ACT_ERRNO";
		out->errno_ret = errnum;
		return 0;
	case SECCOMP_ACT_KILL:
		out->name = d == OCI_SECCOMP_RUNSC ? "SCMP_ACT_TRAP" : "SCMP_ACT_KILL_PROCESS";
		return 0;
	case SECCOMP_ACT_LOG:
		if (d == OCI_SECCOMP_RUNSC)
			return err_set(e, "log cannot be enforced by runsc (it has no SCMP_ACT_LOG, and gVisor no "
					  "audit log): use allow");
		out->name = "SCMP_ACT_LOG";
		return 0;
	}
	return err_set(e, "unknown action %d", (int)act);
}

static bool same_action(const struct oci_action *a, const struct oci_action *b)
{
	return strcmp(a->name, b->name) == 0 && a->errno_ret == b->errno_ret;
}

/* {"names": [name], "action": ..., "errnoRet"?: ..., "args"?: [...]} */
static json_t *syscall_entry(const struct seccomp_rule *r, const struct oci_action *act)
{
	char *name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, r->nr);
	if (!name)
		return NULL;
	json_t *o = json_pack("{s:[s], s:s}", "names", name, "action", act->name);
	free(name);
	if (o && act->errno_ret && json_object_set_new(o, "errnoRet", json_integer(act->errno_ret)) < 0)
		goto fail;
	/* The stub's filter tests (arg & mask) == value; libseccomp's MASKED_EQ
	 * takes the mask as `value` and the result as `valueTwo`. (JSON numbers
	 * here are signed 64-bit: the baseline's masks are far below that.) */
	if (o && r->mask && (r->mask > INT64_MAX || r->value > INT64_MAX))
		goto fail;
	if (o && r->mask &&
	    json_object_set_new(o, "args", json_pack("[{s:i, s:I, s:I, s:s}]", "index", (int)r->arg, "value",
						     (json_int_t)r->mask, "valueTwo", (json_int_t)r->value, "op",
						     "SCMP_CMP_MASKED_EQ")) < 0)
		goto fail;
	return o;
fail:
	json_decref(o);
	return NULL;
}

json_t *oci_seccomp_json(const struct seccomp_policy *p, enum oci_seccomp_dialect d, struct err *e)
{
	bool no_tracer = denies_ptrace(p);
	struct oci_action def;
	if (oci_action(p->default_act, p->default_errno, d, no_tracer, false, &def, e) < 0)
		return err_prefix(e, "@default"), NULL;
	json_t *calls = json_array();
	json_t *doc = json_pack("{s:s, s:o}", "defaultAction", def.name, "syscalls", calls);
	if (!doc)
		goto oom;
	if (def.errno_ret && json_object_set_new(doc, "defaultErrnoRet", json_integer(def.errno_ret)) < 0)
		goto oom;
	const char *arch = native_arch();
	if (arch && json_object_set_new(doc, "architectures", json_pack("[s]", arch)) < 0)
		goto oom;
	for (size_t i = 0; i < p->n; i++) {
		const struct seccomp_rule *r = &p->rules[i];
		struct oci_action act;
		if (oci_action(r->act, r->errnum, d, no_tracer, r->line == 0, &act, e) < 0) {
			json_decref(doc);
			return err_prefix(e, "line %d", r->line), NULL; /* the baseline never fails */
		}
		/* As in the stub's compile: a rule that repeats the default changes
		 * nothing, and pseudo-calls (negative numbers) do not exist here. */
		if (r->nr < 0 || same_action(&act, &def))
			continue;
		if (json_array_append_new(calls, syscall_entry(r, &act)) < 0)
			goto oom;
	}
	return doc;
oom:
	json_decref(doc);
	return err_set(e, "linux.seccomp: out of memory"), NULL;
}

/* ---- whether the runtime can install it ---- */

int oci_seccomp_for_runtime(struct cell *c, struct oci_runtime *rt, const char *const *probe, const char *want,
			    struct err *e)
{
	rt->seccomp = c->cfg->seccomp_policy;
	if (!rt->seccomp)
		return 0;
	char base[PATH_MAX], cache[PATH_MAX + 16], answer[8];
	snprintf(base, sizeof base, "/run/cellos/%s", rt->kind);
	snprintf(cache, sizeof cache, "%s/.seccomp", base);
	if (dirs_mkdir_p(base, 0700) < 0)
		return err_sys(e, errno, "%s", base);
	if (!oci_tool_cache_get(cache, rt->path, answer, sizeof answer)) {
		char out[1024];
		int rc = oci_tool_run_in(-1, rt->path, probe, NULL, OCI_TOOL_TIMEOUT_MS, out, sizeof out);
		/* A probe that could not run or did not end tells nothing: the runtime
		 * gets the filter and speaks for itself; the next cell asks again. */
		if (rc < 0 || rc > 128)
			return 0;
		snprintf(answer, sizeof answer, "%s", rc == 0 && (!want || strstr(out, want)) ? "yes" : "no");
		oci_tool_cache_put(cache, rt->path, answer);
	}
	if (strcmp(answer, "yes") == 0)
		return 0;
	const char *why = rt->seccomp_dialect == OCI_SECCOMP_RUNSC ? "no --oci-seccomp" : "built without libseccomp";
	/* A filter the operator asked for is never skipped. Without one the cell
	 * runs unfiltered and the fact is reported: whether the profile accepts that
	 * is the supervisor's decision (SPEC §7). */
	if (c->cfg->seccomp_explicit)
		return err_set(e, "CELLOS_SECCOMP: %s cannot install a system-call filter (%s): set CELLOS_SECCOMP=off, "
				  "or use a runtime that can",
			       rt->path, why);
	/* Otherwise the default never refuses a cell (SPEC §3): it runs unfiltered, and says so. */
	log_warn("%s cannot install a system-call filter (%s): the cell runs without one (CELLOS_SECCOMP unset)",
		 rt->path, why);
	rt->seccomp = NULL;
	c->facts.seccomp = "off";
	return 0;
}
