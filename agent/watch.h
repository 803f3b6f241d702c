/* watch.h - inotify watches (uv_fs_event) on the site's folders.
 *
 * Events only bring the next scan forward: on the real share Kudu writes
 * from another host and inotify sees nothing, so periodic rescans stay the
 * ground truth. After each scan, watch_sync() re-arms (by path: a lookup on
 * the share) only a watch whose folder was replaced (a different dev/inode
 * in the scan's snapshot) or whose watch was lost (an event about the folder
 * itself: IN_DELETE_SELF, IN_MOVE_SELF, IN_IGNORED), and drops those whose
 * folder is gone; every other watch stays armed as it is.
 */
#ifndef LOCKWARDEN_WATCH_H
#define LOCKWARDEN_WATCH_H

#include <stdbool.h>
#include <uv.h>

#include "site.h"

enum watch_slot {
	WATCH_ROOT,
	WATCH_LOCKS,
	WATCH_LOCK_FOLDER,
	WATCH_DEPLOYMENTS,
	WATCH_PARENT,      /* the root's parent, only while the root is missing */
	WATCH_SLOTS,
};

struct watch_set;
struct watch_dir {
	uv_fs_event_t handle;
	struct watch_set *set;
	bool active;
	bool closing;
	bool rearm;                     /* closed because the folder was replaced */
	bool paused;                    /* muted by watch_pause, watch kept */
	char path[PATH_MAX + 32];       /* what it watches */
	bool suspect;                   /* an event about the folder itself: it may
					 * be gone, even if a new one has its inode */
	dev_t dev;
	ino_t ino;
	int last_err;                   /* last start error, logged once */
};

struct watch_set {
	uv_loop_t *loop;
	struct watch_dir dirs[WATCH_SLOTS];
	void (*on_event)(struct watch_set *set);
	int pending_closes;
	void (*close_cb)(struct watch_set *set);
	char root[PATH_MAX];
};

void watch_init(struct watch_set *set, uv_loop_t *loop,
		void (*on_event)(struct watch_set *set));
/* Points the watches at root (call again after a reload changes it). */
void watch_set_root(struct watch_set *set, const char *root);
/* Stops listening until the next watch_sync, keeping the kernel's watches:
 * once a scan is due, it covers whatever else happens before it. */
void watch_pause(struct watch_set *set);
/* Starts, re-arms, resumes or stops each watch to match what the scan saw.
 * parent: the root's parent as the scan's worker saw it (watch_parent_path),
 * NULL when not looked at; watched only while the root is missing. Nothing
 * here looks at the share itself. */
void watch_sync(struct watch_set *set, const struct site_snapshot *snap,
		const struct site_stat *parent);
/* The root's parent folder, by name. */
void watch_parent_path(const char *root, char *out, size_t size);
/* Closes every handle; close_cb runs when all are closed. */
void watch_close(struct watch_set *set, void (*close_cb)(struct watch_set *set));

#endif
