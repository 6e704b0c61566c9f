/* The workload's system-call filter (CELLOS_SECCOMP, SPEC §3 and §6.1).
 *
 * A policy is a default action plus one rule per system call; `baseline` is the
 * built-in deny list, a file (format in docs/seccomp.md) is parsed at admission
 * so a bad one is a configuration error (125) before anything is created. The
 * policy is compiled to classic BPF with libseccomp by the cell's init, while the
 * supervisor sets up the cell's network, and installed by the workload's process
 * right before execve, after NO_NEW_PRIVS.
 *
 * Whatever the policy, a system call made through another ABI than the native
 * one (i386 `int $0x80`, x32) kills the process: a filter written for x86_64
 * numbers means nothing for those, and they are how filters get bypassed. */
#ifndef CELLOS_SECCOMP_H
#define CELLOS_SECCOMP_H

#include <linux/filter.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

enum seccomp_act { SECCOMP_ACT_ALLOW = 0, SECCOMP_ACT_ERRNO, SECCOMP_ACT_KILL, SECCOMP_ACT_LOG };

struct seccomp_rule {
	int nr;                    /* libseccomp's number for the native ABI */
	enum seccomp_act act;
	int errnum;                /* SECCOMP_ACT_ERRNO */
	/* Only when arg[arg] & mask == value (mask 0: always). Used by the baseline
	 * only: clone with CLONE_NEW* flags, ioctl TIOCSTI/TIOCLINUX/TIOCSETD,
	 * socket/socketpair with AF_VSOCK. */
	unsigned arg;
	uint64_t mask, value;
	int line;                  /* where a file rule came from; 0: baseline */
};

struct seccomp_policy {
	enum seccomp_act default_act;
	int default_errno;
	struct seccomp_rule *rules;
	size_t n, cap;
	bool baseline;             /* exactly the built-in baseline (see compile) */
};

/* The built-in `baseline`: allow by default; EPERM for the calls that change
 * the kernel, the namespaces or other processes; ENOSYS for clone3 (glibc
 * then falls back to clone, whose flags the filter can see); EAFNOSUPPORT for
 * AF_VSOCK sockets. */
int seccomp_policy_baseline(struct seccomp_policy *p, struct err *e);

/* Parse a policy text; `origin` names it in messages ("<origin> line N: ..."). */
int seccomp_policy_parse(struct seccomp_policy *p, const char *text, size_t len, const char *origin, struct err *e);

/* Read and parse a policy file (at most 1 MiB). */
int seccomp_policy_load_file(struct seccomp_policy *p, const char *path, struct err *e);

void seccomp_policy_free(struct seccomp_policy *p);

/* Compile for this machine; prog->filter is malloc'd (the caller frees it). The
 * baseline comes precompiled (at build time, by the same code) where the build
 * provided it: seccomp_baseline_precompiled() says whether it did. */
int seccomp_policy_compile(const struct seccomp_policy *p, struct sock_fprog *prog, struct err *e);
int seccomp_policy_compile_libseccomp(const struct seccomp_policy *p, struct sock_fprog *prog, struct err *e);
bool seccomp_baseline_precompiled(void);

/* Install a compiled filter on the calling thread (NO_NEW_PRIVS must be set). */
int seccomp_install(const struct sock_fprog *prog, struct err *e);

#endif
