/* The `stub` backend (SPEC §6.1): the workload as an isolated child process.
 *
 * create: the cell's cgroup leaves (isolate/cgroup.h), then clone3() of the
 *         cell's init (see isolate/cellinit.h) straight into the v2 leaf (the
 *         v1 ones on hybrid hosts by stepping in around the clone) and the
 *         namespaces; run.limits are written before the init starts work; the init
 *         does the in-cell setup; the supervisor brings lo up and installs the
 *         nft ruleset inside the cell's netns (setns there and back), and keeps the
 *         cell's net and mnt namespaces open until destroy.
 * start:  the init forks and execs the workload; the exec outcome comes back over
 *         the control socket.
 * kill:   cgroup.kill (or the PID namespace's init dying), with the supervisor as
 *         child subreaper as the last resort on hosts without a usable cgroup. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend/backend.h"
#include "backend/stub_priv.h"
#include "hostmount/hostmount.h"
#include "isolate/artifact.h"
#include "isolate/cellinit.h"
#include "isolate/cellproc.h"
#include "isolate/cgroup.h"
#include "isolate/mount.h"
#include "isolate/netdev.h"
#include "isolate/netns.h"
#include "isolate/runreg.h"
#include "isolate/seccomp.h"
#include "isolate/tcpkill.h"
#include "isolate/userns.h"
#include "util/ids.h"
#include "util/log.h"
#include "util/path.h"

static struct stub *priv(struct cell *c) { return c->priv; }

/* The namespaces clone3() makes for the init: every one asked for but the
 * network namespace, which we make beside it (network()). */
static unsigned long clone_flags(unsigned ns)
{
	unsigned long f = 0;
	if (ns & NS_MNT) f |= CLONE_NEWNS;
	if (ns & NS_PID) f |= CLONE_NEWPID;
	if (ns & NS_IPC) f |= CLONE_NEWIPC;
	if (ns & NS_UTS) f |= CLONE_NEWUTS;
	if (ns & NS_USER) f |= CLONE_NEWUSER;
	if (ns & NS_CGROUP) f |= CLONE_NEWCGROUP;
	return f;
}

/* Wait for the init's reply to 'A'. */
int wait_setup(struct stub *s, struct cell *c, struct err *e)
{
	char buf[ERR_MSG_MAX + 16];
	ssize_t n;
	/* An init that failed with our 'N' still unread in its queue makes the
	 * kernel report ECONNRESET once, ahead of the 'S' it queued for us: read on. */
	do
		n = recv(s->ctl, buf, sizeof buf - 1, 0);
	while (n < 0 && (errno == EINTR || errno == ECONNRESET));
	if (n >= 1 && buf[0] == 'R')
		return 0;
	if (n > (ssize_t)(1 + sizeof(int)) && buf[0] == 'S') {
		int errnum;
		memcpy(&errnum, buf + 1, sizeof errnum);
		buf[n] = '\0';
		if (!errnum)
			return err_set(e, "cell setup: %s", buf + 1 + sizeof errnum);
		return err_sys(e, errnum, "cell setup: %s", buf + 1 + sizeof errnum);
	}
	if (n > 1 && buf[0] == 'D') {
		buf[n] = '\0';
		c->facts.argv0_refused = true;
		return err_set(e, "%s", buf + 1);
	}
	return err_set(e, "cell setup: the cell's init ended unexpectedly");
}

/* In the cell's network namespace (isolate/netns.h): lo up, the egress ruleset. */
static int net_setup(void *arg, struct err *e)
{
	struct cell *c = arg;
	struct stub *s = priv(c);
	if (netdev_loopback_up(e) < 0)
		return -1;
	/* Under the gateway the cell may also reach the DNS proxy on the gateway
	 * address (not counted: infrastructure, not a declared rule). */
	const struct nft_egress *rules = c->egress;
	size_t n = c->n_egress;
	cleanup_free struct nft_egress *with_dns = NULL;
	char gw_addr[INET_ADDRSTRLEN];
	if (s->gw) {
		inet_ntop(AF_INET, &s->gw->host_addr, gw_addr, sizeof gw_addr);
		if (!(with_dns = calloc(n + 2, sizeof *with_dns)))
			return err_set(e, "out of memory");
		for (int udp = 1; udp >= 0; udp--)
			with_dns[1 - udp] = (struct nft_egress){.family = 4, .addr = gw_addr, .port = GATEWAY_DNS_PORT,
								 .udp = udp, .quiet = 1};
		memcpy(with_dns + 2, c->egress, n * sizeof *with_dns);
		rules = with_dns;
		n += 2;
	}
	struct err ne = {0};
	if (nft_apply(rules, n, &ne) < 0) {
		/* A fact, not a failure: the netns alone still blocks egress; the
		 * supervisor decides what the profile makes of it. */
		snprintf(c->facts.nft_error, sizeof c->facts.nft_error, "%s", ne.msg);
		/* Never fail open (SPEC §6.4): without its filter the cell keeps no route out. */
		s->gw_drop = s->gw != NULL;
	} else {
		c->facts.nft_applied = true;
		if (s->gw && gateway_cell_up(s->gw, e) < 0)
			return -1;
	}
	return 0;
}

/* CELLOS_NETWORK=gateway (SPEC §6.4), in the supervisor's netns: the /30 first
 * (its address goes to the init at once, see network()), then the run's host
 * table and the veth into the cell's netns. */
static int gateway_reserve_net(struct stub *s, struct cell *c, struct err *e)
{
	if (c->cfg->network != NETWORK_GATEWAY || c->spec->n_egress == 0)
		return 0;
	if (!(s->gw = calloc(1, sizeof *s->gw)))
		return err_set(e, "out of memory");
	s->gw->l7_port = c->l7_port;
	s->gw->l7_queue = c->l7_queue;
	if (gateway_reserve(s->gw, c->name, &c->cfg->cell_subnet, c->egress, c->n_egress, c->cfg->egress_deny,
			    c->cfg->n_egress_deny, s->netns, e) == 0)
		return 0;
	free(s->gw);
	s->gw = NULL;
	return -1;
}

/* A host table nftables refuses is never "fail open": the cell keeps an
 * isolated network (no veth), and the facts say why (gw_error, nftRulesApplied
 * false); what the profile makes of that is the supervisor's decision
 * (admit_created). */
static int gateway_setup(struct stub *s, struct cell *c, struct err *e)
{
	if (!s->gw)
		return 0;
	struct err ge = {0};
	int rc = gateway_build(s->gw, &ge);
	if (rc == 0)
		return 0;
	free(s->gw);
	s->gw = NULL;
	if (rc != GATEWAY_NFT_FAILED) {
		*e = ge;
		return -1;
	}
	snprintf(c->facts.gw_error, sizeof c->facts.gw_error, "%s", ge.msg);
	snprintf(c->facts.nft_error, sizeof c->facts.nft_error, "%s", ge.msg);
	return 1;
}

static void gateway_teardown(struct stub *s, struct cell *c, bool cell_dies)
{
	if (!s->gw)
		return;
	if (cell_dies)
		gateway_down_dying(s->gw);
	else
		gateway_down(s->gw);
	free(s->gw);
	s->gw = NULL;
	c->facts.gw = NULL;
}

/* run.limits into the cell's leaves; whether they all apply is reported as a
 * fact (the supervisor decides what the profile makes of it). */
int apply_limits(struct cell *c, struct stub *s, struct err *e)
{
	if (cgroup_cell_apply(&s->cg, &c->limits, e) < 0)
		return -1;
	c->facts.limits_applied = (s->cg.applied & s->cg.want) == s->cg.want;
	snprintf(c->facts.limits_error, sizeof c->facts.limits_error, "%s", c->facts.limits_applied ? "" : s->cg.error);
	return 0;
}

int send_netns(struct stub *s, struct err *e)
{
	union {
		struct cmsghdr h;
		char space[CMSG_SPACE(sizeof(int))];
	} cm;
	memset(&cm, 0, sizeof cm);
	/* With the gateway's address (0.0.0.0: none) for the cell's resolv.conf. */
	struct in_addr gw = {0};
	if (s->gw)
		gw = s->gw->host_addr;
	struct iovec iov[2] = {{"N", 1}, {&gw, 4}};
	struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2, .msg_control = &cm, .msg_controllen = sizeof cm};
	struct cmsghdr *h = CMSG_FIRSTHDR(&mh);
	h->cmsg_level = SOL_SOCKET;
	h->cmsg_type = SCM_RIGHTS;
	h->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(h), &s->netns, sizeof(int));
	/* An init that already failed has said why: wait_setup() reports that. */
	if (sendmsg(s->ctl, &mh, MSG_NOSIGNAL) != 5 && errno != EPIPE && errno != ECONNRESET)
		return err_sys(e, errno, "hand the network namespace to the cell");
	return 0;
}

/* The cell's network namespace, made while the init builds the cell's root
 * (it joins it before mounting /sys: cellinit.c). With a user namespace it
 * belongs to that namespace and is charged to the run's uid, as if clone3()
 * had made it (isolate/netns.h). */
int stub_make_netns(struct stub *s, unsigned ns, uid_t uid, gid_t gid, struct err *e)
{
	if (!(ns & NS_USER))
		return netns_make(&s->netns, NULL, NULL, e);
	bool root = geteuid() == 0;
	return netns_make_in(s->userns, root ? uid : geteuid(), root ? gid : getegid(), &s->netns, e);
}

/* The cell's network: its netns (handed to the init at once, with the
 * gateway's address when there is one), the gateway's host side, then inside
 * (isolate/netns.h): lo, the ruleset, the gateway's cell side. The workload
 * starts only after all of it ('B'). */
static int network(struct stub *s, struct cell *c, struct err *e)
{
	int gw = 0;
	int64_t t = mono_us();
	if (stub_make_netns(s, c->ns, c->uid, c->gid, e) < 0)
		return -1;
	/* The init needs only the netns and the gateway's address (resolv.conf):
	 * both go now, and the rest is made while it builds the cell's root (the
	 * workload starts only after wait_setup()). Should the host table then be
	 * refused, that resolv.conf names an address the isolated cell cannot
	 * reach: its lookups fail, as they would with none. */
	if (gateway_reserve_net(s, c, e) < 0 || send_netns(s, e) < 0)
		return -1;
	if ((gw = gateway_setup(s, c, e)) < 0)
		return -1;
	if (s->gw)
		log_step(&t, "create.net.gateway");
	if (netns_run_in(s->netns, net_setup, c, e) < 0)
		return -1;
	if (s->gw_drop)
		gateway_teardown(s, c, false); /* the cell lives on, isolated */
	c->facts.gw = s->gw;
	if (gw == 1)
		c->facts.nft_applied = false; /* the host half of the filter is missing: nftError says why */
	return 0;
}

/* What the clone of the init is done as: with a user namespace, its owner. */
struct clone_ctx {
	const struct cell *c;
	struct cellinit_args *a;
	struct userns_owner own;
};

static int clone_before(void *arg, struct err *e)
{
	struct clone_ctx *x = arg;
	x->own = (struct userns_owner){0};
	return (x->c->ns & NS_USER) ? userns_become_owner(&x->own, x->c->uid, x->c->gid, e) : 0;
}

static void clone_after(void *arg) { userns_end_owner(&((struct clone_ctx *)arg)->own); }

static _Noreturn void clone_child(void *arg) { cellinit_main(((struct clone_ctx *)arg)->a); }

static int clone_once(struct stub *s, const struct cell *c, struct cellinit_args *a, pid_t *pid, int *pidfd,
		      struct err *e)
{
	/* The cell's network namespace is made by us while the init builds the
	 * cell's root, not by clone3() before it (network(), cellinit.c's
	 * join_netns). */
	a->ns = c->ns;
	a->gw_resolv = (c->ns & NS_NET) && (c->ns & NS_MNT) && c->cfg->network == NETWORK_GATEWAY && c->spec->n_egress > 0;
	struct clone_ctx x = {.c = c, .a = a};
	struct cellproc_clone req = {
		.flags = clone_flags(c->ns),
		.what = "the cell (namespaces from CELLOS_SUBPROCESS_UNSHARE)",
		.before = clone_before,
		.after = clone_after,
		.child = clone_child,
		.arg = &x,
	};
	return cellproc_clone(&s->cg, &req, pid, pidfd, e);
}

/* clone3() of the cell's init into its leaves and namespaces. A user namespace
 * the kernel refuses is dropped with a warning when it came from `all` (the
 * workload then runs as the run's uid itself: cellinit.c), and fatal when it
 * was asked for by name (SPEC §3). */
int stub_channels(struct stub *s, struct stub_init_ends *ends, struct err *e)
{
	int sv[2], rp[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return err_sys(e, errno, "socketpair");
	if (pipe2(rp, O_CLOEXEC) < 0) {
		err_sys(e, errno, "pipe");
		close(sv[0]);
		close(sv[1]);
		return -1;
	}
	int one = 1;
	if (setsockopt(sv[0], SOL_SOCKET, SO_PASSCRED, &one, sizeof one) < 0) {
		err_sys(e, errno, "control socket: SO_PASSCRED (the workload's pid comes with it)");
		int fds[] = {sv[0], sv[1], rp[0], rp[1]};
		for (size_t i = 0; i < 4; i++)
			close(fds[i]);
		return -1;
	}
	s->ctl = sv[0];
	s->report = rp[0];
	*ends = (struct stub_init_ends){.ctl = sv[1], .report = rp[1], .cgroup_kill = -1};
	if (s->cg.v2.fd >= 0 && s->cg.has_kill)
		ends->cgroup_kill = openat(s->cg.v2.fd, "cgroup.kill", O_WRONLY | O_CLOEXEC);
	return 0;
}

void stub_close_ends(const struct stub_init_ends *ends)
{
	close(ends->ctl);
	close(ends->report);
	if (ends->cgroup_kill >= 0)
		close(ends->cgroup_kill);
}

int stub_hold_ns(struct stub *s, unsigned ns, struct err *e)
{
	const struct {
		unsigned bit;
		const char *name;
		int *fd;
	} held[] = {{NS_MNT, "mnt", &s->mntns}, {NS_USER, "user", &s->userns}};
	for (size_t i = 0; i < sizeof held / sizeof held[0]; i++) {
		if (!(ns & held[i].bit))
			continue;
		char nspath[64];
		snprintf(nspath, sizeof nspath, "/proc/%d/ns/%s", (int)s->init, held[i].name);
		if ((*held[i].fd = open(nspath, O_RDONLY | O_CLOEXEC)) < 0)
			return err_sys(e, errno, "open %s", nspath);
	}
	return 0;
}

pid_t clone_init(struct stub *s, struct cell *c, struct cellinit_args *a, struct err *e)
{
	int rc = clone_once(s, c, a, &s->init, &s->pidfd, e);
	if (rc < 0 && s->init < 0 && (c->ns & NS_USER) && !c->cfg->user_required && userns_refused(errno)) {
		log_warn("the kernel refuses a user namespace (%s): the cell runs without one, as host uid %u",
			 strerror(errno), (unsigned)c->uid);
		c->ns &= ~(unsigned)NS_USER;
		rc = clone_once(s, c, a, &s->init, &s->pidfd, e);
	}
	return rc < 0 ? -1 : s->init;
}

/* HOME of the workload's environment (always set: supervisor.c). */
static const char *env_home(char *const *envp)
{
	for (char *const *p = envp; p && *p; p++)
		if (strncmp(*p, "HOME=", 5) == 0)
			return *p + 5;
	return NULL;
}

/* run.mounts: open every source now (hostmount.h), and say what the init is to
 * do with them; also the paths in the cell, under a mount's target, of the
 * supervisor's own files (`own`, canonical) that lie inside its source. */
static int mounts_plan(struct stub *s, struct cell *c, char own[][PATH_MAX], size_t n_own, struct err *e)
{
	const struct spec *spec = c->spec;
	if (hostmounts_open(c->cfg, spec, &s->hm, e) < 0 || hostmounts_check_nested(spec, &s->hm, e) < 0)
		return -1;
	size_t n = s->n_mounts = s->hm.n;
	s->cm = calloc(n + 1, sizeof *s->cm);
	s->targets = calloc(n + 1, sizeof *s->targets);
	s->staged = calloc(n + 1, sizeof *s->staged);
	s->hide = calloc(n_own * (n + 1) + 1, sizeof *s->hide);
	if (!s->cm || !s->targets || !s->staged || !s->hide)
		return err_set(e, "out of memory");
	size_t k = 0;
	for (size_t i = 0; i < n_own; i++)
		if (!(s->hide[k++] = strdup(own[i])))
			return err_set(e, "out of memory");
	for (size_t j = 0; j < n; j++) {
		size_t i = s->hm.order[j];
		char target[PATH_MAX], source[PATH_MAX];
		if (path_clean(spec->mounts[i].target, target, sizeof target) < 0 ||
		    path_clean(spec->mounts[i].source, source, sizeof source) < 0 || !(s->targets[j] = strdup(target)))
			return err_set(e, "spec.run.mounts[%zu]: invalid path", i);
		s->cm[j] = (struct cellfs_mount){.target = s->targets[j], .staged = "", .dir = s->hm.dir[i], .index = i};
		char *const src[] = {source, NULL};
		for (size_t o = 0; o < n_own; o++)
			if (path_within_any(own[o], src) && asprintf(&s->hide[k], "%s%s", target, own[o] + strlen(source)) >= 0)
				k++;
	}
	return 0;
}

/* After the clone (or on failure): the init has its copy of everything. */
static void mounts_done(struct stub *s)
{
	hostmounts_close(&s->hm);
	for (size_t j = 0; j < s->n_mounts; j++) {
		free(s->targets ? s->targets[j] : NULL);
		free(s->staged ? s->staged[j] : NULL);
	}
	for (char **h = s->hide; h && *h; h++)
		free(*h);
	free(s->cm);
	free(s->targets);
	free(s->staged);
	free(s->hide);
	s->cm = NULL;
	s->targets = s->staged = s->hide = NULL;
	s->n_mounts = 0;
}

static int stub_create(struct cell *c, struct err *e)
{
	/* A warm cell (stub_warm.c) when this process has one that fits. */
	int warm = stub_warm_claim(c, e);
	if (warm <= 0)
		return warm;
	struct stub *s = calloc(1, sizeof *s);
	if (!s)
		return err_set(e, "out of memory");
	*s = (struct stub){.init = -1, .pidfd = -1, .ctl = -1, .report = -1, .netns = -1, .mntns = -1, .userns = -1};
	cgroup_cell_init(&s->cg);
	s->reg.fd = -1;
	c->priv = s;

	int64_t t = mono_us();
	/* Without a leaf, the subreaper fallback kills the cell (kill_orphans). */
	if (backend_cgroup_setup(c, &s->cg, &c->limits, &s->reg, e) < 0)
		goto fail;
	log_step(&t, "create.cgroup");
	/* Orphans of the cell reparent to us if the init dies first. */
	prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);

	struct stub_init_ends ends;
	if (stub_channels(s, &ends, e) < 0)
		goto fail;

	/* Supervisor files that may lie inside a directory the cell sees (the cell
	 * resolves these canonical host paths in its own root), also where a
	 * run.mounts source shows them under its target. */
	char hide_paths[2][PATH_MAX];
	size_t n_hide = 0;
	const char *own[] = {c->cfg->jsonl_path, c->cfg->dlq_dir};
	/* Only files and directories hold anything: a device (CELL_OS_JSONL_EVENTS
	 * =/dev/null) stays, or the cell would lose its own /dev/null. */
	for (size_t i = 0; i < 2; i++) {
		struct stat st;
		if (own[i] && realpath(own[i], hide_paths[n_hide]) && stat(hide_paths[n_hide], &st) == 0 &&
		    (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)))
			n_hide++;
	}
	if (mounts_plan(s, c, hide_paths, n_hide, e) < 0) {
		stub_close_ends(&ends);
		goto fail;
	}
	struct cellinit_args args = {
		.hostname = c->spec->id,
		.workdir = c->spec->working_directory,
		.home = env_home(c->envp),
		.path = c->path,
		.argv = (char *const *)c->spec->argv,
		.envp = c->envp,
		.ctl = ends.ctl,
		.report = ends.report,
		.cgroup_kill = ends.cgroup_kill,
		.supervisor = getpid(),
		.uid = c->uid,
		.gid = c->gid,
		.stdio = {c->stdio[0], c->stdio[1]},
		.argv0_prefixes = c->cfg->argv0_prefixes,
		.hide = s->hide,
		.secrets = c->secrets,
		.mounts = s->cm,
		.n_mounts = s->n_mounts,
	};
	/* run.mounts: the cell's mount namespace is copied from one that holds the
	 * opened sources (hostmount.h); we are back in ours right after. */
	struct hostmount_stage stage;
	pid_t pid = -1;
	if (hostmounts_stage(&s->hm, &stage, e) == 0) {
		for (size_t j = 0; j < s->n_mounts; j++)
			if (asprintf(&s->staged[j], "%s/%zu", stage.dir, s->cm[j].index) >= 0)
				s->cm[j].staged = s->staged[j];
			else
				s->staged[j] = NULL;
		pid = clone_init(s, c, &args, e);
		hostmounts_unstage(&stage);
	}
	mounts_done(s);
	stub_close_ends(&ends);
	if (pid < 0)
		goto fail;
	log_step(&t, "create.clone3");

	/* Root inside the cell (its only uid/gid) is the run's own host identity
	 * (c->uid/c->gid: SPEC §3, never 0, never shared by two live runs). Nothing
	 * the host owns belongs to it, so the cell has only the "other" permission
	 * bits on host files; the init then becomes that root and drops the
	 * supplementary groups it inherited from us (cellinit.c). */
	if ((c->ns & NS_USER) && userns_map(s->init, c->uid, c->gid, e) < 0)
		goto fail;
	if (stub_hold_ns(s, c->ns, e) < 0)
		goto fail;
	if (send(s->ctl, "A", 1, MSG_NOSIGNAL) != 1) {
		err_sys(e, errno, "cell setup");
		goto fail;
	}
	/* Written while the init sets up the cell (inside its leaves already, so
	 * what it uses counts), off the critical path; in force before the
	 * workload exists ('B'). */
	if (apply_limits(c, s, e) < 0)
		goto fail;
	log_step(&t, "create.limits");
	/* Network setup overlaps with the init's mounts. */
	if (c->ns & NS_NET) {
		c->facts.netns = true;
		if (network(s, c, e) < 0)
			goto fail;
		log_step(&t, "create.net");
	}
	/* Compiled while the init builds the cell's filesystem (the longer of the
	 * two), so it costs the workload's start nothing. */
	if (c->cfg->seccomp_policy) {
		if (seccomp_policy_compile(c->cfg->seccomp_policy, &s->filter, e) < 0)
			goto fail;
		log_step(&t, "create.seccomp");
	}
	if (wait_setup(s, c, e) < 0)
		goto fail;
	log_step(&t, "create.init_setup");
	return 0;
fail:
	stub_destroy(c);
	return -1;
}

static void stub_launch(struct cell *c)
{
	struct stub *s = priv(c);
	char tag = 'B';
	struct iovec biov[2] = {{&tag, 1}, {s->filter.filter, s->filter.len * sizeof *s->filter.filter}};
	struct msghdr bm = {.msg_iov = biov, .msg_iovlen = s->filter.len ? 2 : 1};
	s->launched = true;
	s->launch_errno = sendmsg(s->ctl, &bm, MSG_NOSIGNAL) < 1 ? errno : 0;
}

static int stub_start(struct cell *c, struct spawn_result *r, struct err *e)
{
	struct stub *s = priv(c);
	memset(r, 0, sizeof *r);
	if (!s->launched)
		stub_launch(c);
	if (s->launch_errno)
		return err_sys(e, s->launch_errno, "start the workload");
	for (;;) {
		char buf[4200];
		union {
			struct cmsghdr h;
			char space[CMSG_SPACE(sizeof(struct ucred))];
		} cm;
		struct iovec iov = {buf, sizeof buf - 1};
		struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = &cm, .msg_controllen = sizeof cm};
		ssize_t n = recvmsg(s->ctl, &mh, MSG_CMSG_CLOEXEC);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			/* EOF after 'P': the close-on-exec end went away in execve. */
			if (r->program[0] && !r->spawn_errno)
				r->spawned = true;
			else if (!r->spawn_errno)
				r->spawn_errno = EIO;
			return 0;
		}
		buf[n] = '\0';
		if (buf[0] == 'P') {
			snprintf(r->program, sizeof r->program, "%s", buf + 1);
			for (struct cmsghdr *h = CMSG_FIRSTHDR(&mh); h; h = CMSG_NXTHDR(&mh, h))
				if (h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_CREDENTIALS) {
					struct ucred uc;
					memcpy(&uc, CMSG_DATA(h), sizeof uc);
					r->pid = uc.pid;
				}
		} else if (buf[0] == 'E' && n >= (ssize_t)(1 + sizeof(int))) {
			memcpy(&r->spawn_errno, buf + 1, sizeof(int));
		}
	}
}

static int stub_wait_fd(struct cell *c) { return priv(c)->report; }

static void reap_init(struct stub *s)
{
	if (s->reaped || s->init <= 0)
		return;
	siginfo_t si;
	while (waitid(P_PIDFD, (id_t)s->pidfd, &si, WEXITED) < 0 && errno == EINTR)
		;
	s->reaped = true;
}

/* Kill and reap every remaining child of ours (we are a child subreaper, so the
 * cell's orphans end up here when there is no cgroup to kill them through). */
static void kill_orphans(void)
{
	for (int round = 0; round < 100; round++) {
		char path[64];
		snprintf(path, sizeof path, "/proc/self/task/%d/children", (int)getpid());
		FILE *f = fopen(path, "re");
		int found = 0;
		long pid;
		if (f) {
			while (fscanf(f, "%ld", &pid) == 1) {
				kill((pid_t)pid, SIGKILL);
				found++;
			}
			fclose(f);
		}
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
		if (!found)
			return;
		usleep(1000);
	}
}

static void stub_signal(struct cell *c, int sig)
{
	struct stub *s = priv(c);
	if (sig == SIGKILL) {
		cgroup_cell_signal(&s->cg, SIGKILL, 0);
		if (!s->reaped && s->init > 0)
			kill(s->init, SIGKILL); /* as PID 1 its death takes the namespace down */
		return;
	}
	/* Graceful: the init forwards to the workload (and, as PID 1, to everyone);
	 * without a PID namespace we reach the others through the cgroup. */
	if (!s->reaped && s->init > 0)
		kill(s->init, sig);
	if (!(c->ns & NS_PID))
		cgroup_cell_signal(&s->cg, sig, s->init);
}

static void stub_collect(struct cell *c, struct run_status *st)
{
	struct stub *s = priv(c);
	memset(st, 0, sizeof *st);
	struct cellinit_report r;
	ssize_t n;
	do
		n = read(s->report, &r, sizeof r);
	while (n < 0 && errno == EINTR);
	if (n == (ssize_t)sizeof r) {
		st->have_status = true;
		st->wstatus = r.wstatus;
		st->ru = r.ru;
	}
	/* The main process is gone: nothing else of the cell may keep running. */
	cgroup_cell_signal(&s->cg, SIGKILL, 0);
	if (!s->reaped && s->init > 0)
		kill(s->init, SIGKILL);
	reap_init(s);
	if (s->cg.v2.fd < 0)
		kill_orphans();
	backend_cgroup_usage(&s->cg, st);
}

static int read_counters(void *arg, struct err *e)
{
	void **out = arg;
	return nft_read_counters((struct nft_counter **)out[0], (size_t *)out[1], e);
}

static int stub_read_counters(struct cell *c, struct nft_counter **out, size_t *n, struct err *e)
{
	void *args[2] = {out, n};
	return netns_run_in(priv(c)->netns, read_counters, args, e);
}

/* Export reads in the cell's mount namespace (kept open for this until
 * destroy), beneath the workspace when it has one, as the workload (SPEC §10);
 * without a mount namespace the cell's view is the host's: only under
 * CELLOS_EXPORT_HOST_PATHS_ALLOW, as the run's uid. */
static int stub_open_artifact(struct cell *c, const char *path, int *fd, struct err *e)
{
	struct stub *s = priv(c);
	struct artifact_view v = {.userns = s->userns, .mntns = s->mntns, .uid = c->uid, .gid = c->gid,
				  .workspace = s->mntns >= 0 ? c->spec->working_directory : NULL,
				  .host_allow = c->cfg->export_host_allow, .max_bytes = c->cfg->export_max_bytes};
	return artifact_open(&v, path, fd, e);
}

void stub_destroy(struct cell *c)
{
	struct stub *s = priv(c);
	if (!s)
		return;
	if (s->init > 0 && !s->reaped) {
		cgroup_cell_signal(&s->cg, SIGKILL, 0);
		kill(s->init, SIGKILL);
		reap_init(s);
	}
	if (s->cg.v2.fd < 0)
		kill_orphans();
	cellproc_release(&s->cg, &s->reg);
	/* The sockets the cell's processes left behind would hold its netns
	 * (and the veth) until their connections end (isolate/tcpkill.h). */
	if (s->gw && s->netns >= 0) {
		struct err te = {0};
		size_t n;
		if (tcpkill_netns(s->netns, &n, &te) < 0)
			log_debug("destroy: %s", te.msg);
		else if (n)
			log_debug("destroy: ended %zu TCP socket(s) the cell left", n);
	}
	gateway_teardown(s, c, true);
	free(s->filter.filter);
	mounts_done(s);
	int *fds[] = {&s->pidfd, &s->ctl, &s->report, &s->netns, &s->mntns, &s->userns};
	for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
		if (*fds[i] >= 0) {
			close(*fds[i]);
			*fds[i] = -1;
		}
	free(s);
	c->priv = NULL;
}

const struct backend_ops backend_stub = {
	.name = "stub",
	.create = stub_create,
	.launch = stub_launch,
	.start = stub_start,
	.wait_fd = stub_wait_fd,
	.collect = stub_collect,
	.signal = stub_signal,
	.read_counters = stub_read_counters,
	.open_artifact = stub_open_artifact,
	.destroy = stub_destroy,
};
