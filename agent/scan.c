/* scan.c - reads locks/ and deployments/ into a snapshot, following nothing. */
#include "scan.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "recordwalk.h"
#include "rmtree.h"

static void stat_from(struct site_stat *out, const struct stat *st)
{
	out->present = true;
	out->type = st->st_mode & S_IFMT;
	out->dev = st->st_dev;
	out->ino = st->st_ino;
	out->mtime_ns = clock_ns_from(st->st_mtim.tv_sec, st->st_mtim.tv_nsec);
	out->ctime_ns = clock_ns_from(st->st_ctim.tv_sec, st->st_ctim.tv_nsec);
	out->size = (int64_t)st->st_size;
}

/* lstat of name in dirfd; returns 0 or -errno, out->present false when absent. */
static int stat_at(int dirfd, const char *name, struct site_stat *out)
{
	struct stat st;

	memset(out, 0, sizeof(*out));
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	stat_from(out, &st);
	return 0;
}

/* Reads a small regular file of dirfd without following a link or blocking
 * on a FIFO. *buf is malloc'd (NUL-terminated) on success. The stat of the
 * opened file is returned in st so it matches what was read. */
static int read_small(int dirfd, const char *name, char **buf, size_t *len,
		      struct site_stat *st_out)
{
	struct stat st;
	int fd, err = 0;

	*buf = NULL;
	*len = 0;
	fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		err = -errno;
		goto out;
	}
	stat_from(st_out, &st);
	if (!S_ISREG(st.st_mode)) {
		err = -EINVAL;
		goto out;
	}
	if (st.st_size > SCAN_FILE_MAX) {
		err = -EFBIG;
		goto out;
	}
	/* Right-sized: a buffer for what fstat says, grown only if the file
	 * grows while it is read (Kudu rewrites these files in place). */
	size_t cap = (size_t)st.st_size + 1 < 64 ? 64 : (size_t)st.st_size + 1;
	char *data = malloc(cap);
	if (!data) {
		err = -ENOMEM;
		goto out;
	}
	size_t got = 0;
	for (;;) {
		if (got + 1 == cap) {
			if (cap > SCAN_FILE_MAX) {
				free(data);
				err = -EFBIG;
				goto out;
			}
			size_t bigger = cap * 2 > SCAN_FILE_MAX + 1 ? SCAN_FILE_MAX + 1 : cap * 2;
			char *grown = realloc(data, bigger);
			if (!grown) {
				free(data);
				err = -ENOMEM;
				goto out;
			}
			data = grown;
			cap = bigger;
		}
		ssize_t n = read(fd, data + got, cap - 1 - got);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			err = -errno;
			free(data);
			goto out;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	data[got] = '\0';
	*buf = data;
	*len = got;
out:
	close(fd);
	return err;
}

static void scan_lock_folder(int locksfd, struct site_entry *e)
{
	int fd = openat(locksfd, "deployment", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	char *buf;
	size_t len;

	if (fd < 0) {
		e->info_err = -errno;
		return;
	}
	e->info_err = read_small(fd, "info.lock", &buf, &len, &e->info_st);
	if (e->info_err == -ENOENT || e->info_err == -ELOOP || e->info_err == -EINVAL)
		stat_at(fd, "info.lock", &e->info_st);
	if (e->info_err == 0) {
		e->info_err = kudu_parse_info_lock(buf, len, &e->info);
		free(buf);
	}
	close(fd);
}

static void scan_lock_file(int locksfd, struct site_entry *e)
{
	struct site_stat ignored;
	char *buf;
	size_t len;

	e->lock_err = read_small(locksfd, e->name, &buf, &len, &ignored);
	if (e->lock_err == 0) {
		e->lock_err = kudu_parse_file_lock(buf, len, &e->lock);
		free(buf);
	}
}

static void scan_record(int depfd, struct site_entry *e)
{
	int fd = openat(depfd, e->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	char *buf;
	size_t len;

	if (fd < 0) {
		e->status_err = -errno;
		return;
	}
	e->status_err = read_small(fd, "status.xml", &buf, &len, &e->status_st);
	if (e->status_err != 0 && e->status_err != -ENOMEM)
		stat_at(fd, "status.xml", &e->status_st);
	if (e->status_err == 0) {
		e->status_err = kudu_parse_status_xml(buf, len, &e->status);
		free(buf);
	}
	/* Only log.log: the removal re-checks the files judged by these very
	 * names (log.xml is Windows Kudu's, never written on Linux). */
	stat_at(fd, "log.log", &e->log_st);
	stat_at(fd, "manifest", &e->manifest_st);
	/* While it runs, everything inside is looked at (recordwalk.h). */
	if (!(e->status_err == 0 && kudu_status_finished(&e->status)))
		recordwalk(fd, NULL, &e->tree);
	close(fd);
}

/* The walk of an unfinished record kept from the previous scan: a write
 * below its top level (artifact/) changes neither its folder nor
 * status.xml, so it is walked again every scan. */
static void walk_record(int depfd, struct site_entry *e)
{
	int fd = openat(depfd, e->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		e->tree = (struct site_tree_sum){ .walked = true, .cannot_tell = true, .err = -errno };
		return;
	}
	recordwalk(fd, NULL, &e->tree);
	close(fd);
}

static void scan_active(int depfd, struct site_snapshot *snap)
{
	struct site_stat ignored;
	char *buf;
	size_t len;

	if (read_small(depfd, "active", &buf, &len, &ignored) != 0)
		return;
	/* The id is plain text with no newline; keep only a sane first line. */
	size_t n = strcspn(buf, "\r\n");
	if (n >= sizeof(snap->active_id))
		n = sizeof(snap->active_id) - 1;
	memcpy(snap->active_id, buf, n);
	snap->active_id[n] = '\0';
	free(buf);
}

/* Present, and unchanged by the one rule of every re-check (site.h): what
 * was read of it before may be reused. */
static bool same_stat(const struct site_stat *a, const struct site_stat *b)
{
	return a->present && !site_stat_change(a, b, false);
}

/* The previous scan's entry of the same area and name (entries are sorted by
 * name within each area), or NULL. */
static const struct site_entry *previous(const struct site_snapshot *prev, enum site_area area,
					 const char *name)
{
	if (!prev)
		return NULL;
	size_t lo = 0, hi = prev->n_entries;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct site_entry *e = &prev->entries[mid];
		int c = e->area != area ? (e->area < area ? -1 : 1) : strcmp(e->name, name);
		if (c == 0)
			return e;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* Reuses what the previous scan read of a finished record if its folder is
 * unchanged and, when a status.xml may have been saved since (check_status),
 * its status.xml too. */
static bool reuse_record(int depfd, struct site_entry *e, const struct site_entry *old,
			 bool check_status)
{
	char path[NAME_MAX + 16];
	struct site_stat now;

	if (!old || old->status_err != 0 || !kudu_status_finished(&old->status) ||
	    !same_stat(&old->st, &e->st))
		return false;
	snprintf(path, sizeof(path), "%s/status.xml", e->name);
	if (check_status && (stat_at(depfd, path, &now) != 0 || !same_stat(&now, &old->status_st)))
		return false;
	e->status_st = old->status_st;
	e->log_st = old->log_st;
	e->manifest_st = old->manifest_st;
	e->status_err = 0;
	e->status = old->status;
	return true;
}

static bool reuse_lock_file(struct site_entry *e, const struct site_entry *old)
{
	if (!old || old->lock_err != 0 || !same_stat(&old->st, &e->st))
		return false;
	e->lock_err = 0;
	e->lock = old->lock;
	return true;
}

static int compare_names(const void *a, const void *b)
{
	const struct site_entry *x = a, *y = b;
	return strcmp(x->name, y->name);
}

/* Both absent, or both present and the same. */
static bool same_or_absent(const struct site_stat *a, const struct site_stat *b)
{
	return (!a->present && !b->present) || same_stat(a, b);
}

static bool record_finished(const struct site_entry *e)
{
	return e->status_err == 0 && kudu_status_finished(&e->status);
}

/* Forgets what was read of an entry, keeping its name, kind and lstat. */
static void reset_entry(struct site_entry *e)
{
	struct site_entry keep = *e;
	site_entry_clear(e);
	e->area = keep.area;
	e->kind = keep.kind;
	e->st = keep.st;
	memcpy(e->name, keep.name, sizeof(e->name));
}

/* One entry of a listing kept from the previous scan (the area's folder is
 * unchanged, so no entry came or went): re-reads what Kudu changes in
 * place. Returns false when the entry is no longer what the listing said
 * (gone, or another type): then the area is listed again. */
static bool refresh_entry(int areafd, struct site_entry *e, bool status_saved,
			  struct site_snapshot *snap)
{
	struct site_stat st, f1, f2;
	char path[NAME_MAX + 16];
	bool dir = e->st.type == S_IFDIR;

	switch (e->kind) {
	case KUDU_NAME_LOCK_FOLDER:
		/* info.lock can be rewritten in place: the folder would not show it. */
		if (stat_at(areafd, e->name, &st) != 0 || st.type != e->st.type)
			return false;
		if (dir)
			stat_at(areafd, "deployment/info.lock", &f1);
		if (!same_stat(&st, &e->st) || (dir && !same_or_absent(&f1, &e->info_st))) {
			e->st = st;
			reset_entry(e);
			if (dir)
				scan_lock_folder(areafd, e);
		}
		return true;
	case KUDU_NAME_STATUS_LOCK:
	case KUDU_NAME_DEPLOYMENTS_LOCK:
	case KUDU_NAME_SSHKEY_LOCK:
	case KUDU_NAME_HOOKS_LOCK:
		/* Rewritten in place by every holder, never deleted on Linux. */
		if (stat_at(areafd, e->name, &st) != 0 || st.type != e->st.type)
			return false;
		if (!same_stat(&st, &e->st)) {
			e->st = st;
			reset_entry(e);
			if (st.type == S_IFREG)
				scan_lock_file(areafd, e);
		}
		return true;
	case KUDU_NAME_PENDING:
	case KUDU_NAME_ACTIVE:
		/* pending is touched, active rewritten in place (and was looked
		 * at already, before the records). */
		if (e->kind == KUDU_NAME_ACTIVE)
			st = snap->memo.active;
		else
			stat_at(areafd, e->name, &st);
		if (!st.present || st.type != e->st.type)
			return false;
		if (e->kind == KUDU_NAME_ACTIVE && !same_stat(&st, &e->st)) {
			snap->active_id[0] = '\0';
			scan_active(areafd, snap);
		}
		e->st = st;
		return true;
	case KUDU_NAME_RECORD:
	case KUDU_NAME_TEMP_RECORD:
		if (!dir)
			return true; /* foreign: counted in the kept sum */
		if (record_finished(e)) {
			/* A finished record changes again only when it is redeployed,
			 * and its status.xml save bumps active. */
			if (!status_saved)
				return true;
			snprintf(path, sizeof(path), "%s/status.xml", e->name);
			if (stat_at(areafd, path, &f1) == 0 && same_stat(&f1, &e->status_st))
				return true;
			if (stat_at(areafd, e->name, &st) != 0 || st.type != S_IFDIR)
				return false;
		} else {
			/* A running record: its folder (files created), status.xml
			 * and log.log, every scan. */
			if (stat_at(areafd, e->name, &st) != 0 || st.type != S_IFDIR)
				return false;
			snprintf(path, sizeof(path), "%s/status.xml", e->name);
			stat_at(areafd, path, &f1);
			snprintf(path, sizeof(path), "%s/log.log", e->name);
			stat_at(areafd, path, &f2);
			if (same_stat(&st, &e->st) && same_or_absent(&f1, &e->status_st)) {
				/* log.log grows while it runs: nothing to read. */
				e->log_st = f2;
				walk_record(areafd, e);
				return true;
			}
		}
		e->st = st;
		reset_entry(e);
		scan_record(areafd, e);
		return true;
	default:
		/* tools/, settings.xml, our trash, foreign entries: nothing the
		 * policy reads inside; the full rescan re-checks their lstat. */
		return true;
	}
}

/* The previous scan's entries of one area: [*first, *end). */
static void area_range(const struct site_snapshot *prev, enum site_area area, size_t *first,
		       size_t *end)
{
	size_t i = 0;
	while (i < prev->n_entries && prev->entries[i].area < area)
		i++;
	*first = i;
	while (i < prev->n_entries && prev->entries[i].area == area)
		i++;
	*end = i;
}

/* Takes the previous scan's listing of an area whose folder has not
 * changed, refreshing each entry. Returns 1 when kept, 0 when the listing
 * turned out stale (nothing added), -ENOMEM. */
static int keep_area(int fd, enum site_area area, const struct site_snapshot *prev,
		     bool status_saved, struct site_snapshot *snap)
{
	size_t first, end, before = snap->n_entries;
	area_range(prev, area, &first, &end);
	if (area == SITE_AREA_DEPLOYMENTS)
		memcpy(snap->active_id, prev->active_id, sizeof(snap->active_id));
	for (size_t i = first; i < end; i++) {
		struct site_entry *e = site_add_entry(snap);
		if (!e)
			return -ENOMEM;
		*e = prev->entries[i];
		if (!refresh_entry(fd, e, status_saved, snap)) {
			snap->n_entries = before;
			snap->active_id[0] = '\0';
			return 0;
		}
	}
	snap->n_foreign += prev->memo.area_foreign[area];
	snap->foreign_sum += prev->memo.area_foreign_sum[area];
	snap->memo.area_foreign[area] = prev->memo.area_foreign[area];
	snap->memo.area_foreign_sum[area] = prev->memo.area_foreign_sum[area];
	return 1;
}

/* Lists one area. Entries are sorted by name so two scans of the same tree
 * give the same snapshot (the fingerprint depends on it).
 *
 * prev (NULL: nothing to reuse) is the previous scan; full re-checks every
 * entry. Otherwise, an area whose folder lstat is the one of a listing that
 * has settled is not listed again (scan.h says why that is safe): its
 * entries are kept and refreshed one by one. */
/* Reads what an entry's kind calls for: the lock folder's info.lock, a lock
 * file's JSON, a record's status.xml and log.log (each reused from the
 * previous scan while its lstat did not move). */
static void read_entry(int fd, enum site_area area, const struct site_snapshot *prev,
		       bool status_saved, struct site_entry *e)
{
	bool is_dir = e->st.type == S_IFDIR;
	bool is_reg = e->st.type == S_IFREG;

	switch (e->kind) {
	case KUDU_NAME_LOCK_FOLDER:
		if (is_dir)
			scan_lock_folder(fd, e);
		break;
	case KUDU_NAME_STATUS_LOCK:
	case KUDU_NAME_DEPLOYMENTS_LOCK:
	case KUDU_NAME_SSHKEY_LOCK:
	case KUDU_NAME_HOOKS_LOCK:
		if (is_reg && !reuse_lock_file(e, previous(prev, area, e->name)))
			scan_lock_file(fd, e);
		break;
	case KUDU_NAME_RECORD:
	case KUDU_NAME_TEMP_RECORD:
		if (is_dir && !reuse_record(fd, e, previous(prev, area, e->name), status_saved))
			scan_record(fd, e);
		break;
	default:
		break;
	}
}

/* A status.xml saved since the finished records were last checked shows as
 * a new lstat of deployments/active (Kudu rewrites it on every completed
 * deployment). Looked at before the records, so a save during this scan
 * shows at the next one. Returns whether finished records' status.xml must
 * be read again. */
static bool note_active(int fd, const struct site_snapshot *prev, bool full, uint64_t now_ms,
			struct site_scan_memo *memo)
{
	stat_at(fd, "active", &memo->active);
	bool active_same = prev && !prev->deployments_err &&
			   same_or_absent(&prev->memo.active, &memo->active);
	memo->active_seen_ms = active_same ? prev->memo.active_seen_ms : now_ms;
	bool status_saved = full || !active_same || !prev->memo.active_settled;
	memo->active_settled = status_saved ? now_ms - memo->active_seen_ms >= SCAN_SETTLE_MS
					    : true;
	return status_saved;
}

/* Whether a name of the listing is Kudu's once the area is over the cap
 * (counted, not kept): by the type readdir gives, lstat only when it gives
 * none. */
static bool kudu_shaped(int fd, const struct dirent *d, enum kudu_name kind)
{
	struct site_stat st;

	if (kind != KUDU_NAME_RECORD && kind != KUDU_NAME_TEMP_RECORD)
		return kind != KUDU_NAME_UNKNOWN;
	if (d->d_type != DT_UNKNOWN)
		return d->d_type == DT_DIR;
	return stat_at(fd, d->d_name, &st) == 0 && st.type == S_IFDIR;
}

/* Every entry of the listing into snap: Kudu's kept with what their kind
 * calls for, foreign ones counted (the first SITE_FOREIGN_KEPT kept for
 * report). Past SITE_MAX_ENTRIES the area's entries are dropped and the
 * rest of the listing only counted (site.h: over_cap), so memory stays
 * bounded whatever the folder holds. Returns 0 or -ENOMEM; a failed
 * readdir sets *area_err. */
static int list_entries(DIR *dir, int fd, enum site_area area, const struct site_snapshot *prev,
			bool status_saved, struct site_snapshot *snap, int *area_err)
{
	size_t first = snap->n_entries;
	struct dirent *d;
	int err = 0;

	/* readdir tells an error from the end only through errno, which the
	 * reads inside the loop also set: clear it before every call. */
	for (errno = 0; (d = readdir(dir)) != NULL; errno = 0) {
		if (strcmp(d->d_name, ".") == 0 || strcmp(d->d_name, "..") == 0)
			continue;
		enum kudu_name kind = area == SITE_AREA_LOCKS ? kudu_classify_lock(d->d_name)
							      : kudu_classify_deployment(d->d_name);
		if (snap->over_cap) {
			if (kudu_shaped(fd, d, kind))
				snap->n_over_cap++;
			else
				snap->n_foreign++;
			continue;
		}
		struct site_stat st_now;
		int stat_err = stat_at(fd, d->d_name, &st_now);
		if (stat_err == 0 && site_is_foreign(kind, st_now.type)) {
			snap->n_foreign++;
			snap->foreign_sum += site_foreign_hash(area, d->d_name, &st_now);
			if (snap->n_foreign > SITE_FOREIGN_KEPT)
				continue;
		} else if (stat_err != 0 && kind == KUDU_NAME_UNKNOWN) {
			continue; /* gone between readdir and lstat */
		}
		struct site_entry *e = site_add_entry(snap);
		if (!e && snap->over_cap) {
			/* Nothing of the area is kept: a part of it is no view
			 * to judge from (policy.h). */
			snap->over_cap_area = area;
			snap->n_over_cap = 1;
			for (size_t i = first; i < snap->n_entries; i++)
				snap->n_over_cap += !site_is_foreign(snap->entries[i].kind,
								     snap->entries[i].st.type);
			snap->n_entries = first;
			site_shrink(snap);
			continue;
		}
		if (!e) {
			err = -ENOMEM;
			break;
		}
		e->area = area;
		snprintf(e->name, sizeof(e->name), "%s", d->d_name);
		e->kind = kind;
		if (stat_err != 0)
			continue; /* gone between readdir and lstat: the next scan sees it */
		e->st = st_now;
		read_entry(fd, area, prev, status_saved, e);
	}
	if (!d && errno != 0 && err == 0)
		*area_err = -errno;
	return err;
}

static int scan_area(int rootfd, const char *area_name, enum site_area area,
		     const struct site_snapshot *prev, bool full, uint64_t now_ms,
		     struct site_snapshot *snap, int *area_err, struct site_stat *area_st)
{
	/* O_PATH: a lookup, not an open on the server, enough to stat and to
	 * resolve names below; the folder is opened for reading only when it
	 * is listed. */
	int fd = openat(rootfd, area_name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		*area_err = -errno;
		if (errno == ENOTDIR || errno == ELOOP)
			stat_at(rootfd, area_name, area_st);
		return 0;
	}
	struct stat st;
	if (fstat(fd, &st) < 0) {
		*area_err = -errno;
		close(fd);
		return 0;
	}
	stat_from(area_st, &st);
	*area_err = 0;
	struct site_scan_memo *memo = &snap->memo;
	const struct site_stat *prev_st = !prev ? NULL
		: area == SITE_AREA_LOCKS ? (prev->locks_err ? NULL : &prev->locks)
		: (prev->deployments_err ? NULL : &prev->deployments);
	bool same = prev_st && same_stat(prev_st, area_st);
	memo->area_seen_ms[area] = same ? prev->memo.area_seen_ms[area] : now_ms;
	bool status_saved = area != SITE_AREA_DEPLOYMENTS ||
			    note_active(fd, prev, full, now_ms, memo);

	if (!full && same && prev->memo.area_settled[area] && !prev->over_cap) {
		int kept = keep_area(fd, area, prev, status_saved, snap);
		if (kept != 0) {
			memo->area_settled[area] = true;
			close(fd);
			return kept < 0 ? kept : 0;
		}
	}
	/* Settled once listed SCAN_SETTLE_MS after its lstat was first seen:
	 * an entry added in the same tick of the folder's clock as the change
	 * before it leaves the same mtime, and is in that listing. */
	memo->area_settled[area] = now_ms - memo->area_seen_ms[area] >= SCAN_SETTLE_MS;
	size_t foreign_before = snap->n_foreign;
	uint64_t sum_before = snap->foreign_sum;

	/* Close-on-exec: a hook spawned on the loop thread while this worker
	 * lists must not inherit a descriptor on the share. */
	int dirfd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *dir = dirfd < 0 ? NULL : fdopendir(dirfd);
	if (!dir) {
		*area_err = -errno;
		if (dirfd >= 0)
			close(dirfd);
		close(fd);
		return 0;
	}
	size_t first = snap->n_entries;
	int err = list_entries(dir, fd, area, prev, status_saved, snap, area_err);
	closedir(dir);
	if (area == SITE_AREA_DEPLOYMENTS)
		scan_active(fd, snap);
	close(fd);
	memo->area_foreign[area] = snap->n_foreign - foreign_before;
	memo->area_foreign_sum[area] = snap->foreign_sum - sum_before;
	/* (An empty area has no array to sort: qsort must not get NULL.) */
	if (snap->n_entries > first)
		qsort(snap->entries + first, snap->n_entries - first, sizeof(snap->entries[0]),
		      compare_names);
	return err;
}

int scan_site(const char *root, const struct clock_now *now, const struct site_snapshot *prev,
	      bool full, struct site_snapshot *snap)
{
	int err;

	snap->scanned_ns = now->wall_ns;
	snap->scanned_mono_ms = now->mono_ms;
	snap->locks_err = -ENOENT;
	snap->deployments_err = -ENOENT;
	int rootfd = open(root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (rootfd < 0) {
		snap->root_err = -errno;
		return 0;
	}
	struct stat st;
	if (fstat(rootfd, &st) < 0) {
		snap->root_err = -errno;
		close(rootfd);
		return 0;
	}
	stat_from(&snap->root, &st);
	snap->root_is_mount = rmtree_is_mount_root(rootfd);
	/* What was read under another root (a remounted share) is not reused. */
	if (prev && (prev->root_err || prev->root.dev != snap->root.dev ||
		     prev->root.ino != snap->root.ino))
		prev = NULL;
	/* The safety net: now and then everything is re-checked, whatever
	 * the folders say. */
	if (!prev || prev->over_cap || now->mono_ms - prev->memo.full_ms >= SCAN_FULL_EVERY_MS)
		full = true;
	snap->memo.full = full;
	snap->memo.full_ms = full ? now->mono_ms : prev->memo.full_ms;
	err = scan_area(rootfd, "locks", SITE_AREA_LOCKS, prev, full, now->mono_ms, snap,
			&snap->locks_err, &snap->locks);
	if (err == 0)
		err = scan_area(rootfd, "deployments", SITE_AREA_DEPLOYMENTS, prev, full,
				now->mono_ms, snap, &snap->deployments_err, &snap->deployments);
	close(rootfd);
	return err;
}

uint64_t scan_hang_limit_ms(uint64_t rescan_interval_ms)
{
	uint64_t three = rescan_interval_ms > UINT64_MAX / 3 ? UINT64_MAX : 3 * rescan_interval_ms;
	return three > SCAN_HANG_MIN_MS ? three : SCAN_HANG_MIN_MS;
}
