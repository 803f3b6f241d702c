/* policy.c - the stuck/live decision and the cleanup plan. Pure: no clock,
 * no file, no environment; see policy.h for the rule. */
#include "policy.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "clock.h"
#include "fmt.h"
#include "hash.h"
#include "log.h"

/* Wall and monotonic time may drift apart this much between two scans (a
 * slow scan, NTP slewing) before the wall clock counts as having jumped. */
#define CLOCK_JUMP_MS 5000
#define NO_INDEX ((size_t)-1)

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
		h = hash_fnv1a_u64(h, (uint64_t)st->size);
	}
	return h;
}

static bool is_record(const struct site_entry *e)
{
	return (e->kind == KUDU_NAME_RECORD || e->kind == KUDU_NAME_TEMP_RECORD) &&
	       e->st.type == S_IFDIR;
}

static bool record_finished(const struct site_entry *e)
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
		/* Our own trash, being emptied, is not a deployment's doing. */
		if (e->kind == KUDU_NAME_TRASH)
			continue;
		h = hash_fnv1a_u64(h, e->area);
		h = hash_fnv1a(h, e->name, strlen(e->name) + 1);
		h = hash_stat(h, &e->st, true);
		if (e->kind == KUDU_NAME_LOCK_FOLDER)
			h = hash_stat(h, &e->info_st, true);
		if (is_record(e) && !record_finished(e)) {
			h = hash_stat(h, &e->status_st, true);
			h = hash_stat(h, &e->log_st, true);
		}
	}
	return h;
}

static void consider_times(int64_t *newest, const struct site_stat *st)
{
	if (!st->present)
		return;
	if (st->mtime_ns > *newest)
		*newest = st->mtime_ns;
}

/* The newest mtime or ctime among what a running deployment touches;
 * INT64_MIN when nothing is there. */
static int64_t newest_activity_ns(const struct site_snapshot *snap)
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
		if (is_record(e) && !record_finished(e)) {
			consider_times(&newest, &e->status_st);
			consider_times(&newest, &e->log_st);
		}
	}
	return newest;
}

/* ---- the history of observed scans --------------------------------------- */

static const struct site_entry *readable_lock(const struct site_snapshot *snap)
{
	for (size_t i = 0; i < snap->n_entries; i++) {
		const struct site_entry *e = &snap->entries[i];
		if (e->kind == KUDU_NAME_LOCK_FOLDER && e->st.type == S_IFDIR && e->info_err == 0)
			return e;
	}
	return NULL;
}

static bool same_lock(const struct policy_history *h, const struct site_entry *lock)
{
	return h->lock_known && lock && h->lock_ino == lock->info_st.ino &&
	       h->lock_mtime_ns == lock->info_st.mtime_ns && h->lock_expiry_ns == lock->info.expiry_ns;
}

/* Remembers a lock the first time it is seen (see policy_history). */
static void observe_lock(struct policy_history *h, const struct site_snapshot *snap,
			 uint64_t now_ms)
{
	const struct site_entry *lock = readable_lock(snap);

	if (!lock) {
		h->lock_known = false;
		return;
	}
	if (same_lock(h, lock))
		return;
	h->lock_known = true;
	h->lock_ino = lock->info_st.ino;
	h->lock_mtime_ns = lock->info_st.mtime_ns;
	h->lock_expiry_ns = lock->info.expiry_ns;
	h->lock_seen_ms = now_ms;
	h->lock_left_ms = lock->info.expiry_ns == KUDU_TIME_NONE
		? 0 : clock_ns_to_ms(clock_sub_ns(lock->info.expiry_ns, snap->scanned_ns));
}

/* Monotonic milliseconds from since_ms to now_ms, 0 when a caller's clocks
 * disagree (never a wrapped-around huge value). */
static uint64_t mono_since(uint64_t now_ms, uint64_t since_ms)
{
	return now_ms >= since_ms ? now_ms - since_ms : 0;
}

/* The wall clock moved unlike the monotonic clock since the previous scan. */
static bool clock_jumped(const struct policy_history *h, const struct site_snapshot *snap,
			 uint64_t now_ms)
{
	int64_t wall_ms = clock_ns_to_ms(clock_sub_ns(snap->scanned_ns, h->last_scan_wall_ns));
	int64_t mono_ms = now_ms >= h->last_scan_ms ? (int64_t)mono_since(now_ms, h->last_scan_ms)
						    : -(int64_t)mono_since(h->last_scan_ms, now_ms);
	int64_t drift_ms = clock_sub_ns(wall_ms, mono_ms);

	return drift_ms > CLOCK_JUMP_MS || drift_ms < -CLOCK_JUMP_MS;
}

bool policy_observe(struct policy_history *h, const struct site_snapshot *snap, uint64_t now_ms)
{
	uint64_t fp = policy_fingerprint(snap);
	int64_t window_start_ns = h->last_scan_wall_ns;

	if (h->started && clock_jumped(h, snap, now_ms))
		h->clock_jumped = true;
	h->last_scan_wall_ns = snap->scanned_ns;
	h->last_scan_ms = now_ms;
	observe_lock(h, snap, now_ms);

	if (!h->started) {
		/* The first look is the baseline, not a change: what was already
		 * there is judged by its file times. */
		h->started = true;
		h->start_ms = now_ms;
		h->last_change_ms = now_ms;
		h->seen_change = false;
		h->fingerprint = fp;
		return false;
	}
	if (fp == h->fingerprint)
		return false;
	h->fingerprint = fp;
	h->seen_change = true;
	/* Dated at this scan, the later and safer end of the window, unless
	 * a file time inside the window says when it happened. */
	uint64_t at_ms = now_ms;
	int64_t newest_ns = newest_activity_ns(snap);
	if (newest_ns != INT64_MIN && newest_ns >= window_start_ns && newest_ns <= snap->scanned_ns) {
		uint64_t back_ms = (uint64_t)clock_ns_to_ms(clock_sub_ns(snap->scanned_ns, newest_ns));
		if (back_ms < now_ms)
			at_ms = now_ms - back_ms;
		/* A fresh change stamped by a clock that agrees with ours. */
		h->clock_jumped = false;
	}
	if (at_ms < h->last_change_ms)
		at_ms = h->last_change_ms;
	h->last_change_ms = at_ms;
	return true;
}

/* ---- words ----------------------------------------------------------------- */

const char *policy_verdict_name(enum policy_verdict v)
{
	switch (v) {
	case POLICY_LIVE: return "live";
	case POLICY_STUCK: return "stuck";
	case POLICY_LEFTOVER: return "leftover";
	case POLICY_KEPT: return "kept";
	case POLICY_FOREIGN: return "not Kudu's";
	}
	return "?";
}

/* ---- step 1: assess -------------------------------------------------------- */

/* The facts of one decision, from which the plan, the reason and the next
 * check follow. */
struct assessment {
	const struct site_snapshot *snap;
	bool observing;           /* a history with at least one scan */
	bool blocked;             /* the tree cannot be seen whole */
	size_t lock_folder;       /* index of locks/deployment as a folder, or NO_INDEX */
	size_t newest;            /* index of the newest record with a readable status */
	bool newest_running;      /* that record is not finished */
	bool claims;              /* a deployment claims to be running (and not blocked) */
	bool lock_expired;
	int64_t lock_mono_left_ms;/* monotonic time still to wait for a lock seen earlier */
	int64_t activity_age_ms;  /* -1 when nothing tells */
	uint64_t quiet_ms;        /* observed without a change */
	bool trust_times;         /* file time ages mean something (no clock jump) */
	bool idle;                /* claims with no activity for stuck_after */
	bool stuck;               /* idle, or the lock expired */
	bool quiet;               /* quiet_period observed (or assumed, for report) */
	bool full;                /* the whole cleanup: idle and quiet */
	bool lock_only;           /* only the expired lock folder goes */
	char age[32];             /* activity age, formatted */
};

static int64_t record_time(const struct site_entry *e)
{
	if (e->status.received_ns != KUDU_TIME_NONE)
		return e->status.received_ns;
	if (e->status.start_ns != KUDU_TIME_NONE)
		return e->status.start_ns;
	return e->status_st.mtime_ns;
}

static size_t find_newest_record(const struct site_snapshot *snap)
{
	size_t best = NO_INDEX;
	for (size_t i = 0; i < snap->n_entries; i++) {
		const struct site_entry *e = &snap->entries[i];
		if (!is_record(e) || e->status_err != 0)
			continue;
		if (best == NO_INDEX || record_time(e) > record_time(&snap->entries[best]))
			best = i;
	}
	return best;
}

static size_t find_lock_folder(const struct site_snapshot *snap)
{
	size_t found = NO_INDEX;
	for (size_t i = 0; i < snap->n_entries; i++) {
		const struct site_entry *e = &snap->entries[i];
		if (e->kind == KUDU_NAME_LOCK_FOLDER && e->st.type == S_IFDIR)
			found = i;
	}
	return found;
}

/* What cannot be seen whole is not judged: an unreadable area could hide
 * the running deployment's activity. */
static bool snapshot_blocked(const struct site_snapshot *snap)
{
	return snap->root_err != 0 || snap->truncated ||
	       (snap->locks_err != 0 && snap->locks_err != -ENOENT) ||
	       (snap->deployments_err != 0 && snap->deployments_err != -ENOENT);
}

/* lockExpiry has passed (or is null) by the wall clock and, for a lock
 * seen before, by the monotonic clock since then too. */
static void assess_lock(struct assessment *a, const struct policy_history *history,
			int64_t now_wall_ns, uint64_t now_mono_ms)
{
	const struct site_entry *lf;

	a->lock_mono_left_ms = 0;
	if (a->lock_folder == NO_INDEX)
		return;
	lf = &a->snap->entries[a->lock_folder];
	if (a->observing && same_lock(history, lf)) {
		uint64_t since_ms = mono_since(now_mono_ms, history->lock_seen_ms);
		int64_t since = since_ms > INT64_MAX ? INT64_MAX : (int64_t)since_ms;
		a->lock_mono_left_ms = clock_sub_ns(history->lock_left_ms, since);
	}
	a->lock_expired = lf->info_err == 0 &&
			  (lf->info.expiry_ns == KUDU_TIME_NONE ||
			   (lf->info.expiry_ns <= now_wall_ns && a->lock_mono_left_ms <= 0));
}

/* When was the tree last active? File times (a future one counts as now),
 * and what the agent saw change. */
static void assess_activity(struct assessment *a, const struct policy_history *history,
			    int64_t now_wall_ns, uint64_t now_mono_ms)
{
	int64_t newest_ns = newest_activity_ns(a->snap);

	a->activity_age_ms = -1;
	if (newest_ns != INT64_MIN)
		a->activity_age_ms = newest_ns >= now_wall_ns
			? 0 : clock_ns_to_ms(clock_sub_ns(now_wall_ns, newest_ns));
	a->quiet_ms = 0;
	if (a->observing) {
		a->quiet_ms = mono_since(now_mono_ms, history->last_change_ms);
		if (a->quiet_ms > INT64_MAX)
			a->quiet_ms = INT64_MAX;
		if (history->seen_change &&
		    (a->activity_age_ms < 0 || (uint64_t)a->activity_age_ms > a->quiet_ms))
			a->activity_age_ms = (int64_t)a->quiet_ms;
	}
	fmt_age(a->activity_age_ms, a->age, sizeof(a->age));
}

static void assess(struct assessment *a, const struct site_snapshot *snap,
		   const struct policy_history *history, const struct policy_params *params,
		   int64_t now_wall_ns, uint64_t now_mono_ms)
{
	memset(a, 0, sizeof(*a));
	a->snap = snap;
	a->observing = history && history->started;
	a->blocked = snapshot_blocked(snap);
	a->lock_folder = find_lock_folder(snap);
	a->newest = find_newest_record(snap);
	a->newest_running = a->newest != NO_INDEX && !record_finished(&snap->entries[a->newest]);
	a->claims = (a->lock_folder != NO_INDEX || a->newest_running) && !a->blocked;
	assess_lock(a, history, now_wall_ns, now_mono_ms);
	assess_activity(a, history, now_wall_ns, now_mono_ms);

	/* After a jump of the wall clock, a file time's age means nothing. */
	a->trust_times = !(a->observing && history->clock_jumped);
	bool idle_by_times = a->trust_times && a->activity_age_ms >= 0 &&
			     (uint64_t)a->activity_age_ms >= params->stuck_after_ms;
	/* Having observed stuck_after pass with no change at all is proof of
	 * no activity whatever the share's clock wrote (times in the future). */
	bool idle_by_history = a->observing && a->quiet_ms >= params->stuck_after_ms;
	a->quiet = a->observing ? a->quiet_ms >= params->quiet_period_ms : params->plan_as_if_quiet;
	a->idle = a->claims && (idle_by_times || idle_by_history);
	a->stuck = !a->blocked && (a->idle || a->lock_expired);
	a->full = a->idle && a->quiet;
	a->lock_only = !a->full && !a->blocked && a->lock_expired && a->quiet;
}

/* ---- step 2: plan (a verdict for each entry, the removals in order) -------- */

static void record_label(const struct site_entry *e, char *out, size_t size)
{
	log_escape(e->status_err == 0 && e->status.id[0] ? e->status.id : e->name, out, size);
}

static void judge_lock_folder(const struct assessment *a, const struct site_entry *e,
			      struct policy_entry *out)
{
	char op[KUDU_TEXT_MAX * 4], worker[KUDU_TEXT_MAX * 4], when[40];

	if (e->st.type != S_IFDIR) {
		out->verdict = POLICY_FOREIGN;
		snprintf(out->reason, sizeof(out->reason),
			 "a %s where Kudu keeps its lock folder: never followed or removed",
			 fmt_type_name(e->st.type));
		return;
	}
	log_escape(e->info.op, op, sizeof(op));
	log_escape(e->info.worker, worker, sizeof(worker));
	isotime_format(e->info.expiry_ns, "none", when, sizeof(when));
	out->remove = a->full || a->lock_only;
	if (e->info_err != 0) {
		out->verdict = a->idle ? POLICY_STUCK : POLICY_LIVE;
		snprintf(out->reason, sizeof(out->reason),
			 "lock folder with %s info.lock (%s); last activity %s ago",
			 e->info_err == -ENOENT ? "no" : "an unreadable",
			 e->info_err == -ENOENT ? "Kudu may be writing it" : strerror(-e->info_err),
			 a->age);
		return;
	}
	if (a->lock_expired) {
		out->verdict = POLICY_STUCK;
		snprintf(out->reason, sizeof(out->reason),
			 "held by '%s' on %s; lockExpiry %s has passed, so Kudu treats it as free",
			 op, worker[0] ? worker : "?", when);
		return;
	}
	out->verdict = a->idle ? POLICY_STUCK : POLICY_LIVE;
	snprintf(out->reason, sizeof(out->reason),
		 "held by '%s' on %s until %s; last activity %s ago%s", op,
		 worker[0] ? worker : "?", when, a->age,
		 a->idle ? "" : " (not stuck yet)");
}

static void judge_lock_file(const struct assessment *a, const struct site_entry *e,
			    struct policy_entry *out)
{
	char op[KUDU_TEXT_MAX * 4], when[40];

	if (e->st.type != S_IFREG) {
		out->verdict = POLICY_FOREIGN;
		snprintf(out->reason, sizeof(out->reason),
			 "a %s with a lock file's name: never followed or removed",
			 fmt_type_name(e->st.type));
		return;
	}
	if (e->kind == KUDU_NAME_SSHKEY_LOCK || e->kind == KUDU_NAME_HOOKS_LOCK) {
		out->verdict = POLICY_KEPT;
		snprintf(out->reason, sizeof(out->reason),
			 "guards SSH key or web hook operations: never removed");
		return;
	}
	if (e->lock_err == 0) {
		log_escape(e->lock.operation, op, sizeof(op));
		isotime_format(e->lock.acquired_ns, "none", when, sizeof(when));
	} else {
		snprintf(op, sizeof(op), "?");
		snprintf(when, sizeof(when), "?");
	}
	if (a->full) {
		out->verdict = POLICY_STUCK;
		out->remove = true;
		snprintf(out->reason, sizeof(out->reason),
			 "last held by '%s' at %s; removed with the stuck deployment", op, when);
	} else if (a->claims) {
		out->verdict = POLICY_LIVE;
		snprintf(out->reason, sizeof(out->reason),
			 "a deployment is running; last held by '%s' at %s", op, when);
	} else {
		out->verdict = POLICY_LEFTOVER;
		snprintf(out->reason, sizeof(out->reason),
			 "left by '%s' at %s: Kudu never deletes it on Linux, harmless", op, when);
	}
}

static void judge_unfinished_record(const struct assessment *a, size_t index,
				    const struct site_entry *e, struct policy_entry *out)
{
	bool temp = e->kind == KUDU_NAME_TEMP_RECORD;
	const char *state = e->status_err == 0 ? kudu_state_name(e->status.state)
					       : "status.xml unreadable";

	if (a->full && temp) {
		out->verdict = POLICY_STUCK;
		out->remove = true;
		snprintf(out->reason, sizeof(out->reason),
			 "temp record not finished (%s); removed with the stuck deployment", state);
	} else if (a->idle && index == a->newest) {
		out->verdict = POLICY_STUCK;
		snprintf(out->reason, sizeof(out->reason),
			 "%s, no activity for %s: the stuck deployment's record%s", state, a->age,
			 temp ? "" : ", kept (Kudu marks it Failed once the lock is free)");
	} else if (a->claims && index == a->newest) {
		out->verdict = POLICY_LIVE;
		snprintf(out->reason, sizeof(out->reason), "%s, last activity %s ago", state,
			 a->age);
	} else {
		out->verdict = POLICY_LEFTOVER;
		snprintf(out->reason, sizeof(out->reason),
			 "%s record of an earlier deployment, never finished; %s", state,
			 temp ? "removed only with a stuck deployment" : "kept");
	}
}

static void judge_record(const struct assessment *a, size_t index, const struct site_entry *e,
			 struct policy_entry *out)
{
	if (e->st.type != S_IFDIR) {
		out->verdict = POLICY_FOREIGN;
		snprintf(out->reason, sizeof(out->reason),
			 "a %s with a deployment record's name: never followed or removed",
			 fmt_type_name(e->st.type));
		return;
	}
	if (a->snap->active_id[0] && strcmp(e->name, a->snap->active_id) == 0) {
		out->verdict = POLICY_KEPT;
		snprintf(out->reason, sizeof(out->reason), "the active deployment: never removed");
		return;
	}
	if (record_finished(e)) {
		out->verdict = POLICY_KEPT;
		snprintf(out->reason, sizeof(out->reason), "%s: deployment history, never removed",
			 kudu_state_name(e->status.state));
		return;
	}
	judge_unfinished_record(a, index, e, out);
}

static void judge_pending(const struct assessment *a, struct policy_entry *out)
{
	if (a->full) {
		out->verdict = POLICY_STUCK;
		out->remove = true;
		snprintf(out->reason, sizeof(out->reason),
			 "a deploy queued behind the stuck one; removed with it");
	} else if (a->claims) {
		out->verdict = POLICY_LIVE;
		snprintf(out->reason, sizeof(out->reason),
			 "a deploy is queued behind the running one");
	} else {
		out->verdict = POLICY_LEFTOVER;
		snprintf(out->reason, sizeof(out->reason),
			 "marks a deploy that arrived while the lock was held; Kudu never deletes it, harmless");
	}
}

/* Returns false for an entry of a kind whose shape is not Kudu's. */
static bool judge_entry_of_kind(const struct assessment *a, size_t index,
				const struct site_entry *e, struct policy_entry *out)
{
	char id[KUDU_TEXT_MAX * 4];

	switch (e->kind) {
	case KUDU_NAME_LOCK_FOLDER:
		judge_lock_folder(a, e, out);
		return true;
	case KUDU_NAME_STATUS_LOCK:
	case KUDU_NAME_DEPLOYMENTS_LOCK:
	case KUDU_NAME_SSHKEY_LOCK:
	case KUDU_NAME_HOOKS_LOCK:
		judge_lock_file(a, e, out);
		return true;
	case KUDU_NAME_PENDING:
		if (e->st.type != S_IFREG)
			return false;
		judge_pending(a, out);
		return true;
	case KUDU_NAME_ACTIVE:
		if (e->st.type != S_IFREG)
			return false;
		log_escape(a->snap->active_id, id, sizeof(id));
		out->verdict = POLICY_KEPT;
		snprintf(out->reason, sizeof(out->reason),
			 "names the active deployment '%s': never removed", id);
		return true;
	case KUDU_NAME_TOOLS:
	case KUDU_NAME_SETTINGS:
		out->verdict = POLICY_KEPT;
		snprintf(out->reason, sizeof(out->reason), "Kudu's %s: never removed",
			 kudu_name_describe(e->kind));
		return true;
	case KUDU_NAME_RECORD:
	case KUDU_NAME_TEMP_RECORD:
		judge_record(a, index, e, out);
		return true;
	case KUDU_NAME_TRASH:
		if (e->st.type != S_IFDIR)
			return false;
		/* Our own unfinished removal: already out of Kudu's sight and
		 * judged when it was renamed, so it is finished on sight. */
		out->verdict = POLICY_LEFTOVER;
		out->remove = a->observing;
		snprintf(out->reason, sizeof(out->reason),
			 "lockwarden's own interrupted removal: finished by the running agent");
		return true;
	case KUDU_NAME_UNKNOWN:
		break;
	}
	return false;
}

static void judge_entry(const struct assessment *a, size_t index, struct policy_entry *out)
{
	const struct site_entry *e = &a->snap->entries[index];

	if (judge_entry_of_kind(a, index, e, out))
		return;
	out->verdict = POLICY_FOREIGN;
	snprintf(out->reason, sizeof(out->reason), "not Kudu's (%s): never removed",
		 fmt_type_name(e->st.type));
}

/* The manual procedure's order: the lock first, then the lock files, the
 * queued marker, the temp records, and our own trash last. */
#define REMOVAL_RANK_LAST 5
static int removal_rank(const struct site_entry *e)
{
	switch (e->kind) {
	case KUDU_NAME_LOCK_FOLDER: return 0;
	case KUDU_NAME_STATUS_LOCK: return 1;
	case KUDU_NAME_DEPLOYMENTS_LOCK: return 2;
	case KUDU_NAME_PENDING: return 3;
	case KUDU_NAME_TEMP_RECORD: return 4;
	default: return REMOVAL_RANK_LAST;
	}
}

static void plan(const struct assessment *a, struct policy_decision *out)
{
	const struct site_snapshot *snap = a->snap;

	for (size_t i = 0; i < snap->n_entries; i++)
		judge_entry(a, i, &out->entries[i]);
	if (a->blocked) {
		for (size_t i = 0; i < snap->n_entries; i++)
			out->entries[i].remove = false;
	} else {
		for (int rank = 0; rank <= REMOVAL_RANK_LAST; rank++)
			for (size_t i = 0; i < snap->n_entries; i++)
				if (out->entries[i].remove && removal_rank(&snap->entries[i]) == rank)
					out->removals[out->n_removals++] = i;
	}
	/* Our own trash is finished without waiting, but only by an agent that
	 * is observing (report never changes anything). */
	out->act = a->observing && out->n_removals > 0;

	if (a->newest_running) {
		const struct site_entry *e = &snap->entries[a->newest];
		snprintf(out->deployment_id, sizeof(out->deployment_id), "%s",
			 e->status_err == 0 && e->status.id[0] ? e->status.id : e->name);
	}
}

/* ---- step 3: explain (the one-line reason) ----------------------------------- */

static void describe_claim(const struct assessment *a, char *out, size_t size)
{
	const struct site_snapshot *snap = a->snap;
	char op[KUDU_TEXT_MAX * 4] = "", label[NAME_MAX * 4 + 1] = "";
	char lock[KUDU_TEXT_MAX * 8] = "", record[NAME_MAX * 4 + 64] = "";

	if (a->lock_folder != NO_INDEX) {
		const struct site_entry *e = &snap->entries[a->lock_folder];
		if (e->info_err == 0 && e->info.op[0]) {
			log_escape(e->info.op, op, sizeof(op));
			snprintf(lock, sizeof(lock), "deployment lock held by '%s'", op);
		} else {
			snprintf(lock, sizeof(lock), "deployment lock folder present");
		}
	}
	if (a->newest_running) {
		const struct site_entry *e = &snap->entries[a->newest];
		record_label(e, label, sizeof(label));
		snprintf(record, sizeof(record), "deployment %s is %s", label,
			 kudu_state_name(e->status.state));
	}
	snprintf(out, size, "%s%s%s", lock, lock[0] && record[0] ? ", " : "", record);
}

static int blocked_errno(const struct site_snapshot *snap)
{
	if (snap->root_err)
		return snap->root_err;
	if (snap->locks_err && snap->locks_err != -ENOENT)
		return snap->locks_err;
	if (snap->deployments_err && snap->deployments_err != -ENOENT)
		return snap->deployments_err;
	return -E2BIG; /* truncated */
}

static void explain(const struct assessment *a, const struct policy_params *params,
		    char *out, size_t size)
{
	char claim[512], stuck_after[32], when[40], observed[32];

	describe_claim(a, claim, sizeof(claim));
	fmt_age((int64_t)params->stuck_after_ms, stuck_after, sizeof(stuck_after));
	if (a->blocked) {
		snprintf(out, size,
			 "the site tree cannot be read whole (%s): nothing is judged or removed",
			 strerror(-blocked_errno(a->snap)));
	} else if (a->lock_only) {
		isotime_format(a->snap->entries[a->lock_folder].info.expiry_ns, "none", when,
				 sizeof(when));
		snprintf(out, size,
			 "%s, but its lockExpiry (%s) has passed, so Kudu treats it as free; nothing changed for %s",
			 claim, when, a->age);
	} else if (a->idle && !a->trust_times) {
		fmt_age((int64_t)a->quiet_ms, observed, sizeof(observed));
		snprintf(out, size,
			 "%s with no change in the %s the agent watched (stuck_after %s; the wall clock "
			 "jumped, so mtimes were not believed)", claim, observed, stuck_after);
	} else if (a->idle) {
		snprintf(out, size, "%s with no activity for %s (stuck_after %s)", claim, a->age,
			 stuck_after);
	} else if (a->claims) {
		snprintf(out, size, "%s; last activity %s ago (stuck after %s)", claim, a->age,
			 stuck_after);
	} else {
		snprintf(out, size, "no deployment is running");
	}
}

/* ---- step 4: the next check ---------------------------------------------------- */

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

/* Milliseconds until a threshold is reached, never 0 (a timer of 0 would
 * spin) and rounded up so the threshold has surely passed. */
static uint64_t until(uint64_t threshold_ms, uint64_t elapsed_ms)
{
	return elapsed_ms >= threshold_ms ? 1 : threshold_ms - elapsed_ms;
}

/* A held lock becomes free when both clocks agree it expired; the lock
 * folder can go once quiet_period is observed too. */
static uint64_t until_lock_expiry(const struct assessment *a, const struct policy_params *params,
				  int64_t now_wall_ns)
{
	const struct site_entry *lf = &a->snap->entries[a->lock_folder];

	if (lf->info_err != 0 || lf->info.expiry_ns == KUDU_TIME_NONE)
		return UINT64_MAX;
	int64_t left_ns = clock_sub_ns(lf->info.expiry_ns, now_wall_ns);
	int64_t wall_left_ms = clock_ns_to_ms(clock_add_ns(left_ns, CLOCK_NS_PER_MS - 1));
	int64_t later_ms = wall_left_ms > a->lock_mono_left_ms ? wall_left_ms : a->lock_mono_left_ms;
	uint64_t left_ms = later_ms > 0 ? (uint64_t)later_ms : 1;
	uint64_t quiet_left = until(params->quiet_period_ms, a->quiet_ms);

	return left_ms > quiet_left ? left_ms : quiet_left;
}

static uint64_t next_check(const struct assessment *a, const struct policy_params *params,
			   int64_t now_wall_ns)
{
	uint64_t next = UINT64_MAX;

	if (a->claims && !a->idle) {
		if (a->activity_age_ms >= 0 && a->trust_times)
			next = min_u64(next, until(params->stuck_after_ms,
						   (uint64_t)a->activity_age_ms));
		if (a->observing)
			next = min_u64(next, until(params->stuck_after_ms, a->quiet_ms));
	}
	if (a->stuck && a->observing && !a->quiet)
		next = min_u64(next, until(params->quiet_period_ms, a->quiet_ms));
	if (a->lock_folder != NO_INDEX && !a->lock_expired && a->observing)
		next = min_u64(next, until_lock_expiry(a, params, now_wall_ns));
	return next;
}

/* ---- the decision ---------------------------------------------------------------- */

int policy_decide(const struct site_snapshot *snap, const struct policy_history *history,
		  const struct policy_params *params, int64_t now_wall_ns,
		  uint64_t now_mono_ms, struct policy_decision *out)
{
	struct assessment a;

	memset(out, 0, sizeof(*out));
	out->next_check_ms = UINT64_MAX;
	out->activity_age_ms = -1;
	if (snap->n_entries) {
		out->entries = calloc(snap->n_entries, sizeof(*out->entries));
		out->removals = calloc(snap->n_entries, sizeof(*out->removals));
		if (!out->entries || !out->removals) {
			policy_decision_free(out);
			return -ENOMEM;
		}
	}
	out->n_entries = snap->n_entries;

	assess(&a, snap, history, params, now_wall_ns, now_mono_ms);
	out->blocked = a.blocked;
	out->claims_running = a.lock_folder != NO_INDEX || a.newest_running;
	out->lock_expired = a.lock_expired;
	out->stuck = a.stuck;
	out->activity_age_ms = a.activity_age_ms;
	out->quiet_ms = a.quiet_ms;

	plan(&a, out);
	explain(&a, params, out->reason, sizeof(out->reason));
	if (!a.blocked && !out->act)
		out->next_check_ms = next_check(&a, params, now_wall_ns);
	return 0;
}

void policy_decision_free(struct policy_decision *d)
{
	free(d->entries);
	free(d->removals);
	memset(d, 0, sizeof(*d));
}
