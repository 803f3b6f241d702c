/* tree.c - is this scan still of the tree the agent has been watching? */
#include "tree.h"

#include <errno.h>
#include <string.h>

static bool any_entries(const struct site_snapshot *snap)
{
	return snap->n_entries > 0 || snap->n_foreign > 0 || snap->n_over_cap > 0;
}

static const char *why_gone(const struct tree_identity *id, const struct site_snapshot *snap)
{
	if (snap->root_err)
		return strerror(-snap->root_err);
	if (id->known && id->was_mount && !snap->root_is_mount)
		return "it is no longer a mount point (the share is not mounted)";
	if (id->known && snap->root.dev != id->dev)
		return "it is now another filesystem";
	if (id->known && id->had_entries && !any_entries(snap) &&
	    snap->locks_err == -ENOENT && snap->deployments_err == -ENOENT)
		return "locks/ and deployments/ vanished";
	return NULL;
}

enum tree_verdict tree_check(struct tree_identity *id, const struct site_snapshot *snap,
			     const char **why)
{
	*why = why_gone(id, snap);
	if (*why) {
		id->gone = true;
		/* Another device is a new tree (a share mounted again gets a new
		 * device number): judged afresh from the next scan on, which is
		 * its baseline. The folder under an unmounted share is not the
		 * share: it stays gone until a mount is back, and a vanished tree
		 * until its entries are. */
		if (snap->root_err == 0 && snap->root.dev != id->dev &&
		    (snap->root_is_mount || !id->was_mount)) {
			id->dev = snap->root.dev;
			id->had_entries = any_entries(snap);
		}
		return TREE_GONE;
	}
	bool back = id->gone;
	id->gone = false;
	id->known = true;
	id->dev = snap->root.dev;
	id->had_entries = any_entries(snap);
	id->was_mount = snap->root_is_mount;
	return back ? TREE_BACK : TREE_SAME;
}
