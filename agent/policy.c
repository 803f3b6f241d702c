/* policy.c - the stuck/live decision and the cleanup plan. Pure: no clock,
 * no file, no environment; see policy.h for the rule. */
#include "policy.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "log.h"

#define NS_PER_MS 1000000LL
/* Wall and monotonic time may drift apart this much between two scans (a
 * slow scan, NTP slewing) before the wall clock counts as having jumped. */
#define CLOCK_JUMP_MS 5000
#define NO_INDEX ((size_t)-1)

/* ---- activity fingerprint ------------------------------------------------ */

struct fnv {
	uint64_t h;
};

static void fnv_bytes(struct fnv *f, const void *p, size_t n)
{
	const unsigned char *b = p;
	for (size_t i = 0; i < n; i++) {
		f->h ^= b[i];
		f->h *= 0x100000001b3ULL;
	}
}

static void fnv_u64(struct fnv *f, uint64_t v)
{
	fnv_bytes(f, &v, sizeof(v));
}

static void fnv_stat(struct fnv *f, const struct site_stat *st, bool with_times)
{
	fnv_u64(f, st->present);
	if (!st->present)
		return;
	fnv_u64(f, st->type);
	fnv_u64(f, (uint64_t)st->dev);
	fnv_u64(f, (uint64_t)st->ino);
	if (with_times) {
		fnv_u64(f, (uint64_t)st->mtime_ns);
		fnv_u64(f, (uint64_t)st->size);
	}
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
	struct fnv f = { 0xcbf29ce484222325ULL };

	/* Folders count by identity, not by mtime. The root's mtime moves when
	 * the app writes beside locks/ and deployments/ (wwwroot, LogFiles);
	 * the two areas' mtimes move when lockwarden itself renames or removes
	 * there. What a deployment does shows in the entries themselves: their
	 * names (appearing, disappearing) and their own lstat. */
	fnv_u64(&f, (uint64_t)(int64_t)snap->root_err);
	fnv_stat(&f, &snap->root, false);
	fnv_u64(&f, (uint64_t)(int64_t)snap->locks_err);
	fnv_stat(&f, &snap->locks, false);
	fnv_u64(&f, (uint64_t)(int64_t)snap->deployments_err);
	fnv_stat(&f, &snap->deployments, false);
	for (size_t i = 0; i < snap->n_entries; i++) {
		const struct site_entry *e = &snap->entries[i];
		/* Our own trash, being emptied, is not a deployment's doing.
		 * Foreign entries count through foreign_sum (the ones kept as
		 * a sample depend on the listing's order). */
		if (e->kind == KUDU_NAME_TRASH || site_is_foreign(e->kind, e->st.type))
			continue;
		fnv_u64(&f, e->area);
		fnv_bytes(&f, e->name, strlen(e->name) + 1);
		fnv_stat(&f, &e->st, true);
		if (e->kind == KUDU_NAME_LOCK_FOLDER)
			fnv_stat(&f, &e->info_st, true);
		if (is_record(e) && !record_finished(e)) {
			fnv_stat(&f, &e->status_st, true);
			fnv_stat(&f, &e->log_st, true);
		}
	}
	fnv_u64(&f, snap->n_foreign);
	fnv_u64(&f, snap->foreign_sum);
	return f.h;
}

static int64_t newest_activity_ns(const struct site_snapshot *snap);

static const struct site_entry *readable_lock(const struct site_snapshot *snap)
{
	for (size_t i = 0; i < snap->n_entries; i++) {
		const struct site_entry *e = &snap->entries[i];
		if (e->kind == KUDU_NAME_LOCK_FOLDER && e->st.type == S_IFDIR && e->info_err == 0)
			return e;
	}
	return NULL;
}

static bool same_lock(const struct policy_watch *w, const struct site_entry *lock)
{
	return w->lock_known && lock && w->lock_ino == lock->info_st.ino &&
	       w->lock_mtime_ns == lock->info_st.mtime_ns && w->lock_expiry_ns == lock->info.expiry_ns;
}

/* Remembers a lock the first time it is seen (see policy_watch). */
static void observe_lock(struct policy_watch *w, const struct site_snapshot *snap, uint64_t now_ms)
{
	const struct site_entry *lock = readable_lock(snap);

	if (!lock) {
		w->lock_known = false;
		return;
	}
	if (same_lock(w, lock))
		return;
	w->lock_known = true;
	w->lock_ino = lock->info_st.ino;
	w->lock_mtime_ns = lock->info_st.mtime_ns;
	w->lock_expiry_ns = lock->info.expiry_ns;
	w->lock_seen_ms = now_ms;
	w->lock_left_ms = lock->info.expiry_ns == KUDU_TIME_NONE
				  ? 0 : (lock->info.expiry_ns - snap->scanned_ns) / NS_PER_MS;
}

bool policy_observe(struct policy_watch *w, const struct site_snapshot *snap, uint64_t now_ms)
{
	uint64_t fp = policy_fingerprint(snap);
	int64_t window_start_ns = w->last_scan_wall_ns;

	if (w->started) {
		int64_t wall_ms = (snap->scanned_ns - w->last_scan_wall_ns) / NS_PER_MS;
		int64_t mono_ms = (int64_t)(now_ms - w->last_scan_ms);
		if (wall_ms - mono_ms > CLOCK_JUMP_MS || mono_ms - wall_ms > CLOCK_JUMP_MS)
			w->clock_jumped = true;
	}
	w->last_scan_wall_ns = snap->scanned_ns;
	w->last_scan_ms = now_ms;
	observe_lock(w, snap, now_ms);

	if (!w->started) {
		/* The first look is the baseline, not a change: what was already
		 * there is judged by its mtimes. */
		w->started = true;
		w->start_ms = now_ms;
		w->last_change_ms = now_ms;
		w->seen_change = false;
		w->fingerprint = fp;
		return false;
	}
	if (fp == w->fingerprint)
		return false;
	w->fingerprint = fp;
	w->seen_change = true;
	/* Dated at this scan, the later and safer end of the window, unless
	 * an mtime inside the window says when it happened. */
	uint64_t at_ms = now_ms;
	int64_t newest_ns = newest_activity_ns(snap);
	if (newest_ns != INT64_MIN && newest_ns >= window_start_ns && newest_ns <= snap->scanned_ns) {
		uint64_t back_ms = (uint64_t)((snap->scanned_ns - newest_ns) / NS_PER_MS);
		if (back_ms < now_ms)
			at_ms = now_ms - back_ms;
		/* A fresh change stamped by a clock that agrees with ours. */
		w->clock_jumped = false;
	}
	if (at_ms < w->last_change_ms)
		at_ms = w->last_change_ms;
	w->last_change_ms = at_ms;
	return true;
}

/* ---- formatting ------------------------------------------------------------ */

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

/* An age for people: "250ms", "42s", "17m5s", "3h2m", "4d1h". */
static void fmt_age(int64_t ms, char *out, size_t size)
{
	if (ms < 0) {
		snprintf(out, size, "unknown");
		return;
	}
	int64_t s = ms / 1000;
	if (s < 1)
		snprintf(out, size, "%lldms", (long long)ms);
	else if (s < 60)
		snprintf(out, size, "%llds", (long long)s);
	else if (s < 3600 && s % 60)
		snprintf(out, size, "%lldm%llds", (long long)(s / 60), (long long)(s % 60));
	else if (s < 3600)
		snprintf(out, size, "%lldm", (long long)(s / 60));
	else if (s < 86400 && s % 3600 / 60)
		snprintf(out, size, "%lldh%lldm", (long long)(s / 3600), (long long)(s % 3600 / 60));
	else if (s < 86400)
		snprintf(out, size, "%lldh", (long long)(s / 3600));
	else
		snprintf(out, size, "%lldd%lldh", (long long)(s / 86400), (long long)(s % 86400 / 3600));
}

static const char *type_name(mode_t type)
{
	switch (type) {
	case S_IFREG: return "file";
	case S_IFDIR: return "folder";
	case S_IFLNK: return "symlink";
	case S_IFIFO: return "FIFO";
	case S_IFSOCK: return "socket";
	case S_IFCHR: return "character device";
	case S_IFBLK: return "block device";
	}
	return "odd entry";
}

/* ---- the decision ---------------------------------------------------------- */

struct judge {
	const struct site_snapshot *snap;
	int64_t now_wall_ns;
	size_t lock_folder;       /* index of locks/deployment as a folder, or NO_INDEX */
	size_t newest;            /* index of the newest record with a readable status */
	bool stuck;
	bool full;                /* the full cleanup: the deployment is stuck */
	bool lock_only;           /* only the expired lock folder goes */
	bool claims;
	bool lock_expired;
	bool watching;
	char age[32];             /* activity age, formatted */
	char stuck_after[32];
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

static void consider_mtime(int64_t *newest, const struct site_stat *st)
{
	if (st->present && st->mtime_ns > *newest)
		*newest = st->mtime_ns;
}

/* The newest mtime among what a running deployment touches; INT64_MIN when
 * nothing is there. */
static int64_t newest_activity_ns(const struct site_snapshot *snap)
{
	int64_t newest = INT64_MIN;

	/* The areas' own mtimes are left out, as in policy_fingerprint. */
	for (size_t i = 0; i < snap->n_entries; i++) {
		const struct site_entry *e = &snap->entries[i];
		/* Our own trash is not a deployment's doing. */
		if (e->kind == KUDU_NAME_TRASH)
			continue;
		consider_mtime(&newest, &e->st);
		if (e->kind == KUDU_NAME_LOCK_FOLDER)
			consider_mtime(&newest, &e->info_st);
		if (is_record(e) && !record_finished(e)) {
			consider_mtime(&newest, &e->status_st);
			consider_mtime(&newest, &e->log_st);
		}
	}
	return newest;
}

static void record_label(const struct site_entry *e, char *out, size_t size)
{
	char name[NAME_MAX * 4 + 1];
	log_escape(e->status_err == 0 && e->status.id[0] ? e->status.id : e->name, name,
		   sizeof(name));
	snprintf(out, size, "%s", name);
}

static void judge_lock_folder(const struct judge *j, const struct site_entry *e,
			      struct policy_entry *out)
{
	char op[KUDU_TEXT_MAX * 4], worker[KUDU_TEXT_MAX * 4], when[40];

	if (e->st.type != S_IFDIR) {
		out->verdict = POLICY_FOREIGN;
		snprintf(out->reason, sizeof(out->reason),
			 "a %s where Kudu keeps its lock folder: never followed or removed",
			 type_name(e->st.type));
		return;
	}
	log_escape(e->info.op, op, sizeof(op));
	log_escape(e->info.worker, worker, sizeof(worker));
	kudu_format_time(e->info.expiry_ns, "none", when, sizeof(when));
	out->remove = j->full || j->lock_only;
	if (e->info_err != 0) {
		out->verdict = j->stuck ? POLICY_STUCK : POLICY_LIVE;
		snprintf(out->reason, sizeof(out->reason),
			 "lock folder with %s info.lock (%s); last activity %s ago",
			 e->info_err == -ENOENT ? "no" : "an unreadable",
			 e->info_err == -ENOENT ? "Kudu may be writing it" : strerror(-e->info_err),
			 j->age);
		return;
	}
	if (j->lock_expired) {
		out->verdict = POLICY_STUCK;
		snprintf(out->reason, sizeof(out->reason),
			 "held by '%s' on %s; lockExpiry %s has passed, so Kudu treats it as free",
			 op, worker[0] ? worker : "?", when);
		return;
	}
	out->verdict = j->stuck ? POLICY_STUCK : POLICY_LIVE;
	snprintf(out->reason, sizeof(out->reason),
		 "held by '%s' on %s until %s; last activity %s ago%s", op,
		 worker[0] ? worker : "?", when, j->age,
		 j->stuck ? "" : " (not stuck yet)");
}

static void judge_lock_file(const struct judge *j, const struct site_entry *e,
			    struct policy_entry *out)
{
	char op[KUDU_TEXT_MAX * 4], when[40];

	if (e->st.type != S_IFREG) {
		out->verdict = POLICY_FOREIGN;
		snprintf(out->reason, sizeof(out->reason),
			 "a %s with a lock file's name: never followed or removed",
			 type_name(e->st.type));
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
		kudu_format_time(e->lock.acquired_ns, "none", when, sizeof(when));
	} else {
		snprintf(op, sizeof(op), "?");
		snprintf(when, sizeof(when), "?");
	}
	if (j->full) {
		out->verdict = POLICY_STUCK;
		out->remove = true;
		snprintf(out->reason, sizeof(out->reason),
			 "last held by '%s' at %s; removed with the stuck deployment", op, when);
	} else if (j->claims) {
		out->verdict = POLICY_LIVE;
		snprintf(out->reason, sizeof(out->reason),
			 "a deployment is running; last held by '%s' at %s", op, when);
	} else {
		out->verdict = POLICY_LEFTOVER;
		snprintf(out->reason, sizeof(out->reason),
			 "left by '%s' at %s: Kudu never deletes it on Linux, harmless", op, when);
	}
}

static void judge_record(const struct judge *j, size_t index, const struct site_entry *e,
			 struct policy_entry *out)
{
	char label[NAME_MAX * 4 + 1];
	bool temp = e->kind == KUDU_NAME_TEMP_RECORD;

	if (e->st.type != S_IFDIR) {
		out->verdict = POLICY_FOREIGN;
		snprintf(out->reason, sizeof(out->reason),
			 "a %s with a deployment record's name: never followed or removed",
			 type_name(e->st.type));
		return;
	}
	record_label(e, label, sizeof(label));
	if (j->snap->active_id[0] && strcmp(e->name, j->snap->active_id) == 0) {
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
	const char *state = e->status_err == 0 ? kudu_state_name(e->status.state)
					       : "status.xml unreadable";
	if (j->full && temp) {
		out->verdict = POLICY_STUCK;
		out->remove = true;
		snprintf(out->reason, sizeof(out->reason),
			 "temp record not finished (%s); removed with the stuck deployment", state);
	} else if (j->stuck && index == j->newest) {
		out->verdict = POLICY_STUCK;
		snprintf(out->reason, sizeof(out->reason),
			 "%s, no activity for %s: the stuck deployment's record%s", state, j->age,
			 temp ? "" : ", kept (Kudu marks it Failed once the lock is free)");
	} else if (j->claims && index == j->newest) {
		out->verdict = POLICY_LIVE;
		snprintf(out->reason, sizeof(out->reason), "%s, last activity %s ago", state,
			 j->age);
	} else {
		out->verdict = POLICY_LEFTOVER;
		snprintf(out->reason, sizeof(out->reason),
			 "%s record of an earlier deployment, never finished; %s", state,
			 temp ? "removed only with a stuck deployment" : "kept");
	}
}

static void judge_entry(const struct judge *j, size_t index, struct policy_entry *out)
{
	const struct site_entry *e = &j->snap->entries[index];
	char id[KUDU_TEXT_MAX * 4];

	switch (e->kind) {
	case KUDU_NAME_LOCK_FOLDER:
		judge_lock_folder(j, e, out);
		return;
	case KUDU_NAME_STATUS_LOCK:
	case KUDU_NAME_DEPLOYMENTS_LOCK:
	case KUDU_NAME_SSHKEY_LOCK:
	case KUDU_NAME_HOOKS_LOCK:
		judge_lock_file(j, e, out);
		return;
	case KUDU_NAME_PENDING:
		if (e->st.type != S_IFREG)
			break;
		if (j->full) {
			out->verdict = POLICY_STUCK;
			out->remove = true;
			snprintf(out->reason, sizeof(out->reason),
				 "a deploy queued behind the stuck one; removed with it");
		} else if (j->claims) {
			out->verdict = POLICY_LIVE;
			snprintf(out->reason, sizeof(out->reason),
				 "a deploy is queued behind the running one");
		} else {
			out->verdict = POLICY_LEFTOVER;
			snprintf(out->reason, sizeof(out->reason),
				 "marks a deploy that arrived while the lock was held; Kudu never deletes it, harmless");
		}
		return;
	case KUDU_NAME_ACTIVE:
		if (e->st.type != S_IFREG)
			break;
		log_escape(j->snap->active_id, id, sizeof(id));
		out->verdict = POLICY_KEPT;
		snprintf(out->reason, sizeof(out->reason),
			 "names the active deployment '%s': never removed", id);
		return;
	case KUDU_NAME_TOOLS:
	case KUDU_NAME_SETTINGS:
		out->verdict = POLICY_KEPT;
		snprintf(out->reason, sizeof(out->reason), "Kudu's %s: never removed",
			 kudu_name_describe(e->kind));
		return;
	case KUDU_NAME_RECORD:
	case KUDU_NAME_TEMP_RECORD:
		judge_record(j, index, e, out);
		return;
	case KUDU_NAME_TRASH:
		/* Folders, and files since files are renamed aside too. */
		if (e->st.type != S_IFDIR && e->st.type != S_IFREG)
			break;
		/* Our own unfinished removal: already out of Kudu's sight and
		 * judged when it was renamed, so it is finished on sight. */
		out->verdict = POLICY_LEFTOVER;
		out->remove = j->watching;
		snprintf(out->reason, sizeof(out->reason),
			 "lockwarden's own interrupted removal: finished by the running agent");
		return;
	case KUDU_NAME_UNKNOWN:
		break;
	}
	out->verdict = POLICY_FOREIGN;
	snprintf(out->reason, sizeof(out->reason), "not Kudu's (%s): never removed",
		 type_name(e->st.type));
}

/* The lock folder goes last of Kudu's leftovers: while it exists Kudu
 * answers 409 to every deploy, so nothing new can start while the lock
 * files, the queued marker and the temp records go, and a cleanup abandoned
 * half-way (a sign of life) leaves the lock, never a lockless half-state.
 * Our own trash, already out of Kudu's sight, comes after. */
static int removal_rank(const struct site_entry *e)
{
	switch (e->kind) {
	case KUDU_NAME_STATUS_LOCK: return 0;
	case KUDU_NAME_DEPLOYMENTS_LOCK: return 1;
	case KUDU_NAME_PENDING: return 2;
	case KUDU_NAME_TEMP_RECORD: return 3;
	case KUDU_NAME_LOCK_FOLDER: return 4;
	default: return 5;
	}
}

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

static void describe_claim(const struct judge *j, char *out, size_t size)
{
	const struct site_snapshot *snap = j->snap;
	char op[KUDU_TEXT_MAX * 4] = "", label[NAME_MAX * 4 + 1] = "";
	char lock[KUDU_TEXT_MAX * 8] = "", record[NAME_MAX * 4 + 64] = "";

	if (j->lock_folder != NO_INDEX) {
		const struct site_entry *e = &snap->entries[j->lock_folder];
		if (e->info_err == 0 && e->info.op[0]) {
			log_escape(e->info.op, op, sizeof(op));
			snprintf(lock, sizeof(lock), "deployment lock held by '%s'", op);
		} else {
			snprintf(lock, sizeof(lock), "deployment lock folder present");
		}
	}
	if (j->newest != NO_INDEX && !record_finished(&snap->entries[j->newest])) {
		const struct site_entry *e = &snap->entries[j->newest];
		record_label(e, label, sizeof(label));
		snprintf(record, sizeof(record), "deployment %s is %s", label,
			 kudu_state_name(e->status.state));
	}
	snprintf(out, size, "%s%s%s", lock, lock[0] && record[0] ? ", " : "", record);
}

int policy_decide(const struct site_snapshot *snap, const struct policy_watch *watch,
		  const struct policy_params *params, int64_t now_wall_ns,
		  uint64_t now_mono_ms, struct policy_decision *out)
{
	struct judge j = { .snap = snap, .now_wall_ns = now_wall_ns,
			   .lock_folder = NO_INDEX, .newest = NO_INDEX };
	bool watching = watch && watch->started;
	char claim[512];

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

	/* What cannot be seen whole is not judged: an unreadable area could hide
	 * the running deployment's activity. */
	out->blocked = snap->root_err != 0 || snap->truncated ||
		       (snap->locks_err != 0 && snap->locks_err != -ENOENT) ||
		       (snap->deployments_err != 0 && snap->deployments_err != -ENOENT);

	for (size_t i = 0; i < snap->n_entries; i++) {
		const struct site_entry *e = &snap->entries[i];
		if (e->kind == KUDU_NAME_LOCK_FOLDER && e->st.type == S_IFDIR)
			j.lock_folder = i;
	}
	j.newest = find_newest_record(snap);
	bool newest_running = j.newest != NO_INDEX && !record_finished(&snap->entries[j.newest]);
	j.claims = j.lock_folder != NO_INDEX || newest_running;
	/* Monotonic time still to wait for the lock seen earlier, whatever the
	 * wall clock says now (0 when nothing is known). */
	int64_t lock_mono_left_ms = 0;
	if (j.lock_folder != NO_INDEX) {
		const struct site_entry *lf = &snap->entries[j.lock_folder];
		if (watching && same_lock(watch, lf))
			lock_mono_left_ms = watch->lock_left_ms - (int64_t)(now_mono_ms - watch->lock_seen_ms);
		j.lock_expired = lf->info_err == 0 &&
				 (lf->info.expiry_ns == KUDU_TIME_NONE ||
				  (lf->info.expiry_ns <= now_wall_ns && lock_mono_left_ms <= 0));
	}

	/* When was the tree last active? mtimes (a future one counts as now),
	 * and what the agent saw change. */
	int64_t newest_ns = newest_activity_ns(snap);
	if (newest_ns != INT64_MIN)
		out->activity_age_ms = newest_ns >= now_wall_ns ? 0 : (now_wall_ns - newest_ns) / NS_PER_MS;
	if (watching) {
		out->quiet_ms = now_mono_ms - watch->last_change_ms;
		if (watch->seen_change &&
		    (out->activity_age_ms < 0 || (uint64_t)out->activity_age_ms > out->quiet_ms))
			out->activity_age_ms = (int64_t)out->quiet_ms;
	}
	fmt_age(out->activity_age_ms, j.age, sizeof(j.age));

	/* After a jump of the wall clock, an mtime's age means nothing. */
	bool trust_mtimes = !(watching && watch->clock_jumped);
	bool idle_by_mtime = trust_mtimes && out->activity_age_ms >= 0 &&
			     (uint64_t)out->activity_age_ms >= params->stuck_after_ms;
	/* Having watched stuck_after pass with no change at all is proof of
	 * no activity whatever the share's clock wrote (mtimes in the future). */
	bool idle_by_watch = watching && out->quiet_ms >= params->stuck_after_ms;
	j.watching = watching;
	bool quiet = watching ? out->quiet_ms >= params->quiet_period_ms : params->plan_as_if_quiet;

	out->claims_running = j.claims;
	out->lock_expired = j.lock_expired;
	j.stuck = !out->blocked && j.claims && (idle_by_mtime || idle_by_watch);
	out->stuck = j.stuck || (!out->blocked && j.lock_expired);
	j.full = j.stuck && quiet;
	j.lock_only = !j.full && !out->blocked && j.lock_expired && quiet;
	j.claims = j.claims && !out->blocked;

	for (size_t i = 0; i < snap->n_entries; i++)
		judge_entry(&j, i, &out->entries[i]);

	/* The plan, in the manual procedure's order. */
	for (int rank = 0; rank <= 5; rank++)
		for (size_t i = 0; i < snap->n_entries; i++)
			if (out->entries[i].remove && !out->blocked &&
			    removal_rank(&snap->entries[i]) == rank)
				out->removals[out->n_removals++] = i;
	if (out->blocked)
		for (size_t i = 0; i < snap->n_entries; i++)
			out->entries[i].remove = false;
	/* Our own trash is finished without waiting, but only by an agent that
	 * is watching (report never changes anything). */
	out->act = watching && out->n_removals > 0;

	if (j.newest != NO_INDEX && newest_running) {
		const struct site_entry *e = &snap->entries[j.newest];
		snprintf(out->deployment_id, sizeof(out->deployment_id), "%s",
			 e->status_err == 0 && e->status.id[0] ? e->status.id : e->name);
	}

	describe_claim(&j, claim, sizeof(claim));
	fmt_age((int64_t)params->stuck_after_ms, j.stuck_after, sizeof(j.stuck_after));
	if (out->blocked) {
		snprintf(out->reason, sizeof(out->reason),
			 "the site tree cannot be read whole (%s): nothing is judged or removed",
			 strerror(-(snap->root_err ? snap->root_err
				    : snap->locks_err && snap->locks_err != -ENOENT ? snap->locks_err
				    : snap->deployments_err ? snap->deployments_err : -E2BIG)));
	} else if (j.lock_only) {
		char when[40];
		kudu_format_time(snap->entries[j.lock_folder].info.expiry_ns, "none", when, sizeof(when));
		snprintf(out->reason, sizeof(out->reason),
			 "%s, but its lockExpiry (%s) has passed, so Kudu treats it as free; nothing changed for %s",
			 claim, when, j.age);
	} else if (j.stuck && !trust_mtimes) {
		char watched[32];
		fmt_age((int64_t)out->quiet_ms, watched, sizeof(watched));
		snprintf(out->reason, sizeof(out->reason),
			 "%s with no change in the %s the agent watched (stuck_after %s; the wall clock "
			 "jumped, so mtimes were not believed)", claim, watched, j.stuck_after);
	} else if (j.stuck) {
		snprintf(out->reason, sizeof(out->reason),
			 "%s with no activity for %s (stuck_after %s)", claim, j.age, j.stuck_after);
	} else if (j.claims) {
		snprintf(out->reason, sizeof(out->reason), "%s; last activity %s ago (stuck after %s)",
			 claim, j.age, j.stuck_after);
	} else {
		snprintf(out->reason, sizeof(out->reason), "no deployment is running");
	}

	/* When could time alone change the answer? */
	if (!out->blocked && !out->act) {
		uint64_t next = UINT64_MAX;
		if (j.claims && !j.stuck) {
			if (out->activity_age_ms >= 0 && trust_mtimes)
				next = min_u64(next, until(params->stuck_after_ms,
							   (uint64_t)out->activity_age_ms));
			if (watching)
				next = min_u64(next, until(params->stuck_after_ms, out->quiet_ms));
		}
		if ((j.stuck || j.lock_expired) && watching && !quiet)
			next = min_u64(next, until(params->quiet_period_ms, out->quiet_ms));
		if (j.lock_folder != NO_INDEX && !j.lock_expired && watching) {
			const struct site_entry *lf = &snap->entries[j.lock_folder];
			if (lf->info_err == 0 && lf->info.expiry_ns != KUDU_TIME_NONE) {
				int64_t left_ns = lf->info.expiry_ns - now_wall_ns;
				int64_t wall_left_ms = (left_ns + NS_PER_MS - 1) / NS_PER_MS;
				/* Both clocks must agree; wait for the later one. */
				uint64_t left_ms = (uint64_t)(wall_left_ms > lock_mono_left_ms
							      ? wall_left_ms : lock_mono_left_ms);
				if (left_ms == 0)
					left_ms = 1;
				uint64_t quiet_left = until(params->quiet_period_ms, out->quiet_ms);
				next = min_u64(next, left_ms > quiet_left ? left_ms : quiet_left);
			}
		}
		out->next_check_ms = next;
	}
	return 0;
}

void policy_decision_free(struct policy_decision *d)
{
	free(d->entries);
	free(d->removals);
	memset(d, 0, sizeof(*d));
}
