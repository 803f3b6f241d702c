/* rmtree.c - the one recursive remover (see rmtree.h for its rules). */
#include "rmtree.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"

/* Open folders kept while walking down a tree; deeper ones are closed and
 * reached again through ".." (checked) on the way back up, so any depth
 * works with a handful of descriptors (memory grows with the depth only). */
#define RMTREE_OPEN_DIRS_MAX 16
/* Listings of one folder. A folder is listed again after a pass that removed
 * something, because some filesystems (network shares among them) can skip
 * entries of a folder that changes while it is listed. The bound stops a
 * writer that keeps adding files from keeping the removal busy forever. */
#define RMTREE_PASSES_MAX 8

/* Stats name relative to dir_fd without following it, or dir_fd itself when
 * name is "". statx rather than fstatat: it also says which mount the entry
 * is on, which is how a bind mount of the same disk is told apart. */
static int stat_at(int dir_fd, const char *name, int sync, struct rmtree_stat *out)
{
	int flags = AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT | sync;
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

int rmtree_stat_at(int dir_fd, const char *name, struct rmtree_stat *out)
{
	return stat_at(dir_fd, name, AT_STATX_SYNC_AS_STAT, out);
}

int rmtree_stat_fresh(int dir_fd, const char *name, struct rmtree_stat *out)
{
	return stat_at(dir_fd, name, AT_STATX_FORCE_SYNC, out);
}

/* True when an entry (not the site root itself) is on the site's mount. */
bool rmtree_on_mount(const struct rmtree_stat *s, const struct rmtree_mount *m)
{
	if (s->st.dev != m->dev || s->mount_root)
		return false;
	if (s->has_mnt_id && m->has_mnt_id && s->mnt_id != m->mnt_id)
		return false;
	return true;
}

bool rmtree_same_inode(const struct rmtree_stat *a, const struct rmtree_stat *b)
{
	return a->st.dev == b->st.dev && a->st.ino == b->st.ino;
}

bool rmtree_is_mount_root(int dir_fd)
{
	struct statx sx;
	struct stat self, parent;

	if (statx(dir_fd, "", AT_EMPTY_PATH | AT_STATX_SYNC_AS_STAT, STATX_BASIC_STATS, &sx) == 0 &&
	    (sx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT))
		return (sx.stx_attributes & STATX_ATTR_MOUNT_ROOT) != 0;
	return fstat(dir_fd, &self) == 0 && fstatat(dir_fd, "..", &parent, 0) == 0 &&
	       (parent.st_dev != self.st_dev || parent.st_ino == self.st_ino);
}

void rmtree_mount_of(const struct rmtree_stat *s, struct rmtree_mount *out)
{
	*out = (struct rmtree_mount){ .dev = s->st.dev, .has_mnt_id = s->has_mnt_id,
				      .mnt_id = s->mnt_id };
}

static const char *errstr(int errnum, char *buf, size_t buf_size)
{
	/* GNU strerror_r: thread-safe, returns the message. */
	return strerror_r(errnum, buf, buf_size);
}

static bool cancelled(atomic_bool *cancel)
{
	return cancel && atomic_load(cancel);
}


/* Entries that could not be removed, by inode, so that listing a folder again
 * never tries them twice (and never walks into the same stuck subtree once
 * per pass of every folder above it). */
struct rmtree_key {
	dev_t dev;
	ino_t ino;
	bool used;
};

struct rmtree_left {
	struct rmtree_key *slots;
	size_t cap;     /* a power of two, or 0 */
	size_t n;
};

static size_t left_slot(const struct rmtree_left *l, dev_t dev, ino_t ino)
{
	uint64_t h = ((uint64_t)ino ^ ((uint64_t)dev << 32 | (uint64_t)dev >> 32)) *
		     UINT64_C(0x9e3779b97f4a7c15);
	size_t i = (size_t)(h >> 17) & (l->cap - 1);

	while (l->slots[i].used && (l->slots[i].dev != dev || l->slots[i].ino != ino))
		i = (i + 1) & (l->cap - 1);
	return i;
}

static bool left_has(const struct rmtree_left *l, dev_t dev, ino_t ino)
{
	return l->cap > 0 && l->slots[left_slot(l, dev, ino)].used;
}

static int left_add(struct rmtree_left *l, dev_t dev, ino_t ino)
{
	if ((l->n + 1) * 2 > l->cap) {
		struct rmtree_left grown = { .cap = l->cap ? l->cap * 2 : 64 };

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
		l->slots[i] = (struct rmtree_key){ .dev = dev, .ino = ino, .used = true };
		l->n++;
	}
	return 0;
}

/* One folder of the walk. Frames live on a heap stack, not the C stack, so
 * the depth of a tree is bounded only by memory. */
struct rmtree_frame {
	DIR *dir;           /* NULL while closed to save descriptors */
	dev_t dev;
	ino_t ino;
	size_t name_off;    /* its name in the parent, in reap_walk.names */
	unsigned passes;
	bool removed;       /* the current pass removed something */
};

struct rmtree_walk {
	const struct rmtree_mount *mount;
	atomic_bool *cancel;

	struct rmtree_frame *frames;
	size_t depth, cap;
	/* frames[1 .. lo-1] are closed, frames[lo .. depth-1] open. frames[0],
	 * the folder being emptied, is never closed. */
	size_t lo;
	char *names;        /* the frames' names, each '\0'-terminated */
	size_t names_len, names_cap;

	struct rmtree_left left;

	unsigned long files_removed;
	unsigned long mounts;   /* mount points left in place */
	unsigned long raced;    /* entries that changed between look and act */
	unsigned long failed;   /* entries that could not be removed */
	int first_errno;
	char first_name[64];    /* escaped */
};

static void walk_note_failure(struct rmtree_walk *w, int errnum, const char *name)
{
	if (w->failed++ == 0) {
		w->first_errno = errnum;
		log_escape(name, w->first_name, sizeof(w->first_name));
	}
}

/* Closes the shallowest open frame, other than the first and the current
 * one, to free a descriptor. False when there is none. */
static bool walk_close_oldest(struct rmtree_walk *w)
{
	if (w->lo + 1 >= w->depth)
		return false;
	closedir(w->frames[w->lo].dir);
	w->frames[w->lo].dir = NULL;
	w->lo++;
	return true;
}

static int walk_reserve(struct rmtree_walk *w, size_t name_len)
{
	if (w->depth == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 64;
		struct rmtree_frame *grown = realloc(w->frames, cap * sizeof(*grown));
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
static void walk_push(struct rmtree_walk *w, DIR *dir, const struct rmtree_stat *s, const char *name)
{
	size_t len = strlen(name);
	struct rmtree_frame *f = &w->frames[w->depth++];

	memcpy(w->names + w->names_len, name, len + 1);
	*f = (struct rmtree_frame){ .dir = dir, .dev = s->st.dev, .ino = s->st.ino,
				  .name_off = w->names_len };
	w->names_len += len + 1;
	if (w->depth - w->lo > RMTREE_OPEN_DIRS_MAX)
		walk_close_oldest(w);
}

/* Enters the subfolder name of the top frame, which reap_stat_at saw as s. */
static int walk_enter(struct rmtree_walk *w, const char *name, const struct rmtree_stat *s)
{
	struct rmtree_stat opened;
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
	err = rmtree_stat_at(fd, "", &opened);
	if (err < 0 || !rmtree_same_inode(&opened, s) || opened.st.type != S_IFDIR ||
	    !rmtree_on_mount(&opened, w->mount)) {
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
static int walk_entry(struct rmtree_walk *w, const struct dirent *de)
{
	const char *name = de->d_name;
	size_t top = w->depth - 1;
	int fd = dirfd(w->frames[top].dir);
	struct rmtree_stat s;
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
	err = rmtree_stat_at(fd, name, &s);
	if (err == -ENOENT)
		return 0;
	if (err < 0) {
		walk_note_failure(w, -err, name);
		return left_add(&w->left, w->frames[top].dev, (ino_t)de->d_ino);
	}
	if (left_has(&w->left, s.st.dev, s.st.ino))
		return 0;
	if (!rmtree_on_mount(&s, w->mount)) {
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
static int walk_pop(struct rmtree_walk *w)
{
	size_t i = w->depth - 1;
	struct rmtree_frame *f = &w->frames[i];
	struct rmtree_frame *p;
	struct rmtree_stat s;
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
		if (rmtree_stat_at(pfd, "", &s) < 0 || s.st.dev != p->dev || s.st.ino != p->ino ||
		    !rmtree_on_mount(&s, w->mount)) {
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
	if (rmtree_stat_at(pfd, name, &s) == 0 && s.st.type == S_IFDIR &&
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
static int walk_empty(struct rmtree_walk *w, int fd, const struct rmtree_stat *s)
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
		struct rmtree_frame *top = &w->frames[w->depth - 1];

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
		if (top->removed && ++top->passes < RMTREE_PASSES_MAX) {
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

static void walk_free(struct rmtree_walk *w)
{
	free(w->frames);
	free(w->names);
	free(w->left.slots);
}

/* "1 mount point inside: left; ..." for the result, "" when nothing was left. */
void rmtree_describe(const struct rmtree_outcome *w, char *out, size_t out_size)
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

int rmtree_empty(int fd, const struct rmtree_stat *s, const struct rmtree_mount *m,
		 atomic_bool *cancel, struct rmtree_outcome *out)
{
	struct rmtree_walk w = { .mount = m, .cancel = cancel };
	int err = walk_empty(&w, fd, s);

	*out = (struct rmtree_outcome){
		.files_removed = w.files_removed, .mounts = w.mounts, .raced = w.raced,
		.failed = w.failed, .first_errno = w.first_errno,
	};
	memcpy(out->first_name, w.first_name, sizeof(out->first_name));
	walk_free(&w);
	return err;
}
