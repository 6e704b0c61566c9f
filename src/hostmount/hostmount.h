/* run.mounts (SPEC §2, ext): host directories and files shown in the cell.
 *
 *   admission  mounts_admit: the rules that depend on the configuration (the
 *              document's own rules are spec.c's): every source under a prefix of
 *              CELLOS_HOST_MOUNT_ALLOW_PREFIXES (whole components), a writable one
 *              only with CELLOS_HOST_MOUNT_ALLOW_RW=1 and never when the profile forbids it, and
 *              a cell that has a mount namespace.
 *   create     hostmounts_open: each source opened once, by the supervisor, from
 *              "/" without following any symlink (openat2 RESOLVE_NO_SYMLINKS), and
 *              copied from that very descriptor into a detached mount tree
 *              (open_tree(fd, "", OPEN_TREE_CLONE | AT_EMPTY_PATH | AT_RECURSIVE)),
 *              made nosuid, nodev, private and, unless readOnly is false, read-only,
 *              all recursively (mount_setattr AT_RECURSIVE). Nothing that happens to
 *              the host path afterwards changes what the cell gets: it is bound
 *              from the tree, never by name.
 *   stub       hostmounts_stage: the trees attached in a private mount namespace of
 *              the supervisor's (so the cell's mount namespace, copied from it by
 *              clone3, holds them; in a user namespace the kernel locks their
 *              read-only, nosuid and nodev flags there), undone right after the
 *              clone. The cell's init takes them from there (isolate/mount.h).
 *   oci        the runtime's child attaches the trees at <bundle dir>/mounts/<i>,
 *              on the private tmpfs only its mount namespace sees, and config.json
 *              binds those paths (backend/oci_run.c).
 *
 * Order: a mount nested in another (or in the workspace) is applied after it:
 * by the depth of the target, outermost first (hostmounts_order). */
#ifndef CELLOS_HOSTMOUNT_H
#define CELLOS_HOSTMOUNT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "spec/spec.h"
#include "util/err.h"

/* The configuration-dependent rules of run.mounts (SPEC §2); the admission step
 * calls it with the others (125 naming the field and the variable). */
/* forbid_rw: the profile refuses writable host mounts (admission decides it: hardened). */
int mounts_admit(const struct config *cfg, const struct spec *spec, bool forbid_rw, struct err *e);

/* The opened sources of spec.run.mounts, by index. */
struct hostmounts {
	size_t n;
	int *tree;              /* detached mount tree of the source (O_CLOEXEC), or -1 */
	bool *dir;              /* the source is a directory (else a regular file) */
	size_t *order;          /* indices in the order the mounts are applied */
};

/* Open every source (see above); on failure nothing stays open and *e names
 * spec.run.mounts[i].source. hm->n == 0 when the document has no mounts. */
int hostmounts_open(const struct config *cfg, const struct spec *spec, struct hostmounts *hm, struct err *e);
void hostmounts_close(struct hostmounts *hm);

/* Nothing is ever created on the host: a target nested in another mount must
 * already exist in that mount's source, as a directory for a directory source and
 * a non-directory for a file (checked beneath the opened tree, no symlinks). The
 * workspace (run.workingDirectory) nested in a mount likewise. */
int hostmounts_check_nested(const struct spec *spec, const struct hostmounts *hm, struct err *e);

/* The innermost mount (index into spec.run.mounts) whose target holds the clean
 * path `clean` strictly below it, or -1; *in_workspace when the workspace is the
 * innermost one instead. */
long hostmounts_enclosing(const struct spec *spec, const char *clean, bool *in_workspace);

/* The stub's staging (see above). `dir` is where the trees are, as "<dir>/<i>",
 * in the staging namespace and so in the cell's mount namespace as cloned. */
struct hostmount_stage {
	bool active;
	int home_ns;            /* the supervisor's own mount namespace, */
	int home_root;          /* root directory */
	int home_cwd;           /* and working directory */
	char dir[16];
};
int hostmounts_stage(const struct hostmounts *hm, struct hostmount_stage *st, struct err *e);
/* Back to the supervisor's own mount namespace, root and working directory (aborts if
 * that is impossible: nothing sane could follow). No-op when not active. */
void hostmounts_unstage(struct hostmount_stage *st);

/* started.isolation.mounts: [{source, target, readOnly}], NULL without mounts. */
json_t *hostmounts_json(const struct spec *spec);

#endif
