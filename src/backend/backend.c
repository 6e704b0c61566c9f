#include "backend/backend.h"

#include <stdio.h>

#include "util/log.h"

const struct backend_ops *backend_for(const struct config *cfg)
{
	switch (cfg->backend) {
	case BACKEND_STUB:
		return &backend_stub;
	case BACKEND_GVISOR:
		return &backend_gvisor;
	case BACKEND_OCI:
		return &backend_oci;
	default:
		return NULL; /* config_load refuses backends this build lacks */
	}
}

bool backend_sees_host_fs(const struct config *cfg)
{
	return cfg->backend == BACKEND_STUB && !(cfg->ns & NS_MNT);
}

int backend_cgroup_setup(struct cell *c, struct cgroup_cell *cg, const struct cgroup_limits *lim, struct runreg *reg,
			 struct err *e)
{
	struct err ce = {0};
	if (cgroup_cell_plan(cg, c->cfg->cgroup_parent, c->name, lim, &ce) < 0)
		log_debug("no cgroup leaf (%s)", ce.msg);
	const char *leaves[1 + CG_NCTRL];
	size_t n_leaves = cgroup_cell_paths(cg, leaves, sizeof leaves / sizeof leaves[0]);
	/* The name is made of the cell id and the run id: a live run has it only
	 * when CELLOS_RUN_ID gave this run the id of a run still going. */
	int rc = runreg_register(reg, c->name, leaves, n_leaves, e);
	if (rc == RUNREG_LIVE)
		return err_set(e, "CELLOS_RUN_ID: a live run on this host uses this run id for cell %s (%s is locked)",
			       c->spec->id, reg->path);
	if (rc < 0)
		return -1;
	cgroup_cell_make(cg);
	snprintf(c->facts.cgroup, sizeof c->facts.cgroup, "%s", cg->v2.path);
	c->facts.leaf = cgroup_cell_any(cg);
	return 0;
}

void backend_cgroup_usage(struct cgroup_cell *cg, struct run_status *st)
{
	if (!cgroup_cell_any(cg))
		return;
	if (!cgroup_cell_wait_empty(cg, 2000))
		log_warn("cgroup: the cell's processes are still exiting; resource usage may be short");
	struct cgroup_usage u;
	cgroup_cell_usage(cg, &u);
	st->have_cell_cpu = u.have_cpu;
	st->cell_user_us = u.user_us;
	st->cell_sys_us = u.sys_us;
	st->have_cell_mem = u.have_mem;
	st->cell_mem_peak = u.mem_peak;
	st->oom_killed = u.oom_kills > 0;
}
