#include "isolate/seccomp.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "util/vec.h"

#define POLICY_FILE_MAX (1 << 20)

/* Calls that reconfigure the kernel or the cell's own isolation, reach into
 * other processes, or expose large attack surface for no use in a build or test
 * job. Most of them already fail for want of a capability; the filter keeps the
 * kernel code behind them out of reach altogether. */
static const char *const baseline_eperm[] = {
	/* kernel code and the running kernel */
	"bpf", "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "reboot",
	"swapon", "swapoff", "acct", "quotactl", "quotactl_fd", "syslog", "lookup_dcookie", "uselib",
	"iopl", "ioperm", "vhangup", "perf_event_open",
	/* mounts and namespaces: the cell's filesystem and namespaces are final */
	"mount", "umount2", "pivot_root", "chroot", "unshare", "setns", "fsopen", "fsconfig", "fsmount",
	"fspick", "move_mount", "open_tree", "mount_setattr",
	/* other processes' memory and files */
	"ptrace", "process_vm_readv", "process_vm_writev", "process_madvise", "pidfd_getfd", "kcmp",
	/* the kernel keyring is not namespaced */
	"keyctl", "add_key", "request_key",
	/* classic exploitation primitives */
	"userfaultfd", "open_by_handle_at",
	/* io_uring performs its operations without passing through this filter */
	"io_uring_setup", "io_uring_enter", "io_uring_register",
};

static const uint64_t clone_new_flags[] = {
	CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET,
};

static const struct {
	const char *name;
	int num;
} errnos[] = {
	{"EPERM", EPERM}, {"ENOENT", ENOENT}, {"ESRCH", ESRCH}, {"EINTR", EINTR}, {"EIO", EIO},
	{"ENXIO", ENXIO}, {"E2BIG", E2BIG}, {"ENOEXEC", ENOEXEC}, {"EBADF", EBADF}, {"ECHILD", ECHILD},
	{"EAGAIN", EAGAIN}, {"ENOMEM", ENOMEM}, {"EACCES", EACCES}, {"EFAULT", EFAULT}, {"EBUSY", EBUSY},
	{"EEXIST", EEXIST}, {"ENODEV", ENODEV}, {"ENOTDIR", ENOTDIR}, {"EISDIR", EISDIR}, {"EINVAL", EINVAL},
	{"ENFILE", ENFILE}, {"EMFILE", EMFILE}, {"ENOTTY", ENOTTY}, {"EFBIG", EFBIG}, {"ENOSPC", ENOSPC},
	{"ESPIPE", ESPIPE}, {"EROFS", EROFS}, {"EMLINK", EMLINK}, {"EPIPE", EPIPE}, {"ERANGE", ERANGE},
	{"ENOSYS", ENOSYS}, {"ENOTSUP", ENOTSUP}, {"EOPNOTSUPP", EOPNOTSUPP}, {"EAFNOSUPPORT", EAFNOSUPPORT},
	{"EADDRNOTAVAIL", EADDRNOTAVAIL}, {"ENETUNREACH", ENETUNREACH}, {"ECONNREFUSED", ECONNREFUSED},
	{"EHOSTUNREACH", EHOSTUNREACH},
};

void seccomp_policy_free(struct seccomp_policy *p)
{
	free(p->rules);
	memset(p, 0, sizeof *p);
}

static int push(struct seccomp_policy *p, const struct seccomp_rule *r, struct err *e)
{
	if (vec_reserve(&p->rules, p->n, &p->cap, sizeof *p->rules, 64) < 0)
		return err_set(e, "seccomp policy: out of memory");
	p->rules[p->n++] = *r;
	return 0;
}

static bool has_explicit(const struct seccomp_policy *p, int nr)
{
	for (size_t i = 0; i < p->n; i++)
		if (p->rules[i].nr == nr && p->rules[i].line)
			return true;
	return false;
}

/* Append the baseline's rules, except for calls the policy already names
 * explicitly (a file's own rule always wins over the baseline's). */
static int add_baseline(struct seccomp_policy *p, struct err *e)
{
	for (size_t i = 0; i < sizeof baseline_eperm / sizeof baseline_eperm[0]; i++) {
		int nr = seccomp_syscall_resolve_name(baseline_eperm[i]);
		if (nr == __NR_SCMP_ERROR || has_explicit(p, nr))
			continue; /* not a call of this libseccomp's world */
		if (push(p, &(struct seccomp_rule){.nr = nr, .act = SECCOMP_ACT_ERRNO, .errnum = EPERM}, e) < 0)
			return -1;
	}
	int clone = seccomp_syscall_resolve_name("clone");
	if (!has_explicit(p, clone))
		for (size_t i = 0; i < sizeof clone_new_flags / sizeof clone_new_flags[0]; i++)
			if (push(p, &(struct seccomp_rule){.nr = clone, .act = SECCOMP_ACT_ERRNO, .errnum = EPERM,
							    .arg = 0, .mask = clone_new_flags[i], .value = clone_new_flags[i]},
				 e) < 0)
				return -1;
	/* The filter cannot read clone3's flags (they are in memory): ENOSYS, which
	 * makes glibc (pthread_create, fork, posix_spawn) fall back to clone. EPERM
	 * would make it give up. */
	int clone3 = seccomp_syscall_resolve_name("clone3");
	if (clone3 != __NR_SCMP_ERROR && !has_explicit(p, clone3) &&
	    push(p, &(struct seccomp_rule){.nr = clone3, .act = SECCOMP_ACT_ERRNO, .errnum = ENOSYS}, e) < 0)
		return -1;
	/* Pushing input into a terminal the cell shares with the operator, and
	 * changing a terminal's line discipline (it reaches ldisc code, and modules,
	 * no build needs). The kernel compares only the low 32 bits of the request. */
	int ioctl_nr = seccomp_syscall_resolve_name("ioctl");
	if (!has_explicit(p, ioctl_nr)) {
		static const unsigned long reqs[] = {TIOCSTI, TIOCLINUX, TIOCSETD};
		for (size_t i = 0; i < sizeof reqs / sizeof reqs[0]; i++)
			if (push(p, &(struct seccomp_rule){.nr = ioctl_nr, .act = SECCOMP_ACT_ERRNO, .errnum = EPERM,
							    .arg = 1, .mask = 0xffffffffu, .value = reqs[i]},
				 e) < 0)
				return -1;
	}
	/* vsock ignores network namespaces: a cell without any network could still
	 * reach the host (or a VM's host) through it. EAFNOSUPPORT, as on a kernel
	 * without vsock. The family is an int: low 32 bits, as the kernel reads it. */
	static const char *const sock_calls[] = {"socket", "socketpair"};
	for (size_t i = 0; i < sizeof sock_calls / sizeof sock_calls[0]; i++) {
		int nr = seccomp_syscall_resolve_name(sock_calls[i]);
		if (nr == __NR_SCMP_ERROR || has_explicit(p, nr))
			continue;
		if (push(p, &(struct seccomp_rule){.nr = nr, .act = SECCOMP_ACT_ERRNO, .errnum = EAFNOSUPPORT, .arg = 0,
						    .mask = 0xffffffffu, .value = AF_VSOCK},
			 e) < 0)
			return -1;
	}
	return 0;
}

int seccomp_policy_baseline(struct seccomp_policy *p, struct err *e)
{
	memset(p, 0, sizeof *p);
	p->default_act = SECCOMP_ACT_ALLOW;
	if (add_baseline(p, e) < 0) {
		seccomp_policy_free(p);
		return -1;
	}
	p->baseline = true;
	return 0;
}

/* ---- the file format (docs/seccomp.md) ---- */

/* Split the next whitespace-separated word off *s (which is NUL-terminated). */
static char *word(char **s)
{
	char *p = *s;
	while (*p == ' ' || *p == '\t')
		p++;
	if (!*p)
		return NULL;
	char *w = p;
	while (*p && *p != ' ' && *p != '\t')
		p++;
	if (*p)
		*p++ = '\0';
	*s = p;
	return w;
}

static int parse_errno(const char *w, int *out)
{
	if (isdigit((unsigned char)*w)) {
		char *end;
		long v = strtol(w, &end, 10);
		if (*end || v < 1 || v > 4095)
			return -1;
		*out = (int)v;
		return 0;
	}
	for (size_t i = 0; i < sizeof errnos / sizeof errnos[0]; i++)
		if (strcmp(w, errnos[i].name) == 0) {
			*out = errnos[i].num;
			return 0;
		}
	return -1;
}

/* action := allow | log | kill | errno [E]; consumes the rest of the line. */
static int parse_action(char **rest, enum seccomp_act *act, int *errnum, const char *where, struct err *e)
{
	char *w = word(rest);
	*errnum = 0;
	if (!w || strcmp(w, "errno") == 0) {
		*act = SECCOMP_ACT_ERRNO;
		*errnum = EPERM;
		char *num = w ? word(rest) : NULL;
		if (num && parse_errno(num, errnum) < 0)
			return err_set(e, "%s: unknown errno '%s' (a name such as EPERM or ENOSYS, or 1-4095)", where, num);
	} else if (strcmp(w, "allow") == 0) {
		*act = SECCOMP_ACT_ALLOW;
	} else if (strcmp(w, "kill") == 0) {
		*act = SECCOMP_ACT_KILL;
	} else if (strcmp(w, "log") == 0) {
		*act = SECCOMP_ACT_LOG;
	} else {
		return err_set(e, "%s: unknown action '%s' (expected allow, errno [E], kill, log)", where, w);
	}
	if ((w = word(rest)))
		return err_set(e, "%s: unexpected '%s' after the action", where, w);
	return 0;
}

static bool valid_name(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!islower((unsigned char)*s) && !isdigit((unsigned char)*s) && *s != '_')
			return false;
	return true;
}

int seccomp_policy_parse(struct seccomp_policy *p, const char *text, size_t len, const char *origin, struct err *e)
{
	memset(p, 0, sizeof *p);
	p->default_act = SECCOMP_ACT_ALLOW;
	bool saw_default = false, saw_baseline = false;
	char line[512], where[PATH_MAX + 32];
	size_t pos = 0;
	for (int lineno = 1; pos < len; lineno++) {
		size_t n = 0;
		while (pos < len && text[pos] != '\n') {
			if (text[pos] == '\0') {
				err_set(e, "%s line %d: NUL byte", origin, lineno);
				goto fail;
			}
			if (n + 1 >= sizeof line) {
				err_set(e, "%s line %d: line too long", origin, lineno);
				goto fail;
			}
			line[n++] = text[pos++];
		}
		pos++; /* the newline */
		line[n] = '\0';
		line[strcspn(line, "#\r")] = '\0';
		snprintf(where, sizeof where, "%s line %d", origin, lineno);

		char *rest = line, *w = word(&rest);
		if (!w)
			continue;
		if (strcmp(w, "@default") == 0) {
			if (saw_default) {
				err_set(e, "%s: @default given twice", where);
				goto fail;
			}
			saw_default = true;
			if (!rest[strspn(rest, " \t")]) {
				err_set(e, "%s: @default needs an action (allow, errno [E], kill, log)", where);
				goto fail;
			}
			if (parse_action(&rest, &p->default_act, &p->default_errno, where, e) < 0)
				goto fail;
		} else if (strcmp(w, "@baseline") == 0) {
			if (saw_baseline || (w = word(&rest))) {
				err_set(e, saw_baseline ? "%s: @baseline given twice" : "%s: @baseline takes no argument", where);
				goto fail;
			}
			saw_baseline = true;
		} else if (w[0] == '@') {
			err_set(e, "%s: unknown directive '%s' (expected @default, @baseline)", where, w);
			goto fail;
		} else {
			if (!valid_name(w)) {
				err_set(e, "%s: '%s' is not a system call name", where, w);
				goto fail;
			}
			int nr = seccomp_syscall_resolve_name(w);
			if (nr == __NR_SCMP_ERROR) {
				err_set(e, "%s: unknown system call '%s'", where, w);
				goto fail;
			}
			for (size_t i = 0; i < p->n; i++)
				if (p->rules[i].nr == nr) {
					err_set(e, "%s: second rule for '%s' (first on line %d)", where, w, p->rules[i].line);
					goto fail;
				}
			struct seccomp_rule r = {.nr = nr, .line = lineno};
			if (parse_action(&rest, &r.act, &r.errnum, where, e) < 0 || push(p, &r, e) < 0)
				goto fail;
		}
	}
	if (saw_baseline && add_baseline(p, e) < 0)
		goto fail;
	return 0;
fail:
	seccomp_policy_free(p);
	return -1;
}

int seccomp_policy_load_file(struct seccomp_policy *p, const char *path, struct err *e)
{
	memset(p, 0, sizeof *p);
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return err_sys(e, errno, "cannot open %s", path);
	/* st is read only after a successful fstat: a failed one leaves it as
	 * uninitialised as it was. */
	struct stat st;
	if (fstat(fd, &st) < 0) {
		int errnum = errno;
		close(fd);
		return err_sys(e, errnum, "cannot read %s", path);
	}
	if (!S_ISREG(st.st_mode) || st.st_size > POLICY_FILE_MAX) {
		close(fd);
		return !S_ISREG(st.st_mode) ? err_set(e, "%s: not a regular file", path)
					    : err_set(e, "%s: larger than 1 MiB", path);
	}
	char *text = malloc((size_t)st.st_size + 1);
	if (!text) {
		close(fd);
		return err_set(e, "%s: out of memory", path);
	}
	size_t got = 0;
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, text + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	int errnum = errno;
	close(fd);
	int rc = got == (size_t)st.st_size ? seccomp_policy_parse(p, text, got, path, e)
					   : err_sys(e, errnum, "cannot read %s", path);
	free(text);
	return rc;
}

/* ---- compile and install ---- */

static uint32_t scmp_action(enum seccomp_act a, int errnum)
{
	switch (a) {
	case SECCOMP_ACT_ALLOW: return SCMP_ACT_ALLOW;
	case SECCOMP_ACT_ERRNO: return SCMP_ACT_ERRNO((uint32_t)errnum);
	case SECCOMP_ACT_KILL: return SCMP_ACT_KILL_PROCESS;
	case SECCOMP_ACT_LOG: return SCMP_ACT_LOG;
	}
	return SCMP_ACT_KILL_PROCESS;
}

/* The baseline, compiled at build time by src/isolate/gen/seccomp_baseline_gen.c
 * (running seccomp_policy_compile_libseccomp below): libseccomp would spend a
 * measurable part of every run producing these same instructions
 * (docs/DESIGN.md, "Measured costs behind the code"). Builds without it (the
 * generator itself, the fuzzers) compile at run time. */
#if !defined(CELLOS_SECCOMP_NO_PRECOMPILED) && defined(__has_include)
#if __has_include("seccomp_baseline.inc")
#define HAVE_BASELINE_BPF 1
static const struct sock_filter baseline_bpf[] = {
#include "seccomp_baseline.inc"
};
#endif
#endif

bool seccomp_baseline_precompiled(void)
{
#ifdef HAVE_BASELINE_BPF
	return true;
#else
	return false;
#endif
}

int seccomp_policy_compile(const struct seccomp_policy *p, struct sock_fprog *prog, struct err *e)
{
#ifdef HAVE_BASELINE_BPF
	if (p->baseline) {
		prog->len = sizeof baseline_bpf / sizeof baseline_bpf[0];
		prog->filter = malloc(sizeof baseline_bpf);
		if (!prog->filter)
			return err_set(e, "seccomp: out of memory");
		memcpy(prog->filter, baseline_bpf, sizeof baseline_bpf);
		return 0;
	}
#endif
	return seccomp_policy_compile_libseccomp(p, prog, e);
}

int seccomp_policy_compile_libseccomp(const struct seccomp_policy *p, struct sock_fprog *prog, struct err *e)
{
	memset(prog, 0, sizeof *prog);
	uint32_t def = scmp_action(p->default_act, p->default_errno);
	scmp_filter_ctx ctx = seccomp_init(def);
	if (!ctx)
		return err_set(e, "seccomp: cannot initialise libseccomp");
	int rc = 0, fds[2] = {-1, -1};
	const char *step = "configure the filter";
	/* Another ABI than the native one kills the process (see seccomp.h). */
	if ((rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS)) < 0)
		goto out;
	/* A binary search over the call numbers instead of a linear scan: every
	 * system call of the workload pays for the filter. */
	seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
	step = "add a rule";
	for (size_t i = 0; i < p->n; i++) {
		const struct seccomp_rule *r = &p->rules[i];
		uint32_t act = scmp_action(r->act, r->errnum);
		if (act == def || r->nr < 0)
			continue; /* libseccomp refuses rules that repeat the default; pseudo-calls do not exist here */
		if (r->mask)
			rc = seccomp_rule_add(ctx, act, r->nr, 1, SCMP_CMP(r->arg, SCMP_CMP_MASKED_EQ, r->mask, r->value));
		else
			rc = seccomp_rule_add(ctx, act, r->nr, 0);
		if (rc < 0)
			goto out;
	}
	/* libseccomp 2.5 exports only to a file descriptor; a filter is at most
	 * BPF_MAXINSNS * 8 = 32 KiB, which fits a pipe's buffer. */
	step = "export the filter";
	if (pipe2(fds, O_CLOEXEC) < 0) {
		rc = -errno;
		goto out;
	}
	if ((rc = seccomp_export_bpf(ctx, fds[1])) < 0)
		goto out;
	close(fds[1]);
	fds[1] = -1;
	size_t cap = BPF_MAXINSNS * sizeof(struct sock_filter), got = 0;
	struct sock_filter *f = malloc(cap);
	if (!f) {
		rc = -ENOMEM;
		goto out;
	}
	ssize_t n;
	while ((n = read(fds[0], (char *)f + got, cap - got)) > 0)
		got += (size_t)n;
	if (got == 0 || got % sizeof *f) {
		free(f);
		rc = -EIO;
		goto out;
	}
	prog->filter = f;
	prog->len = (unsigned short)(got / sizeof *f);
out:
	if (fds[0] >= 0)
		close(fds[0]);
	if (fds[1] >= 0)
		close(fds[1]);
	seccomp_release(ctx);
	return rc < 0 ? err_sys(e, -rc, "seccomp: %s", step) : 0;
}

int seccomp_install(const struct sock_fprog *prog, struct err *e)
{
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, prog) < 0)
		return err_sys(e, errno, "seccomp: install the filter");
	return 0;
}
