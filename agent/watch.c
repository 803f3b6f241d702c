/* watch.c - uv_fs_event watches that only bring the next scan forward. */
#include "watch.h"
#include "container_of.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"


static const char *const slot_path[WATCH_SLOTS] = {
	[WATCH_ROOT] = "",
	[WATCH_LOCKS] = "locks",
	[WATCH_LOCK_FOLDER] = "locks/deployment",
	[WATCH_DEPLOYMENTS] = "deployments",
	[WATCH_PARENT] = "..",
};

void watch_init(struct watch_set *set, uv_loop_t *loop, void (*on_event)(struct watch_set *set))
{
	memset(set, 0, sizeof(*set));
	set->loop = loop;
	set->on_event = on_event;
	for (int i = 0; i < WATCH_SLOTS; i++)
		set->dirs[i].set = set;
}

static void on_fs_event(uv_fs_event_t *handle, const char *filename, int events, int status)
{
	struct watch_dir *d = container_of(handle, struct watch_dir, handle);
	char path[PATH_MAX];
	size_t len = sizeof(path);

	/* An event about the watched folder itself (deleted or moved: libuv
	 * names it by its own name) leaves the watch dead. A folder made again
	 * at once can reuse the inode number, so the scan could not tell: the
	 * next sync re-arms this one whatever its inode says. */
	if (!filename || ((events & UV_RENAME) && uv_fs_event_getpath(handle, path, &len) == 0 &&
			  strcmp(filename, strrchr(path, '/') ? strrchr(path, '/') + 1 : path) == 0))
		d->suspect = true;
	if (status < 0)
		d->suspect = true;
	/* A scan is already due and covers whatever this was. */
	if (d->paused)
		return;

	/* Whatever happened (even an error), the answer is a scan soon: the
	 * scan finds out what changed, including a folder that went away. */
	if (d->set->on_event)
		d->set->on_event(d->set);
}

static void on_closed(uv_handle_t *handle)
{
	struct watch_dir *d = container_of((uv_fs_event_t *)handle, struct watch_dir, handle);
	struct watch_set *set = d->set;

	d->closing = false;
	/* A replaced folder's new inode can be watched only once the old
	 * handle is closed: ask for the scan that re-arms it now, rather than
	 * leave the new folder unwatched until the next rescan. */
	if (d->rearm && !set->close_cb && set->on_event)
		set->on_event(set);
	d->rearm = false;
	if (--set->pending_closes == 0 && set->close_cb)
		set->close_cb(set);
}

static void stop_dir(struct watch_dir *d, bool rearm)
{
	if (!d->active)
		return;
	d->active = false;
	d->paused = false;
	d->rearm = rearm;
	d->closing = true;
	d->set->pending_closes++;
	uv_close((uv_handle_t *)&d->handle, on_closed);
}

static void start_dir(struct watch_set *set, int slot, const struct site_stat *st)
{
	struct watch_dir *d = &set->dirs[slot];
	char path[PATH_MAX + 32];
	int r;

	if (d->closing)
		return; /* the old handle is still closing: the next scan re-arms */
	if (slot == WATCH_PARENT) {
		watch_parent_path(set->root, path, sizeof(path));
	} else {
		snprintf(path, sizeof(path), "%s%s%s", set->root, slot_path[slot][0] ? "/" : "",
			 slot_path[slot]);
	}
	r = uv_fs_event_init(set->loop, &d->handle);
	if (r == 0)
		r = uv_fs_event_start(&d->handle, on_fs_event, path, 0);
	if (r < 0) {
		/* ENOSPC (the inotify watch limit), EMFILE, EACCES: say it once
		 * per cause and live on rescans, which are the ground truth. */
		if (r != d->last_err)
			log_warning("cannot watch %s: %s; relying on rescans", path, uv_strerror(r));
		d->last_err = r;
		d->set->pending_closes++;
		d->closing = true;
		uv_close((uv_handle_t *)&d->handle, on_closed);
		return;
	}
	if (d->last_err)
		log_info("watching %s again", path);
	d->last_err = 0;
	d->active = true;
	d->paused = false;
	d->suspect = false;
	snprintf(d->path, sizeof(d->path), "%s", path);
	d->dev = st->dev;
	d->ino = st->ino;
	log_debug("watching %s", path);
}

void watch_parent_path(const char *root, char *out, size_t size)
{
	/* By name: "/home/site" -> "/home", "/site" -> "/". */
	snprintf(out, size, "%s", root);
	char *slash = strrchr(out, '/');
	if (slash)
		slash[slash == out ? 1 : 0] = '\0';
}

void watch_set_root(struct watch_set *set, const char *root)
{
	if (strcmp(set->root, root) == 0)
		return;
	for (int i = 0; i < WATCH_SLOTS; i++)
		stop_dir(&set->dirs[i], false);
	snprintf(set->root, sizeof(set->root), "%s", root);
}

static void sync_slot(struct watch_set *set, int slot, const struct site_stat *st)
{
	struct watch_dir *d = &set->dirs[slot];
	bool wanted = st && st->present && st->type == S_IFDIR;

	/* inotify watches an inode, not a name: a folder replaced under its
	 * name (deleted and created again, renamed away and back) must be
	 * watched again through the name. */
	if (d->active && (!wanted || d->suspect || d->dev != st->dev || d->ino != st->ino))
		stop_dir(d, wanted);
	/* Still the very folder, and its watch never lost: listening again
	 * costs nothing on the share (no path looked up again). */
	if (wanted && d->active && d->paused) {
		d->paused = false;
		log_debug("watching %s", d->path);
	}
	if (wanted && !d->active)
		start_dir(set, slot, st);
}

void watch_pause(struct watch_set *set)
{
	/* Muted, not stopped: the kernel's watch stays, so that resuming
	 * needs no new inotify_add_watch - a path walk on the share, on the
	 * loop thread - after every scan. What arrives meanwhile is read and
	 * dropped (a few reads of the inotify descriptor per thousand events);
	 * only an event that the folder itself went is kept (suspect). */
	for (int i = 0; i < WATCH_SLOTS; i++) {
		struct watch_dir *d = &set->dirs[i];
		if (d->active)
			d->paused = true;
	}
}

void watch_sync(struct watch_set *set, const struct site_snapshot *snap,
		const struct site_stat *parent)
{
	const struct site_stat *lock_folder = NULL;

	for (size_t i = 0; i < snap->n_entries; i++)
		if (snap->entries[i].kind == KUDU_NAME_LOCK_FOLDER)
			lock_folder = &snap->entries[i].st;
	sync_slot(set, WATCH_ROOT, snap->root_err == 0 ? &snap->root : NULL);
	sync_slot(set, WATCH_LOCKS, snap->locks_err == 0 ? &snap->locks : NULL);
	sync_slot(set, WATCH_LOCK_FOLDER, lock_folder);
	sync_slot(set, WATCH_DEPLOYMENTS, snap->deployments_err == 0 ? &snap->deployments : NULL);
	/* While the root is missing, its parent tells when it comes back. */
	sync_slot(set, WATCH_PARENT, snap->root_err ? parent : NULL);
}

void watch_close(struct watch_set *set, void (*close_cb)(struct watch_set *set))
{
	set->close_cb = close_cb;
	for (int i = 0; i < WATCH_SLOTS; i++)
		stop_dir(&set->dirs[i], false);
	if (set->pending_closes == 0 && close_cb)
		close_cb(set);
}
