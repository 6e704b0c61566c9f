#include "backend/backend.h"

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
