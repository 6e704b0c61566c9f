/* The workload's system-call filter (CELLOS_SECCOMP, docs/seccomp.md) as the OCI
 * bundle's `linux.seccomp` (OCI runtime-spec, config-linux.md#seccomp), for the
 * gvisor and oci backends.
 *
 * The same policy the stub backend compiles and installs itself, written for the
 * runtime that will install it: one syscalls[] entry per rule of the policy
 * (argument conditions as SCMP_CMP_MASKED_EQ, as the stub's filter tests them),
 * the native architecture only (calls through another ABI get the runtime's
 * bad-architecture action).
 *
 * Two dialects, because runsc's converter is not libseccomp (as verified with
 * Debian's runsc 20221219, and as its source still reads):
 *   libseccomp (runc, crun): every action as in the stub's filter.
 *   runsc:  errnoRet is ignored (every SCMP_ACT_ERRNO returns EPERM), and there is
 *           no SCMP_ACT_KILL_PROCESS and no SCMP_ACT_LOG. So:
 *             errno EPERM  -> SCMP_ACT_ERRNO, as written;
 *             errno ENOSYS -> SCMP_ACT_TRACE: with no tracer attached the call
 *                             fails with ENOSYS (seccomp(2); gVisor does the
 *                             same), and no tracer can exist when the policy
 *                             denies ptrace (the baseline does);
 *             kill         -> SCMP_ACT_TRAP: SIGSYS to the caller, which ends the
 *                             whole process unless it catches, ignores or blocks
 *                             SIGSYS (gVisor does not force it); SCMP_ACT_KILL
 *                             would end only the calling thread;
 *           and what cannot be written (another errno, `log`, ENOSYS while ptrace
 *           is allowed) is an error naming the rule. The baseline never is. */
#ifndef CELLOS_OCI_SECCOMP_H
#define CELLOS_OCI_SECCOMP_H

#include <jansson.h>

#include "isolate/seccomp.h"
#include "util/err.h"

enum oci_seccomp_dialect { OCI_SECCOMP_LIBSECCOMP = 0, OCI_SECCOMP_RUNSC };

/* linux.seccomp for `p` (a new reference), or NULL with e set: "line N: ..." for a
 * rule of a filter file the runtime cannot enforce as written, "@default: ..." for
 * the default action. */
json_t *oci_seccomp_json(const struct seccomp_policy *p, enum oci_seccomp_dialect d, struct err *e);

struct cell;
struct oci_runtime;

/* The workload's filter for this runtime (rt->seccomp; rt->kind, path and
 * seccomp_dialect set): CELLOS_SECCOMP's policy, if the runtime can install it.
 * Whether it can: `probe` (argv, NULL-terminated) exits 0 and, unless `want` is
 * NULL, prints `want`; cached in /run/cellos/<kind>/.seccomp (oci_tool.h). When it
 * cannot, an explicit CELLOS_SECCOMP is an error, and the default runs the cell
 * without a filter, with a warning and c->facts.seccomp "off" (the backend never
 * refuses it; the hardened profile does, in the supervisor). */
int oci_seccomp_for_runtime(struct cell *c, struct oci_runtime *rt, const char *const *probe, const char *want,
			    struct err *e);

#endif
