/* evidence.c - what a decision rested on, checked again just before acting. */
#include "evidence.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "rmtree.h"

static const char *const area_names[] = { "locks", "deployments" };

static bool record_with_status(const struct site_entry *e)
{
	return (e->kind == KUDU_NAME_RECORD || e->kind == KUDU_NAME_TEMP_RECORD) &&
	       e->st.type == S_IFDIR;
}

static int add_item(struct evidence *ev, size_t *cap, const struct site_entry *e,
		    const char *inner, const struct site_stat *st)
{
	if (ev->n == *cap) {
		size_t bigger = *cap ? *cap * 2 : 64;
		struct evidence_item *grown = realloc(ev->items, bigger * sizeof(*grown));
		if (!grown)
			return -ENOMEM;
		ev->items = grown;
		*cap = bigger;
	}
	struct evidence_item *it = &ev->items[ev->n++];
	memset(it, 0, sizeof(*it));
	it->area = e->area;
	memcpy(it->name, e->name, sizeof(it->name));
	snprintf(it->inner, sizeof(it->inner), "%s", inner);
	it->judged = *st;
	return 0;
}

int evidence_from_snapshot(const struct site_snapshot *snap, struct evidence *ev)
{
	size_t cap = 0;
	int r = 0;

	memset(ev, 0, sizeof(*ev));
	ev->root_dev = snap->root.dev;
	ev->root_ino = snap->root.ino;
	ev->area[SITE_AREA_LOCKS] = snap->locks;
	ev->area[SITE_AREA_DEPLOYMENTS] = snap->deployments;
	ev->n_foreign = snap->n_foreign;
	/* Entries come sorted by area and name; each one's inner files follow
	 * it, so the check opens a folder once for all of them. */
	for (size_t i = 0; i < snap->n_entries && r == 0; i++) {
		const struct site_entry *e = &snap->entries[i];
		ev->n_trash += e->kind == KUDU_NAME_TRASH;
		if (e->kind == KUDU_NAME_TRASH || site_is_foreign(e->kind, e->st.type))
			continue;
		r = add_item(ev, &cap, e, "", &e->st);
		if (r == 0 && e->kind == KUDU_NAME_LOCK_FOLDER && e->st.type == S_IFDIR)
			r = add_item(ev, &cap, e, "info.lock", &e->info_st);
		if (r == 0 && record_with_status(e)) {
			/* status.xml of every record: a finished one that is
			 * redeployed shows it there first. log.log only while
			 * unfinished: a finished record's is not read afresh by
			 * every scan, so it is not evidence. */
			r = add_item(ev, &cap, e, "status.xml", &e->status_st);
			if (r == 0 && !(e->status_err == 0 && kudu_status_finished(&e->status)))
				r = add_item(ev, &cap, e, "log.log", &e->log_st);
		}
	}
	if (r < 0)
		evidence_free(ev);
	return r;
}

void evidence_free(struct evidence *ev)
{
	free(ev->items);
	memset(ev, 0, sizeof(*ev));
}

/* The first item of area/name (the entry itself), or NULL. */
static struct evidence_item *find_entry(const struct evidence *ev, enum site_area area,
					const char *name)
{
	size_t lo = 0, hi = ev->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct evidence_item *it = &ev->items[mid];
		int c = it->area != area ? (it->area < area ? -1 : 1) : strcmp(it->name, name);
		if (c < 0) {
			lo = mid + 1;
		} else if (c > 0) {
			hi = mid;
		} else {
			while (mid > 0 && ev->items[mid - 1].area == area &&
			       strcmp(ev->items[mid - 1].name, name) == 0)
				mid--;
			return &ev->items[mid];
		}
	}
	return NULL;
}

void evidence_moved(struct evidence *ev, enum site_area area, const char *name,
		    const char *trash)
{
	struct evidence_item *it = find_entry(ev, area, name);
	for (; it && it < ev->items + ev->n && it->area == area && strcmp(it->name, name) == 0;
	     it++)
		it->moved_to = trash;
}

/* Whether name in area is the trash name of an entry this cleanup moved. */
static bool moved_here(const struct evidence *ev, enum site_area area, const char *name)
{
	for (size_t i = 0; i < ev->n; i++)
		if (ev->items[i].area == area && ev->items[i].moved_to &&
		    strcmp(ev->items[i].moved_to, name) == 0)
			return true;
	return false;
}

__attribute__((format(printf, 3, 4)))
static int changed(char *why, size_t why_size, const char *fmt, ...)
{
	char raw[NAME_MAX * 2 + 64];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(raw, sizeof(raw), fmt, ap);
	va_end(ap);
	log_escape(raw, why, why_size);
	return -ESTALE;
}

static mode_t dirent_type(int dir_fd, const struct dirent *de)
{
	struct stat st;
	switch (de->d_type) {
	case DT_DIR: return S_IFDIR;
	case DT_REG: return S_IFREG;
	case DT_LNK: return S_IFLNK;
	case DT_UNKNOWN:
		if (fstatat(dir_fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0)
			return st.st_mode & S_IFMT;
		return 0;
	default: return S_IFSOCK; /* any other special file: never Kudu's */
	}
}

/* Lists area: no Kudu entry appeared, and as many foreign ones as before.
 * Adds the foreign entries it counts to *foreign, the trash names that are
 * not this cleanup's to *trash. */
static int check_listing(const struct evidence *ev, enum site_area area, int area_fd,
			 size_t *foreign, size_t *trash, char *why, size_t why_size)
{
	int fd = fcntl(area_fd, F_DUPFD_CLOEXEC, 0);
	DIR *dir = fd < 0 ? NULL : fdopendir(fd);
	struct dirent *de;
	int r = 0;

	if (!dir) {
		r = -errno;
		if (fd >= 0)
			close(fd);
		return r;
	}
	for (errno = 0; r == 0 && (de = readdir(dir)) != NULL; errno = 0) {
		const char *name = de->d_name;
		if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
			continue;
		enum kudu_name kind = area == SITE_AREA_LOCKS ? kudu_classify_lock(name)
							      : kudu_classify_deployment(name);
		if (kind == KUDU_NAME_TRASH) {
			*trash += !moved_here(ev, area, name);
			continue;
		}
		if (site_is_foreign(kind, dirent_type(area_fd, de))) {
			(*foreign)++;
			continue;
		}
		const struct evidence_item *it = find_entry(ev, area, name);
		if (!it || it->moved_to)
			r = changed(why, why_size, "%s/%s appeared", area_names[area], name);
	}
	if (r == 0 && errno != 0)
		r = -errno;
	closedir(dir);
	return r;
}

/* The attributes of name in dir_fd, read afresh; absent when it is not there. */
static int look(int dir_fd, const char *name, struct site_stat *now)
{
	struct rmtree_stat st;
	int r = rmtree_stat_fresh(dir_fd, name, &st);

	*now = r == 0 ? st.st : (struct site_stat){ .present = false };
	return r == -ENOENT ? 0 : r;
}

/* Compares every item of area, opening each folder once for its inner
 * files; an entry moved aside by this cleanup is looked at under its trash
 * name (its ctime moved with the rename: not compared). */
static int check_items(const struct evidence *ev, enum site_area area, int area_fd, char *why,
		       size_t why_size)
{
	int entry_fd = -1;
	const struct evidence_item *opened = NULL;
	int r = 0;

	for (size_t i = 0; i < ev->n && r == 0; i++) {
		const struct evidence_item *it = &ev->items[i];
		const char *name = it->moved_to ? it->moved_to : it->name;
		struct site_stat now = { .present = false };
		if (it->area != area)
			continue;
		if (it->inner[0] == '\0') {
			if (entry_fd >= 0)
				close(entry_fd);
			entry_fd = -1;
			opened = it;
			r = look(area_fd, name, &now);
			if (r == 0 && now.present && now.type == S_IFDIR)
				entry_fd = openat(area_fd, name,
						  O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		} else if (entry_fd >= 0 && opened && strcmp(opened->name, it->name) == 0) {
			r = look(entry_fd, it->inner, &now);
		} else {
			/* Its folder is gone or was not opened: that showed
			 * already, on the folder's own item. */
			continue;
		}
		const char *what = r == 0 ? site_stat_change(&it->judged, &now,
							    it->moved_to && !it->inner[0])
					  : NULL;
		if (what)
			r = changed(why, why_size, "%s/%s%s%s %s", area_names[area], it->name,
				    it->inner[0] ? "/" : "", it->inner, what);
	}
	if (entry_fd >= 0)
		close(entry_fd);
	return r;
}

int evidence_check(const char *root, const struct evidence *ev, char *why, size_t why_size)
{
	struct stat st;
	size_t foreign = 0, trash = 0;
	int r = 0;

	why[0] = '\0';
	int root_fd = open(root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (root_fd < 0)
		return -errno;
	if (fstat(root_fd, &st) < 0 || st.st_dev != ev->root_dev || st.st_ino != ev->root_ino)
		r = changed(why, why_size, "the site root was replaced");
	for (int area = SITE_AREA_LOCKS; area <= SITE_AREA_DEPLOYMENTS && r == 0; area++) {
		const struct site_stat *was = &ev->area[area];
		int fd = openat(root_fd, area_names[area],
				O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0) {
			if (was->present || errno != ENOENT)
				r = changed(why, why_size, "%s/ %s", area_names[area],
					    errno == ENOENT ? "vanished" : "cannot be opened");
			continue;
		}
		if (!was->present || fstat(fd, &st) < 0 || st.st_dev != was->dev ||
		    st.st_ino != was->ino)
			r = changed(why, why_size, "%s/ was replaced", area_names[area]);
		if (r == 0)
			r = check_listing(ev, (enum site_area)area, fd, &foreign, &trash, why,
					  why_size);
		if (r == 0)
			r = check_items(ev, (enum site_area)area, fd, why, why_size);
		close(fd);
	}
	if (r == 0 && foreign != ev->n_foreign)
		r = changed(why, why_size, "entries that are not Kudu's came or went (%zu, now %zu)",
			    ev->n_foreign, foreign);
	if (r == 0 && trash > ev->n_trash)
		r = changed(why, why_size, "an entry named like lockwarden's trash appeared");
	close(root_fd);
	return r;
}
