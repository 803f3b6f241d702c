/* recordwalk.h - everything inside one deployment record, walked with bounds.
 *
 * A running deployment writes more than status.xml and log.log into its
 * record: an Oryx build writes artifact/<time>.zip for minutes, and anything
 * else may appear below. This is the one walk of a record's contents, used
 * by the scan (the summary of every unfinished record, each scan), by the
 * evidence check (the same summary again before each removal: any write
 * inside is a sign of life) and by the archive (the copy of the whole
 * record).
 *
 * It keeps rmtree.c's rules: every step is an *at() call relative to a
 * folder whose identity was checked after it was opened; a symlink is
 * looked at (lstat), never followed; nothing but folders is opened; nothing
 * on another mount is entered (a mount point counts by its own lstat). It
 * is bounded (site.h): past SITE_TREE_MAX_ENTRIES entries or
 * SITE_TREE_MAX_DEPTH levels, or when an entry cannot be read, it stops and
 * the summary says it cannot tell (tree->cannot_tell, tree->err), which the policy takes as
 * "never stuck". At most SITE_TREE_MAX_DEPTH + 2 descriptors are open.
 *
 * Blocking: run it off the event loop. Functions return 0 or -errno.
 */
#ifndef LOCKWARDEN_RECORDWALK_H
#define LOCKWARDEN_RECORDWALK_H

#include "site.h"

/* Called for each entry, in listing order. depth is 1 for an entry of the
 * record folder itself. path is relative to the record ("artifact/x.zip").
 * An entry that is not a folder is given with the folder it is in
 * (dir_fd); a folder is given once opened (dir_fd is then the folder
 * itself), before its contents, and leave() after them. A negative return
 * stops the walk and is returned by recordwalk(). */
struct recordwalk_visitor {
	void *ctx;
	int (*entry)(void *ctx, int dir_fd, const char *name, const char *path,
		     const struct site_stat *st, unsigned depth);
	void (*leave)(void *ctx, unsigned depth);
};

/* Walks the record folder open at dir_fd (O_RDONLY|O_DIRECTORY) into out.
 * visitor may be NULL (the summary alone). Returns 0 (whether or not the
 * walk could tell), or a visitor's negative return. */
int recordwalk(int dir_fd, const struct recordwalk_visitor *visitor, struct site_tree_sum *out);
/* The same summary with every attribute read with AT_STATX_FORCE_SYNC
 * (rmtree_stat_fresh): the evidence's re-check, which a client's attribute
 * cache must not fool. */
int recordwalk_fresh(int dir_fd, struct site_tree_sum *out);

/* Whether two summaries differ: what changed in words, or NULL. */
const char *recordwalk_difference(const struct site_tree_sum *was, const struct site_tree_sum *now);

#endif
