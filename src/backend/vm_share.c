#include "backend/vm_share.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <stdlib.h>

#include "isolate/gateway.h"
#include "isolate/netdev.h"
#include "isolate/netns.h"
#include "isolate/nft.h"
#include "isolate/tap.h"
#include "util/fileio.h"

size_t vm_secret_files(const struct secrets *s, struct vm_job_file *files, char (*paths)[VM_SECRET_PATH_MAX],
		       size_t max)
{
	size_t n = 0;
	for (size_t i = 0; s && i < s->n && n < max; i++) {
		const struct secret *sec = &s->items[i];
		size_t len;
		const char *v = secret_value(sec, &len);
		snprintf(paths[n], VM_SECRET_PATH_MAX, "/run/cellos/secrets/%s", sec->name);
		files[n] = (struct vm_job_file){.path = paths[n], .data = v, .len = len, .mode = 0400};
		n++;
	}
	return n;
}

int vm_disk_image(const char *source, const char *image, const char *what, struct err *e)
{
	/* Room for the tree plus a quarter, at least 8 MiB. */
	static const char cmd[] = "kb=$(du -sk -- \"$1\" | cut -f1) && exec mkfs.ext4 -q -F -O ^has_journal "
				  "-E root_owner=0:0 -d \"$1\" \"$2\" $((kb + kb / 4 + 8192))k";
	pid_t pid = fork();
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);
		dup2(null, 0);
		dup2(null, 1);
		execl("/bin/sh", "sh", "-c", cmd, "sh", source, image, (char *)NULL);
		_exit(127);
	}
	int ws = -1;
	while (pid > 0 && waitpid(pid, &ws, 0) < 0 && errno == EINTR)
		;
	if (pid < 0 || !WIFEXITED(ws) || WEXITSTATUS(ws) != 0)
		return err_set(e, "%s: could not make an ext4 image of %s", what, source);
	return 0;
}

int vm_open_artifact(const struct cell *c, int stream, int dirfd, const char *path, int *fd, struct err *e)
{
	const struct spec *s = c->spec;
	size_t index = 0;
	while (index < s->n_artifacts && strcmp(s->artifacts[index].path, path) != 0)
		index++;
	struct stat st;
	if (index == s->n_artifacts || stream < 0 || fstat(stream, &st) < 0)
		return err_set(e, "%s: not an artifact of this cell", path);
	size_t len = (size_t)st.st_size;
	unsigned char *m = len ? mmap(NULL, len, PROT_READ, MAP_PRIVATE, stream, 0) : NULL;
	if (len && m == MAP_FAILED)
		return err_sys(e, errno, "%s: the guest's artifacts", path);
	size_t off = 0, size = 0;
	int gerr = 0, rc = 0;
	if (!m || vm_artifact_find(m, len, index, &off, &size, &gerr) < 0)
		rc = err_set(e, "%s: the guest sent no such artifact (the VM ended before it could, or it was larger than CELLOS_EXPORT_MAX_BYTES)", path);
	else if (gerr == EXDEV)
		rc = err_set(e, "%s: not inside the cell's workspace", path);
	else if (gerr)
		rc = err_set(e, "%s: %s (in the guest)", path, strerror(gerr));
	else if ((long long)size > c->cfg->export_max_bytes)
		rc = err_set(e, "%s: %zu bytes, more than CELLOS_EXPORT_MAX_BYTES (%lld)", path, size,
			     c->cfg->export_max_bytes);
	int out = -1;
	if (rc == 0 && (out = openat(dirfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600)) < 0)
		rc = err_sys(e, errno, "%s: a file for it", path);
	if (rc == 0 && write_all(out, m + off, size) < 0)
		rc = err_sys(e, errno, "%s: a file for it", path);
	if (m && m != MAP_FAILED)
		munmap(m, len);
	if (rc == 0) {
		char self[64];
		snprintf(self, sizeof self, "/proc/self/fd/%d", out);
		if ((*fd = open(self, O_RDONLY | O_CLOEXEC)) < 0)
			rc = err_sys(e, errno, "%s", path);
	}
	if (out >= 0)
		close(out);
	return rc;
}

/* Inside the cell's netns (the calling thread is there). */
static int net_setup(void *arg, struct err *e)
{
	struct vm_net *n = arg;
	struct cell *c = n->cell;
	if (netdev_loopback_up(e) < 0)
		return -1;
	if (n->tap && n->tap(n->arg, e) < 0)
		return -1;
	/* The DNS proxy on the gateway address: infrastructure, not a declared
	 * rule (not counted), as for a stub cell. */
	const struct nft_egress *rules = c->egress;
	size_t k = c->n_egress;
	cleanup_free struct nft_egress *with_dns = NULL;
	if (n->gw) {
		if (!(with_dns = calloc(k + 2, sizeof *with_dns)))
			return err_set(e, "out of memory");
		for (int udp = 1; udp >= 0; udp--)
			with_dns[1 - udp] = (struct nft_egress){.family = 4, .addr = n->dns, .port = GATEWAY_DNS_PORT,
								 .udp = udp, .quiet = 1};
		memcpy(with_dns + 2, c->egress, k * sizeof *with_dns);
		rules = with_dns;
		k += 2;
	}
	struct err ne = {0};
	if (nft_apply_at(rules, k, NFT_HOOK_PREROUTING, &ne) < 0) {
		/* A fact, not a failure: the netns leads nowhere; the supervisor
		 * decides what the profile makes of it. */
		snprintf(c->facts.nft_error, sizeof c->facts.nft_error, "%s", ne.msg);
		n->gw_drop = n->gw != NULL;
		return 0;
	}
	c->facts.nft_applied = true;
	if (n->gw && (gateway_cell_up(n->gw, e) < 0 || tap_route_out(GATEWAY_CELL_IF, e) < 0))
		return -1;
	return 0;
}

static void gateway_release(struct vm_net *n, bool cell_dies)
{
	if (!n->gw)
		return;
	if (cell_dies)
		gateway_down_dying(n->gw);
	else
		gateway_down(n->gw);
	free(n->gw);
	n->gw = NULL;
	n->dns[0] = '\0';
}

int vm_net_make(struct cell *c, struct vm_net *n, int (*tap)(void *arg, struct err *e), void *arg, struct err *e)
{
	*n = (struct vm_net){.netns = -1, .cell = c, .tap = tap, .arg = arg};
	if (netns_make(&n->netns, NULL, NULL, e) < 0)
		return -1;
	c->facts.netns = true;
	if (c->cfg->network == NETWORK_GATEWAY && c->n_egress) {
		if (!(n->gw = calloc(1, sizeof *n->gw)))
			return err_set(e, "out of memory");
		n->gw->l7_port = c->l7_port;
		n->gw->l7_queue = c->l7_queue;
		struct err ge = {0};
		int rc = gateway_up(n->gw, c->name, &c->cfg->cell_subnet, c->egress, c->n_egress, c->cfg->egress_deny,
				    c->cfg->n_egress_deny, n->netns, &ge);
		if (rc < 0) {
			free(n->gw);
			n->gw = NULL;
			if (rc != GATEWAY_NFT_FAILED) {
				*e = ge;
				return -1;
			}
			snprintf(c->facts.gw_error, sizeof c->facts.gw_error, "%s", ge.msg);
			snprintf(c->facts.nft_error, sizeof c->facts.nft_error, "%s", ge.msg);
		} else {
			inet_ntop(AF_INET, &n->gw->host_addr, n->dns, sizeof n->dns);
		}
	}
	bool host_half_missing = c->facts.gw_error[0] != '\0';
	if (netns_run_in(n->netns, net_setup, n, e) < 0)
		return -1;
	if (n->gw_drop)
		gateway_release(n, false); /* the cell lives on, isolated */
	c->facts.gw = n->gw;
	if (host_half_missing)
		c->facts.nft_applied = false; /* nftError says why */
	return 0;
}

void vm_net_release(struct cell *c, struct vm_net *n)
{
	gateway_release(n, true);
	c->facts.gw = NULL;
	if (n->netns >= 0)
		close(n->netns);
	n->netns = -1;
}

struct counters_args {
	struct nft_counter **out;
	size_t *n;
};

static int counters_cb(void *arg, struct err *e)
{
	struct counters_args *a = arg;
	return nft_read_counters_at(NFT_HOOK_PREROUTING, a->out, a->n, e);
}

int vm_net_read_counters(const struct vm_net *n, struct nft_counter **out, size_t *count, struct err *e)
{
	struct counters_args a = {out, count};
	return netns_run_in(n->netns, counters_cb, &a, e);
}
