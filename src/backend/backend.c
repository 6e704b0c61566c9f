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

int backend_cgroup_setup(struct cell *c, struct cgroup_cell *cg, const struct cgroup_limits *lim, struct runreg *reg,
			 struct err *e)
{
	struct err ce = {0};
	if (cgroup_cell_plan(cg, c->cfg->cgroup_parent, c->name, lim, &ce) < 0)
		log_debug("no cgroup leaf (%s)", ce.msg);
	const char *leaves[1 + CG_NCTRL];
	size_t n_leaves = cgroup_cell_paths(cg, leaves, sizeof leaves / sizeof leaves[0]);
	if (runreg_register(reg, c->name, leaves, n_leaves, e) < 0)
		return -1;
	cgroup_cell_make(cg);
	snprintf(c->cgroup, sizeof c->cgroup, "%s", cg->v2.path);
	return 0;
}
