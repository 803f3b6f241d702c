/* reap.c - removing the leftovers a cleanup names, and nothing else.
 *
 * This code runs as root and deletes in folders that other processes (Kudu,
 * anyone with access to the share) write while it runs. The safety argument,
 * which every function below keeps:
 *
 *  - Nothing is ever reached through a path with more than one component.
 *    The site root is opened once with O_NOFOLLOW and checked against the
 *    judged device and inode; every later step is an *at() call relative to
 *    a directory descriptor whose identity was checked the same way. So a
 *    symlink anywhere is never followed: it is removed as a link.
 *  - Every folder opened is checked to be on the site root's mount (same
 *    device and, where the kernel tells, the same mount id, and not the root
 *    of a mount). A mount point, bind mounts of the same disk included, is
 *    never entered or removed.
 *  - Names are removed with unlinkat(), which never follows a link: under a
 *    race the worst it can do is remove another name in a folder that is
 *    being removed anyway. Nothing but folders is ever opened (opening a FIFO
 *    would block; opening a device could have side effects).
 *  - A target is compared with what was judged just before it goes; a folder
 *    is verified through the descriptor that is then used to empty it.
 *
 * Everything here blocks; the agent runs it on a worker thread.
 */
#include "reap.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "clock.h"
#include "fmt.h"
#include "log.h"
#include "rmtree.h"

/* ".lockwarden-trash-<name>.1" ... ".99" before giving up on a free name. */
#define REAP_TRASH_TRIES 100


static const char *errstr(int errnum, char *buf, size_t buf_size)
{
	/* GNU strerror_r: thread-safe, returns the message. */
	return strerror_r(errnum, buf, buf_size);
}

static bool cancelled(atomic_bool *cancel)
{
	return cancel && atomic_load(cancel);
}
/* What changed between the judged lstat and now, or NULL when nothing that
 * matters did. The size of a folder is not compared: it is filesystem
 * bookkeeping, and a folder's changes show in its mtime. */
static const char *stat_change(const struct site_stat *judged, const struct site_stat *now,
			       char *buf, size_t buf_size)
{
	if (judged->present != now->present)
		return now->present ? "appeared" : "gone";
	if (!now->present)
		return NULL;
	if (judged->type != now->type) {
		snprintf(buf, buf_size, "now a %s", fmt_type_name(now->type));
		return buf;
	}
	if (judged->dev != now->dev)
		return "moved to another device";
	if (judged->ino != now->ino)
		return "inode changed (replaced)";
	if (now->type != S_IFDIR && judged->size != now->size)
		return "size changed";
	if (judged->mtime_ns != now->mtime_ns)
		return "mtime changed";
	return NULL;
}

__attribute__((format(printf, 3, 4)))
static int fail(struct reap_result *r, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->detail, sizeof(r->detail), fmt, ap);
	va_end(ap);
	r->err = err;
	return err;
}

/* A single name in the folder: not empty, no '/', not "." or "..", and
 * terminated within max bytes. Anything else could reach another folder. */
static bool name_ok(const char *name, size_t max)
{
	size_t len = strnlen(name, max);

	return len > 0 && len < max && !memchr(name, '/', len) &&
	       strcmp(name, ".") != 0 && strcmp(name, "..") != 0;
}

/* renameat2(RENAME_NOREPLACE) inside one folder. Some filesystems cannot
 * refuse to replace (FUSE mounts such as bindfs, some network filesystems)
 * and answer EINVAL: then the name is checked to be free first. A name that
 * appears between the check and the rename can only be replaced by a folder
 * if it is an empty folder, which loses nothing. */
static int rename_noreplace(int dir_fd, const char *from, const char *to)
{
	struct stat st;

	if (renameat2(dir_fd, from, dir_fd, to, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return -errno;
	if (fstatat(dir_fd, to, &st, AT_SYMLINK_NOFOLLOW) == 0)
		return -EEXIST;
	if (errno != ENOENT)
		return -errno;
	if (renameat(dir_fd, from, dir_fd, to) < 0)
		return -errno;
	return 0;
}

/* ".lockwarden-trash-<name>", then ".1", ".2", ...; a long name is cut so the
 * result still fits in NAME_MAX (the suffixes keep cut names apart). */
static void trash_name(const char *name, unsigned attempt, char *out, size_t out_size)
{
	char suffix[16] = "";
	size_t room, len;

	if (attempt > 0)
		snprintf(suffix, sizeof(suffix), ".%u", attempt);
	room = NAME_MAX - strlen(REAP_TRASH_PREFIX) - strlen(suffix);
	len = strnlen(name, room);
	snprintf(out, out_size, "%s%.*s%s", REAP_TRASH_PREFIX, (int)len, name, suffix);
}

/* ---- Targets ----------------------------------------------------------- */

struct reap_ctx {
	struct rmtree_mount mount;
	atomic_bool *cancel;
};

/* Compares the judged files inside a folder, through the verified fd. */
static int check_inner(int fd, const struct reap_target *t, struct reap_result *r)
{
	char ebuf[128], why[64], shown[64];
	struct rmtree_stat now;
	const char *change;
	int err;

	for (size_t i = 0; i < t->n_inner; i++) {
		const char *name = t->inner_name[i];

		log_escape(name, shown, sizeof(shown));
		err = rmtree_stat_at(fd, name, &now);
		if (err == -ENOENT)
			now.st = (struct site_stat){ .present = false };
		else if (err < 0)
			return fail(r, err, "stat %s: %s", shown, errstr(-err, ebuf, sizeof(ebuf)));
		change = stat_change(&t->inner[i], &now.st, why, sizeof(why));
		if (change)
			return fail(r, -ESTALE, "%s changed since judged (%s)", shown, change);
	}
	return 0;
}

/* Puts what carries the trash name back under name. When name was taken
 * again meanwhile, it is kept under a name that is neither Kudu's nor trash
 * (".lockwarden-kept-<name>"), which nothing ever removes: what changed
 * while it was being removed must not be finished off by a later sweep.
 * Returns 0 when it is back under name, else -EEXIST with the name it is
 * kept under (escaped) in kept. */
static int put_back(int area_fd, const char *trash, const char *name, char *kept, size_t kept_size)
{
	char alt[NAME_MAX + 1];

	if (rename_noreplace(area_fd, trash, name) == 0)
		return 0;
	snprintf(alt, sizeof(alt), ".lockwarden-kept-%.*s", NAME_MAX - 20, name);
	for (unsigned attempt = 1; attempt < REAP_TRASH_TRIES; attempt++) {
		if (rename_noreplace(area_fd, trash, alt) == 0)
			break;
		snprintf(alt, sizeof(alt), ".lockwarden-kept-%u-%.*s", attempt, NAME_MAX - 24, name);
	}
	if (faccessat(area_fd, alt, F_OK, AT_SYMLINK_NOFOLLOW) != 0)
		snprintf(alt, sizeof(alt), "%s", trash);
	log_escape(alt, kept, kept_size);
	return -EEXIST;
}

/* Renames name to the first free trash name beside it, written to trash. */
static int rename_to_trash_name(int area_fd, const char *name, char *trash, size_t trash_size)
{
	int err = -EEXIST;

	for (unsigned attempt = 0; attempt < REAP_TRASH_TRIES; attempt++) {
		trash_name(name, attempt, trash, trash_size);
		err = rename_noreplace(area_fd, name, trash);
		/* Taken by an earlier leftover (or by something that is not a
		 * folder): try the next suffix. */
		if (err != -EEXIST && err != -ENOTEMPTY && err != -ENOTDIR && err != -EISDIR)
			break;
	}
	return err;
}

/* Renames the verified folder (open at fd, identity s) to a trash name beside
 * it, written to trash. */
static int rename_to_trash(int area_fd, const struct reap_target *t, const struct rmtree_stat *s,
			   char *trash, size_t trash_size, struct reap_result *r)
{
	char ebuf[128], shown[NAME_MAX * 4 + 1];
	struct rmtree_stat moved;
	int err = rename_to_trash_name(area_fd, t->name, trash, trash_size);

	if (err == -ENOENT)
		return fail(r, -ESTALE, "renamed or removed since judged");
	if (err < 0)
		return fail(r, err, "rename to trash: %s", errstr(-err, ebuf, sizeof(ebuf)));

	/* The rename went by name. If the name was swapped between the open
	 * and the rename, what now carries the trash name is not the folder
	 * that was verified: put it back, untouched. */
	err = rmtree_stat_at(area_fd, trash, &moved);
	if (err == 0 && rmtree_same_inode(&moved, s) && moved.st.type == S_IFDIR)
		return 0;
	if (err < 0)
		return fail(r, -ESTALE, "moved away while being renamed");
	err = put_back(area_fd, trash, t->name, shown, sizeof(shown));
	if (err < 0)
		return fail(r, -ESTALE, "replaced while being renamed; its name was taken again, so "
			    "it is kept as %s", shown);
	return fail(r, -ESTALE, "replaced while being renamed; put back");
}

/* The name still holds what was judged, on the site's mount: its statx in
 * now. Returns 0, or the failure written to r. */
static int look_as_judged(const struct reap_ctx *c, int area_fd, const struct reap_target *t,
			  struct rmtree_stat *now, struct reap_result *r)
{
	char ebuf[128], why[64];
	const char *change;
	int err = rmtree_stat_at(area_fd, t->name, now);

	if (err == -ENOENT)
		return fail(r, -ENOENT, "already gone");
	if (err < 0)
		return fail(r, err, "stat: %s", errstr(-err, ebuf, sizeof(ebuf)));
	change = stat_change(&t->judged, &now->st, why, sizeof(why));
	if (change)
		return fail(r, -ESTALE, "%s since judged", change);
	if (!rmtree_on_mount(now, &c->mount))
		return fail(r, -EXDEV, "a mount point: left");
	return 0;
}

/* A file goes as a folder does: verified, renamed to a trash name beside
 * it, compared again through a descriptor on what now carries the trash
 * name, put back if it is not what was judged, and only then unlinked. The
 * rename takes it out of Kudu's sight atomically; the comparison after it
 * sees a write that came between the first look and the rename. */
static int reap_file(const struct reap_ctx *c, int area_fd, const struct reap_target *t,
		     struct reap_result *r)
{
	char ebuf[128], why[64], trash[NAME_MAX + 1], shown[NAME_MAX * 4 + 1];
	struct rmtree_stat now, moved;
	const char *change;
	int err, fd;

	err = look_as_judged(c, area_fd, t, &now, r);
	if (err < 0)
		return err;
	if (strncmp(t->name, REAP_TRASH_PREFIX, strlen(REAP_TRASH_PREFIX)) == 0) {
		snprintf(trash, sizeof(trash), "%s", t->name);
	} else {
		err = rename_to_trash_name(area_fd, t->name, trash, sizeof(trash));
		if (err == -ENOENT)
			return fail(r, -ESTALE, "renamed or removed since judged");
		if (err < 0)
			return fail(r, err, "rename to trash: %s", errstr(-err, ebuf, sizeof(ebuf)));
	}
	/* O_PATH: opens a FIFO or a device without any effect, and a symlink
	 * as itself (O_NOFOLLOW). */
	fd = openat(area_fd, trash, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	err = fd < 0 ? -errno : rmtree_stat_at(fd, "", &moved);
	if (fd >= 0)
		close(fd);
	change = err < 0 ? "could not be looked at"
			 : !rmtree_same_inode(&moved, &now) ? "replaced"
			 : stat_change(&t->judged, &moved.st, why, sizeof(why));
	if (change && strcmp(trash, t->name) != 0) {
		err = put_back(area_fd, trash, t->name, shown, sizeof(shown));
		if (err < 0)
			return fail(r, -ESTALE, "%s while being removed; its name was taken again, so it "
				    "is kept as %s", change, shown);
		return fail(r, -ESTALE, "%s while being removed; put back", change);
	}
	if (change)
		return fail(r, -ESTALE, "%s while being removed", change);
	/* unlinkat never follows a link: whatever carries the trash name now,
	 * only that name goes. */
	if (unlinkat(area_fd, trash, 0) < 0) {
		err = -errno;
		if (err == -ENOENT)
			return fail(r, err, "removed by someone else meanwhile");
		return fail(r, err, "unlink: %s", errstr(-err, ebuf, sizeof(ebuf)));
	}
	r->files_removed = 1;
	return 0;
}

/* Steps 1 and 2 of a folder: the name still holds the folder judged; it is
 * opened without following and checked to be that folder, on the site's
 * mount, with the judged files inside unchanged. Returns its descriptor
 * (identity in opened), or the failure written to r. */
static int open_verified_folder(const struct reap_ctx *c, int area_fd,
				const struct reap_target *t, struct rmtree_stat *opened,
				struct reap_result *r)
{
	char ebuf[128];
	struct rmtree_stat now;
	int fd, err = look_as_judged(c, area_fd, t, &now, r);

	if (err < 0)
		return err;
	fd = openat(area_fd, t->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		err = -errno;
		if (err == -ELOOP || err == -ENOTDIR) {
			/* Swapped after the look above. Say for what, if it
			 * still is; this second look decides nothing. */
			if (rmtree_stat_at(area_fd, t->name, &now) == 0 && now.st.type != S_IFDIR)
				return fail(r, -ESTALE, "replaced by a %s while being opened",
					    fmt_type_name(now.st.type));
			return fail(r, -ESTALE, "replaced while being opened");
		}
		if (err == -ENOENT)
			return fail(r, -ESTALE, "renamed or removed since judged");
		return fail(r, err, "open: %s", errstr(-err, ebuf, sizeof(ebuf)));
	}
	err = rmtree_stat_at(fd, "", opened);
	if (err < 0)
		fail(r, err, "stat: %s", errstr(-err, ebuf, sizeof(ebuf)));
	else if (!rmtree_same_inode(opened, &now) || !rmtree_on_mount(opened, &c->mount))
		err = fail(r, -ESTALE, "replaced while being opened");
	else
		err = check_inner(fd, t, r);
	if (err == 0 && cancelled(c->cancel))
		err = fail(r, -ECANCELED, "cancelled before it was started");
	if (err < 0) {
		close(fd);
		return err;
	}
	return fd;
}

/* Step 3: renames the verified folder aside (writing its trash name), then
 * compares the judged files again through fd and puts it back if a write
 * came in between. A trash folder left by an earlier run already has its
 * final name. */
static int move_aside(int area_fd, int fd, const struct reap_target *t,
		      const struct rmtree_stat *opened, char *trash, size_t trash_size,
		      struct reap_result *r)
{
	char shown[NAME_MAX * 4 + 1], detail[sizeof(r->detail)];

	if (strncmp(t->name, REAP_TRASH_PREFIX, strlen(REAP_TRASH_PREFIX)) == 0) {
		snprintf(trash, trash_size, "%s", t->name);
		return 0;
	}
	int err = rename_to_trash(area_fd, t, opened, trash, trash_size, r);
	if (err < 0)
		return err;
	if (check_inner(fd, t, r) == 0)
		return 0;
	snprintf(detail, sizeof(detail), "%s", r->detail);
	if (put_back(area_fd, trash, t->name, shown, sizeof(shown)) < 0)
		return fail(r, -ESTALE, "%s while being removed; kept as %s", detail, shown);
	return fail(r, -ESTALE, "%s while being removed; put back", detail);
}

/* Steps 4 and 5: empties the folder through fd, then removes it, if its
 * trash name still holds that folder. */
static int empty_and_remove(const struct reap_ctx *c, int area_fd, int fd,
			    const struct rmtree_stat *opened, const char *trash,
			    struct reap_result *r)
{
	char ebuf[128], shown[NAME_MAX * 4 + 1], what[200];
	struct rmtree_outcome w;
	struct rmtree_stat check;
	int err = rmtree_empty(fd, opened, &c->mount, c->cancel, &w);

	log_escape(trash, shown, sizeof(shown));
	r->files_removed = w.files_removed;
	rmtree_describe(&w, what, sizeof(what));
	if (err == -ECANCELED)
		return fail(r, err, "cancelled; the rest is left in %s%s%s", shown,
			    what[0] ? "; " : "", what);
	if (err == -ESTALE)
		return fail(r, err, "a folder inside was moved during removal; stopped, the rest is "
			    "left in %s", shown);
	if (err < 0)
		return fail(r, err, "emptying %s: %s", shown, errstr(-err, ebuf, sizeof(ebuf)));
	err = rmtree_stat_at(area_fd, trash, &check);
	if (err == -ENOENT) /* another instance sharing the site finished the same trash */
		return fail(r, -ENOENT, "%s was removed by someone else meanwhile", shown);
	if (err < 0 || !rmtree_same_inode(&check, opened))
		return fail(r, -ESTALE, "%s was renamed or replaced while being emptied", shown);
	if (unlinkat(area_fd, trash, AT_REMOVEDIR) < 0) {
		err = -errno;
		return fail(r, err, "%s%sleft as %s: %s", what, what[0] ? "; " : "", shown,
			    errstr(-err, ebuf, sizeof(ebuf)));
	}
	return 0;
}

/* A folder: verified and opened; renamed aside before anything inside is
 * removed (once verified, the rename takes the record out of Kudu's sight
 * in one atomic step, so Kudu never sees a half-removed lock or record
 * under its own name, and an interrupted removal leaves a folder that is
 * plainly ours, which the next cleanup finishes); then emptied through its
 * descriptor, now or by the background sweep. */
static int reap_folder(const struct reap_ctx *c, int area_fd, const struct reap_target *t,
		       struct reap_result *r)
{
	char trash[NAME_MAX + 1], shown[NAME_MAX * 4 + 1];
	struct rmtree_stat opened;
	int fd = open_verified_folder(c, area_fd, t, &opened, r);
	int err;

	if (fd < 0)
		return fd;
	err = move_aside(area_fd, fd, t, &opened, trash, sizeof(trash), r);
	if (err == 0 && t->trash_only) {
		log_escape(trash, shown, sizeof(shown));
		snprintf(r->detail, sizeof(r->detail), "moved aside as %s, emptied in the background",
			 shown);
	} else if (err == 0) {
		err = empty_and_remove(c, area_fd, fd, &opened, trash, r);
	}
	close(fd);
	return err;
}

static int reap_one(const struct reap_ctx *c, int root_fd, const struct reap_target *t,
		    struct reap_result *r)
{
	char ebuf[128];
	struct rmtree_stat as;
	int area_fd, err;

	/* The area is one folder below the root: locks/ or deployments/ for a
	 * cleanup, the archive folder for pruning. Never a path. */
	if (!t->area || !name_ok(t->area, NAME_MAX + 1))
		return fail(r, -EINVAL, "not a plain folder name");
	if (!name_ok(t->name, sizeof(t->name)))
		return fail(r, -EINVAL, "not a plain name");
	if (t->n_inner > REAP_MAX_INNER)
		return fail(r, -EINVAL, "too many inner files");
	for (size_t i = 0; i < t->n_inner; i++)
		if (!name_ok(t->inner_name[i], sizeof(t->inner_name[i])))
			return fail(r, -EINVAL, "an inner file is not a plain name");
	if (!t->judged.present)
		return fail(r, -EINVAL, "was absent when judged");
	if (t->judged.type != S_IFREG && t->judged.type != S_IFDIR)
		return fail(r, -EPERM, "judged as a %s: only files and folders are removed",
			    fmt_type_name(t->judged.type));
	if (t->judged.dev != c->mount.dev)
		return fail(r, -EXDEV, "judged on another device than the site root");

	area_fd = openat(root_fd, t->area, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (area_fd < 0) {
		err = -errno;
		return fail(r, err, "open %s: %s", t->area, errstr(-err, ebuf, sizeof(ebuf)));
	}
	err = rmtree_stat_at(area_fd, "", &as);
	if (err < 0) {
		fail(r, err, "stat %s: %s", t->area, errstr(-err, ebuf, sizeof(ebuf)));
	} else if (!rmtree_on_mount(&as, &c->mount)) {
		err = fail(r, -EXDEV, "%s is not on the site root's mount: refused", t->area);
	} else if (t->judged.type == S_IFREG) {
		err = reap_file(c, area_fd, t, r);
	} else {
		err = reap_folder(c, area_fd, t, r);
	}
	close(area_fd);
	return err;
}

/* results[i].files_removed counts the names removed that were not folders
 * (files, links, FIFOs...): 1 for a file target, the files inside for a
 * folder target. A cancel seen before a target is started leaves it exactly
 * as it was. */
int reap_run(const char *root, dev_t root_dev, ino_t root_ino,
	     const struct reap_target *targets, size_t n, atomic_bool *cancel,
	     struct reap_result *results)
{
	struct reap_ctx c = { .cancel = cancel };
	struct rmtree_stat rs;
	char ebuf[128];
	int root_fd, err, first = 0;

	for (size_t i = 0; i < n; i++)
		results[i] = (struct reap_result){ 0 };
	if (n == 0)
		return 0;

	root_fd = open(root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (root_fd < 0) {
		err = -errno;
		for (size_t i = 0; i < n; i++)
			fail(&results[i], err, "open the site root: %s", errstr(-err, ebuf, sizeof(ebuf)));
		return err;
	}
	err = rmtree_stat_at(root_fd, "", &rs);
	if (err == 0 && (rs.st.dev != root_dev || rs.st.ino != root_ino))
		err = -ESTALE;
	if (err < 0) {
		for (size_t i = 0; i < n; i++) {
			if (err == -ESTALE)
				fail(&results[i], err, "the site root is no longer the folder judged");
			else
				fail(&results[i], err, "stat the site root: %s",
				     errstr(-err, ebuf, sizeof(ebuf)));
		}
		close(root_fd);
		return err;
	}
	rmtree_mount_of(&rs, &c.mount);

	/* Each target is independent: one that fails does not stop the rest. */
	for (size_t i = 0; i < n; i++) {
		if (cancelled(cancel))
			err = fail(&results[i], -ECANCELED, "cancelled before it was started");
		else
			err = reap_one(&c, root_fd, &targets[i], &results[i]);
		if (err < 0 && first == 0)
			first = err;
	}
	close(root_fd);
	return first;
}

static void add_inner(struct reap_target *t, const char *name, const struct site_stat *st)
{
	snprintf(t->inner_name[t->n_inner], sizeof(t->inner_name[t->n_inner]), "%s", name);
	t->inner[t->n_inner] = *st;
	t->n_inner++;
}

void reap_target_from_entry(struct reap_target *t, const struct site_entry *e)
{
	memset(t, 0, sizeof(*t));
	t->area = e->area == SITE_AREA_LOCKS ? "locks" : "deployments";
	memcpy(t->name, e->name, sizeof(t->name));
	t->name[sizeof(t->name) - 1] = '\0';
	t->judged = e->st;
	switch (e->kind) {
	case KUDU_NAME_LOCK_FOLDER:
		add_inner(t, "info.lock", &e->info_st);
		break;
	case KUDU_NAME_RECORD:
	case KUDU_NAME_TEMP_RECORD:
		add_inner(t, "status.xml", &e->status_st);
		add_inner(t, "log.log", &e->log_st);
		add_inner(t, "manifest", &e->manifest_st);
		break;
	default:
		break;
	}
}
