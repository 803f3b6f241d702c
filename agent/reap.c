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
#include "log.h"

/* ".lockwarden-trash-<name>.1" ... ".99" before giving up on a free name. */
#define REAP_TRASH_TRIES 100
/* Open folders kept while walking down a tree; deeper ones are closed and
 * reached again through ".." (checked) on the way back up, so any depth
 * works with a handful of descriptors (memory grows with the depth only). */
#define REAP_OPEN_DIRS_MAX 16
/* Listings of one folder. A folder is listed again after a pass that removed
 * something, because some filesystems (network shares among them) can skip
 * entries of a folder that changes while it is listed. The bound stops a
 * writer that keeps adding files from keeping the removal busy forever. */
#define REAP_PASSES_MAX 8

/* Where the site lives: everything removed must be on this mount. */
struct reap_mount {
	dev_t dev;
	bool has_mnt_id;
	uint64_t mnt_id;
};

/* One statx() result, in the terms of the judged site_stat. */
struct reap_stat {
	struct site_stat st;
	bool has_mnt_id;
	uint64_t mnt_id;
	bool mount_root;    /* known to be the root of a mount */
};

/* Stats name relative to dir_fd without following it, or dir_fd itself when
 * name is "". statx rather than fstatat: it also says which mount the entry
 * is on, which is how a bind mount of the same disk is told apart. */
static int reap_stat_at(int dir_fd, const char *name, struct reap_stat *out)
{
	int flags = AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT | AT_STATX_SYNC_AS_STAT;
	struct statx sx;

	if (name[0] == '\0')
		flags |= AT_EMPTY_PATH;
	if (statx(dir_fd, name, flags, STATX_BASIC_STATS | STATX_MNT_ID, &sx) < 0)
		return -errno;
	memset(out, 0, sizeof(*out));
	out->st.present = true;
	out->st.type = sx.stx_mode & S_IFMT;
	out->st.dev = makedev(sx.stx_dev_major, sx.stx_dev_minor);
	out->st.ino = (ino_t)sx.stx_ino;
	out->st.mtime_ns = clock_ns_from(sx.stx_mtime.tv_sec, sx.stx_mtime.tv_nsec);
	out->st.ctime_ns = clock_ns_from(sx.stx_ctime.tv_sec, sx.stx_ctime.tv_nsec);
	out->st.size = (int64_t)sx.stx_size;
	out->has_mnt_id = (sx.stx_mask & STATX_MNT_ID) != 0;
	out->mnt_id = sx.stx_mnt_id;
	out->mount_root = (sx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) &&
			  (sx.stx_attributes & STATX_ATTR_MOUNT_ROOT);
	return 0;
}

/* True when an entry (not the site root itself) is on the site's mount. */
static bool on_site_mount(const struct reap_stat *s, const struct reap_mount *m)
{
	if (s->st.dev != m->dev || s->mount_root)
		return false;
	if (s->has_mnt_id && m->has_mnt_id && s->mnt_id != m->mnt_id)
		return false;
	return true;
}

static bool same_inode(const struct reap_stat *a, const struct reap_stat *b)
{
	return a->st.dev == b->st.dev && a->st.ino == b->st.ino;
}

static const char *type_word(mode_t type)
{
	switch (type) {
	case S_IFREG: return "a file";
	case S_IFDIR: return "a folder";
	case S_IFLNK: return "a symlink";
	default: return "a special file";
	}
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
		snprintf(buf, buf_size, "now %s", type_word(now->type));
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

static const char *errstr(int errnum, char *buf, size_t buf_size)
{
	/* GNU strerror_r: thread-safe, returns the message. */
	return strerror_r(errnum, buf, buf_size);
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

static bool cancelled(atomic_bool *cancel)
{
	return cancel && atomic_load(cancel);
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

/* ---- Emptying a folder ------------------------------------------------- */

/* Entries that could not be removed, by inode, so that listing a folder again
 * never tries them twice (and never walks into the same stuck subtree once
 * per pass of every folder above it). */
struct reap_key {
	dev_t dev;
	ino_t ino;
	bool used;
};

struct reap_left {
	struct reap_key *slots;
	size_t cap;     /* a power of two, or 0 */
	size_t n;
};

static size_t left_slot(const struct reap_left *l, dev_t dev, ino_t ino)
{
	uint64_t h = ((uint64_t)ino ^ ((uint64_t)dev << 32 | (uint64_t)dev >> 32)) *
		     UINT64_C(0x9e3779b97f4a7c15);
	size_t i = (size_t)(h >> 17) & (l->cap - 1);

	while (l->slots[i].used && (l->slots[i].dev != dev || l->slots[i].ino != ino))
		i = (i + 1) & (l->cap - 1);
	return i;
}

static bool left_has(const struct reap_left *l, dev_t dev, ino_t ino)
{
	return l->cap > 0 && l->slots[left_slot(l, dev, ino)].used;
}

static int left_add(struct reap_left *l, dev_t dev, ino_t ino)
{
	if ((l->n + 1) * 2 > l->cap) {
		struct reap_left grown = { .cap = l->cap ? l->cap * 2 : 64 };

		grown.slots = calloc(grown.cap, sizeof(*grown.slots));
		if (!grown.slots)
			return -ENOMEM;
		for (size_t i = 0; i < l->cap; i++) {
			if (l->slots[i].used) {
				grown.slots[left_slot(&grown, l->slots[i].dev, l->slots[i].ino)] =
					l->slots[i];
				grown.n++;
			}
		}
		free(l->slots);
		*l = grown;
	}
	size_t i = left_slot(l, dev, ino);
	if (!l->slots[i].used) {
		l->slots[i] = (struct reap_key){ .dev = dev, .ino = ino, .used = true };
		l->n++;
	}
	return 0;
}

/* One folder of the walk. Frames live on a heap stack, not the C stack, so
 * the depth of a tree is bounded only by memory. */
struct reap_frame {
	DIR *dir;           /* NULL while closed to save descriptors */
	dev_t dev;
	ino_t ino;
	size_t name_off;    /* its name in the parent, in reap_walk.names */
	unsigned passes;
	bool removed;       /* the current pass removed something */
};

struct reap_walk {
	const struct reap_mount *mount;
	atomic_bool *cancel;

	struct reap_frame *frames;
	size_t depth, cap;
	/* frames[1 .. lo-1] are closed, frames[lo .. depth-1] open. frames[0],
	 * the folder being emptied, is never closed. */
	size_t lo;
	char *names;        /* the frames' names, each '\0'-terminated */
	size_t names_len, names_cap;

	struct reap_left left;

	unsigned long files_removed;
	unsigned long mounts;   /* mount points left in place */
	unsigned long raced;    /* entries that changed between look and act */
	unsigned long failed;   /* entries that could not be removed */
	int first_errno;
	char first_name[64];    /* escaped */
};

static void walk_note_failure(struct reap_walk *w, int errnum, const char *name)
{
	if (w->failed++ == 0) {
		w->first_errno = errnum;
		log_escape(name, w->first_name, sizeof(w->first_name));
	}
}

/* Closes the shallowest open frame, other than the first and the current
 * one, to free a descriptor. False when there is none. */
static bool walk_close_oldest(struct reap_walk *w)
{
	if (w->lo + 1 >= w->depth)
		return false;
	closedir(w->frames[w->lo].dir);
	w->frames[w->lo].dir = NULL;
	w->lo++;
	return true;
}

static int walk_reserve(struct reap_walk *w, size_t name_len)
{
	if (w->depth == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 64;
		struct reap_frame *grown = realloc(w->frames, cap * sizeof(*grown));
		if (!grown)
			return -ENOMEM;
		w->frames = grown;
		w->cap = cap;
	}
	if (w->names_len + name_len + 1 > w->names_cap) {
		size_t cap = w->names_cap ? w->names_cap * 2 : 4096;
		while (cap < w->names_len + name_len + 1)
			cap *= 2;
		char *grown = realloc(w->names, cap);
		if (!grown)
			return -ENOMEM;
		w->names = grown;
		w->names_cap = cap;
	}
	return 0;
}

/* Pushes an open folder (dir owns its descriptor). */
static void walk_push(struct reap_walk *w, DIR *dir, const struct reap_stat *s, const char *name)
{
	size_t len = strlen(name);
	struct reap_frame *f = &w->frames[w->depth++];

	memcpy(w->names + w->names_len, name, len + 1);
	*f = (struct reap_frame){ .dir = dir, .dev = s->st.dev, .ino = s->st.ino,
				  .name_off = w->names_len };
	w->names_len += len + 1;
	if (w->depth - w->lo > REAP_OPEN_DIRS_MAX)
		walk_close_oldest(w);
}

/* Enters the subfolder name of the top frame, which reap_stat_at saw as s. */
static int walk_enter(struct reap_walk *w, const char *name, const struct reap_stat *s)
{
	struct reap_stat opened;
	DIR *dir;
	int fd, err;

	err = walk_reserve(w, strlen(name));
	if (err < 0)
		return err;
	for (;;) {
		fd = openat(dirfd(w->frames[w->depth - 1].dir), name,
			    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd >= 0)
			break;
		if ((errno == EMFILE || errno == ENFILE) && walk_close_oldest(w))
			continue;
		if (errno == ENOENT)
			return 0;   /* removed by someone else meanwhile */
		if (errno == ELOOP || errno == ENOTDIR) {
			/* Replaced by a non-folder since it was looked at; the
			 * next pass sees what is there now. */
			w->raced++;
			return left_add(&w->left, s->st.dev, s->st.ino);
		}
		walk_note_failure(w, errno, name);
		return left_add(&w->left, s->st.dev, s->st.ino);
	}
	/* The folder opened must be the one looked at, on the site's mount: a
	 * folder swapped in, or a mount made, in between is left alone. */
	err = reap_stat_at(fd, "", &opened);
	if (err < 0 || !same_inode(&opened, s) || opened.st.type != S_IFDIR ||
	    !on_site_mount(&opened, w->mount)) {
		close(fd);
		w->raced++;
		return left_add(&w->left, s->st.dev, s->st.ino);
	}
	dir = fdopendir(fd);
	if (!dir) {
		err = errno;
		close(fd);
		walk_note_failure(w, err, name);
		return left_add(&w->left, s->st.dev, s->st.ino);
	}
	walk_push(w, dir, &opened, name);
	return 0;
}

/* Handles one entry of the top frame's listing. Returns 0 or a negative errno
 * that stops the walk (-ENOMEM). */
static int walk_entry(struct reap_walk *w, const struct dirent *de)
{
	const char *name = de->d_name;
	size_t top = w->depth - 1;
	int fd = dirfd(w->frames[top].dir);
	struct reap_stat s;
	int err;

	if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return 0;
	/* Fast path for what the listing says is not a folder: removing the
	 * name needs no look first, since unlinkat(..., 0) never follows a
	 * link and refuses a folder (EISDIR). It halves the round trips on a
	 * network share. Anything unexpected is looked at below. */
	if (de->d_type != DT_DIR && de->d_type != DT_UNKNOWN) {
		if (unlinkat(fd, name, 0) == 0) {
			w->files_removed++;
			w->frames[top].removed = true;
			return 0;
		}
		if (errno == ENOENT)
			return 0;
	}
	err = reap_stat_at(fd, name, &s);
	if (err == -ENOENT)
		return 0;
	if (err < 0) {
		walk_note_failure(w, -err, name);
		return left_add(&w->left, w->frames[top].dev, (ino_t)de->d_ino);
	}
	if (left_has(&w->left, s.st.dev, s.st.ino))
		return 0;
	if (!on_site_mount(&s, w->mount)) {
		/* A mount point (a folder, or a file bind-mounted over a
		 * name): never entered, never removed. The folders above it
		 * cannot be removed either, which the caller reports. */
		w->mounts++;
		return left_add(&w->left, s.st.dev, s.st.ino);
	}
	if (s.st.type != S_IFDIR) {
		/* Files, symlinks, FIFOs, sockets, device nodes: only the name
		 * goes, nothing is opened. A hard link to a file elsewhere
		 * loses this name and nothing else. */
		if (unlinkat(fd, name, 0) == 0) {
			w->files_removed++;
			w->frames[top].removed = true;
			return 0;
		}
		if (errno == ENOENT)
			return 0;
		walk_note_failure(w, errno, name);
		return left_add(&w->left, s.st.dev, s.st.ino);
	}
	return walk_enter(w, name, &s);
}

/* Leaves the top folder, which has been listed to its end, and removes it
 * from its parent. Returns 0, or -ESTALE / -errno when the walk cannot go on. */
static int walk_pop(struct reap_walk *w)
{
	size_t i = w->depth - 1;
	struct reap_frame *f = &w->frames[i];
	struct reap_frame *p;
	struct reap_stat s;
	const char *name;
	int pfd;

	if (i == 0) {
		closedir(f->dir);
		f->dir = NULL;
		w->depth = 0;
		return 0;
	}
	p = &w->frames[i - 1];
	if (!p->dir) {
		/* The parent was closed to bound the open descriptors. Reach
		 * it again through "..", and make sure it is still the folder
		 * it was: if this folder was moved elsewhere meanwhile, ".." is
		 * no longer part of the tree, and the walk must stop. */
		pfd = openat(dirfd(f->dir), "..", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (pfd < 0)
			return -errno;
		if (reap_stat_at(pfd, "", &s) < 0 || s.st.dev != p->dev || s.st.ino != p->ino ||
		    !on_site_mount(&s, w->mount)) {
			close(pfd);
			return -ESTALE;
		}
		p->dir = fdopendir(pfd);
		if (!p->dir) {
			int err = -errno;
			close(pfd);
			return err;
		}
		/* Listed again from its start: what was removed is gone, what
		 * was left is in w->left. */
		w->lo = i - 1;
	}
	closedir(f->dir);
	f->dir = NULL;
	w->depth = i;
	if (w->lo > w->depth)
		w->lo = w->depth;

	/* Only the folder just emptied goes: if its name now holds something
	 * else, that is looked at by the parent's next pass. */
	pfd = dirfd(p->dir);
	name = w->names + f->name_off;
	if (reap_stat_at(pfd, name, &s) == 0 && s.st.type == S_IFDIR &&
	    s.st.dev == f->dev && s.st.ino == f->ino) {
		if (unlinkat(pfd, name, AT_REMOVEDIR) == 0) {
			p->removed = true;
		} else if (errno != ENOENT) {
			/* Not empty because of something already counted (a
			 * mount point, a failure) needs no second mention. */
			if ((errno != ENOTEMPTY && errno != EEXIST) ||
			    w->mounts + w->raced + w->failed == 0)
				walk_note_failure(w, errno, name);
			if (left_add(&w->left, f->dev, f->ino) < 0) {
				w->names_len = f->name_off;
				return -ENOMEM;
			}
		}
	} else {
		p->removed = true;
	}
	w->names_len = f->name_off;
	return 0;
}

/* Removes everything inside the folder open at fd (whose identity is s).
 * Returns 0 when the walk ran to its end (what it left is counted in w),
 * -ECANCELED, -ESTALE when a folder was moved out of the tree under it, or
 * another negative errno. The folder itself stays. */
static int walk_empty(struct reap_walk *w, int fd, const struct reap_stat *s)
{
	struct dirent *de;
	DIR *dir;
	int dfd, err = 0;

	w->lo = 1;
	err = walk_reserve(w, 0);
	if (err < 0)
		return err;
	/* The listing gets its own descriptor: closedir() closes it, and the
	 * caller still needs fd to check the folder before removing it. */
	dfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (dfd < 0)
		return -errno;
	dir = fdopendir(dfd);
	if (!dir) {
		err = -errno;
		close(dfd);
		return err;
	}
	/* A duplicate shares the file offset: list from the start whatever
	 * was read through fd before. */
	rewinddir(dir);
	walk_push(w, dir, s, "");

	while (w->depth > 0) {
		struct reap_frame *top = &w->frames[w->depth - 1];

		if (cancelled(w->cancel)) {
			err = -ECANCELED;
			break;
		}
		errno = 0;
		de = readdir(top->dir);
		if (de) {
			err = walk_entry(w, de);
			if (err < 0)
				break;
			continue;
		}
		if (errno != 0) {
			walk_note_failure(w, errno, w->names + top->name_off);
			top->removed = false;   /* a broken listing is not retried */
		}
		if (top->removed && ++top->passes < REAP_PASSES_MAX) {
			top->removed = false;
			rewinddir(top->dir);
			continue;
		}
		err = walk_pop(w);
		if (err < 0)
			break;
	}
	for (size_t i = 0; i < w->depth; i++)
		if (w->frames[i].dir)
			closedir(w->frames[i].dir);
	w->depth = 0;
	return err;
}

static void walk_free(struct reap_walk *w)
{
	free(w->frames);
	free(w->names);
	free(w->left.slots);
}

/* "1 mount point inside: left; ..." for the result, "" when nothing was left. */
static void walk_describe(const struct reap_walk *w, char *out, size_t out_size)
{
	char ebuf[128];
	size_t len = 0;

	out[0] = '\0';
	if (w->mounts)
		len += (size_t)snprintf(out + len, out_size - len, "%lu mount point%s inside: left; ",
					w->mounts, w->mounts == 1 ? "" : "s");
	if (w->raced && len < out_size)
		len += (size_t)snprintf(out + len, out_size - len,
					"%lu entr%s changed while being removed: left; ",
					w->raced, w->raced == 1 ? "y" : "ies");
	if (w->failed && len < out_size)
		len += (size_t)snprintf(out + len, out_size - len,
					"%lu could not be removed (first \"%s\": %s); ", w->failed,
					w->first_name, errstr(w->first_errno, ebuf, sizeof(ebuf)));
	if (len >= out_size)
		len = out_size - 1;
	/* Drop the trailing "; ". */
	if (len >= 2 && out[len - 2] == ';')
		out[len - 2] = '\0';
}

/* ---- Targets ----------------------------------------------------------- */

struct reap_ctx {
	struct reap_mount mount;
	atomic_bool *cancel;
};

static int reap_file(const struct reap_ctx *c, int area_fd, const struct reap_target *t,
		     struct reap_result *r)
{
	char ebuf[128], why[64];
	struct reap_stat now;
	const char *change;
	int err;

	err = reap_stat_at(area_fd, t->name, &now);
	if (err == -ENOENT)
		return fail(r, -ENOENT, "already gone");
	if (err < 0)
		return fail(r, err, "stat: %s", errstr(-err, ebuf, sizeof(ebuf)));
	change = stat_change(&t->judged, &now.st, why, sizeof(why));
	if (change)
		return fail(r, -ESTALE, "%s since judged", change);
	if (!on_site_mount(&now, &c->mount))
		return fail(r, -EXDEV, "a mount point: left");
	/* unlinkat never follows a link: if the name was replaced after the
	 * check just above, what goes is still only a name in this folder. */
	if (unlinkat(area_fd, t->name, 0) < 0) {
		err = -errno;
		if (err == -ENOENT)
			return fail(r, err, "already gone");
		return fail(r, err, "unlink: %s", errstr(-err, ebuf, sizeof(ebuf)));
	}
	r->files_removed = 1;
	return 0;
}

/* Compares the judged files inside a folder, through the verified fd. */
static int check_inner(int fd, const struct reap_target *t, struct reap_result *r)
{
	char ebuf[128], why[64], shown[64];
	struct reap_stat now;
	const char *change;
	int err;

	for (size_t i = 0; i < t->n_inner; i++) {
		const char *name = t->inner_name[i];

		log_escape(name, shown, sizeof(shown));
		err = reap_stat_at(fd, name, &now);
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

/* Renames the verified folder (open at fd, identity s) to a trash name beside
 * it, written to trash. */
static int rename_to_trash(int area_fd, const struct reap_target *t, const struct reap_stat *s,
			   char *trash, size_t trash_size, struct reap_result *r)
{
	char ebuf[128], shown[NAME_MAX * 4 + 1];
	struct reap_stat moved;
	int err = -EEXIST;

	for (unsigned attempt = 0; attempt < REAP_TRASH_TRIES; attempt++) {
		trash_name(t->name, attempt, trash, trash_size);
		err = rename_noreplace(area_fd, t->name, trash);
		/* Taken by an earlier leftover (or by something that is not a
		 * folder): try the next suffix. */
		if (err != -EEXIST && err != -ENOTEMPTY && err != -ENOTDIR && err != -EISDIR)
			break;
	}
	if (err == -ENOENT)
		return fail(r, -ESTALE, "renamed or removed since judged");
	if (err < 0)
		return fail(r, err, "rename to trash: %s", errstr(-err, ebuf, sizeof(ebuf)));

	/* The rename went by name. If the name was swapped between the open
	 * and the rename, what now carries the trash name is not the folder
	 * that was verified: put it back, untouched. */
	err = reap_stat_at(area_fd, trash, &moved);
	if (err == 0 && same_inode(&moved, s) && moved.st.type == S_IFDIR)
		return 0;
	if (err < 0)
		return fail(r, -ESTALE, "moved away while being renamed");
	log_escape(trash, shown, sizeof(shown));
	err = rename_noreplace(area_fd, trash, t->name);
	if (err < 0)
		return fail(r, -ESTALE, "replaced while being renamed; could not put it back (%s): "
			    "left as %s", errstr(-err, ebuf, sizeof(ebuf)), shown);
	return fail(r, -ESTALE, "replaced while being renamed; put back");
}

static int reap_folder(const struct reap_ctx *c, int area_fd, const struct reap_target *t,
		       struct reap_result *r)
{
	char ebuf[128], why[64], trash[NAME_MAX + 1], shown[NAME_MAX * 4 + 1], what[200];
	struct reap_walk w = { .mount = &c->mount, .cancel = c->cancel };
	struct reap_stat now, opened, check;
	const char *change;
	int fd, err;

	/* 1. The name still holds the folder that was judged. */
	err = reap_stat_at(area_fd, t->name, &now);
	if (err == -ENOENT)
		return fail(r, -ENOENT, "already gone");
	if (err < 0)
		return fail(r, err, "stat: %s", errstr(-err, ebuf, sizeof(ebuf)));
	change = stat_change(&t->judged, &now.st, why, sizeof(why));
	if (change)
		return fail(r, -ESTALE, "%s since judged", change);
	if (!on_site_mount(&now, &c->mount))
		return fail(r, -EXDEV, "a mount point: left");

	/* 2. Open it without following, and check that what was opened is that
	 * folder; from here on it is reached only through fd. */
	fd = openat(area_fd, t->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		err = -errno;
		if (err == -ELOOP || err == -ENOTDIR) {
			/* Swapped after the look above. Say for what, if it
			 * still is; this second look decides nothing. */
			if (reap_stat_at(area_fd, t->name, &now) == 0 && now.st.type != S_IFDIR)
				return fail(r, -ESTALE, "replaced by %s while being opened",
					    type_word(now.st.type));
			return fail(r, -ESTALE, "replaced while being opened");
		}
		if (err == -ENOENT)
			return fail(r, -ESTALE, "renamed or removed since judged");
		return fail(r, err, "open: %s", errstr(-err, ebuf, sizeof(ebuf)));
	}
	err = reap_stat_at(fd, "", &opened);
	if (err < 0) {
		fail(r, err, "stat: %s", errstr(-err, ebuf, sizeof(ebuf)));
		goto out;
	}
	if (!same_inode(&opened, &now) || !on_site_mount(&opened, &c->mount)) {
		err = fail(r, -ESTALE, "replaced while being opened");
		goto out;
	}
	err = check_inner(fd, t, r);
	if (err < 0)
		goto out;
	if (cancelled(c->cancel)) {
		err = fail(r, -ECANCELED, "cancelled before it was started");
		goto out;
	}

	/* 3. Rename before removing anything. Once verified, the rename takes
	 * the record out of Kudu's sight in one atomic step, so Kudu never sees
	 * a half-removed lock or record under its own name; and a removal that
	 * is interrupted (cancel, crash, restart) leaves a folder that is
	 * plainly ours, which the next cleanup finishes. A trash folder left by
	 * an earlier run already has its final name. */
	if (strncmp(t->name, REAP_TRASH_PREFIX, strlen(REAP_TRASH_PREFIX)) == 0) {
		snprintf(trash, sizeof(trash), "%s", t->name);
	} else {
		err = rename_to_trash(area_fd, t, &opened, trash, sizeof(trash), r);
		if (err < 0)
			goto out;
	}
	log_escape(trash, shown, sizeof(shown));
	if (t->trash_only) {
		snprintf(r->detail, sizeof(r->detail), "moved aside as %s, emptied in the background",
			 shown);
		err = 0;
		goto out;
	}

	/* 4. Empty it through fd. */
	err = walk_empty(&w, fd, &opened);
	r->files_removed = w.files_removed;
	walk_describe(&w, what, sizeof(what));
	if (err == -ECANCELED) {
		fail(r, err, "cancelled; the rest is left in %s%s%s", shown, what[0] ? "; " : "", what);
		goto out;
	}
	if (err == -ESTALE) {
		fail(r, err, "a folder inside was moved during removal; stopped, the rest is left in %s",
		     shown);
		goto out;
	}
	if (err < 0) {
		fail(r, err, "emptying %s: %s", shown, errstr(-err, ebuf, sizeof(ebuf)));
		goto out;
	}

	/* 5. Remove the folder itself, if its name is still that folder. */
	err = reap_stat_at(area_fd, trash, &check);
	if (err == -ENOENT) {
		/* Another instance sharing the site finishing the same trash. */
		err = fail(r, -ENOENT, "%s was removed by someone else meanwhile", shown);
		goto out;
	}
	if (err < 0 || !same_inode(&check, &opened)) {
		err = fail(r, -ESTALE, "%s was renamed or replaced while being emptied", shown);
		goto out;
	}
	if (unlinkat(area_fd, trash, AT_REMOVEDIR) < 0) {
		err = -errno;
		fail(r, err, "%s%sleft as %s: %s", what, what[0] ? "; " : "", shown,
		     errstr(-err, ebuf, sizeof(ebuf)));
		goto out;
	}
	err = 0;
out:
	walk_free(&w);
	close(fd);
	return err;
}

static int reap_one(const struct reap_ctx *c, int root_fd, const struct reap_target *t,
		    struct reap_result *r)
{
	char ebuf[128];
	struct reap_stat as;
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
		return fail(r, -EPERM, "judged as %s: only files and folders are removed",
			    type_word(t->judged.type));
	if (t->judged.dev != c->mount.dev)
		return fail(r, -EXDEV, "judged on another device than the site root");

	area_fd = openat(root_fd, t->area, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (area_fd < 0) {
		err = -errno;
		return fail(r, err, "open %s: %s", t->area, errstr(-err, ebuf, sizeof(ebuf)));
	}
	err = reap_stat_at(area_fd, "", &as);
	if (err < 0) {
		fail(r, err, "stat %s: %s", t->area, errstr(-err, ebuf, sizeof(ebuf)));
	} else if (!on_site_mount(&as, &c->mount)) {
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
	struct reap_stat rs;
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
	err = reap_stat_at(root_fd, "", &rs);
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
	c.mount = (struct reap_mount){ .dev = rs.st.dev, .has_mnt_id = rs.has_mnt_id,
				       .mnt_id = rs.mnt_id };

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
