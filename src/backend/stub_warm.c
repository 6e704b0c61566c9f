/* Warm cells of the stub backend (SPEC §11, docs/DESIGN.md "Warm cells").
 *
 * prepare (before there is a document, `cellos-supervisor --warm`): the cgroup
 *         leaves (named `cellos-warm-<runId8>`, made for every controller so
 *         that any run.limits fits), clone3() of the cell's init into them and
 *         its namespaces, the uid map, the network namespace with lo up and
 *         the ruleset of a cell without egress rules, and the init's 'W':
 *         the base of the cell's root (/sys of that netns), pivoted into.
 * claim   (stub_create, once the document is admitted): run.limits, the
 *         nft ruleset, the seccomp filter, and 'A' with the document's part
 *         (isolate/cellinit.h: hostname, workspace, passwd entry, read-only
 *         root, uid, privileges, argv[0]). From there it is the cell stub.c
 *         made.
 * A document the warm cell does not fit (run.mounts, secretDelivery file, the
 * gateway, a terminal to relay, a limit whose controller the leaves lack, an
 * argv/environment over CELLINIT_PACK_MAX) is built cold by stub_create, after
 * the warm cell is destroyed. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend/stub_priv.h"
#include "isolate/netdev.h"
#include "isolate/netns.h"
#include "isolate/seccomp.h"
#include "isolate/userns.h"
#include "util/ids.h"
#include "util/log.h"

/* This process's warm cell (a supervisor has at most one). */
static struct {
	struct cell c;          /* what it was built as (no document) */
	struct spec spec;       /* a stand-in: the leaves' messages name it */
	struct stub *s;         /* NULL: none */
	char hide[2][PATH_MAX];
	char *hide_list[3];
	unsigned ctrls;         /* CG_* the leaves can take limits of */
	bool base_rules;        /* the ruleset without egress rules is in force */
} warm;

/* In the warm cell's netns: lo up, and the ruleset of a cell without egress
 * rules (the claim replaces it when the document declares some). */
static int net_base(void *arg, struct err *e)
{
	(void)arg;
	if (netdev_loopback_up(e) < 0)
		return -1;
	struct err ne = {0};
	warm.base_rules = nft_apply(NULL, 0, &ne) == 0;
	if (!warm.base_rules)
		log_debug("warm cell: the base ruleset: %s (applied at claim)", ne.msg);
	return 0;
}

/* Supervisor files that may lie inside a directory the cell sees (as stub_create
 * computes them): they depend on the configuration only. */
static void hide_paths(const struct config *cfg)
{
	const char *own[] = {cfg->jsonl_path, cfg->dlq_dir};
	size_t n = 0;
	for (size_t i = 0; i < 2; i++) {
		struct stat st;
		if (own[i] && realpath(own[i], warm.hide[n]) && stat(warm.hide[n], &st) == 0 &&
		    (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode))) {
			warm.hide_list[n] = warm.hide[n];
			n++;
		}
	}
	warm.hide_list[n] = NULL;
}

static unsigned leaf_ctrls(const struct cgroup_cell *cg)
{
	unsigned m = cg->v2.fd >= 0 ? cg->v2_ctrls : 0;
	for (int i = 0; i < CG_NCTRL; i++)
		if (cg->v1[i].fd >= 0)
			m |= 1u << i;
	return m;
}

bool stub_warm_wanted(const struct config *cfg)
{
	/* The gateway's veth and host table are named after the run and made
	 * around the cell's netns: such cells start cold (docs/DESIGN.md). */
	return cfg->backend == BACKEND_STUB && !cfg->host_mode && (cfg->ns & NS_MNT) && cfg->network != NETWORK_GATEWAY;
}

void stub_warm_priority(int prio)
{
	if (warm.s && warm.s->init > 0)
		setpriority(PRIO_PROCESS, (id_t)warm.s->init, prio);
}

int stub_warm_prepare(const struct config *cfg, const char *run_id, uid_t uid, gid_t gid, struct err *e)
{
	struct cell *c = &warm.c;
	warm.spec = (struct spec){.id = "warm"};
	*c = (struct cell){.cfg = cfg, .spec = &warm.spec, .run_id = run_id, .ns = cfg->ns, .uid = uid, .gid = gid,
			   .stdio = {-1, -1}};
	snprintf(c->name, sizeof c->name, "cellos-warm-%.8s", run_id);
	struct stub *s = calloc(1, sizeof *s);
	if (!s)
		return err_set(e, "out of memory");
	*s = (struct stub){.init = -1, .pidfd = -1, .ctl = -1, .report = -1, .netns = -1, .mntns = -1, .userns = -1};
	cgroup_cell_init(&s->cg);
	s->reg.fd = -1;
	c->priv = s;

	int64_t t = mono_us();
	/* Every controller: the document's run.limits are written at claim. */
	struct cgroup_limits every = {.memory_max = 1, .pids_max = 1, .cpu_quota = 1};
	if (backend_cgroup_setup(c, &s->cg, &every, &s->reg, e) < 0)
		goto fail;
	warm.ctrls = leaf_ctrls(&s->cg);
	log_step(&t, "warm.cgroup");
	prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);

	struct stub_init_ends ends;
	if (stub_channels(s, &ends, e) < 0)
		goto fail;
	hide_paths(cfg);
	struct cellinit_args args = {
		.ctl = ends.ctl,
		.report = ends.report,
		.cgroup_kill = ends.cgroup_kill,
		.supervisor = getpid(),
		.uid = uid,
		.gid = gid,
		.stdio = {-1, -1},
		.hide = warm.hide_list,
		.warm = true,
	};
	pid_t pid = clone_init(s, c, &args, e);
	stub_close_ends(&ends);
	if (pid < 0)
		goto fail;
	log_step(&t, "warm.clone3");

	if ((c->ns & NS_USER) && userns_map(s->init, uid, gid, e) < 0)
		goto fail;
	if (stub_hold_ns(s, c->ns, e) < 0)
		goto fail;
	if (send(s->ctl, "W", 1, MSG_NOSIGNAL) != 1) {
		err_sys(e, errno, "warm cell setup");
		goto fail;
	}
	if (c->ns & NS_NET) {
		if (stub_make_netns(s, c->ns, uid, gid, e) < 0 || send_netns(s, e) < 0 ||
		    netns_run_in(s->netns, net_base, NULL, e) < 0)
			goto fail;
		log_step(&t, "warm.net");
	}
	if (wait_setup(s, c, e) < 0)
		goto fail;
	log_step(&t, "warm.init_setup");
	warm.s = s;
	return 0;
fail:
	stub_destroy(c);
	return -1;
}

void stub_warm_discard(void)
{
	if (!warm.s)
		return;
	stub_destroy(&warm.c);
	warm.s = NULL;
}

/* Why `c` cannot have the warm cell, or NULL. */
static const char *misfit(const struct cell *c)
{
	if (c->spec->n_mounts)
		return "run.mounts";
	if (c->secrets)
		return "secretDelivery file";
	if (c->stdio[0] >= 0 || c->stdio[1] >= 0)
		return "a terminal to relay";
	if (c->cfg->network == NETWORK_GATEWAY && c->spec->n_egress)
		return "CELLOS_NETWORK=gateway";
	if (cgroup_limits_ctrls(&c->limits) & ~warm.ctrls)
		return "run.limits needs a controller the warm leaf lacks";
	return NULL;
}

static int rules(void *arg, struct err *e)
{
	struct cell *c = arg;
	struct err ne = {0};
	(void)e;
	/* As stub.c's net_setup: a ruleset nftables refuses is a fact, not a failure. */
	if ((warm.base_rules ? nft_replace : nft_apply)(c->egress, c->n_egress, &ne) < 0)
		snprintf(c->facts.nft_error, sizeof c->facts.nft_error, "%s", ne.msg);
	else
		c->facts.nft_applied = true;
	return 0;
}

static int send_claim(struct stub *s, const char *rec, size_t len, struct err *e)
{
	char tag = 'A';
	struct iovec iov[2] = {{&tag, 1}, {(void *)rec, len}};
	struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2};
	/* An init that already failed has said why: wait_setup() reports that. */
	if (sendmsg(s->ctl, &mh, MSG_NOSIGNAL) < 0 && errno != EPIPE && errno != ECONNRESET)
		return err_sys(e, errno, "hand the document's part to the warm cell");
	return 0;
}

int stub_warm_claim(struct cell *c, struct err *e)
{
	if (!warm.s)
		return 1;
	struct stub *s = warm.s;
	const char *why = misfit(c);
	char *rec = NULL;
	size_t len = 0;
	struct cellinit_args args = {
		.hostname = c->spec->id,
		.workdir = c->spec->working_directory,
		.path = c->path,
		.argv = (char *const *)c->spec->argv,
		.envp = c->envp,
		.argv0_prefixes = c->cfg->argv0_prefixes,
	};
	for (char *const *p = c->envp; p && *p; p++)
		if (strncmp(*p, "HOME=", 5) == 0)
			args.home = *p + 5;
	if (!why && cellinit_pack(&args, &rec, &len) < 0)
		why = "argv and environment too large";
	if (why) {
		log_info("warm cell not used (%s): the cell is built cold", why);
		stub_warm_discard();
		return 1;
	}
	int64_t t = mono_us();
	warm.s = NULL;
	c->priv = s;
	c->ns = warm.c.ns;
	/* The leaves keep the warm cell's name (cgroup v2 refuses to rename a
	 * cgroup: docs/DESIGN.md, "Warm cells"). */
	snprintf(c->name, sizeof c->name, "%s", warm.c.name);
	snprintf(c->facts.cgroup, sizeof c->facts.cgroup, "%s", s->cg.v2.path);
	c->facts.leaf = cgroup_cell_any(&s->cg);
	int rc = send_claim(s, rec, len, e);
	explicit_bzero(rec, len); /* the environment's secrets */
	free(rec);
	if (rc < 0)
		goto fail;
	/* While the init finishes the cell's root. */
	s->cg.want = cgroup_limits_ctrls(&c->limits);
	s->cg.cpu_env = c->limits.cpu_from_env;
	s->cg.applied = 0;
	s->cg.error[0] = '\0';
	if (apply_limits(c, s, e) < 0)
		goto fail;
	if (c->ns & NS_NET) {
		c->facts.netns = true;
		/* The base ruleset is already the whole ruleset of a cell without rules. */
		if (warm.base_rules && !c->n_egress)
			c->facts.nft_applied = true;
		else if (netns_run_in(s->netns, rules, c, e) < 0)
			goto fail;
	}
	if (c->cfg->seccomp_policy && seccomp_policy_compile(c->cfg->seccomp_policy, &s->filter, e) < 0)
		goto fail;
	log_step(&t, "claim.limits_net");
	if (wait_setup(s, c, e) < 0)
		goto fail;
	log_step(&t, "claim.init_setup");
	return 0;
fail:
	stub_destroy(c);
	return -1;
}
