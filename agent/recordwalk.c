/* recordwalk.c - the bounded walk of one record's contents (see recordwalk.h). */
#include "recordwalk.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hash.h"
#include "rmtree.h"

struct walk {
	const struct recordwalk_visitor *v;
	struct rmtree_mount mount;
	struct site_tree_sum *out;
	char path[(SITE_TREE_MAX_DEPTH + 1) * (NAME_MAX + 1)];
	size_t path_len;
	bool fresh;     /* a re-check: attributes read past the client's cache */
};

static void cannot_tell(struct walk *w, int err)
{
	if (!w->out->cannot_tell) {
		w->out->cannot_tell = true;
		w->out->err = err;
	}
}

/* Folds one entry into the summary. The folder's inode and the name place
 * it; the lstat says what it is now. The sum is order-free: two listings of
 * the same contents in another order give the same summary. */
static void count(struct site_tree_sum *t, ino_t dir_ino, const char *name, const struct site_stat *st)
{
	uint64_t h = hash_fnv1a_u64(HASH_FNV1A_INIT, (uint64_t)dir_ino);
	h = hash_fnv1a(h, name, strlen(name) + 1);
	h = hash_fnv1a_u64(h, st->type);
	h = hash_fnv1a_u64(h, (uint64_t)st->ino);
	h = hash_fnv1a_u64(h, (uint64_t)st->mtime_ns);
	h = hash_fnv1a_u64(h, (uint64_t)st->ctime_ns);
	h = hash_fnv1a_u64(h, (uint64_t)st->size);
	t->sum += h;
	t->entries++;
	if (st->type != S_IFDIR && st->size > 0)
		t->size = st->size > INT64_MAX - t->size ? INT64_MAX : t->size + st->size;
	if (st->mtime_ns > t->newest_mtime_ns)
		t->newest_mtime_ns = st->mtime_ns;
	if (st->ctime_ns > t->newest_ctime_ns)
		t->newest_ctime_ns = st->ctime_ns;
}

static int walk_folder(struct walk *w, int fd, ino_t ino, unsigned depth);

/* Opens the folder name of fd, which was looked at as s, checks it is that
 * very folder on the record's mount, and walks it. */
static int enter(struct walk *w, int fd, const char *name, const struct rmtree_stat *s,
		 unsigned depth)
{
	struct rmtree_stat opened;
	int r = 0;

	if (depth > SITE_TREE_MAX_DEPTH) {
		cannot_tell(w, -ELOOP);
		return 0;
	}
	int sub = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (sub < 0) {
		/* Gone: the listing changed, which the summary shows as it is. */
		if (errno != ENOENT)
			cannot_tell(w, errno == ELOOP || errno == ENOTDIR ? -ESTALE : -errno);
		return 0;
	}
	if (rmtree_stat_at(sub, "", &opened) < 0 || !rmtree_same_inode(&opened, s) ||
	    opened.st.type != S_IFDIR || !rmtree_on_mount(&opened, &w->mount)) {
		cannot_tell(w, -ESTALE);
		close(sub);
		return 0;
	}
	if (w->v && w->v->entry)
		r = w->v->entry(w->v->ctx, sub, name, w->path, &s->st, depth);
	if (r == 0)
		r = walk_folder(w, sub, s->st.ino, depth + 1);
	if (w->v && w->v->leave)
		w->v->leave(w->v->ctx, depth);
	close(sub);
	return r;
}

/* One entry of the folder fd: counted, then entered or visited. */
static int walk_entry(struct walk *w, int fd, ino_t ino, const char *name, unsigned depth)
{
	struct rmtree_stat s;
	int r = w->fresh ? rmtree_stat_fresh(fd, name, &s) : rmtree_stat_at(fd, name, &s);

	if (r == -ENOENT)
		return 0; /* gone between the listing and the look */
	if (r < 0) {
		cannot_tell(w, r);
		return 0;
	}
	if (w->out->entries >= SITE_TREE_MAX_ENTRIES) {
		cannot_tell(w, -E2BIG);
		return 0;
	}
	count(w->out, ino, name, &s.st);
	/* A mount point inside (no deployment makes one) is counted by its
	 * own lstat and never entered, as the remover leaves it. */
	if (!rmtree_on_mount(&s, &w->mount))
		return 0;
	size_t len = strlen(name), before = w->path_len;
	if (before + len + 2 > sizeof(w->path)) {
		cannot_tell(w, -ENAMETOOLONG);
		return 0;
	}
	if (before)
		w->path[w->path_len++] = '/';
	memcpy(w->path + w->path_len, name, len + 1);
	w->path_len += len;
	if (s.st.type == S_IFDIR)
		r = enter(w, fd, name, &s, depth);
	else if (w->v && w->v->entry)
		r = w->v->entry(w->v->ctx, fd, name, w->path, &s.st, depth);
	w->path_len = before;
	w->path[before] = '\0';
	return r;
}

static int walk_folder(struct walk *w, int fd, ino_t ino, unsigned depth)
{
	struct dirent *de;
	int r = 0;
	/* The listing gets its own descriptor: closedir() closes it, and fd
	 * stays the caller's. */
	int dfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	DIR *dir = dfd < 0 ? NULL : fdopendir(dfd);

	if (!dir) {
		cannot_tell(w, -errno);
		if (dfd >= 0)
			close(dfd);
		return 0;
	}
	/* A duplicate shares the file offset: list from the start. */
	rewinddir(dir);
	for (errno = 0; r == 0 && !w->out->cannot_tell && (de = readdir(dir)) != NULL; errno = 0) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		r = walk_entry(w, fd, ino, de->d_name, depth);
	}
	if (r == 0 && !w->out->cannot_tell && errno != 0)
		cannot_tell(w, -errno);
	closedir(dir);
	return r;
}

static int walk_record(int dir_fd, const struct recordwalk_visitor *visitor, bool fresh,
		       struct site_tree_sum *out)
{
	struct walk w = { .v = visitor, .out = out, .fresh = fresh };
	struct rmtree_stat top;

	*out = (struct site_tree_sum){ .walked = true, .newest_mtime_ns = INT64_MIN,
				   .newest_ctime_ns = INT64_MIN };
	int r = rmtree_stat_at(dir_fd, "", &top);
	if (r < 0) {
		cannot_tell(&w, r);
		return 0;
	}
	rmtree_mount_of(&top, &w.mount);
	return walk_folder(&w, dir_fd, top.st.ino, 1);
}

int recordwalk(int dir_fd, const struct recordwalk_visitor *visitor, struct site_tree_sum *out)
{
	return walk_record(dir_fd, visitor, false, out);
}

int recordwalk_fresh(int dir_fd, struct site_tree_sum *out)
{
	return walk_record(dir_fd, NULL, true, out);
}

const char *recordwalk_difference(const struct site_tree_sum *was, const struct site_tree_sum *now)
{
	if (now->cannot_tell)
		return "cannot be seen whole now";
	if (was->cannot_tell)
		return "could not be seen whole";
	if (was->entries != now->entries)
		return "had entries come or go inside";
	if (was->size != now->size)
		return "had a file inside change size";
	if (was->newest_mtime_ns != now->newest_mtime_ns || was->newest_ctime_ns != now->newest_ctime_ns ||
	    was->sum != now->sum)
		return "had something inside written";
	return NULL;
}
