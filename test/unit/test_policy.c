/* test_policy.c - the stuck/live decision as a pure function, driven by
 * hand-built snapshots and fake clocks. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "config.h"
#include "kudu.h"
#include "policy.h"
#include "site.h"

#define S 1000LL                    /* ms per second */
#define M (60 * S)
#define NS(ms) ((int64_t)(ms) * 1000000LL)
#define NOW_WALL NS(1800000000000LL)  /* 2027-01-15, by the share's clock too */

static const struct policy_params params = { .stuck_after_ms = 15 * M };
static ino_t next_ino = 100;

static struct site_stat st_of(mode_t type, int64_t age_ms)
{
	struct site_stat st = { .present = true, .type = type, .dev = 1, .ino = next_ino++,
				.mtime_ns = NOW_WALL - NS(age_ms), .size = 10 };
	return st;
}

static struct site_entry *add(struct site_snapshot *snap, enum site_area area, const char *name,
			      enum kudu_name kind, mode_t type, int64_t age_ms)
{
	struct site_entry *e = site_add_entry(snap);
	assert_non_null(e);
	e->area = area;
	snprintf(e->name, sizeof(e->name), "%s", name);
	e->kind = kind;
	e->st = st_of(type, age_ms);
	return e;
}

static struct site_entry *add_lock(struct site_snapshot *snap, int64_t age_ms, int64_t expiry_in_ms)
{
	struct site_entry *e = add(snap, SITE_AREA_LOCKS, "deployment", KUDU_NAME_LOCK_FOLDER,
				   S_IFDIR, age_ms);
	e->info_st = st_of(S_IFREG, age_ms);
	e->info_err = 0;
	e->info.expiry_ns = NOW_WALL + NS(expiry_in_ms);
	snprintf(e->info.op, sizeof(e->info.op), "Performing deployment");
	snprintf(e->info.worker, sizeof(e->info.worker), "abc123");
	return e;
}

static struct site_entry *add_record(struct site_snapshot *snap, const char *id,
				     enum kudu_state state, bool complete, int64_t age_ms)
{
	bool temp = strncmp(id, "temp-", 5) == 0;
	struct site_entry *e = add(snap, SITE_AREA_DEPLOYMENTS, id,
				   temp ? KUDU_NAME_TEMP_RECORD : KUDU_NAME_RECORD, S_IFDIR, age_ms);
	e->status_err = 0;
	e->status_st = st_of(S_IFREG, age_ms);
	e->log_st = st_of(S_IFREG, age_ms);
	snprintf(e->status.id, sizeof(e->status.id), "%s", id);
	e->status.state = state;
	e->status.has_complete = true;
	e->status.complete = complete;
	e->status.is_temp = temp;
	e->status.received_ns = NOW_WALL - NS(age_ms);
	return e;
}

static void base_tree(struct site_snapshot *snap, int64_t age_ms)
{
	memset(snap, 0, sizeof(*snap));
	snap->scanned_ns = NOW_WALL;
	snap->root = st_of(S_IFDIR, 100 * M);
	snap->locks = st_of(S_IFDIR, age_ms);
	snap->deployments = st_of(S_IFDIR, age_ms);
}

/* A watch that started at mono 0 and saw its last change change_ms ago. */
static struct policy_history watched(uint64_t now_ms, uint64_t quiet_ms, bool seen_change)
{
	struct policy_history w = { .started = true, .start_ms = seen_change ? 0 : now_ms - quiet_ms,
				  .seen_change = seen_change, .last_change_ms = now_ms - quiet_ms };
	return w;
}

static size_t index_of(const struct site_snapshot *snap, const char *name)
{
	for (size_t i = 0; i < snap->n_entries; i++)
		if (strcmp(snap->entries[i].name, name) == 0)
			return i;
	fail_msg("no entry %s", name);
	return 0;
}

static bool removes(const struct site_snapshot *snap, const struct policy_decision *d,
		    const char *name)
{
	return d->entries[index_of(snap, name)].remove;
}

static void test_empty_tree_is_idle(void **state)
{
	struct site_snapshot snap;
	struct policy_decision d;
	base_tree(&snap, 60 * M);
	struct policy_history w = watched(1000 * M, 500 * M, false);
	assert_int_equal(policy_decide(&snap, &w, &params, NOW_WALL, 1000 * M, &d), 0);
	assert_false(d.claims_running);
	assert_false(d.stuck);
	assert_false(d.act);
	assert_int_equal(d.n_removals, 0);
	assert_true(d.next_check_ms == UINT64_MAX);
	assert_string_equal(d.reason, "no deployment is running");
	policy_decision_free(&d);
	site_snapshot_free(&snap);
}

/* The full stuck tree: every kind of entry, all quiet for an hour. */
static void build_stuck_tree(struct site_snapshot *snap)
{
	base_tree(snap, 60 * M);
	add_lock(snap, 60 * M, 10 * M);
	add(snap, SITE_AREA_LOCKS, "deployments.lock", KUDU_NAME_DEPLOYMENTS_LOCK, S_IFREG, 60 * M);
	add(snap, SITE_AREA_LOCKS, "hooks.lock", KUDU_NAME_HOOKS_LOCK, S_IFREG, 60 * M);
	add(snap, SITE_AREA_LOCKS, "sshkey.lock", KUDU_NAME_SSHKEY_LOCK, S_IFREG, 60 * M);
	add(snap, SITE_AREA_LOCKS, "status.lock", KUDU_NAME_STATUS_LOCK, S_IFREG, 60 * M);
	add(snap, SITE_AREA_LOCKS, "notes.txt", KUDU_NAME_UNKNOWN, S_IFREG, 60 * M);
	add(snap, SITE_AREA_DEPLOYMENTS, "active", KUDU_NAME_ACTIVE, S_IFREG, 90 * M);
	snprintf(snap->active_id, sizeof(snap->active_id), "0123456789abcdef0123456789abcdef");
	add_record(snap, "0123456789abcdef0123456789abcdef", KUDU_STATE_SUCCESS, true, 90 * M);
	add(snap, SITE_AREA_DEPLOYMENTS, "pending", KUDU_NAME_PENDING, S_IFREG, 60 * M);
	add(snap, SITE_AREA_DEPLOYMENTS, "settings.xml", KUDU_NAME_SETTINGS, S_IFREG, 900 * M);
	add(snap, SITE_AREA_DEPLOYMENTS, "temp-0000000a", KUDU_NAME_TEMP_RECORD, S_IFLNK, 60 * M);
	add_record(snap, "temp-1a2b3c4d", KUDU_STATE_BUILDING, false, 61 * M);
	add_record(snap, "temp-5e6f7a8b", KUDU_STATE_FAILED, true, 80 * M);
	add_record(snap, "temp-99999999", KUDU_STATE_PENDING, false, 85 * M);
	add(snap, SITE_AREA_DEPLOYMENTS, "tools", KUDU_NAME_TOOLS, S_IFDIR, 900 * M);
}

static void test_stuck_tree_cleanup_plan(void **state)
{
	struct site_snapshot snap;
	struct policy_decision d;
	build_stuck_tree(&snap);
	struct policy_history w = watched(1000 * M, 15 * M, false);

	assert_int_equal(policy_decide(&snap, &w, &params, NOW_WALL, 1000 * M, &d), 0);
	assert_true(d.claims_running);
	assert_true(d.stuck);
	assert_true(d.act);
	assert_false(d.blocked);
	assert_string_equal(d.deployment_id, "temp-1a2b3c4d");
	/* Lock files, pending, temp records, and the lock folder last: while it
	 * exists Kudu answers 409, so nothing new starts during the cleanup. */
	const char *order[] = { "status.lock", "deployments.lock", "pending",
				"temp-1a2b3c4d", "temp-99999999", "deployment" };
	assert_int_equal(d.n_removals, 6);
	for (size_t i = 0; i < 6; i++)
		assert_string_equal(snap.entries[d.removals[i]].name, order[i]);
	/* Never: history, the active record, tools, settings, other locks,
	 * unknown names, a symlink with a record's name. */
	const char *kept[] = { "active", "0123456789abcdef0123456789abcdef", "settings.xml", "tools",
			       "hooks.lock", "sshkey.lock", "notes.txt", "temp-0000000a",
			       "temp-5e6f7a8b" };
	for (size_t i = 0; i < sizeof(kept) / sizeof(kept[0]); i++)
		assert_false(removes(&snap, &d, kept[i]));
	assert_int_equal(d.entries[index_of(&snap, "notes.txt")].verdict, POLICY_FOREIGN);
	assert_int_equal(d.entries[index_of(&snap, "temp-0000000a")].verdict, POLICY_FOREIGN);
	assert_int_equal(d.entries[index_of(&snap, "temp-5e6f7a8b")].verdict, POLICY_KEPT);
	assert_int_equal(d.entries[index_of(&snap, "deployment")].verdict, POLICY_STUCK);
	assert_non_null(strstr(d.reason, "watched with no change for 15m"));
	policy_decision_free(&d);
	site_snapshot_free(&snap);
}

static void test_active_temp_record_never_removed(void **state)
{
	struct site_snapshot snap;
	struct policy_decision d;
	base_tree(&snap, 60 * M);
	add_lock(&snap, 60 * M, 10 * M);
	add_record(&snap, "temp-1a2b3c4d", KUDU_STATE_BUILDING, false, 60 * M);
	snprintf(snap.active_id, sizeof(snap.active_id), "temp-1a2b3c4d");
	struct policy_history w = watched(1000 * M, 15 * M, false);
	assert_int_equal(policy_decide(&snap, &w, &params, NOW_WALL, 1000 * M, &d), 0);
	assert_true(d.act);
	assert_false(removes(&snap, &d, "temp-1a2b3c4d"));
	assert_true(removes(&snap, &d, "deployment"));
	policy_decision_free(&d);
	site_snapshot_free(&snap);
}

/* Issue 18: file times can prove life, never death. Every file time is an
 * hour old, yet nothing is stuck until the agent has itself watched the
 * tree unchanged for stuck_after. */
static void test_file_times_never_prove_death(void **state)
{
	static const struct {
		uint64_t quiet_ms;
		bool stuck;
		uint64_t next_check_ms;
	} rows[] = {
		{ 0, false, 15 * M },
		{ 30 * S, false, 15 * M - 30 * S },
		{ 2 * M, false, 13 * M },         /* the old quiet_period: no longer enough */
		{ 15 * M - 1, false, 1 },
		{ 15 * M, true, UINT64_MAX },
	};
	struct site_snapshot snap;
	struct policy_decision d;
	build_stuck_tree(&snap);
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct policy_history w = watched(1000 * M, rows[i].quiet_ms, false);
		assert_int_equal(policy_decide(&snap, &w, &params, NOW_WALL, 1000 * M, &d), 0);
		if (d.stuck != rows[i].stuck || d.act != rows[i].stuck ||
		    (d.n_removals != 0) != rows[i].stuck || d.next_check_ms != rows[i].next_check_ms)
			fail_msg("watched %llu ms: stuck %d act %d removals %zu next %llu",
				 (unsigned long long)rows[i].quiet_ms, d.stuck, d.act, d.n_removals,
				 (unsigned long long)d.next_check_ms);
		assert_int_equal(d.activity_age_ms, 60 * M); /* shown, not believed */
		policy_decision_free(&d);
	}

	/* Nothing watched at all (report) is never stuck, whatever the file times. */
	assert_int_equal(policy_decide(&snap, NULL, &params, NOW_WALL, 0, &d), 0);
	assert_true(d.claims_running);
	assert_false(d.stuck);
	assert_false(d.act);
	assert_int_equal(d.n_removals, 0);
	policy_decision_free(&d);
	site_snapshot_free(&snap);
}

/* The first scan starts the watch, however old the tree looks: a tree whose
 * every file time is hours old waits stuck_after from the first scan. */
static void test_first_scan_starts_the_watch(void **state)
{
	struct site_snapshot snap;
	struct policy_decision d;
	struct policy_history w = { 0 };
	build_stuck_tree(&snap);
	for (size_t i = 0; i < snap.n_entries; i++)
		snap.entries[i].st.mtime_ns = snap.entries[i].st.ctime_ns = NOW_WALL - NS(5 * 60 * M);

	assert_false(policy_observe(&w, &snap, 1000 * M));
	assert_int_equal(policy_decide(&snap, &w, &params, NOW_WALL, 1000 * M, &d), 0);
	assert_int_equal(d.quiet_ms, 0);
	assert_false(d.stuck);
	assert_int_equal(d.next_check_ms, 15 * M);
	policy_decision_free(&d);
	/* Rescans every 5 s until stuck_after: nothing before. */
	for (uint64_t t = 5 * S; t < 15 * M; t += 5 * S) {
		snap.scanned_ns = NOW_WALL + NS(t);
		assert_false(policy_observe(&w, &snap, 1000 * M + t));
		assert_int_equal(policy_decide(&snap, &w, &params, NOW_WALL + NS(t), 1000 * M + t,
					       &d), 0);
		if (d.stuck || d.act)
			fail_msg("stuck after %llu ms watched", (unsigned long long)t);
		policy_decision_free(&d);
	}
	snap.scanned_ns = NOW_WALL + NS(15 * M);
	assert_false(policy_observe(&w, &snap, 1015 * M));
	assert_int_equal(policy_decide(&snap, &w, &params, NOW_WALL + NS(15 * M), 1015 * M, &d), 0);
	assert_true(d.stuck);
	assert_true(d.act);
	policy_decision_free(&d);
	site_snapshot_free(&snap);
}

/* report shows what a cleanup would take by deciding as if the tree had
 * been watched unchanged for stuck_after (report.c). */
static void test_report_plans_as_if_watched(void **state)
{
	struct site_snapshot snap;
	struct policy_decision d;
	struct policy_history as_if = { .started = true };
	build_stuck_tree(&snap);
	add(&snap, SITE_AREA_DEPLOYMENTS, ".lockwarden-trash-temp-0badf00d", KUDU_NAME_TRASH,
	    S_IFDIR, 1 * M);
	assert_int_equal(policy_decide(&snap, &as_if, &params, NOW_WALL, params.stuck_after_ms, &d),
			 0);
	assert_int_equal(d.n_removals, 6); /* the plan, never a .lockwarden-* name */
	assert_false(removes(&snap, &d, ".lockwarden-trash-temp-0badf00d"));
	policy_decision_free(&d);
	site_snapshot_free(&snap);
}

/* A slow live deployment: its log grew 10 s ago. */
static void test_recent_activity_is_live(void **state)
{
	struct site_snapshot snap;
	struct policy_decision d;
	build_stuck_tree(&snap);
	snap.entries[index_of(&snap, "temp-1a2b3c4d")].log_st.mtime_ns = NOW_WALL - NS(10 * S);
	/* The agent saw the log grow at its last scan. */
	struct policy_history w = watched(1000 * M, 5 * S, true);
	assert_int_equal(policy_decide(&snap, &w, &params, NOW_WALL, 1000 * M, &d), 0);
	assert_true(d.claims_running);
	assert_false(d.stuck);
	assert_false(d.act);
	assert_int_equal(d.n_removals, 0);
	assert_int_equal(d.activity_age_ms, 10 * S);
	/* stuck_after from the change the agent saw, whatever the lock says. */
	assert_int_equal(d.next_check_ms, 15 * M - 5 * S);
	assert_int_equal(d.entries[index_of(&snap, "deployment")].verdict, POLICY_LIVE);
	assert_int_equal(d.entries[index_of(&snap, "temp-1a2b3c4d")].verdict, POLICY_LIVE);
	assert_int_equal(d.entries[index_of(&snap, "pending")].verdict, POLICY_LIVE);
	policy_decision_free(&d);
	site_snapshot_free(&snap);
}

/* A change the agent saw counts as activity even when every mtime is old
 * (a deletion, or a share whose clock runs behind). */
static void test_observed_change_is_activity(void **state)
{
	struct site_snapshot snap;
	struct policy_decision d;
	build_stuck_tree(&snap);
	struct policy_history w = watched(1000 * M, 3 * M, true);
	assert_int_equal(policy_decide(&snap, &w, &params, NOW_WALL, 1000 * M, &d), 0);
	assert_false(d.stuck);
	assert_false(d.act);
	/* Stuck_after from the change; the lock's expiry in 10 minutes is no
	 * moment of its own any more. */
	assert_int_equal(d.next_check_ms, 12 * M);
	policy_decision_free(&d);
	site_snapshot_free(&snap);
}

/* A file time in the future of the scan's wall time is a change seen at that
 * scan (mtime or ctime), at every scan until the wall clock passes it: it
 * can only delay a cleanup. */
static void test_future_file_time_is_a_change(void **state)
{
	struct site_snapshot snap;
	struct policy_decision d;
	struct policy_history w = { 0 };
	build_stuck_tree(&snap);
	struct site_entry *temp = &snap.entries[index_of(&snap, "temp-1a2b3c4d")];
	assert_false(policy_observe(&w, &snap, 1000 * M));

	temp->log_st.mtime_ns = NOW_WALL + NS(20 * M);
	assert_true(policy_observe(&w, &snap, 1000 * M + 5 * S));
	assert_int_equal(w.last_change_ms, 1000 * M + 5 * S);
	/* Unchanged since, but still ahead of the scan: a change again. */
	for (uint64_t t = 10 * S; t <= 16 * M; t += 5 * S)
		assert_true(policy_observe(&w, &snap, 1000 * M + t));
	assert_int_equal(policy_decide(&snap, &w, &params, NOW_WALL, 1016 * M, &d), 0);
	assert_false(d.stuck);
	assert_int_equal(d.activity_age_ms, 0);
	policy_decision_free(&d);

	/* Once the scan's wall time passes it, it is an old time like any other. */
	snap.scanned_ns = NOW_WALL + NS(20 * M);
	assert_false(policy_observe(&w, &snap, 1020 * M));
	assert_int_equal(w.last_change_ms, 1016 * M);

	/* A ctime ahead counts the same. */
	temp->log_st.ctime_ns = NOW_WALL + NS(60 * M);
	assert_true(policy_observe(&w, &snap, 1021 * M));
	site_snapshot_free(&snap);
}

/* Issue 18, finding 1: an expired lockExpiry is no ground for any removal.
 * A deployment running past 25 minutes holds an expired lock while alive;
 * Kudu's "expired is free" lets Kudu start the next deploy, and removing
 * the folder (and restarting) gains nothing but risk. */
static void test_expired_lock_is_never_acted_on(void **state)
{
	static const struct {
		const char *what;
		int64_t expiry_in_ms;    /* from now; KUDU_TIME_NONE: null or missing */
		int info_err;
		uint64_t quiet_ms;
		bool lock_expired, stuck;
	} rows[] = {
		{ "expired 1 s ago, quiet for the old quiet_period", -1 * S, 0, 2 * M, true, false },
		{ "expired an hour ago, quiet 14m59s", -60 * M, 0, 15 * M - S, true, false },
		{ "expired, watched stuck_after: the whole cleanup", -1 * S, 0, 15 * M, true, true },
		{ "null lockExpiry, quiet 2m: unknown, not expired", KUDU_TIME_NONE, 0, 2 * M,
		  false, false },
		{ "unparseable info.lock, quiet 2m", -1 * S, -EINVAL, 2 * M, false, false },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct site_snapshot snap;
		struct policy_decision d;
		build_stuck_tree(&snap);
		struct site_entry *lock = &snap.entries[index_of(&snap, "deployment")];
		lock->info.expiry_ns = rows[i].expiry_in_ms == KUDU_TIME_NONE
			? KUDU_TIME_NONE : NOW_WALL + NS(rows[i].expiry_in_ms);
		lock->info_err = rows[i].info_err;
		struct policy_history w = watched(1000 * M, rows[i].quiet_ms, false);
		assert_int_equal(policy_decide(&snap, &w, &params, NOW_WALL, 1000 * M, &d), 0);
		if (d.lock_expired != rows[i].lock_expired || d.stuck != rows[i].stuck ||
		    d.act != rows[i].stuck)
			fail_msg("%s: lock_expired %d stuck %d act %d", rows[i].what, d.lock_expired,
				 d.stuck, d.act);
		if (rows[i].stuck) {
			/* Never the lock alone: the usual cleanup, the lock last. */
			assert_int_equal(d.n_removals, 6);
			assert_string_equal(snap.entries[d.removals[5]].name, "deployment");
			assert_int_equal(d.step, POLICY_STEP_CLEAR);
		} else {
			assert_int_equal(d.n_removals, 0);
			assert_int_equal(d.step, POLICY_STEP_NONE);
			assert_int_equal(d.entries[index_of(&snap, "deployment")].verdict, POLICY_LIVE);
		}
		policy_decision_free(&d);
		site_snapshot_free(&snap);
	}
}

/* An info.lock as Kudu writes it but with no lockExpiry key: unknown, never
 * expired (main took it as expired and removed a lock 20 s old). */
static void test_info_lock_without_expiry_is_not_expired(void **state)
{
	static const char *texts[] = {
		"{\"heldByPID\":42,\"heldByTID\":7,\"heldByOp\":\"Performing deployment\","
		"\"heldByWorker\":\"abc123\"}",
		"{\"lockExpiry\":null,\"heldByPID\":42,\"heldByOp\":\"Performing deployment\"}",
		"{\"lockExpiry\":\"\",\"heldByPID\":42,\"heldByOp\":\"Performing deployment\"}",
	};
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		struct site_snapshot snap;
		struct policy_decision d;
		struct policy_history w = { 0 };
		base_tree(&snap, 20 * S);
		struct site_entry *lock = add_lock(&snap, 20 * S, 0);
		assert_int_equal(kudu_parse_info_lock(texts[i], strlen(texts[i]), &lock->info), 0);
		add_record(&snap, "temp-1a2b3c4d", KUDU_STATE_BUILDING, false, 20 * S);
		assert_false(policy_observe(&w, &snap, 1000 * M));
		for (uint64_t t = 0; t <= 5 * M; t += 5 * S) {
			snap.scanned_ns = NOW_WALL + NS(t);
			(void)policy_observe(&w, &snap, 1000 * M + t);
			assert_int_equal(policy_decide(&snap, &w, &params, NOW_WALL + NS(t),
						       1000 * M + t, &d), 0);
			if (d.lock_expired || d.stuck || d.act)
				fail_msg("%s at %llu ms: lock_expired %d stuck %d", texts[i],
					 (unsigned long long)t, d.lock_expired, d.stuck);
			policy_decision_free(&d);
		}
		site_snapshot_free(&snap);
	}
}

/* The decision timer: a held lock expiring in 40 s is no moment of its own;
 * the next check is when stuck_after will have been watched. */
static void test_next_check_ignores_lock_expiry(void **state)
{
	struct site_snapshot snap;
	struct policy_decision d;
	base_tree(&snap, 10 * S);
	add_lock(&snap, 10 * S, 40 * S);
	struct policy_history w = watched(1000 * M, 5 * M, false);
	assert_int_equal(policy_decide(&snap, &w, &params, NOW_WALL, 1000 * M, &d), 0);
	assert_false(d.act);
	assert_int_equal(d.next_check_ms, 10 * M);
	policy_decision_free(&d);
	site_snapshot_free(&snap);
}

/* Kudu never deletes status.lock on Linux: alone, it is no incident. */
static void test_leftover_status_lock_is_harmless(void **state)
{
	struct site_snapshot snap;
	struct policy_decision d;
	base_tree(&snap, 600 * M);
	add(&snap, SITE_AREA_LOCKS, "status.lock", KUDU_NAME_STATUS_LOCK, S_IFREG, 600 * M);
	add(&snap, SITE_AREA_DEPLOYMENTS, "pending", KUDU_NAME_PENDING, S_IFREG, 600 * M);
	add_record(&snap, "0123456789abcdef0123456789abcdef", KUDU_STATE_SUCCESS, true, 600 * M);
	add_record(&snap, "temp-1a2b3c4d", KUDU_STATE_PENDING, false, 900 * M); /* older */
	struct policy_history w = watched(1000 * M, 500 * M, false);
	assert_int_equal(policy_decide(&snap, &w, &params, NOW_WALL, 1000 * M, &d), 0);
	assert_false(d.claims_running);
	assert_false(d.stuck);
	assert_false(d.act);
	assert_int_equal(d.n_removals, 0);
	assert_int_equal(d.entries[index_of(&snap, "status.lock")].verdict, POLICY_LEFTOVER);
	assert_int_equal(d.entries[index_of(&snap, "pending")].verdict, POLICY_LEFTOVER);
	assert_int_equal(d.entries[index_of(&snap, "temp-1a2b3c4d")].verdict, POLICY_LEFTOVER);
	assert_true(d.next_check_ms == UINT64_MAX);
	policy_decision_free(&d);
	site_snapshot_free(&snap);
}

/* No lock, but the newest record never finished: stuck, and its temp
 * records go; a non-temp record is kept for Kudu to mark Failed. */
static void test_unfinished_newest_record_without_lock(void **state)
{
	struct site_snapshot snap;
	struct policy_decision d;
	base_tree(&snap, 60 * M);
	add_record(&snap, "0123456789abcdef0123456789abcdef", KUDU_STATE_DEPLOYING, false, 60 * M);
	add_record(&snap, "temp-1a2b3c4d", KUDU_STATE_PENDING, false, 70 * M);
	struct policy_history w = watched(1000 * M, 15 * M, false);
	assert_int_equal(policy_decide(&snap, &w, &params, NOW_WALL, 1000 * M, &d), 0);
	assert_true(d.stuck);
	assert_true(d.act);
	assert_string_equal(d.deployment_id, "0123456789abcdef0123456789abcdef");
	assert_true(removes(&snap, &d, "temp-1a2b3c4d"));
	assert_false(removes(&snap, &d, "0123456789abcdef0123456789abcdef"));
	assert_int_equal(d.entries[index_of(&snap, "0123456789abcdef0123456789abcdef")].verdict,
			 POLICY_STUCK);
	policy_decision_free(&d);
	site_snapshot_free(&snap);
}

static void test_symlinked_lock_folder_is_foreign(void **state)
{
	struct site_snapshot snap;
	struct policy_decision d;
	base_tree(&snap, 60 * M);
	add(&snap, SITE_AREA_LOCKS, "deployment", KUDU_NAME_LOCK_FOLDER, S_IFLNK, 60 * M);
	struct policy_history w = watched(1000 * M, 100 * M, false);
	assert_int_equal(policy_decide(&snap, &w, &params, NOW_WALL, 1000 * M, &d), 0);
	assert_false(d.claims_running);
	assert_int_equal(d.n_removals, 0);
	assert_int_equal(d.entries[0].verdict, POLICY_FOREIGN);
	policy_decision_free(&d);
	site_snapshot_free(&snap);
}

/* What cannot be read whole is not judged. */
static void test_unreadable_area_blocks(void **state)
{
	static const int errs[] = { -EACCES, -EIO, -ELOOP };
	for (size_t i = 0; i < sizeof(errs) / sizeof(errs[0]); i++) {
		struct site_snapshot snap;
		struct policy_decision d;
		build_stuck_tree(&snap);
		snap.deployments_err = errs[i];
		struct policy_history w = watched(1000 * M, 100 * M, false);
		assert_int_equal(policy_decide(&snap, &w, &params, NOW_WALL, 1000 * M, &d), 0);
		assert_true(d.blocked);
		assert_false(d.act);
		assert_int_equal(d.n_removals, 0);
		for (size_t k = 0; k < d.n_entries; k++)
			assert_false(d.entries[k].remove);
		policy_decision_free(&d);
		site_snapshot_free(&snap);
	}
}

/* Everything inside a running record (its walk: scan.c, recordwalk.c) is
 * activity; a record its walk cannot see whole is never judged stuck. */
static void test_whole_record(void **state)
{
	struct site_snapshot snap;
	struct policy_decision d;
	struct policy_history w = { 0 };
	build_stuck_tree(&snap);
	struct site_entry *temp = &snap.entries[index_of(&snap, "temp-1a2b3c4d")];
	temp->tree = (struct site_tree_sum){ .walked = true, .entries = 2, .size = 10,
					     .newest_mtime_ns = temp->log_st.mtime_ns,
					     .newest_ctime_ns = temp->log_st.ctime_ns, .sum = 7 };
	assert_false(policy_observe(&w, &snap, 5000));
	temp->tree.sum += 1; /* artifact/build.zip written, nothing else */
	assert_true(policy_observe(&w, &snap, 6000));

	struct policy_history watched_long = watched(1000 * M, 100 * M, false);
	temp->tree.cannot_tell = true;
	temp->tree.err = -E2BIG;
	assert_int_equal(policy_decide(&snap, &watched_long, &params, NOW_WALL, 1000 * M, &d), 0);
	assert_true(d.blocked);
	assert_false(d.stuck);
	assert_false(d.act);
	assert_int_equal(d.n_removals, 0);
	assert_non_null(strstr(d.reason, "temp-1a2b3c4d cannot be seen whole (more than 10000 "
					 "entries inside): never judged stuck"));
	policy_decision_free(&d);
	site_snapshot_free(&snap);
}

/* Issue 19, finding 5: more of Kudu's entries than the cap (site.h) are
 * counted, not kept: the verdict is "cannot tell", never stuck, and the
 * count is activity (a fingerprint of its own). */
static void test_over_the_cap_cannot_tell(void **state)
{
	struct site_snapshot snap;
	struct policy_decision d;
	struct policy_history w = { 0 };
	build_stuck_tree(&snap);
	assert_false(policy_observe(&w, &snap, 5000));
	snap.over_cap = true;
	snap.over_cap_area = SITE_AREA_DEPLOYMENTS;
	snap.n_over_cap = 20000;
	assert_true(policy_observe(&w, &snap, 6000));

	struct policy_history watched_long = watched(1000 * M, 100 * M, false);
	assert_int_equal(policy_decide(&snap, &watched_long, &params, NOW_WALL, 1000 * M, &d), 0);
	assert_true(d.blocked);
	assert_false(d.stuck);
	assert_false(d.act);
	assert_int_equal(d.n_removals, 0);
	assert_non_null(strstr(d.reason, "deployments/ holds 20000 entries of Kudu's shape, more "
					 "than the " SITE_MAX_ENTRIES_TEXT " this agent judges: cannot tell"));
	policy_decision_free(&d);
	site_snapshot_free(&snap);
}

/* Issue 18, finding 4: a name proves nothing about who made it. A
 * .lockwarden-trash-* entry is foreign to the policy: counted, reported,
 * never planned for removal, in a stuck tree or alone. */
static void test_lockwarden_names_are_never_removed(void **state)
{
	struct site_snapshot snap;
	struct policy_decision d;
	base_tree(&snap, 60 * M);
	add(&snap, SITE_AREA_DEPLOYMENTS, ".lockwarden-trash-customer-backup", KUDU_NAME_TRASH,
	    S_IFDIR, 1 * S);
	struct policy_history w = watched(1000 * M, 60 * M, false);
	assert_int_equal(policy_decide(&snap, &w, &params, NOW_WALL, 1000 * M, &d), 0);
	assert_false(d.act);
	assert_int_equal(d.n_removals, 0);
	assert_int_equal(d.entries[0].verdict, POLICY_FOREIGN);
	policy_decision_free(&d);
	site_snapshot_free(&snap);

	build_stuck_tree(&snap);
	add(&snap, SITE_AREA_LOCKS, ".lockwarden-trash-deployment", KUDU_NAME_TRASH, S_IFREG, 1 * S);
	assert_int_equal(policy_decide(&snap, &w, &params, NOW_WALL, 1000 * M, &d), 0);
	assert_true(d.act);
	assert_false(removes(&snap, &d, ".lockwarden-trash-deployment"));
	assert_int_equal(d.n_removals, 6);
	policy_decision_free(&d);
	site_snapshot_free(&snap);
	(void)state;
}

static void test_observe_baseline_and_changes(void **state)
{
	struct site_snapshot snap;
	struct policy_history w = { 0 };
	build_stuck_tree(&snap);

	assert_false(policy_observe(&w, &snap, 5000));
	assert_true(w.started);
	assert_false(w.seen_change);
	assert_int_equal(w.last_change_ms, 5000);
	assert_false(policy_observe(&w, &snap, 6000));
	assert_int_equal(w.last_change_ms, 5000);

	/* Each kind of change the issue names counts. */
	struct site_entry *temp = &snap.entries[index_of(&snap, "temp-1a2b3c4d")];
	temp->log_st.size += 1;
	assert_true(policy_observe(&w, &snap, 7000));
	assert_true(w.seen_change);
	assert_int_equal(w.last_change_ms, 7000);
	temp->status_st.mtime_ns += 1;
	assert_true(policy_observe(&w, &snap, 8000));
	snap.entries[index_of(&snap, "pending")].st.mtime_ns += 1;
	assert_true(policy_observe(&w, &snap, 9000));
	snap.entries[index_of(&snap, "deployment")].info_st.ino += 1;
	assert_true(policy_observe(&w, &snap, 10000));
	snap.n_entries--; /* an entry disappeared */
	assert_true(policy_observe(&w, &snap, 11000));

	/* A finished record's log is history, not activity. */
	struct site_entry *done = &snap.entries[index_of(&snap, "temp-5e6f7a8b")];
	done->log_st.size += 100;
	assert_false(policy_observe(&w, &snap, 12000));
	site_snapshot_free(&snap);
}

/* A change is dated at the scan that saw it, never back by a file time:
 * a clock that is off would otherwise date it back and act sooner. */
static void test_observed_change_dated_at_the_scan(void **state)
{
	struct site_snapshot snap;
	struct policy_history w = { 0 };
	build_stuck_tree(&snap);
	snap.scanned_ns = NOW_WALL - NS(5 * S);
	assert_false(policy_observe(&w, &snap, 100 * S));

	/* The log grew 3.2 s before the next scan began: dated at the scan. */
	snap.scanned_ns = NOW_WALL;
	struct site_entry *temp = &snap.entries[index_of(&snap, "temp-1a2b3c4d")];
	temp->log_st.size += 10;
	temp->log_st.mtime_ns = NOW_WALL - NS(3200);
	assert_true(policy_observe(&w, &snap, 105 * S));
	assert_int_equal(w.last_change_ms, 105 * S);

	/* A write stamped an hour back (a share clock behind): at the scan too. */
	snap.scanned_ns = NOW_WALL + NS(5 * S);
	temp->log_st.size += 10;
	temp->log_st.mtime_ns = NOW_WALL - NS(60 * M);
	assert_true(policy_observe(&w, &snap, 110 * S));
	assert_int_equal(w.last_change_ms, 110 * S);

	/* A removal leaves no mtime: dated at the scan. */
	snap.scanned_ns = NOW_WALL + NS(10 * S);
	snap.n_entries--;
	assert_true(policy_observe(&w, &snap, 115 * S));
	assert_int_equal(w.last_change_ms, 115 * S);
	site_snapshot_free(&snap);
}

/* Issue 18, finding 3, with no share-clock probe at all: this host's wall
 * clock hours ahead of the share's (file times and lockExpiry) or hours
 * behind. A build wrote 10 s before the agent started and is then silent;
 * scans every 5 s. Ahead: the lock reads expired and the tree 2 h old,
 * still nothing before stuck_after watched. Behind: every file time is in
 * the future, so each scan is a change and nothing is stuck at all. */
static void test_host_clock_off_waits_stuck_after(void **state)
{
	static const struct {
		const char *what;
		int64_t skew_ms;           /* this host's wall clock - the share's */
		uint64_t stuck_at_ms;      /* watched when first stuck; 0: never in 20m */
		bool lock_expired;
	} rows[] = {
		{ "in step", 0, 15 * M, false },
		{ "2 h ahead", 2 * 60 * M, 15 * M, true },
		{ "26 min ahead: the fresh lock reads expired", 26 * M, 15 * M, true },
		{ "2 h behind: file times in the future", -2 * 60 * M, 0, false },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct site_snapshot snap;
		struct policy_decision d;
		struct policy_history h = { 0 };
		uint64_t stuck_at = 0;
		base_tree(&snap, 10 * S);
		add_lock(&snap, 10 * S, 20 * M);
		add_record(&snap, "temp-1a2b3c4d", KUDU_STATE_BUILDING, false, 10 * S);
		for (uint64_t t = 0; t <= 20 * M && !stuck_at; t += 5 * S) {
			int64_t wall = NOW_WALL + NS(rows[i].skew_ms) + NS(t);
			snap.scanned_ns = wall;
			(void)policy_observe(&h, &snap, 1000 * M + t);
			assert_int_equal(policy_decide(&snap, &h, &params, wall, 1000 * M + t, &d), 0);
			if (t == 0 && d.lock_expired != rows[i].lock_expired)
				fail_msg("%s: lock_expired %d", rows[i].what, d.lock_expired);
			if (d.stuck != d.act)
				fail_msg("%s: stuck %d act %d", rows[i].what, d.stuck, d.act);
			if (d.stuck)
				stuck_at = t;
			policy_decision_free(&d);
		}
		if (stuck_at != rows[i].stuck_at_ms)
			fail_msg("%s: stuck at %llu ms watched", rows[i].what,
				 (unsigned long long)stuck_at);
		site_snapshot_free(&snap);
	}
}

/* Table: thresholds at their edges, stuck_after 15m: only what was watched
 * counts, never how old the file times are. */
static void test_threshold_table(void **state)
{
	static const struct {
		int64_t mtime_age_ms;
		uint64_t quiet_ms;
		bool stuck;
	} rows[] = {
		{ 15 * M, 2 * M, false },
		{ 24 * 60 * M, 0, false },
		{ 24 * 60 * M, 15 * M - 1, false },
		{ 0, 15 * M - 1, false },
		{ 0, 15 * M, true },
		{ 24 * 60 * M, 15 * M, true },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct site_snapshot snap;
		struct policy_decision d;
		base_tree(&snap, rows[i].mtime_age_ms);
		add_lock(&snap, rows[i].mtime_age_ms, 10 * M);
		struct policy_history w = watched(1000 * M, rows[i].quiet_ms, false);
		assert_int_equal(policy_decide(&snap, &w, &params, NOW_WALL, 1000 * M, &d), 0);
		if (d.stuck != rows[i].stuck || d.act != rows[i].stuck)
			fail_msg("row %zu: stuck %d act %d", i, d.stuck, d.act);
		policy_decision_free(&d);
		site_snapshot_free(&snap);
	}
}

/* Table: one row per situation, through the four steps of a decision:
 * assess (claims, stuck), plan (act, removals), explain (the reason) and
 * the next check. stuck_after 15m. */
static void test_decision_steps_table(void **state)
{
	enum { NO_LOCK = 0, LOCK = 1, EXPIRED_LOCK = 2 };
	static const struct {
		const char *what;
		int lock;
		int64_t age_ms;          /* of every file time */
		bool building_record;    /* a temp record still Building */
		int locks_err;
		uint64_t quiet_ms;
		bool claims, stuck, act;
		size_t removals;
		const char *reason;
		uint64_t next_check_ms;
	} rows[] = {
		{ "nothing runs", NO_LOCK, 60 * M, false, 0, 5 * M,
		  false, false, false, 0, "no deployment is running", UINT64_MAX },
		{ "fresh lock", LOCK, 10 * S, false, 0, 5 * M,
		  true, false, false, 0, "watched with no change for 5m of stuck_after 15m", 10 * M },
		{ "idle lock, watched stuck_after", LOCK, 60 * M, false, 0, 15 * M,
		  true, true, true, 1, "watched with no change for 15m (stuck_after 15m)", UINT64_MAX },
		{ "idle lock by file times, watched 1m", LOCK, 60 * M, false, 0, 1 * M,
		  true, false, false, 0, "(newest file time 1h old)", 14 * M },
		{ "expired lock, watched 2m", EXPIRED_LOCK, 3 * M, false, 0, 2 * M,
		  true, false, false, 0, "watched with no change for 2m", 13 * M },
		{ "unreadable locks/", LOCK, 60 * M, false, -EACCES, 15 * M,
		  true, false, false, 0, "cannot be read whole", UINT64_MAX },
		{ "record building, no lock", NO_LOCK, 5 * M, true, 0, 5 * M,
		  true, false, false, 0, "is Building; watched with no change for 5m", 10 * M },
		{ "record idle, no lock", NO_LOCK, 20 * M, true, 0, 15 * M,
		  true, true, true, 1, "is Building, watched with no change for 15m", UINT64_MAX },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct site_snapshot snap;
		struct policy_decision d;
		base_tree(&snap, rows[i].age_ms);
		snap.locks_err = rows[i].locks_err;
		if (rows[i].lock == LOCK)
			add_lock(&snap, rows[i].age_ms, 20 * M);
		else if (rows[i].lock == EXPIRED_LOCK)
			add_lock(&snap, rows[i].age_ms, -1 * S);
		if (rows[i].building_record)
			add_record(&snap, "temp-1a2b3c4d", KUDU_STATE_BUILDING, false, rows[i].age_ms);
		struct policy_history h = watched(1000 * M, rows[i].quiet_ms, false);
		assert_int_equal(policy_decide(&snap, &h, &params, NOW_WALL, 1000 * M, &d), 0);
		if (d.claims_running != rows[i].claims || d.stuck != rows[i].stuck ||
		    d.act != rows[i].act || d.n_removals != rows[i].removals)
			fail_msg("%s: claims %d stuck %d act %d removals %zu", rows[i].what,
				 d.claims_running, d.stuck, d.act, d.n_removals);
		if (!strstr(d.reason, rows[i].reason))
			fail_msg("%s: reason '%s'", rows[i].what, d.reason);
		if (d.next_check_ms != rows[i].next_check_ms)
			fail_msg("%s: next check %llu", rows[i].what,
				 (unsigned long long)d.next_check_ms);
		policy_decision_free(&d);
		site_snapshot_free(&snap);
	}
}

/* Times from the share are whatever a writer put there. 1700-01-01 fits an
 * int64_t of nanoseconds, but its distance to now does not: the expired
 * lock must read as expired (not as live for centuries), and nothing may
 * overflow on the way (UBSan aborts on signed overflow). */
#define NS_1700 ((int64_t)-8520336000LL * 1000000000LL)

static void test_ancient_lock_expiry_is_expired(void **state)
{
	struct site_snapshot snap;
	struct policy_decision d;
	struct policy_history w = { 0 };
	base_tree(&snap, 10 * S);
	struct site_entry *lock = add_lock(&snap, 10 * S, 0);
	lock->info.expiry_ns = NS_1700;
	assert_false(policy_observe(&w, &snap, 1000 * M));
	assert_int_equal(policy_decide(&snap, &w, &params, NOW_WALL, 1003 * M, &d), 0);
	assert_true(d.lock_expired);
	assert_false(d.act); /* shown, never acted on */
	policy_decision_free(&d);
	/* Report (nothing watched) says the same. */
	assert_int_equal(policy_decide(&snap, NULL, &params, NOW_WALL, 0, &d), 0);
	assert_true(d.lock_expired);
	policy_decision_free(&d);
	site_snapshot_free(&snap);
}

/* Table: entry times at and near the ends of int64_t, where a difference
 * with now overflows. A time in the past is old, a time in the future
 * counts as now, and nothing wraps around to the other side. */
static void test_hostile_times_saturate(void **state)
{
	static const struct {
		const char *what;
		int64_t mtime_ns, ctime_ns, expiry_ns;
		bool stuck;                 /* nothing watched: never */
		int64_t activity_age_ms;    /* -2: any age >= stuck_after */
	} rows[] = {
		{ "1700 mtime", NS_1700, 0, NS(1 * S), false, -2 },
		{ "INT64_MIN+1 mtime", INT64_MIN + 1, INT64_MIN + 1, NS(1 * S), false, -2 },
		{ "INT64_MAX mtime (2300, saturated)", INT64_MAX, 0, NS(1 * S), false, 0 },
		{ "INT64_MAX ctime", NS(0), INT64_MAX, NS(1 * S), false, 0 },
		{ "expiry INT64_MAX", NS_1700, 0, INT64_MAX, false, -2 },
		{ "expiry INT64_MIN+1", NS_1700, 0, INT64_MIN + 1, false, -2 },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct site_snapshot snap;
		struct policy_decision d;
		struct policy_history w = { 0 };
		base_tree(&snap, 60 * M);
		struct site_entry *lock = add_lock(&snap, 60 * M, 0);
		lock->info.expiry_ns = rows[i].expiry_ns == NS(1 * S) ? NOW_WALL + NS(1 * S)
								       : rows[i].expiry_ns;
		struct site_entry *p = add(&snap, SITE_AREA_DEPLOYMENTS, "pending",
					   KUDU_NAME_PENDING, S_IFREG, 0);
		lock->st.mtime_ns = lock->info_st.mtime_ns = rows[i].mtime_ns;
		p->st.mtime_ns = rows[i].mtime_ns;
		p->st.ctime_ns = rows[i].ctime_ns;
		snap.locks.mtime_ns = snap.deployments.mtime_ns = rows[i].mtime_ns;

		assert_int_equal(policy_decide(&snap, NULL, &params, NOW_WALL, 0, &d), 0);
		if (d.stuck != rows[i].stuck)
			fail_msg("%s: stuck %d", rows[i].what, d.stuck);
		if (rows[i].activity_age_ms == -2 ? d.activity_age_ms < (int64_t)params.stuck_after_ms
						 : d.activity_age_ms != rows[i].activity_age_ms)
			fail_msg("%s: activity age %lld", rows[i].what, (long long)d.activity_age_ms);
		policy_decision_free(&d);

		/* Watched, and watched again with the share's times moved to the
		 * other end: no overflow in observe or in the next check. */
		(void)policy_observe(&w, &snap, 1000 * M);
		snap.scanned_ns = NOW_WALL + NS(5 * S);
		p->st.mtime_ns = rows[i].mtime_ns == INT64_MAX ? INT64_MIN + 1 : INT64_MAX;
		(void)policy_observe(&w, &snap, 1000 * M + 5 * S);
		assert_int_equal(policy_decide(&snap, &w, &params, NOW_WALL + NS(5 * S),
					       1000 * M + 5 * S, &d), 0);
		assert_true(d.next_check_ms > 0);
		policy_decision_free(&d);
		site_snapshot_free(&snap);
	}
}

/* mtime can be set back by anyone who can write the file; ctime cannot be
 * set from user space. A file with an old mtime and a fresh ctime was
 * touched: that is activity, and so is a change of ctime alone. */
static void test_ctime_is_activity(void **state)
{
	struct site_snapshot snap;
	struct policy_decision d;
	build_stuck_tree(&snap);
	struct site_entry *temp = &snap.entries[index_of(&snap, "temp-1a2b3c4d")];
	uint64_t before = policy_fingerprint(&snap);
	temp->log_st.ctime_ns = NOW_WALL - NS(10 * S);
	assert_true(policy_fingerprint(&snap) != before);

	assert_int_equal(policy_decide(&snap, NULL, &params, NOW_WALL, 0, &d), 0);
	assert_int_equal(d.activity_age_ms, 10 * S);
	assert_false(d.stuck);
	policy_decision_free(&d);

	/* A ctime in the future counts as now, like a future mtime. */
	temp->log_st.ctime_ns = NOW_WALL + NS(60 * M);
	assert_int_equal(policy_decide(&snap, NULL, &params, NOW_WALL, 0, &d), 0);
	assert_int_equal(d.activity_age_ms, 0);
	assert_false(d.stuck);
	policy_decision_free(&d);

	/* The ctime of a folder entry counts too (a rename inside it). */
	temp->log_st.ctime_ns = 0;
	snap.entries[index_of(&snap, "pending")].st.ctime_ns = NOW_WALL - NS(20 * S);
	assert_int_equal(policy_decide(&snap, NULL, &params, NOW_WALL, 0, &d), 0);
	assert_int_equal(d.activity_age_ms, 20 * S);
	policy_decision_free(&d);
	site_snapshot_free(&snap);
}

/* ---- issue 14: claims by activity, the deployment id, the ladder ---------- */

/* A record whose file times are given one by one: received is its
 * receivedTime, status and log the ages of status.xml and log.log. */
static struct site_entry *add_record_times(struct site_snapshot *snap, const char *id,
					   enum kudu_state state, bool complete, int64_t received_ms,
					   int64_t status_ms, int64_t log_ms)
{
	struct site_entry *e = add_record(snap, id, state, complete, status_ms);
	e->status.received_ns = NOW_WALL - NS(received_ms);
	e->status_st.ctime_ns = e->status_st.mtime_ns;
	e->log_st = st_of(S_IFREG, log_ms);
	e->log_st.ctime_ns = e->log_st.mtime_ns;
	e->st.ctime_ns = e->st.mtime_ns;
	return e;
}

/* Table: which record claims to run follows activity (receivedTime,
 * status.xml, log.log), not receivedTime alone. F is a finished, active
 * record received after the unfinished temp-1a2b3c4d by its receivedTime.
 * No lock folder (the expired one was removed already). */
static void test_claim_follows_activity_table(void **state)
{
	static const struct {
		const char *what;
		int64_t f_received_ms, f_status_ms;   /* F's receivedTime, status.xml */
		int64_t u_received_ms, u_log_ms;      /* the temp record's */
		bool claims, stuck;
		const char *deployment_id;
		bool f_chmod_now;                     /* F's ctimes are now */
	} rows[] = {
		{ "temp record still writing its log", 1 * M, 1 * M, 60 * M, 10 * S,
		  true, false, "temp-1a2b3c4d", false },
		{ "temp record silent past stuck_after, after F finished", 30 * M, 30 * M, 60 * M,
		  20 * M, true, true, "temp-1a2b3c4d", false },
		{ "F's receivedTime ahead of its own status.xml is not believed", 1 * M, 30 * M,
		  60 * M, 20 * M, true, true, "temp-1a2b3c4d", false },
		{ "temp record gave up before F finished: F is the newest", 30 * M, 30 * M, 60 * M,
		  40 * M, false, false, "", false },
		{ "F's files had their mode changed (a chmod), not their content", 30 * M, 30 * M,
		  60 * M, 20 * M, true, true, "temp-1a2b3c4d", true },
		{ "the same mtimes: receivedTime decides, F was received later", 50 * M, 30 * M,
		  60 * M, 30 * M, false, false, "", false },
		{ "the same mtimes: receivedTime decides, the temp record later", 70 * M, 30 * M,
		  60 * M, 30 * M, true, true, "temp-1a2b3c4d", false },
		{ "a log write 2 s after F's: the same moment, receivedTime decides", 50 * M,
		  30 * M, 60 * M, 30 * M - 2 * S, false, false, "", false },
		{ "a log write just over 2 s after F's: the temp record claims", 50 * M, 30 * M,
		  60 * M, 30 * M - 2 * S - 1, true, true, "temp-1a2b3c4d", false },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct site_snapshot snap;
		struct policy_decision d;
		base_tree(&snap, 60 * M);
		add(&snap, SITE_AREA_LOCKS, "status.lock", KUDU_NAME_STATUS_LOCK, S_IFREG, 60 * M);
		add(&snap, SITE_AREA_DEPLOYMENTS, "active", KUDU_NAME_ACTIVE, S_IFREG,
		    rows[i].f_status_ms);
		snprintf(snap.active_id, sizeof(snap.active_id), "fedcba9876543210fedcba9876543210");
		struct site_entry *f = add_record_times(&snap, "fedcba9876543210fedcba9876543210",
							KUDU_STATE_SUCCESS, true, rows[i].f_received_ms,
							rows[i].f_status_ms, rows[i].f_status_ms);
		if (rows[i].f_chmod_now)
			f->status_st.ctime_ns = f->log_st.ctime_ns = NOW_WALL - NS(1 * S);
		add(&snap, SITE_AREA_DEPLOYMENTS, "pending", KUDU_NAME_PENDING, S_IFREG, 60 * M);
		add_record_times(&snap, "temp-1a2b3c4d", KUDU_STATE_PENDING, false,
				 rows[i].u_received_ms, rows[i].u_received_ms, rows[i].u_log_ms);
		/* Watched unchanged for stuck_after where the row is stuck; a
		 * change 10 s ago where it is live. */
		struct policy_history w = watched(1000 * M, rows[i].stuck ? 15 * M : 10 * S,
						  !rows[i].stuck);
		assert_int_equal(policy_decide(&snap, &w, &params, NOW_WALL, 1000 * M, &d), 0);
		if (d.claims_running != rows[i].claims || d.stuck != rows[i].stuck)
			fail_msg("%s: claims %d stuck %d (%s)", rows[i].what, d.claims_running,
				 d.stuck, d.reason);
		if (strcmp(d.deployment_id, rows[i].deployment_id) != 0)
			fail_msg("%s: deployment id '%s'", rows[i].what, d.deployment_id);
		/* Stuck: the unfinished record, pending and status.lock go; the
		 * finished, active record stays. */
		if (rows[i].stuck) {
			assert_true(d.act);
			assert_true(removes(&snap, &d, "temp-1a2b3c4d"));
			assert_true(removes(&snap, &d, "pending"));
			assert_true(removes(&snap, &d, "status.lock"));
			assert_false(removes(&snap, &d, "fedcba9876543210fedcba9876543210"));
			assert_int_equal(d.step, POLICY_STEP_CLEAR);
		} else {
			assert_int_equal(d.n_removals, 0);
			assert_int_equal(d.step, POLICY_STEP_NONE);
		}
		policy_decision_free(&d);
		site_snapshot_free(&snap);
	}
}

/* The lock folder names no record and the newest record is finished: the
 * hook still learns which unfinished record the cleanup removed (the
 * newest by activity of the ones removed). */
static void test_deployment_id_names_the_removed_record(void **state)
{
	struct site_snapshot snap;
	struct policy_decision d;
	base_tree(&snap, 60 * M);
	add_lock(&snap, 60 * M, 10 * M);
	add_record_times(&snap, "fedcba9876543210fedcba9876543210", KUDU_STATE_SUCCESS, true,
			 30 * M, 30 * M, 30 * M);
	add_record_times(&snap, "temp-00000001", KUDU_STATE_FAILED, false, 90 * M, 90 * M, 90 * M);
	add_record_times(&snap, "temp-00000002", KUDU_STATE_PENDING, false, 80 * M, 80 * M, 45 * M);
	add_record_times(&snap, "temp-00000003", KUDU_STATE_PENDING, false, 70 * M, 70 * M, 50 * M);
	struct policy_history w = watched(1000 * M, 15 * M, false);
	assert_int_equal(policy_decide(&snap, &w, &params, NOW_WALL, 1000 * M, &d), 0);
	assert_true(d.act);
	assert_true(removes(&snap, &d, "temp-00000002"));
	assert_true(removes(&snap, &d, "temp-00000003"));
	/* temp-00000002 wrote its log last, though received earlier. */
	assert_string_equal(d.deployment_id, "temp-00000002");
	policy_decision_free(&d);
	site_snapshot_free(&snap);
}

/* Table: the ladder. build_stuck_tree is idle for an hour; the previous
 * cleanup of the site (its archive session) is some time ago. */
static void test_ladder_table(void **state)
{
	enum { NONE = 0, AGO = 1 };
	static const struct {
		const char *what;
		int known;
		int64_t clear_ago_ms;    /* negative: in the future by our clock */
		bool allow;
		uint64_t quiet_ms;
		bool recurred, act;
		enum policy_step step;
		const char *reason;      /* "" : no ladder words */
	} rows[] = {
		{ "first incident", NONE, 0, true, 15 * M, false, true, POLICY_STEP_CLEAR, "" },
		{ "again 30m later, allowed", AGO, 30 * M, true, 15 * M, true, true,
		  POLICY_STEP_FULL_CLEAR, "found again 30m after the previous cleanup: full clear" },
		{ "again 30m later, not allowed", AGO, 30 * M, false, 15 * M, true, true,
		  POLICY_STEP_CLEAR, "found again 30m after the previous cleanup" },
		{ "again at escalate_within exactly", AGO, 60 * M, true, 15 * M, false, true,
		  POLICY_STEP_CLEAR, "" },
		{ "again just inside escalate_within", AGO, 60 * M - 1, true, 15 * M, true, true,
		  POLICY_STEP_FULL_CLEAR, "full clear" },
		{ "previous cleanup stamped in the future", AGO, -5 * M, true, 15 * M, false, true,
		  POLICY_STEP_CLEAR, "" },
		{ "again, but not watched stuck_after yet", AGO, 30 * M, true, 14 * M, false, false,
		  POLICY_STEP_NONE, "" },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct site_snapshot snap;
		struct policy_decision d;
		struct policy_params p = params;
		build_stuck_tree(&snap);
		p.escalate_within_ms = 60 * M;
		p.allow_full_clear = rows[i].allow;
		p.previous_clear_known = rows[i].known == AGO;
		p.previous_clear_ns = NOW_WALL - NS(rows[i].clear_ago_ms);
		struct policy_history w = watched(1000 * M, rows[i].quiet_ms, false);
		assert_int_equal(policy_decide(&snap, &w, &p, NOW_WALL, 1000 * M, &d), 0);
		if (d.recurred != rows[i].recurred || d.act != rows[i].act || d.step != rows[i].step)
			fail_msg("%s: recurred %d act %d step %s (%s)", rows[i].what, d.recurred, d.act,
				 policy_step_name(d.step), d.reason);
		if (rows[i].reason[0] ? !strstr(d.reason, rows[i].reason)
				      : strstr(d.reason, "found again") != NULL)
			fail_msg("%s: reason '%s'", rows[i].what, d.reason);
		if (!rows[i].recurred)
			assert_true(d.since_clear_ms == -1);
		policy_decision_free(&d);
		site_snapshot_free(&snap);
	}
}

/* The full clear: Kudu's deployment state goes (every record, active,
 * pending, with the usual lock leftovers), the lock folder still last;
 * tools/, settings.xml, the other locks and what is not Kudu's stay. */
static void test_full_clear_plan(void **state)
{
	struct site_snapshot snap;
	struct policy_decision d;
	struct policy_params p = params;
	build_stuck_tree(&snap);
	p.escalate_within_ms = 60 * M;
	p.allow_full_clear = true;
	p.previous_clear_known = true;
	p.previous_clear_ns = NOW_WALL - NS(20 * M);
	struct policy_history w = watched(1000 * M, 15 * M, false);

	assert_int_equal(policy_decide(&snap, &w, &p, NOW_WALL, 1000 * M, &d), 0);
	assert_true(d.act);
	assert_true(d.recurred);
	assert_int_equal(d.step, POLICY_STEP_FULL_CLEAR);
	assert_string_equal(policy_step_hook_name(d.step), "full-clear");
	assert_true(d.since_clear_ms == 20 * M);
	const char *order[] = { "status.lock", "deployments.lock", "pending", "active",
				"temp-1a2b3c4d", "temp-5e6f7a8b", "temp-99999999",
				"0123456789abcdef0123456789abcdef", "deployment" };
	assert_int_equal(d.n_removals, sizeof(order) / sizeof(order[0]));
	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++)
		assert_string_equal(snap.entries[d.removals[i]].name, order[i]);
	const char *kept[] = { "settings.xml", "tools", "hooks.lock", "sshkey.lock", "notes.txt",
			       "temp-0000000a" };
	for (size_t i = 0; i < sizeof(kept) / sizeof(kept[0]); i++)
		assert_false(removes(&snap, &d, kept[i]));
	assert_int_equal(d.entries[index_of(&snap, "0123456789abcdef0123456789abcdef")].verdict,
			 POLICY_CLEARED);
	assert_int_equal(d.entries[index_of(&snap, "temp-5e6f7a8b")].verdict, POLICY_CLEARED);
	assert_int_equal(d.entries[index_of(&snap, "active")].verdict, POLICY_CLEARED);
	assert_int_equal(d.entries[index_of(&snap, "temp-0000000a")].verdict, POLICY_FOREIGN);
	assert_non_null(strstr(d.entries[index_of(&snap, "notes.txt")].reason,
			       "not even by the full clear"));
	assert_string_equal(d.deployment_id, "temp-1a2b3c4d");
	policy_decision_free(&d);

	/* Not allowed: the usual step, the same as a first incident. */
	p.allow_full_clear = false;
	assert_int_equal(policy_decide(&snap, &w, &p, NOW_WALL, 1000 * M, &d), 0);
	assert_true(d.recurred);
	assert_int_equal(d.step, POLICY_STEP_CLEAR);
	assert_string_equal(policy_step_hook_name(d.step), "clear");
	assert_int_equal(d.n_removals, 6);
	assert_false(removes(&snap, &d, "active"));
	assert_false(removes(&snap, &d, "0123456789abcdef0123456789abcdef"));
	policy_decision_free(&d);
	site_snapshot_free(&snap);
}

/* ---- issue 18: the long build, with the defaults --------------------------- */

/* The times Kudu writes the build's log.log in the trace below: every 30 s
 * for the first 10 minutes, then nothing for 30 minutes (a quiet npm or pip
 * install), then every 30 s until it ends at minute 45. */
#define TRACE_END_MS (45 * M)
static int64_t trace_last_write_ms(int64_t t_ms, unsigned *writes)
{
	int64_t last = 0;
	*writes = 0;
	for (int64_t w = 0; w <= t_ms && w < TRACE_END_MS; w += 30 * S) {
		if (w > 10 * M && w < 40 * M)
			continue;
		last = w;
		(*writes)++;
	}
	return last;
}

static struct site_stat trace_stat(mode_t type, ino_t ino, int64_t at_ms, int64_t size)
{
	struct site_stat st = { .present = true, .type = type, .dev = 1, .ino = ino,
				.mtime_ns = NOW_WALL + NS(at_ms), .ctime_ns = NOW_WALL + NS(at_ms),
				.size = size };
	return st;
}

/* The tree at share time t_ms: the lock taken at 0 (lockExpiry at minute
 * 25, never renewed, as Kudu does), a temp record Building, and after
 * minute 45 the lock gone and the record finished. */
static void trace_tree(struct site_snapshot *snap, int64_t t_ms)
{
	unsigned writes;
	int64_t last = trace_last_write_ms(t_ms, &writes);
	bool done = t_ms >= TRACE_END_MS;

	memset(snap, 0, sizeof(*snap));
	snap->root = trace_stat(S_IFDIR, 2, -100 * M, 0);
	snap->locks = trace_stat(S_IFDIR, 3, 0, 0);
	snap->deployments = trace_stat(S_IFDIR, 4, 0, 0);
	if (!done) {
		struct site_entry *lock = add(snap, SITE_AREA_LOCKS, "deployment",
					      KUDU_NAME_LOCK_FOLDER, S_IFDIR, 0);
		lock->st = trace_stat(S_IFDIR, 10, 0, 0);
		lock->info_st = trace_stat(S_IFREG, 11, 0, 180);
		lock->info_err = 0;
		lock->info.expiry_ns = NOW_WALL + NS(25 * M);
		snprintf(lock->info.op, sizeof(lock->info.op), "Performing deployment");
	}
	struct site_entry *rec = add_record(snap, "temp-1a2b3c4d",
					    done ? KUDU_STATE_SUCCESS : KUDU_STATE_BUILDING, done, 0);
	int64_t status_at = done ? TRACE_END_MS : t_ms >= 40 * M ? 40 * M : t_ms >= 10 * M ? 10 * M : 0;
	rec->st = trace_stat(S_IFDIR, 20, 0, 0);
	rec->status_st = trace_stat(S_IFREG, 21, status_at, 900);
	rec->log_st = trace_stat(S_IFREG, 22, last, (int64_t)writes * 100);
	rec->status.received_ns = NOW_WALL;
}

/* Issue 18's long build: 45 minutes with a silent step of 30 minutes and its
 * lockExpiry passed at minute 25, never touched, with the defaults
 * (stuck_after 45m), whenever the agent starts and whatever this host's
 * clock says. A rescan every 5 s, then an hour after the build ended. */
static void test_long_build_trace_with_defaults(void **state)
{
	static const int64_t starts_ms[] = { 0, 10 * M, 12 * M, 30 * M };
	static const int64_t skews_ms[] = { 0, 2 * 60 * M, -2 * 60 * M };
	const struct policy_params defaults = { .stuck_after_ms = CONFIG_STUCK_AFTER_DEFAULT_MS };

	for (size_t si = 0; si < sizeof(starts_ms) / sizeof(starts_ms[0]); si++) {
		for (size_t k = 0; k < sizeof(skews_ms) / sizeof(skews_ms[0]); k++) {
			struct policy_history h = { 0 };
			bool saw_expired = false;
			for (int64_t t = starts_ms[si]; t <= TRACE_END_MS + 60 * M; t += 5 * S) {
				struct site_snapshot snap;
				struct policy_decision d;
				int64_t wall = NOW_WALL + NS(skews_ms[k]) + NS(t);
				trace_tree(&snap, t);
				snap.scanned_ns = wall;
				(void)policy_observe(&h, &snap, 1000 * M + (uint64_t)t);
				assert_int_equal(policy_decide(&snap, &h, &defaults, wall,
							       1000 * M + (uint64_t)t, &d), 0);
				if (d.stuck || d.act || d.n_removals)
					fail_msg("agent from minute %lld, clock %+lld min: at %lld s "
						 "stuck %d act %d (%s)", (long long)(starts_ms[si] / M),
						 (long long)(skews_ms[k] / M), (long long)(t / S), d.stuck,
						 d.act, d.reason);
				saw_expired = saw_expired || (d.lock_expired && t < TRACE_END_MS);
				policy_decision_free(&d);
				site_snapshot_free(&snap);
			}
			/* The lock's expiry passed while it ran (shown, not acted on). */
			if (skews_ms[k] >= 0)
				assert_true(saw_expired);
		}
	}
	/* The default itself is above the longest live silence on record. */
	assert_true(CONFIG_STUCK_AFTER_DEFAULT_MS > 30 * M);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty_tree_is_idle),
		cmocka_unit_test(test_stuck_tree_cleanup_plan),
		cmocka_unit_test(test_active_temp_record_never_removed),
		cmocka_unit_test(test_file_times_never_prove_death),
		cmocka_unit_test(test_first_scan_starts_the_watch),
		cmocka_unit_test(test_report_plans_as_if_watched),
		cmocka_unit_test(test_recent_activity_is_live),
		cmocka_unit_test(test_observed_change_is_activity),
		cmocka_unit_test(test_future_file_time_is_a_change),
		cmocka_unit_test(test_expired_lock_is_never_acted_on),
		cmocka_unit_test(test_info_lock_without_expiry_is_not_expired),
		cmocka_unit_test(test_next_check_ignores_lock_expiry),
		cmocka_unit_test(test_leftover_status_lock_is_harmless),
		cmocka_unit_test(test_unfinished_newest_record_without_lock),
		cmocka_unit_test(test_symlinked_lock_folder_is_foreign),
		cmocka_unit_test(test_unreadable_area_blocks),
		cmocka_unit_test(test_lockwarden_names_are_never_removed),
		cmocka_unit_test(test_whole_record),
		cmocka_unit_test(test_over_the_cap_cannot_tell),
		cmocka_unit_test(test_observe_baseline_and_changes),
		cmocka_unit_test(test_observed_change_dated_at_the_scan),
		cmocka_unit_test(test_host_clock_off_waits_stuck_after),
		cmocka_unit_test(test_threshold_table),
		cmocka_unit_test(test_decision_steps_table),
		cmocka_unit_test(test_ancient_lock_expiry_is_expired),
		cmocka_unit_test(test_hostile_times_saturate),
		cmocka_unit_test(test_ctime_is_activity),
		cmocka_unit_test(test_claim_follows_activity_table),
		cmocka_unit_test(test_deployment_id_names_the_removed_record),
		cmocka_unit_test(test_ladder_table),
		cmocka_unit_test(test_full_clear_plan),
		cmocka_unit_test(test_long_build_trace_with_defaults),
	};
	return cmocka_run_group_tests_name("policy", tests, NULL, NULL);
}
