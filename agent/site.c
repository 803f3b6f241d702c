/* site.c - the snapshot's small helpers (growing the entry array). */
#include "site.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "hash.h"

struct site_entry *site_add_entry(struct site_snapshot *snap)
{
	if (snap->n_entries >= SITE_MAX_ENTRIES) {
		snap->over_cap = true;
		return NULL;
	}
	if (snap->n_entries == snap->cap_entries) {
		size_t cap = snap->cap_entries ? snap->cap_entries * 2 : 32;
		if (cap > SITE_MAX_ENTRIES)
			cap = SITE_MAX_ENTRIES;
		struct site_entry *grown = realloc(snap->entries, cap * sizeof(*grown));
		if (!grown)
			return NULL;
		snap->entries = grown;
		snap->cap_entries = cap;
	}
	struct site_entry *e = &snap->entries[snap->n_entries++];
	site_entry_clear(e);
	return e;
}

void site_shrink(struct site_snapshot *snap)
{
	if (snap->n_entries == 0) {
		free(snap->entries);
		snap->entries = NULL;
		snap->cap_entries = 0;
		return;
	}
	struct site_entry *less = realloc(snap->entries, snap->n_entries * sizeof(*less));
	if (less) {
		snap->entries = less;
		snap->cap_entries = snap->n_entries;
	}
}

void site_entry_clear(struct site_entry *e)
{
	memset(e, 0, sizeof(*e));
	e->info_err = -ENOENT;
	e->lock_err = -ENOENT;
	e->status_err = -ENOENT;
	e->info.expiry_ns = KUDU_TIME_NONE;
	e->lock.acquired_ns = KUDU_TIME_NONE;
	e->status.state = KUDU_STATE_UNKNOWN;
	e->status.received_ns = KUDU_TIME_NONE;
	e->status.start_ns = KUDU_TIME_NONE;
	e->status.end_ns = KUDU_TIME_NONE;
}

void site_snapshot_free(struct site_snapshot *snap)
{
	free(snap->entries);
	memset(snap, 0, sizeof(*snap));
}

void site_entry_path(const struct site_entry *e, char *out, size_t out_size)
{
	snprintf(out, out_size, "%s/%s",
		 e->area == SITE_AREA_LOCKS ? "locks" : "deployments", e->name);
}

bool site_is_foreign(enum kudu_name kind, mode_t type)
{
	switch (kind) {
	case KUDU_NAME_UNKNOWN:
		return true;
	case KUDU_NAME_RECORD:
	case KUDU_NAME_TEMP_RECORD:
		/* Record-shaped names are many by nature; only folders are
		 * records. */
		return type != S_IFDIR;
	default:
		/* A fixed, small set of names: kept whatever they are, and
		 * judged (a symlink named pending is reported as such). */
		return false;
	}
}

uint64_t site_foreign_hash(enum site_area area, const char *name, const struct site_stat *st)
{
	uint64_t h = hash_fnv1a(HASH_FNV1A_INIT, name, strlen(name));
	const int64_t fields[] = { area, st->type, (int64_t)st->dev, (int64_t)st->ino,
				   st->mtime_ns, st->ctime_ns, st->size };

	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		h = hash_fnv1a_u64(h, (uint64_t)fields[i]);
	return h;
}

const char *site_stat_change(const struct site_stat *was, const struct site_stat *now,
			     bool renamed_by_us)
{
	if (was->present != now->present)
		return now->present ? "appeared" : "gone";
	if (!now->present)
		return NULL;
	if (was->type != now->type)
		return "changed type";
	if (was->dev != now->dev || was->ino != now->ino)
		return "was replaced";
	if (was->mtime_ns != now->mtime_ns)
		return "was modified";
	if (was->type != S_IFDIR && was->size != now->size)
		return "changed size";
	if (!renamed_by_us && was->ctime_ns != now->ctime_ns)
		return "had its inode changed";
	return NULL;
}

const char *site_tree_why(const struct site_tree_sum *t)
{
	switch (t->err) {
	case -E2BIG:
		return "more than " SITE_TREE_MAX_ENTRIES_TEXT " entries inside";
	case -ELOOP:
		return "folders deeper than " SITE_TREE_MAX_DEPTH_TEXT " levels inside";
	case -ESTALE:
		return "a folder inside was replaced while it was looked at";
	default:
		return strerror(-t->err);
	}
}
