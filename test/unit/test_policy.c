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

#include "policy.h"
#include "site.h"

#define S 1000LL                    /* ms per second */
#define M (60 * S)
#define NS(ms) ((int64_t)(ms) * 1000000LL)
#define NOW_WALL NS(1800000000000LL)  /* 2027-01-15, by the share's clock too */

static const struct policy_params params = { .stuck_after_ms = 15 * M, .quiet_period_ms = 2 * M };
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
	struct policy_history w = watched(1000 * M, 2 * M, false);

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
	assert_non_null(strstr(d.reason, "no activity for 1h"));
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
	struct policy_history w = watched(1000 * M, 5 * M, false);
	assert_int_equal(policy_decide(&snap, &w, &params, NOW_WALL, 1000 * M, &d), 0);
	assert_true(d.act);
	assert_false(removes(&snap, &d, "temp-1a2b3c4d"));
	assert_true(removes(&snap, &d, "deployment"));
	policy_decision_free(&d);
	site_snapshot_free(&snap);
}

/* Quiet by mtimes is not enough: the agent must have watched quiet_period. */
static void test_quiet_period_is_watched_not_read(void **state)
{
	struct site_snapshot snap;
	struct policy_decision d;
	build_stuck_tree(&snap);
	struct policy_history w = watched(1000 * M, 30 * S, false);
	assert_int_equal(policy_decide(&snap, &w, &params, NOW_WALL, 1000 * M, &d), 0);
	assert_true(d.stuck);
	assert_false(d.act);
	assert_int_equal(d.n_removals, 0);
	assert_int_equal(d.next_check_ms, 90 * S);
	policy_decision_free(&d);

	/* Nothing watched at all (report) never acts either. */
	assert_int_equal(policy_decide(&snap, NULL, &params, NOW_WALL, 0, &d), 0);
	assert_true(d.stuck);
	assert_false(d.act);
	policy_decision_free(&d);
	site_snapshot_free(&snap);
}

static void test_report_plans_as_if_quiet(void **state)
{
	struct site_snapshot snap;
	struct policy_decision d;
	struct policy_params p = params;
	p.plan_as_if_quiet = true;
	build_stuck_tree(&snap);
	add(&snap, SITE_AREA_DEPLOYMENTS, ".lockwarden-trash-temp-0badf00d", KUDU_NAME_TRASH,
	    S_IFDIR, 1 * M);
	assert_int_equal(policy_decide(&snap, NULL, &p, NOW_WALL, 0, &d), 0);
	assert_false(d.act);
	assert_int_equal(d.n_removals, 6); /* the plan, without our own trash */
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
	assert_int_equal(d.activity_age_ms, 5 * S);
	/* The held lock expires in 10 minutes: that is the next moment. */
	assert_int_equal(d.next_check_ms, 10 * M);
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
	assert_int_equal(d.activity_age_ms, 3 * M);
	assert_false(d.stuck);
	assert_false(d.act);
	/* Stuck in 12 minutes, but the lock expires in 10: checked then. */
	assert_int_equal(d.next_check_ms, 10 * M);
	policy_decision_free(&d);
	snap.entries[index_of(&snap, "deployment")].info.expiry_ns = NOW_WALL + NS(60 * M);
	assert_int_equal(policy_decide(&snap, &w, &params, NOW_WALL, 1000 * M, &d), 0);
	assert_int_equal(d.next_check_ms, 12 * M);
	policy_decision_free(&d);
	site_snapshot_free(&snap);
}

/* Clock skew: mtimes an hour in the future count as now, until the agent has
 * itself watched stuck_after pass without a change. */
static void test_future_mtimes_need_watched_stuck_after(void **state)
{
	struct site_snapshot snap;
	struct policy_decision d;
	build_stuck_tree(&snap);
	snap.entries[index_of(&snap, "temp-1a2b3c4d")].log_st.mtime_ns = NOW_WALL + NS(60 * M);

	struct policy_history w = watched(1000 * M, 14 * M, false);
	assert_int_equal(policy_decide(&snap, &w, &params, NOW_WALL, 1000 * M, &d), 0);
	assert_int_equal(d.activity_age_ms, 0);
	assert_false(d.stuck);
	assert_false(d.act);
	assert_int_equal(d.next_check_ms, 1 * M);
	policy_decision_free(&d);

	w = watched(1000 * M, 15 * M, false);
	assert_int_equal(policy_decide(&snap, &w, &params, NOW_WALL, 1000 * M, &d), 0);
	assert_true(d.stuck);
	assert_true(d.act);
	policy_decision_free(&d);
	site_snapshot_free(&snap);
}

/* An expired lock is free by Kudu's rule: it goes after quiet_period even
 * with recent activity, but alone: the records may still be in use. */
static void test_expired_lock_goes_alone(void **state)
{
	struct site_snapshot snap;
	struct policy_decision d;
	build_stuck_tree(&snap);
	struct site_entry *lock = &snap.entries[index_of(&snap, "deployment")];
	lock->info.expiry_ns = NOW_WALL - NS(1 * S);
	snap.entries[index_of(&snap, "temp-1a2b3c4d")].log_st.mtime_ns = NOW_WALL - NS(3 * M);

	struct policy_history w = watched(1000 * M, 2 * M, false);
	assert_int_equal(policy_decide(&snap, &w, &params, NOW_WALL, 1000 * M, &d), 0);
	assert_true(d.lock_expired);
	assert_true(d.act);
	assert_int_equal(d.n_removals, 1);
	assert_string_equal(snap.entries[d.removals[0]].name, "deployment");
	assert_non_null(strstr(d.reason, "lockExpiry"));
	policy_decision_free(&d);

	/* Not yet quiet long enough: wait for the rest of quiet_period. */
	w = watched(1000 * M, 90 * S, false);
	assert_int_equal(policy_decide(&snap, &w, &params, NOW_WALL, 1000 * M, &d), 0);
	assert_false(d.act);
	assert_int_equal(d.next_check_ms, 30 * S);
	policy_decision_free(&d);

	/* A null lockExpiry means the same to Kudu. */
	lock->info.expiry_ns = KUDU_TIME_NONE;
	w = watched(1000 * M, 2 * M, false);
	assert_int_equal(policy_decide(&snap, &w, &params, NOW_WALL, 1000 * M, &d), 0);
	assert_true(d.lock_expired);
	assert_true(d.act);
	policy_decision_free(&d);

	/* An unreadable info.lock is not an expired one. */
	lock->info_err = -EINVAL;
	assert_int_equal(policy_decide(&snap, &w, &params, NOW_WALL, 1000 * M, &d), 0);
	assert_false(d.lock_expired);
	assert_false(d.act);
	policy_decision_free(&d);
	site_snapshot_free(&snap);
}

/* The decision timer: a held lock expiring in 40 s is checked then. */
static void test_next_check_at_lock_expiry(void **state)
{
	struct site_snapshot snap;
	struct policy_decision d;
	base_tree(&snap, 10 * S);
	add_lock(&snap, 10 * S, 40 * S);
	struct policy_history w = watched(1000 * M, 5 * M, false);
	assert_int_equal(policy_decide(&snap, &w, &params, NOW_WALL, 1000 * M, &d), 0);
	assert_false(d.act);
	assert_int_equal(d.next_check_ms, 40 * S);
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
	struct policy_history w = watched(1000 * M, 2 * M, false);
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

static void test_own_trash_finished_when_watching(void **state)
{
	struct site_snapshot snap;
	struct policy_decision d;
	base_tree(&snap, 60 * M);
	add(&snap, SITE_AREA_DEPLOYMENTS, ".lockwarden-trash-temp-1a2b3c4d", KUDU_NAME_TRASH,
	    S_IFDIR, 1 * S);
	struct policy_history w = watched(1000 * M, 1 * S, false);
	assert_int_equal(policy_decide(&snap, &w, &params, NOW_WALL, 1000 * M, &d), 0);
	assert_true(d.act);
	assert_int_equal(d.n_removals, 1);
	policy_decision_free(&d);
	site_snapshot_free(&snap);
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

/* A change is dated by the mtime that explains it, when that falls between
 * the two scans, and at the scan that saw it otherwise. */
static void test_observed_change_dated_by_mtime_in_window(void **state)
{
	struct site_snapshot snap;
	struct policy_history w = { 0 };
	build_stuck_tree(&snap);
	snap.scanned_ns = NOW_WALL - NS(5 * S);
	assert_false(policy_observe(&w, &snap, 100 * S));

	/* The log grew 3.2 s before the next scan began, 1.8 s after the
	 * previous one: the change is dated 3.2 s back. */
	snap.scanned_ns = NOW_WALL;
	struct site_entry *temp = &snap.entries[index_of(&snap, "temp-1a2b3c4d")];
	temp->log_st.size += 10;
	temp->log_st.mtime_ns = NOW_WALL - NS(3200);
	assert_true(policy_observe(&w, &snap, 105 * S));
	assert_int_equal(w.last_change_ms, 105 * S - 3200);

	/* A removal leaves no newer mtime: dated at the scan. */
	snap.scanned_ns = NOW_WALL + NS(5 * S);
	snap.n_entries--;
	assert_true(policy_observe(&w, &snap, 110 * S));
	assert_int_equal(w.last_change_ms, 110 * S);

	/* An mtime from the future (the share's clock ahead) is not believed. */
	snap.scanned_ns = NOW_WALL + NS(10 * S);
	temp->log_st.size += 10;
	temp->log_st.mtime_ns = NOW_WALL + NS(60 * M);
	assert_true(policy_observe(&w, &snap, 115 * S));
	assert_int_equal(w.last_change_ms, 115 * S);
	site_snapshot_free(&snap);
}

/* A wall clock that jumps ahead does not expire a lock the agent saw with
 * time to go: the monotonic clock must agree. */
static void test_wall_clock_jump_does_not_expire_a_seen_lock(void **state)
{
	struct site_snapshot snap;
	struct policy_decision d;
	struct policy_history w = { 0 };
	base_tree(&snap, 10 * S);        /* a build that wrote 10 s ago */
	add_lock(&snap, 10 * S, 20 * M); /* 20 minutes to go when first seen */
	assert_false(policy_observe(&w, &snap, 1000 * M));
	assert_true(w.lock_known);
	assert_int_equal(w.lock_left_ms, 20 * M);

	/* Three minutes later by the monotonic clock, three hours by the wall:
	 * neither the lock nor the mtimes (now "3 hours old") count. */
	int64_t jumped = NOW_WALL + NS(3 * 60 * M);
	snap.scanned_ns = jumped;
	assert_false(policy_observe(&w, &snap, 1003 * M));
	assert_true(w.clock_jumped);
	assert_int_equal(policy_decide(&snap, &w, &params, jumped, 1003 * M, &d), 0);
	assert_false(d.lock_expired);
	assert_false(d.stuck);
	assert_false(d.act);
	assert_int_equal(d.next_check_ms, 12 * M); /* stuck_after watched, from its start */
	policy_decision_free(&d);

	/* Fifteen minutes watched without a change: stuck, whatever the clock. */
	assert_int_equal(policy_decide(&snap, &w, &params, jumped, 1015 * M, &d), 0);
	assert_true(d.stuck);
	assert_true(d.act);
	assert_non_null(strstr(d.reason, "jumped"));
	policy_decision_free(&d);

	/* Twenty minutes after it was seen, both clocks agree on the lock. */
	assert_int_equal(policy_decide(&snap, &w, &params, jumped, 1020 * M, &d), 0);
	assert_true(d.lock_expired);
	policy_decision_free(&d);

	/* A change stamped by a clock that agrees with ours ends the doubt. */
	snap.entries[0].info_st.mtime_ns = jumped + NS(4 * M);
	snap.entries[0].info_st.size += 1;
	snap.scanned_ns = jumped + NS(5 * M);
	assert_true(policy_observe(&w, &snap, 1005 * M));
	assert_false(w.clock_jumped);

	/* A lock first seen already expired goes by the wall clock alone. */
	struct policy_history fresh = { 0 };
	snap.scanned_ns = jumped;
	assert_false(policy_observe(&fresh, &snap, 5000 * M));
	assert_int_equal(policy_decide(&snap, &fresh, &params, jumped, 5002 * M, &d), 0);
	assert_true(d.lock_expired);
	policy_decision_free(&d);
	site_snapshot_free(&snap);
}

/* Table: this host's wall clock off the share's (issue 10). File times and
 * lockExpiry are the share's (NOW_WALL is the share's now); the agent's wall
 * clock is NOW_WALL + skew, and the scan measured offset (or not). The
 * agent's first scan (policy_observe), and the decision on it. */
static void test_share_clock_offset_table(void **state)
{
	static const struct {
		const char *what;
		int64_t skew_ms;         /* this host's wall clock - the share's */
		bool known;              /* the scan measured the offset */
		int64_t offset_ms;       /* what it measured */
		int64_t expiry_in_ms;    /* lockExpiry, from the share's now */
		int64_t age_ms;          /* of every file time, by the share's clock */
		bool lock_expired, stuck;
		int64_t lock_left_ms;    /* as the history remembers it */
	} rows[] = {
		{ "2 h ahead, fresh lock, quiet 10 minutes", 2 * 60 * M, true, 2 * 60 * M,
		  20 * M, 10 * M, false, false, 20 * M },
		{ "2 h ahead, the deployment silent 20 minutes", 2 * 60 * M, true, 2 * 60 * M,
		  20 * M, 20 * M, false, true, 20 * M },
		{ "2 h behind, lock expired an hour ago", -2 * 60 * M, true, -2 * 60 * M,
		  -60 * M, 10 * S, true, true, 0 },
		{ "2 h behind, fresh lock", -2 * 60 * M, true, -2 * 60 * M,
		  20 * M, 10 * S, false, false, 20 * M },
		{ "offset unknown, 2 h ahead: judged by this host's clock", 2 * 60 * M, false, 0,
		  20 * M, 10 * M, true, true, 0 },
		{ "offset unknown, 2 h behind: judged by this host's clock", -2 * 60 * M, false, 0,
		  -60 * M, 10 * S, false, false, 60 * M },
		{ "1.5 s ahead, within the tolerance: not applied", 1500, true, 1500,
		  1000, 10 * S, true, true, 0 },
		{ "2.5 s ahead, beyond the tolerance: applied", 2500, true, 2500,
		  1000, 10 * S, false, false, 1000 },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct site_snapshot snap;
		struct policy_decision d;
		struct policy_history h = { 0 };
		int64_t wall = NOW_WALL + NS(rows[i].skew_ms);
		base_tree(&snap, rows[i].age_ms);
		add_lock(&snap, rows[i].age_ms, rows[i].expiry_in_ms);
		add_record(&snap, "temp-1a2b3c4d", KUDU_STATE_BUILDING, false, rows[i].age_ms);
		snap.scanned_ns = wall;
		snap.clock_offset_known = rows[i].known;
		snap.clock_offset_ns = NS(rows[i].offset_ms);
		assert_false(policy_observe(&h, &snap, 1000 * M));
		assert_int_equal(policy_decide(&snap, &h, &params, wall, 1000 * M, &d), 0);
		int64_t left = h.lock_left_ms < 0 ? 0 : h.lock_left_ms;
		if (d.lock_expired != rows[i].lock_expired || d.stuck != rows[i].stuck ||
		    left != rows[i].lock_left_ms)
			fail_msg("%s: lock_expired %d stuck %d lock_left %lld ms", rows[i].what,
				 d.lock_expired, d.stuck, (long long)h.lock_left_ms);
		policy_decision_free(&d);
		site_snapshot_free(&snap);
	}
}

/* A jump of this host's clock that a new measure of the offset made up for
 * is no jump: file times stay believed. One it did not is. */
static void test_offset_made_up_jump_is_no_jump(void **state)
{
	struct site_snapshot snap;
	struct policy_history h = { 0 };
	base_tree(&snap, 10 * S);
	add_lock(&snap, 10 * S, 20 * M);
	assert_false(policy_observe(&h, &snap, 1000 * M));

	/* One minute on; this host's clock jumped 2 h ahead, and was measured. */
	snap.scanned_ns = NOW_WALL + NS(1 * M) + NS(2 * 60 * M);
	snap.clock_offset_known = true;
	snap.clock_offset_ns = NS(2 * 60 * M);
	assert_false(policy_observe(&h, &snap, 1001 * M));
	assert_false(h.clock_jumped);

	/* It jumps back; the offset is not measured again yet. */
	snap.scanned_ns = NOW_WALL + NS(2 * M);
	assert_false(policy_observe(&h, &snap, 1002 * M));
	assert_true(h.clock_jumped);
	site_snapshot_free(&snap);
}

/* Table: thresholds at their edges, stuck_after 15m, quiet_period 2m. */
static void test_threshold_table(void **state)
{
	static const struct {
		int64_t mtime_age_ms;
		uint64_t quiet_ms;
		bool stuck, act;
	} rows[] = {
		{ 15 * M - 1, 2 * M, false, false },
		{ 15 * M, 2 * M, true, true },
		{ 15 * M, 2 * M - 1, true, false },
		{ 24 * 60 * M, 0, true, false },
		{ 0, 15 * M - 1, false, false },
		{ 0, 15 * M, true, true },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct site_snapshot snap;
		struct policy_decision d;
		base_tree(&snap, rows[i].mtime_age_ms);
		add_lock(&snap, rows[i].mtime_age_ms, 10 * M);
		struct policy_history w = watched(1000 * M, rows[i].quiet_ms, false);
		assert_int_equal(policy_decide(&snap, &w, &params, NOW_WALL, 1000 * M, &d), 0);
		if (d.stuck != rows[i].stuck || d.act != rows[i].act)
			fail_msg("row %zu: stuck %d act %d", i, d.stuck, d.act);
		policy_decision_free(&d);
		site_snapshot_free(&snap);
	}
}

/* Table: one row per situation, through the four steps of a decision:
 * assess (claims, stuck), plan (act, removals), explain (the reason) and
 * the next check. stuck_after 15m, quiet_period 2m. */
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
		  true, false, false, 0, "last activity 10s ago (stuck after 15m)", 10 * M },
		{ "idle lock, quiet", LOCK, 60 * M, false, 0, 2 * M,
		  true, true, true, 1, "no activity for 1h (stuck_after 15m)", UINT64_MAX },
		{ "idle lock, not quiet yet", LOCK, 60 * M, false, 0, 1 * M,
		  true, true, false, 0, "no activity for 1h", 1 * M },
		{ "expired lock, recent activity", EXPIRED_LOCK, 3 * M, false, 0, 2 * M,
		  true, true, true, 1, "has passed, so Kudu treats it as free", UINT64_MAX },
		{ "unreadable locks/", LOCK, 60 * M, false, -EACCES, 2 * M,
		  true, false, false, 0, "cannot be read whole", UINT64_MAX },
		{ "record building, no lock", NO_LOCK, 5 * M, true, 0, 5 * M,
		  true, false, false, 0, "is Building; last activity 5m ago", 10 * M },
		{ "record idle, no lock", NO_LOCK, 20 * M, true, 0, 3 * M,
		  true, true, true, 1, "is Building with no activity for 20m", UINT64_MAX },
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
	assert_true(w.lock_left_ms <= 0);
	assert_int_equal(policy_decide(&snap, &w, &params, NOW_WALL, 1003 * M, &d), 0);
	assert_true(d.lock_expired);
	assert_true(d.act);
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
		bool stuck;                 /* by the mtimes alone, nothing watched */
		int64_t activity_age_ms;    /* -2: any age >= stuck_after */
	} rows[] = {
		{ "1700 mtime", NS_1700, 0, NS(1 * S), true, -2 },
		{ "INT64_MIN+1 mtime", INT64_MIN + 1, INT64_MIN + 1, NS(1 * S), true, -2 },
		{ "INT64_MAX mtime (2300, saturated)", INT64_MAX, 0, NS(1 * S), false, 0 },
		{ "INT64_MAX ctime", NS(0), INT64_MAX, NS(1 * S), false, 0 },
		{ "expiry INT64_MAX", NS_1700, 0, INT64_MAX, true, -2 },
		{ "expiry INT64_MIN+1", NS_1700, 0, INT64_MIN + 1, true, -2 },
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
		struct policy_history w = watched(1000 * M, 5 * M, false);
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
	struct policy_history w = watched(1000 * M, 5 * M, false);
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
		{ "first incident", NONE, 0, true, 2 * M, false, true, POLICY_STEP_CLEAR, "" },
		{ "again 30m later, allowed", AGO, 30 * M, true, 2 * M, true, true,
		  POLICY_STEP_FULL_CLEAR, "found again 30m after the previous cleanup: full clear" },
		{ "again 30m later, not allowed", AGO, 30 * M, false, 2 * M, true, true,
		  POLICY_STEP_CLEAR, "found again 30m after the previous cleanup" },
		{ "again at escalate_within exactly", AGO, 60 * M, true, 2 * M, false, true,
		  POLICY_STEP_CLEAR, "" },
		{ "again just inside escalate_within", AGO, 60 * M - 1, true, 2 * M, true, true,
		  POLICY_STEP_FULL_CLEAR, "full clear" },
		{ "previous cleanup stamped in the future", AGO, -5 * M, true, 2 * M, false, true,
		  POLICY_STEP_CLEAR, "" },
		{ "again, but not quiet yet", AGO, 30 * M, true, 1 * M, false, false,
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
	struct policy_history w = watched(1000 * M, 2 * M, false);

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

/* An expired lock while the tree is active is Kudu's own rule, not a
 * stuck deployment found again: the lock folder alone goes, whatever the
 * ladder says. */
static void test_lock_only_never_escalates(void **state)
{
	struct site_snapshot snap;
	struct policy_decision d;
	struct policy_params p = params;
	base_tree(&snap, 3 * M);
	add_lock(&snap, 3 * M, -1 * S);
	add(&snap, SITE_AREA_DEPLOYMENTS, "active", KUDU_NAME_ACTIVE, S_IFREG, 3 * M);
	add_record(&snap, "0123456789abcdef0123456789abcdef", KUDU_STATE_SUCCESS, true, 90 * M);
	p.escalate_within_ms = 60 * M;
	p.allow_full_clear = true;
	p.previous_clear_known = true;
	p.previous_clear_ns = NOW_WALL - NS(10 * M);
	struct policy_history w = watched(1000 * M, 2 * M, false);
	assert_int_equal(policy_decide(&snap, &w, &p, NOW_WALL, 1000 * M, &d), 0);
	assert_true(d.act);
	assert_false(d.recurred);
	assert_int_equal(d.step, POLICY_STEP_LOCK);
	assert_int_equal(d.n_removals, 1);
	assert_true(removes(&snap, &d, "deployment"));
	policy_decision_free(&d);
	site_snapshot_free(&snap);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty_tree_is_idle),
		cmocka_unit_test(test_stuck_tree_cleanup_plan),
		cmocka_unit_test(test_active_temp_record_never_removed),
		cmocka_unit_test(test_quiet_period_is_watched_not_read),
		cmocka_unit_test(test_report_plans_as_if_quiet),
		cmocka_unit_test(test_recent_activity_is_live),
		cmocka_unit_test(test_observed_change_is_activity),
		cmocka_unit_test(test_future_mtimes_need_watched_stuck_after),
		cmocka_unit_test(test_expired_lock_goes_alone),
		cmocka_unit_test(test_next_check_at_lock_expiry),
		cmocka_unit_test(test_leftover_status_lock_is_harmless),
		cmocka_unit_test(test_unfinished_newest_record_without_lock),
		cmocka_unit_test(test_symlinked_lock_folder_is_foreign),
		cmocka_unit_test(test_unreadable_area_blocks),
		cmocka_unit_test(test_whole_record),
		cmocka_unit_test(test_own_trash_finished_when_watching),
		cmocka_unit_test(test_observe_baseline_and_changes),
		cmocka_unit_test(test_observed_change_dated_by_mtime_in_window),
		cmocka_unit_test(test_wall_clock_jump_does_not_expire_a_seen_lock),
		cmocka_unit_test(test_share_clock_offset_table),
		cmocka_unit_test(test_offset_made_up_jump_is_no_jump),
		cmocka_unit_test(test_threshold_table),
		cmocka_unit_test(test_decision_steps_table),
		cmocka_unit_test(test_ancient_lock_expiry_is_expired),
		cmocka_unit_test(test_hostile_times_saturate),
		cmocka_unit_test(test_ctime_is_activity),
		cmocka_unit_test(test_claim_follows_activity_table),
		cmocka_unit_test(test_deployment_id_names_the_removed_record),
		cmocka_unit_test(test_ladder_table),
		cmocka_unit_test(test_full_clear_plan),
		cmocka_unit_test(test_lock_only_never_escalates),
	};
	return cmocka_run_group_tests_name("policy", tests, NULL, NULL);
}
