/* watch.h - inotify watches (uv_fs_event) on the site's folders.
 *
 * Events only bring the next scan forward: on the real share Kudu writes
 * from another host and inotify sees nothing, so periodic rescans stay the
 * ground truth. After each scan, watch_sync() re-arms any watch whose folder
 * was replaced (a different inode) and drops those whose folder is gone.
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
	bool paused;                    /* stopped by watch_pause, handle kept */
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
/* Stops listening until the next watch_sync, keeping the handles: once a
 * scan is due, it covers whatever else happens before it, and in an event
 * storm reading tens of thousands of events would cost more than the scan. */
void watch_pause(struct watch_set *set);
/* Starts, re-arms, resumes or stops each watch to match what the scan saw. */
void watch_sync(struct watch_set *set, const struct site_snapshot *snap);
/* Closes every handle; close_cb runs when all are closed. */
void watch_close(struct watch_set *set, void (*close_cb)(struct watch_set *set));

#endif
