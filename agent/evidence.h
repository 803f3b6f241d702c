/* evidence.h - what a decision rested on, and whether it still holds.
 *
 * A cleanup is decided from one scan, but acted on seconds later (the
 * archive copies megabytes over the share first), while Kudu, other
 * instances and people over SSH keep writing. So once every target is moved
 * aside, just before the commit, the cleanup compares the whole tree with
 * what the decision saw: every Kudu entry of locks/ and deployments/ (name
 * and lstat: type, inode, mtime, ctime, size), info.lock, and status.xml and
 * log.log of every record, finished or not, GUID records included (a record
 * that is never a target is still a sign of life). The entries this cleanup
 * moved aside are expected under their trash names, and nowhere else; no
 * Kudu entry may have appeared (one moved aside and made again by Kudu
 * included); the number of foreign entries must be the same, and no new
 * name with lockwarden's trash prefix may appear (one going is our own
 * sweep). Any difference is a sign of life: the cleanup is rolled back as
 * a whole and the tree judged again.
 *
 * Every attribute is read with AT_STATX_FORCE_SYNC (rmtree_stat_fresh): a
 * client's attribute cache must not hide a write made just before.
 *
 * evidence_from_snapshot is pure; evidence_check does the I/O (blocking,
 * on the cleanup's worker thread), relative to descriptors opened with
 * O_NOFOLLOW. Functions return 0 or a negative errno.
 */
#ifndef LOCKWARDEN_EVIDENCE_H
#define LOCKWARDEN_EVIDENCE_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#include "site.h"

struct evidence_item {
	enum site_area area;
	char name[NAME_MAX + 1];   /* the entry's name in its area */
	char inner[16];            /* "" for the entry itself, else a file inside it */
	struct site_stat judged;
	const char *moved_to;      /* moved aside by this cleanup: its trash name (the
				    * caller's string), else NULL */
};

struct evidence {
	dev_t root_dev;
	ino_t root_ino;
	struct site_stat area[2];  /* locks/, deployments/ (identity only) */
	size_t n_foreign;
	size_t n_trash;            /* names with the trash prefix (none of this cleanup's) */
	struct evidence_item *items; /* sorted by area, then name */
	size_t n;
};

/* Copies what snap shows into ev (which the caller frees with
 * evidence_free). Returns 0 or -ENOMEM. */
int evidence_from_snapshot(const struct site_snapshot *snap, struct evidence *ev);
void evidence_free(struct evidence *ev);

/* The entry area/name was moved aside by this cleanup: from now on it (and
 * the files inside it) are expected under trash, and its own name free. */
void evidence_moved(struct evidence *ev, enum site_area area, const char *name,
		    const char *trash);

/* Compares the tree under root with ev. Returns 0 when everything is as
 * judged, -ESTALE with what changed in why (one line) otherwise, or another
 * negative errno when the tree could not be read (also a reason to stop). */
int evidence_check(const char *root, const struct evidence *ev, char *why, size_t why_size);

#endif
