/* What the microVM backends (qemu, firecracker) hand their guest from the host
 * side, VMM-independent: file secrets as files of the job (SPEC §5), and the
 * host directories of run.mounts as read-only ext4 disk images (SPEC §6.3). */
#ifndef CELLOS_VM_SHARE_H
#define CELLOS_VM_SHARE_H

#include <stddef.h>

#include "backend/backend.h"
#include "backend/vm_job.h"
#include "secrets/secret.h"
#include "util/err.h"

#define VM_SECRET_PATH_MAX 300

/* The cell's file secrets at /run/cellos/secrets/<name> in the guest (the same
 * paths as a stub cell's), mode 0400: at most `max` into files (paths holds
 * their names). `s` NULL: none. Returns the count. */
size_t vm_secret_files(const struct secrets *s, struct vm_job_file *files, char (*paths)[VM_SECRET_PATH_MAX],
		       size_t max);

/* An ext4 image `image` of the tree `source` (room for it plus a quarter, at
 * least 8 MiB; no journal; owners and modes as on the host, the guest's
 * workload being the run's own uid), made by mkfs.ext4 -d. -1 naming `what` when it cannot be made. */
int vm_disk_image(const char *source, const char *image, const char *what, struct err *e);

/* A microVM's network (SPEC §6.3, §6.4): the cell's network namespace, where
 * the VMM runs, with lo, the guest's TAP (made by the caller's `tap`, called
 * inside it; NULL: none) and the cell's nft ruleset on what enters from it
 * (prerouting). Under CELLOS_NETWORK=gateway with declared egress, also the
 * gateway's veth, the DNS proxy among the allowed flows, and the TAP's traffic
 * routed out through the veth (isolate/tap.h: tap_route_out). A ruleset or host
 * table nftables refuses is never "fail open": the cell keeps an isolated netns
 * and the facts say why. c->facts.netns, nft_*, gw* are filled in. */
struct vm_net {
	int netns;              /* -1 until made */
	struct gateway *gw;     /* the gateway, or NULL */
	char dns[16];           /* the guest's resolver (the gateway's address), "" without one */
	/* private */
	struct cell *cell;
	int (*tap)(void *arg, struct err *e);
	void *arg;
	bool gw_drop;
};
int vm_net_make(struct cell *c, struct vm_net *n, int (*tap)(void *arg, struct err *e), void *arg, struct err *e);
/* The gateway's host side (the cell's netns is going away: its veth with it)
 * and the netns fd. */
void vm_net_release(struct cell *c, struct vm_net *n);

struct nft_counter;
/* The counters of the cell's ruleset (on the TAP's prerouting hook) in n->netns:
 * the backends' read_counters. */
int vm_net_read_counters(const struct vm_net *n, struct nft_counter **out, size_t *count, struct err *e);

/* The artifact at `path` (SPEC §10) out of what the guest sent on its artifacts
 * channel (`stream`, records of backend/vm_job.h; the guest read it as the
 * workload, beneath its workspace, no symlink followed): copied into a file
 * without a name in the directory `dirfd` (the cell's own) and reopened
 * read-only in *fd. One line naming the path when the guest sent no such
 * artifact, refused it, or it is larger than CELLOS_EXPORT_MAX_BYTES. */
int vm_open_artifact(const struct cell *c, int stream, int dirfd, const char *path, int *fd, struct err *e);

#endif
