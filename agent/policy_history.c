/* policy_history.c - what counts as activity in a snapshot and a record (the
 * fingerprint, the newest file time) and the history of observed scans
 * (policy_observe): when this agent last saw a change. Pure; see policy.h. */
#include "policy_history.h"

#include <string.h>
#include <sys/stat.h>

#include "hash.h"

/* ---- activity fingerprint ------------------------------------------------ */

static uint64_t hash_stat(uint64_t h, const struct site_stat *st, bool with_times)
{
	h = hash_fnv1a_u64(h, st->present);
	if (!st->present)
		return h;
	h = hash_fnv1a_u64(h, st->type);
	h = hash_fnv1a_u64(h, (uint64_t)st->dev);
	h = hash_fnv1a_u64(h, (uint64_t)st->ino);
	if (with_times) {
		h = hash_fnv1a_u64(h, (uint64_t)st->mtime_ns);
		h = hash_fnv1a_u64(h, (uint64_t)st->ctime_ns);
		h = hash_fnv1a_u64(h, (uint64_t)st->size);
	}
	return h;
}

bool policy_is_record(const struct site_entry *e)
{
	return (e->kind == KUDU_NAME_RECORD || e->kind == KUDU_NAME_TEMP_RECORD) &&
	       e->st.type == S_IFDIR;
}

bool policy_record_finished(const struct site_entry *e)
{
	return e->status_err == 0 && kudu_status_finished(&e->status);
}

uint64_t policy_fingerprint(const struct site_snapshot *snap)
{
	uint64_t h = HASH_FNV1A_INIT;

	/* Folders count by identity, not by their times. The root's times move
	 * when the app writes beside locks/ and deployments/ (wwwroot,
	 * LogFiles); the two areas' times move when lockwarden itself renames
	 * or removes there. What a deployment does shows in the entries
	 * themselves: their names (appearing, disappearing) and their lstat. */
	h = hash_fnv1a_u64(h, (uint64_t)(int64_t)snap->root_err);
	h = hash_stat(h, &snap->root, false);
	h = hash_fnv1a_u64(h, (uint64_t)(int64_t)snap->locks_err);
	h = hash_stat(h, &snap->locks, false);
	h = hash_fnv1a_u64(h, (uint64_t)(int64_t)snap->deployments_err);
	h = hash_stat(h, &snap->deployments, false);
	for (size_t i = 0; i < snap->n_entries; i++) {
		const struct site_entry *e = &snap->entries[i];
		/* Our own trash, being emptied, is not a deployment's doing.
		 * Foreign entries count through foreign_sum (the ones kept as
		 * a sample depend on the listing's order). */
		if (e->kind == KUDU_NAME_TRASH || site_is_foreign(e->kind, e->st.type))
			continue;
		h = hash_fnv1a_u64(h, e->area);
		h = hash_fnv1a(h, e->name, strlen(e->name) + 1);
		h = hash_stat(h, &e->st, true);
		if (e->kind == KUDU_NAME_LOCK_FOLDER)
			h = hash_stat(h, &e->info_st, true);
		if (policy_is_record(e) && !policy_record_finished(e)) {
			h = hash_stat(h, &e->status_st, true);
			h = hash_stat(h, &e->log_st, true);
			/* Everything inside (artifact/...): its walk's summary. */
			h = hash_fnv1a_u64(h, e->tree.cannot_tell);
			h = hash_fnv1a_u64(h, e->tree.entries);
			h = hash_fnv1a_u64(h, (uint64_t)e->tree.size);
			h = hash_fnv1a_u64(h, e->tree.sum);
		}
	}
	h = hash_fnv1a_u64(h, snap->n_foreign);
	h = hash_fnv1a_u64(h, snap->foreign_sum);
	h = hash_fnv1a_u64(h, snap->n_over_cap);
	return h;
}

static void consider_times(int64_t *newest, const struct site_stat *st)
{
	if (!st->present)
		return;
	if (st->mtime_ns > *newest)
		*newest = st->mtime_ns;
	/* The kernel sets ctime on every write, rename or attribute change,
	 * and nothing in user space can set it back: a backdated mtime does
	 * not hide the write that backdated it. */
	if (st->ctime_ns > *newest)
		*newest = st->ctime_ns;
}

/* The newest mtime or ctime among what a running deployment touches;
 * INT64_MIN when nothing is there. */
int64_t policy_newest_activity_ns(const struct site_snapshot *snap)
{
	int64_t newest = INT64_MIN;

	/* The areas' own times are left out, as in policy_fingerprint. */
	for (size_t i = 0; i < snap->n_entries; i++) {
		const struct site_entry *e = &snap->entries[i];
		/* Our own trash is not a deployment's doing. */
		if (e->kind == KUDU_NAME_TRASH)
			continue;
		consider_times(&newest, &e->st);
		if (e->kind == KUDU_NAME_LOCK_FOLDER)
			consider_times(&newest, &e->info_st);
		if (policy_is_record(e) && !policy_record_finished(e)) {
			consider_times(&newest, &e->status_st);
			consider_times(&newest, &e->log_st);
			consider_times(&newest, &(struct site_stat){
				.present = e->tree.walked, .mtime_ns = e->tree.newest_mtime_ns,
				.ctime_ns = e->tree.newest_ctime_ns });
		}
	}
	return newest;
}

/* By mtime: what Kudu wrote. ctime also moves when anyone changes an
 * inode's owner or mode (a chmod -R over /home/site), which says nothing
 * about which deployment ran last. Whether the tree is idle still counts
 * ctime (policy_newest_activity_ns). */
static void later_of(int64_t *latest, const struct site_stat *st)
{
	if (st->present && st->mtime_ns > *latest)
		*latest = st->mtime_ns;
}

int64_t policy_record_activity_ns(const struct site_entry *e)
{
	int64_t latest = INT64_MIN;
	int64_t received = e->status.received_ns != KUDU_TIME_NONE ? e->status.received_ns
									  : e->status.start_ns;

	later_of(&latest, &e->status_st);
	later_of(&latest, &e->log_st);
	/* receivedTime is the writing Kudu instance's clock, written into
	 * status.xml: a record cannot have been received after that file was
	 * written, so a later receivedTime (a clock ahead) is not believed. */
	if (received != KUDU_TIME_NONE && e->status_st.present && received > e->status_st.mtime_ns)
		received = e->status_st.mtime_ns;
	if (received != KUDU_TIME_NONE && received > latest)
		latest = received;
	return latest;
}

/* ---- the history of observed scans --------------------------------------- */

/* Monotonic milliseconds from since_ms to now_ms, 0 when a caller's clocks
 * disagree (never a wrapped-around huge value). */
uint64_t policy_mono_since(uint64_t now_ms, uint64_t since_ms)
{
	return now_ms >= since_ms ? now_ms - since_ms : 0;
}

bool policy_observe(struct policy_history *h, const struct site_snapshot *snap, uint64_t now_ms)
{
	uint64_t fp = policy_fingerprint(snap);
	/* A file time ahead of the scan's wall time is a write this agent
	 * cannot date: it counts as life now, at every scan until this host's
	 * clock passes it (a clock behind the share's only delays a cleanup). */
	bool future = policy_newest_activity_ns(snap) > snap->scanned_ns;

	if (!h->started) {
		/* The first look starts the watch; what was already there is
		 * not judged by its file times, however old they are. */
		h->started = true;
		h->start_ms = now_ms;
		h->last_change_ms = now_ms;
		h->seen_change = false;
		h->fingerprint = fp;
		return false;
	}
	if (fp == h->fingerprint && !future)
		return false;
	h->fingerprint = fp;
	h->seen_change = true;
	/* Dated at this scan, the later end of the window since the previous
	 * one: never dated back by a file time. */
	if (now_ms > h->last_change_ms)
		h->last_change_ms = now_ms;
	return true;
}
