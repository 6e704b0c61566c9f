#include "backend/fc_host.h"

#include <stdio.h>
#include <string.h>

#include "util/kvm_dev.h"

int fc_host_check(const struct config *cfg, struct fc_host *h, struct err *e)
{
	char missing[ERR_MSG_MAX - 100] = "";
	size_t len = 0;
	struct err pe = {0};
	h->jailer[0] = '\0';
	h->kvm_gid = (gid_t)-1;
	if (config_find_program("CELLOS_FIRECRACKER_BINARY", cfg->fc_binary, h->binary, sizeof h->binary, &pe) < 0)
		len += (size_t)snprintf(missing + len, sizeof missing - len, "%s", pe.msg);
	if (cfg->fc_jailer && len < sizeof missing &&
	    config_find_program("CELLOS_FIRECRACKER_JAILER_BINARY", cfg->fc_jailer, h->jailer, sizeof h->jailer, &pe) < 0)
		len += (size_t)snprintf(missing + len, sizeof missing - len, "%s%s", len ? "; " : "", pe.msg);
	char why[512];
	if (len < sizeof missing && kvm_dev_check(cfg->fc_kvm_device, &h->kvm_gid, why, sizeof why) < 0)
		len += (size_t)snprintf(missing + len, sizeof missing - len, "%sno usable KVM device: %s", len ? "; " : "",
					why);
	if (len)
		return err_set(e, "CELLOS_CELL_BACKEND=firecracker cannot run on this host: %s", missing);
	return 0;
}
