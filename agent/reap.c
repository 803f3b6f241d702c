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
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "fmt.h"
#include "log.h"

static const char *errstr(int errnum, char *buf, size_t buf_size)
{
	/* GNU strerror_r: thread-safe, returns the message. */
	return strerror_r(errnum, buf, buf_size);
}

static bool cancelled(atomic_bool *cancel)
{
	return cancel && atomic_load(cancel);
}

int reap_fail(struct reap_result *r, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->detail, sizeof(r->detail), fmt, ap);
	va_end(ap);
	r->err = err;
	return err;
}

void reap_new_token(char token[REAP_TOKEN_SIZE])
{
	uint64_t v = 0;

	/* The token only has to differ from every other cleanup's; the clock
	 * stands in when the kernel has no randomness to give yet. */
	if (getrandom(&v, sizeof(v), GRND_NONBLOCK) != (ssize_t)sizeof(v))
		v = (uint64_t)clock_wall_ns() ^ ((uint64_t)getpid() << 32);
	snprintf(token, REAP_TOKEN_SIZE, "%016llx", (unsigned long long)v);
}

/* A single name in the folder: not empty, no '/', not "." or "..", and
 * terminated within max bytes. Anything else could reach another folder. */
static bool name_ok(const char *name, size_t max)
{
	size_t len = strnlen(name, max);

	return len > 0 && len < max && !memchr(name, '/', len) &&
	       strcmp(name, ".") != 0 && strcmp(name, "..") != 0;
}

/* renameat2(RENAME_NOREPLACE) inside one folder. cifs and FUSE mounts such
 * as bindfs cannot refuse to replace and answer EINVAL: then the name is
 * checked to be free first. A name that appears between the check and the
 * rename can only be replaced by a folder if it is an empty folder, which
 * loses nothing; a file is replaced (reap.h says how long that window is). */
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

/* Gives what carries from the name to, never replacing an entry there: a
 * file by a hard link then the unlink of from (linkat fails with EEXIST on
 * every filesystem), a folder by rename (which never replaces a non-empty
 * folder). Where links are refused, rename_noreplace. */
static int give_name(int dir_fd, const char *from, const char *to)
{
	struct stat st;

	if (fstatat(dir_fd, from, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode)) {
		if (linkat(dir_fd, from, dir_fd, to, 0) == 0) {
			if (unlinkat(dir_fd, from, 0) < 0 && errno != ENOENT)
				return -errno;
			return 0;
		}
		if (errno != EPERM && errno != EOPNOTSUPP && errno != ENOSYS && errno != EMLINK)
			return -errno;
	}
	return rename_noreplace(dir_fd, from, to);
}

/* Puts what carries trash back under name. When name was taken again
 * meanwhile, Kudu's entry stays and ours is kept beside it under
 * ".lockwarden-kept-<token>-<name>", which nothing ever removes. */
static void put_back(const struct reap_txn *x, int area_fd, const struct reap_target *t,
		     struct reap_result *r)
{
	int err = give_name(area_fd, r->trash, t->name);

	if (err == 0) {
		r->state = REAP_PUT_BACK;
		return;
	}
	if (err == -EEXIST || err == -ENOTEMPTY || err == -ENOTDIR || err == -EISDIR) {
		kudu_token_name(KUDU_KEPT_PREFIX, x->token, t->name, r->kept, sizeof(r->kept));
		if (give_name(area_fd, r->trash, r->kept) == 0) {
			r->state = REAP_KEPT_BESIDE;
			return;
		}
		err = -EEXIST;
	}
	/* Left under its trash name, whose token is never committed: nothing
	 * sweeps it, and report shows it. */
	r->state = REAP_LEFT_AS_TRASH;
	r->kept[0] = '\0';
}

/* ---- Verifying -------------------------------------------------------- */

/* Compares the judged files inside a folder, through the verified fd. */
static int check_inner(int fd, const struct reap_target *t, struct reap_result *r)
{
	char ebuf[128], shown[64];
	struct rmtree_stat now;
	const char *change;
	int err;

	for (size_t i = 0; i < t->n_inner; i++) {
		const char *name = t->inner_name[i];

		log_escape(name, shown, sizeof(shown));
		err = rmtree_stat_fresh(fd, name, &now);
		if (err == -ENOENT)
			now.st = (struct site_stat){ .present = false };
		else if (err < 0)
			return reap_fail(r, err, "stat %s: %s", shown, errstr(-err, ebuf, sizeof(ebuf)));
		change = site_stat_change(&t->inner[i], &now.st, false);
		if (change)
			return reap_fail(r, -ESTALE, "%s %s since judged", shown, change);
	}
	return 0;
}

/* The name still holds what was judged, on the site's mount: its statx in
 * now. Returns 0, or the failure written to r. */
static int look_as_judged(const struct reap_txn *x, int area_fd, const struct reap_target *t,
			  struct rmtree_stat *now, struct reap_result *r)
{
	char ebuf[128];
	const char *change;
	int err = rmtree_stat_fresh(area_fd, t->name, now);

	if (err == -ENOENT)
		return reap_fail(r, -ENOENT, "already gone");
	if (err < 0)
		return reap_fail(r, err, "stat: %s", errstr(-err, ebuf, sizeof(ebuf)));
	change = site_stat_change(&t->judged, &now->st, false);
	if (change)
		return reap_fail(r, -ESTALE, "%s since judged", change);
	if (!rmtree_on_mount(now, &x->mount))
		return reap_fail(r, -EXDEV, "a mount point: left");
	return 0;
}

/* A folder: the name still holds the folder judged; it is opened without
 * following and checked to be that folder, on the site's mount, with the
 * judged files inside unchanged. Returns its descriptor (identity in
 * opened), or the failure written to r. */
static int open_verified_folder(const struct reap_txn *x, int area_fd,
				const struct reap_target *t, struct rmtree_stat *opened,
				struct reap_result *r)
{
	char ebuf[128];
	struct rmtree_stat now;
	int fd, err = look_as_judged(x, area_fd, t, &now, r);

	if (err < 0)
		return err;
	fd = openat(area_fd, t->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		err = -errno;
		if (err == -ELOOP || err == -ENOTDIR) {
			/* Swapped after the look above. Say for what, if it
			 * still is; this second look decides nothing. */
			if (rmtree_stat_at(area_fd, t->name, &now) == 0 && now.st.type != S_IFDIR)
				return reap_fail(r, -ESTALE, "replaced by a %s while being opened",
						 fmt_type_name(now.st.type));
			return reap_fail(r, -ESTALE, "replaced while being opened");
		}
		if (err == -ENOENT)
			return reap_fail(r, -ESTALE, "renamed or removed since judged");
		return reap_fail(r, err, "open: %s", errstr(-err, ebuf, sizeof(ebuf)));
	}
	err = rmtree_stat_fresh(fd, "", opened);
	if (err < 0)
		reap_fail(r, err, "stat: %s", errstr(-err, ebuf, sizeof(ebuf)));
	else if (!rmtree_same_inode(opened, &now) || !rmtree_on_mount(opened, &x->mount))
		err = reap_fail(r, -ESTALE, "replaced while being opened");
	else
		err = check_inner(fd, t, r);
	if (err < 0) {
		close(fd);
		return err;
	}
	return fd;
}

/* ---- Moving aside ------------------------------------------------------ */

/* Renames the verified entry (identity looked) to its trash name, then
 * compares again, through a descriptor on what now carries the trash name
 * (and through fd, the folder's own descriptor, for the files inside): a
 * write or a swap between the look and the rename shows here. What is not
 * as judged is put back. */
static int rename_and_compare(const struct reap_txn *x, int area_fd, int fd,
			      const struct reap_target *t, const struct rmtree_stat *looked,
			      struct reap_result *r)
{
	char ebuf[128], shown[NAME_MAX * 4 + 1], detail[sizeof(r->detail)];
	struct rmtree_stat moved;
	const char *change;
	int err = rename_noreplace(area_fd, t->name, r->trash);

	if (err == -ENOENT)
		return reap_fail(r, -ESTALE, "renamed or removed since judged");
	if (err == -EEXIST || err == -ENOTEMPTY || err == -ENOTDIR || err == -EISDIR) {
		log_escape(r->trash, shown, sizeof(shown));
		return reap_fail(r, -EEXIST, "its trash name %s is taken by an entry that is not "
				 "this cleanup's", shown);
	}
	if (err < 0)
		return reap_fail(r, err, "rename to trash: %s", errstr(-err, ebuf, sizeof(ebuf)));
	r->state = REAP_MOVED;

	/* O_PATH: opens a FIFO or a device without any effect, and a symlink
	 * as itself (O_NOFOLLOW). */
	int pfd = openat(area_fd, r->trash, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	err = pfd < 0 ? -errno : rmtree_stat_fresh(pfd, "", &moved);
	if (pfd >= 0)
		close(pfd);
	change = err < 0 ? "could not be looked at"
		 : !rmtree_same_inode(&moved, looked) ? "was replaced"
		 : site_stat_change(&t->judged, &moved.st, true);
	if (!change && fd >= 0 && check_inner(fd, t, r) < 0)
		change = "";
	if (!change) {
		r->moved = moved.st;
		return 0;
	}
	if (change[0])
		snprintf(detail, sizeof(detail), "%s while being moved aside", change);
	else
		snprintf(detail, sizeof(detail), "%s while being moved aside", r->detail);
	put_back(x, area_fd, t, r);
	if (r->state == REAP_KEPT_BESIDE) {
		log_escape(r->kept, shown, sizeof(shown));
		return reap_fail(r, -ESTALE, "%s; its name was taken again, so it is kept as %s",
				 detail, shown);
	}
	return reap_fail(r, -ESTALE, "%s; %s", detail,
			 r->state == REAP_PUT_BACK ? "put back" : "left under its trash name");
}

static int open_area(struct reap_txn *x, size_t i, struct reap_result *r)
{
	const struct reap_target *t = &x->targets[i];
	char ebuf[128];
	struct rmtree_stat as;
	int err;

	/* The area is one folder below the root: locks/ or deployments/ for a
	 * cleanup, the archive folder for pruning. Never a path. */
	if (!t->area || !name_ok(t->area, NAME_MAX + 1))
		return reap_fail(r, -EINVAL, "not a plain folder name");
	if (!name_ok(t->name, sizeof(t->name)))
		return reap_fail(r, -EINVAL, "not a plain name");
	if (t->n_inner > REAP_MAX_INNER)
		return reap_fail(r, -EINVAL, "too many inner files");
	for (size_t k = 0; k < t->n_inner; k++)
		if (!name_ok(t->inner_name[k], sizeof(t->inner_name[k])))
			return reap_fail(r, -EINVAL, "an inner file is not a plain name");
	if (!t->judged.present)
		return reap_fail(r, -EINVAL, "was absent when judged");
	if (t->judged.type != S_IFREG && t->judged.type != S_IFDIR)
		return reap_fail(r, -EPERM, "judged as a %s: only files and folders are removed",
				 fmt_type_name(t->judged.type));
	if (t->judged.dev != x->mount.dev)
		return reap_fail(r, -EXDEV, "judged on another device than the site root");

	int fd = openat(x->root_fd, t->area, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		err = -errno;
		return reap_fail(r, err, "open %s: %s", t->area, errstr(-err, ebuf, sizeof(ebuf)));
	}
	err = rmtree_stat_at(fd, "", &as);
	if (err < 0)
		reap_fail(r, err, "stat %s: %s", t->area, errstr(-err, ebuf, sizeof(ebuf)));
	else if (!rmtree_on_mount(&as, &x->mount))
		err = reap_fail(r, -EXDEV, "%s is not on the site root's mount: refused", t->area);
	if (err < 0) {
		close(fd);
		return err;
	}
	x->area_fd[i] = fd;
	return 0;
}

/* Moves targets[i] aside (or, when it already has a trash name, only
 * verifies it: it is its own trash). */
static int move_one(struct reap_txn *x, size_t i)
{
	const struct reap_target *t = &x->targets[i];
	struct reap_result *r = &x->results[i];
	struct rmtree_stat now;
	int err, fd = -1;

	if (cancelled(x->cancel))
		return reap_fail(r, -ECANCELED, "cancelled before it was started");
	err = open_area(x, i, r);
	if (err < 0)
		return err;
	int area_fd = x->area_fd[i];
	if (t->judged.type == S_IFDIR) {
		fd = open_verified_folder(x, area_fd, t, &now, r);
		if (fd < 0)
			return fd;
	} else {
		err = look_as_judged(x, area_fd, t, &now, r);
		if (err < 0)
			return err;
	}
	if (strcmp(r->trash, t->name) == 0) {
		r->state = REAP_MOVED;
		r->moved = now.st;
	} else {
		err = rename_and_compare(x, area_fd, fd, t, &now, r);
	}
	if (fd >= 0)
		close(fd);
	return err;
}

/* ---- Commit ------------------------------------------------------------ */

/* Empties the trash folder through a descriptor verified to be the folder
 * moved, then removes it. */
static int remove_folder(const struct reap_txn *x, int area_fd, struct reap_result *r)
{
	char ebuf[128], shown[NAME_MAX * 4 + 1], what[200];
	struct rmtree_outcome w;
	struct rmtree_stat opened, check;
	int err, fd;

	log_escape(r->trash, shown, sizeof(shown));
	fd = openat(area_fd, r->trash, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		err = -errno;
		if (err == -ENOENT) /* another instance sharing the site finished it */
			return reap_fail(r, err, "%s was removed by someone else meanwhile", shown);
		return reap_fail(r, -ESTALE, "%s was replaced before it was emptied", shown);
	}
	err = rmtree_stat_at(fd, "", &opened);
	if (err < 0 || opened.st.dev != r->moved.dev || opened.st.ino != r->moved.ino ||
	    !rmtree_on_mount(&opened, &x->mount)) {
		close(fd);
		return reap_fail(r, -ESTALE, "%s was replaced before it was emptied", shown);
	}
	err = rmtree_empty(fd, &opened, &x->mount, x->cancel, &w);
	close(fd);
	r->files_removed = w.files_removed;
	rmtree_describe(&w, what, sizeof(what));
	if (err == -ECANCELED)
		return reap_fail(r, err, "cancelled; the rest is left in %s%s%s", shown,
				 what[0] ? "; " : "", what);
	if (err == -ESTALE)
		return reap_fail(r, err, "a folder inside was moved during removal; stopped, the "
				 "rest is left in %s", shown);
	if (err < 0)
		return reap_fail(r, err, "emptying %s: %s", shown, errstr(-err, ebuf, sizeof(ebuf)));
	err = rmtree_stat_at(area_fd, r->trash, &check);
	if (err == -ENOENT)
		return reap_fail(r, -ENOENT, "%s was removed by someone else meanwhile", shown);
	if (err < 0 || !rmtree_same_inode(&check, &opened))
		return reap_fail(r, -ESTALE, "%s was renamed or replaced while being emptied", shown);
	if (unlinkat(area_fd, r->trash, AT_REMOVEDIR) < 0) {
		err = -errno;
		return reap_fail(r, err, "%s%sleft as %s: %s", what, what[0] ? "; " : "", shown,
				 errstr(-err, ebuf, sizeof(ebuf)));
	}
	return 0;
}

static int commit_one(struct reap_txn *x, size_t i)
{
	const struct reap_target *t = &x->targets[i];
	struct reap_result *r = &x->results[i];
	int area_fd = x->area_fd[i];
	char ebuf[128], shown[NAME_MAX * 4 + 1];
	int err = 0;

	if (r->state != REAP_MOVED)
		return 0;
	/* Committed: whatever happens now, it is no longer Kudu's. */
	r->state = REAP_REMOVED;
	if (t->judged.type == S_IFDIR && t->trash_only) {
		log_escape(r->trash, shown, sizeof(shown));
		snprintf(r->detail, sizeof(r->detail), "moved aside as %s, emptied in the background",
			 shown);
	} else if (t->judged.type == S_IFDIR) {
		err = remove_folder(x, area_fd, r);
	} else if (unlinkat(area_fd, r->trash, 0) < 0) {
		/* unlinkat never follows a link: whatever carries the trash
		 * name now, only that name goes. */
		err = -errno;
		if (err == -ENOENT)
			reap_fail(r, err, "removed by someone else meanwhile");
		else
			reap_fail(r, err, "unlink: %s", errstr(-err, ebuf, sizeof(ebuf)));
	} else {
		r->files_removed = 1;
	}
	return err;
}

/* ---- The transaction --------------------------------------------------- */

int reap_begin(struct reap_txn *x, const char *root, dev_t root_dev, ino_t root_ino,
	       const char *token, const struct reap_target *targets, size_t n,
	       atomic_bool *cancel, struct reap_result *results)
{
	struct rmtree_stat rs;
	char ebuf[128];
	int err;

	*x = (struct reap_txn){ .root_fd = -1, .cancel = cancel, .targets = targets,
				.results = results, .n = n };
	snprintf(x->token, sizeof(x->token), "%s", token);
	for (size_t i = 0; i < n; i++) {
		results[i] = (struct reap_result){ 0 };
		if (kudu_is_trash(targets[i].name))
			snprintf(results[i].trash, sizeof(results[i].trash), "%s", targets[i].name);
		else
			kudu_token_name(KUDU_TRASH_PREFIX, token, targets[i].name, results[i].trash,
					sizeof(results[i].trash));
	}
	x->area_fd = malloc((n ? n : 1) * sizeof(*x->area_fd));
	if (!x->area_fd) {
		err = -ENOMEM;
		goto failed;
	}
	for (size_t i = 0; i < n; i++)
		x->area_fd[i] = -1;
	x->root_fd = open(root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (x->root_fd < 0) {
		err = -errno;
		goto failed;
	}
	err = rmtree_stat_at(x->root_fd, "", &rs);
	if (err == 0 && (rs.st.dev != root_dev || rs.st.ino != root_ino))
		err = -ESTALE;
	if (err < 0)
		goto failed;
	rmtree_mount_of(&rs, &x->mount);
	return 0;
failed:
	for (size_t i = 0; i < n; i++) {
		if (err == -ESTALE)
			reap_fail(&results[i], err, "the site root is no longer the folder judged");
		else
			reap_fail(&results[i], err, "open the site root: %s",
				  errstr(-err, ebuf, sizeof(ebuf)));
	}
	reap_end(x);
	return err;
}

int reap_move_all(struct reap_txn *x)
{
	for (size_t i = 0; i < x->n; i++) {
		int err = move_one(x, i);
		if (err < 0)
			return err;
	}
	return 0;
}

int reap_commit(struct reap_txn *x, void (*on_removed)(void *ctx, size_t i), void *ctx)
{
	int first = 0;

	for (size_t i = 0; i < x->n; i++) {
		bool moved = x->results[i].state == REAP_MOVED;
		int err = commit_one(x, i);
		if (moved && on_removed)
			on_removed(ctx, i);
		if (err < 0 && first == 0)
			first = err;
	}
	return first;
}

void reap_rollback(struct reap_txn *x)
{
	for (size_t i = x->n; i-- > 0;)
		if (x->results[i].state == REAP_MOVED)
			put_back(x, x->area_fd[i], &x->targets[i], &x->results[i]);
}

void reap_end(struct reap_txn *x)
{
	for (size_t i = 0; x->area_fd && i < x->n; i++)
		if (x->area_fd[i] >= 0)
			close(x->area_fd[i]);
	free(x->area_fd);
	x->area_fd = NULL;
	if (x->root_fd >= 0)
		close(x->root_fd);
	x->root_fd = -1;
}

/* results[i].files_removed counts the names removed that were not folders
 * (files, links, FIFOs...): 1 for a file target, the files inside for a
 * folder target. A cancel seen before a target is started leaves it exactly
 * as it was. */
int reap_run(const char *root, dev_t root_dev, ino_t root_ino, const char *token,
	     const struct reap_target *targets, size_t n, atomic_bool *cancel,
	     struct reap_result *results)
{
	struct reap_txn x;
	int err, first = 0;

	if (n == 0)
		return 0;
	err = reap_begin(&x, root, root_dev, root_ino, token, targets, n, cancel, results);
	if (err < 0)
		return err;
	/* Each target is independent: one that fails does not stop the rest. */
	for (size_t i = 0; i < n; i++) {
		err = move_one(&x, i);
		if (err == 0)
			err = commit_one(&x, i);
		if (err < 0 && first == 0)
			first = err;
	}
	reap_end(&x);
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
