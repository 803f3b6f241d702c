/* tree.h - is this scan still of the tree the agent has been watching?
 *
 * A share that is unmounted shows a missing or suddenly empty folder; one
 * mounted again shows another device. Then nothing seen before may count:
 * the watch starts over when the tree is back, so a share that returns never
 * looks as if it had been quiet all along.
 *
 * Pure: a function of the snapshot and of what the previous scans showed.
 */
#ifndef LOCKWARDEN_TREE_H
#define LOCKWARDEN_TREE_H

#include <stdbool.h>
#include <sys/types.h>

#include "site.h"

struct tree_identity {
	bool known;               /* a scan has shown the tree */
	dev_t dev;
	bool had_entries;
	bool was_mount;           /* the root was a mount point (the share) */
	bool gone;                /* the last scan did not show it */
};

enum tree_verdict {
	TREE_SAME,                /* judge the scan */
	TREE_BACK,                /* judge it, afresh: the tree was gone */
	TREE_GONE,                /* judge nothing; why says why */
};

/* Folds snap into id. why (TREE_GONE) is a static string, or strerror's. */
enum tree_verdict tree_check(struct tree_identity *id, const struct site_snapshot *snap,
			     const char **why);

#endif
