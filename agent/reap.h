/* reap.h - removing the leftovers a cleanup names, and nothing else.
 *
 * Blocking code, run off the event loop (uv_queue_work). Every step works
 * relative to directory file descriptors opened with O_NOFOLLOW, so a symlink
 * anywhere is removed as a link and its target is never touched; nothing on
 * another device (a mount point) is entered or removed; and each target is
 * re-checked against what was judged (type, inode, mtime, size, and for a
 * folder the files inside that were judged) just before it goes. A folder is
 * first renamed to a ".lockwarden-trash-<name>" folder beside it, which takes
 * it out of Kudu's sight in one atomic step once it has been verified; its
 * contents are removed afterwards, and a trash folder left behind by an
 * interrupted run is finished by the next cleanup.
 *
 * Functions return 0 or a negative errno.
 */
#ifndef LOCKWARDEN_REAP_H
#define LOCKWARDEN_REAP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "site.h"

/* The one trash prefix is kudu.h's; this name stays for its current users. */
#define REAP_TRASH_PREFIX KUDU_TRASH_PREFIX
#define REAP_MAX_INNER 3

struct reap_target {
	const char *area;            /* "locks" or "deployments" (a plain name below root) */
	char name[NAME_MAX + 1];     /* the entry's name in that folder */
	struct site_stat judged;     /* its lstat when it was judged */
	/* Files inside a folder target that were judged too (info.lock;
	 * status.xml, log.log, manifest): each must still match, or be absent
	 * if it was absent. */
	size_t n_inner;
	char inner_name[REAP_MAX_INNER][16];
	struct site_stat inner[REAP_MAX_INNER];
	/* A folder target: stop once it is verified and renamed to trash (out
	 * of Kudu's sight); its contents go later, as a trash target of their
	 * own, so a large record never holds up the next cleanup. */
	bool trash_only;
};

struct reap_result {
	int err;                     /* 0 removed; -ESTALE changed since judged; -errno */
	char detail[256];            /* why, for the log: "inode changed", "mount point inside: left" */
	unsigned long files_removed;
};

/* Removes targets[i] in order, writing results[i]. root is the site root's
 * path; root_dev/root_ino are its judged identity: if the root is no longer
 * that folder, nothing is removed (-ESTALE). cancel, when set (by another
 * thread), stops at the next entry: a folder already renamed to trash stays
 * as trash, which is out of Kudu's sight and finished later. Returns 0 when
 * every target was removed, else the first failure. */
int reap_run(const char *root, dev_t root_dev, ino_t root_ino,
	     const struct reap_target *targets, size_t n, atomic_bool *cancel,
	     struct reap_result *results);

/* Fills a target from a snapshot entry (the inner files are the ones the
 * scan judged). */
void reap_target_from_entry(struct reap_target *t, const struct site_entry *e);

#endif
