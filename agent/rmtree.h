/* rmtree.h - removing everything inside a folder, safely, whoever asks.
 *
 * The one recursive remover of the project: the cleanup (reap.c), the trash
 * sweep and the archive (discarding a session, pruning) all empty folders
 * through it. It runs as root in folders that others write while it runs,
 * so it keeps these rules:
 *  - nothing is reached through a path: every step is an *at() call relative
 *    to a descriptor whose identity was checked (device, inode, mount);
 *  - a symlink is removed as a link, never followed; nothing but folders is
 *    ever opened (opening a FIFO would block, a device could act);
 *  - nothing on another mount (a mount point, a bind mount of the same disk)
 *    is entered or removed: it is counted and left;
 *  - any depth works with a bounded number of open descriptors.
 *
 * Blocking: run it off the event loop. Functions return 0 or -errno.
 */
#ifndef LOCKWARDEN_RMTREE_H
#define LOCKWARDEN_RMTREE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "site.h"

/* One statx() result, in the terms of the judged site_stat. */
struct rmtree_stat {
	struct site_stat st;
	bool has_mnt_id;
	uint64_t mnt_id;
	bool mount_root;    /* known to be the root of a mount */
};

/* Where the removal may act: everything removed must be on this mount. */
struct rmtree_mount {
	dev_t dev;
	bool has_mnt_id;
	uint64_t mnt_id;
};

/* What emptying a folder did, and what it left. */
struct rmtree_outcome {
	unsigned long files_removed;  /* names that were not folders */
	unsigned long mounts;         /* mount points left in place */
	unsigned long raced;          /* entries that changed between look and act */
	unsigned long failed;         /* entries that could not be removed */
	int first_errno;
	char first_name[64];          /* escaped */
};

/* statx of name relative to dir_fd without following it, or of dir_fd itself
 * when name is "". */
int rmtree_stat_at(int dir_fd, const char *name, struct rmtree_stat *out);
/* The same, asking the filesystem rather than the client's attribute cache
 * (AT_STATX_FORCE_SYNC): a cifs client answers from its cache for up to
 * actimeo (1 s by default), so a write Kudu made just before would not
 * show. Every re-check before acting uses this one; the scan and the walk
 * that empties trash already committed use rmtree_stat_at. */
int rmtree_stat_fresh(int dir_fd, const char *name, struct rmtree_stat *out);
/* The mount that s (a folder opened to act in) is on. */
void rmtree_mount_of(const struct rmtree_stat *s, struct rmtree_mount *out);
/* True when s (not the root of the removal itself) is on mount m. */
bool rmtree_on_mount(const struct rmtree_stat *s, const struct rmtree_mount *m);
bool rmtree_same_inode(const struct rmtree_stat *a, const struct rmtree_stat *b);
/* Whether the folder open at dir_fd is the root of a mount (the share): by
 * statx's mount-root attribute where the kernel tells, else by its parent
 * being on another device (or being itself, at /). The one test of the
 * project for it. */
bool rmtree_is_mount_root(int dir_fd);

/* Removes everything inside the folder open at fd, whose identity is s, on
 * mount m. The folder itself stays. cancel (may be NULL), set from another
 * thread, stops at the next entry. Returns 0 when the walk ran to its end
 * (what it left is counted in out), -ECANCELED, -ESTALE when a folder was
 * moved out of the tree under it, or another negative errno. */
int rmtree_empty(int fd, const struct rmtree_stat *s, const struct rmtree_mount *m,
		 atomic_bool *cancel, struct rmtree_outcome *out);

/* "1 mount point inside: left; ..." for a message, "" when nothing was left. */
void rmtree_describe(const struct rmtree_outcome *o, char *out, size_t out_size);

#endif
