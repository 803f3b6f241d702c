/* policy.h - whether a deployment is stuck, and what a cleanup removes.
 *
 * Pure: a function of one snapshot, of what the agent has observed so far
 * (policy_history) and of the two clocks passed in. It never reads a clock, a
 * file or the environment. This is where every dangerous decision is made,
 * so it is the most tested file of the project.
 *
 * Every time from the share (file times, lockExpiry) is compared with the
 * share's clock: now_wall_ns less the offset the scan measured
 * (site_share_time_ns; the offset is an input like the clocks, unknown
 * meaning this host's clock), so one instance whose clock is hours off
 * judges as the others do.
 *
 * The rule (issue 2, ../shared/KUDU.md):
 *  - A deployment claims to be running when locks/deployment/ exists, or the
 *    newest record's status.xml is not finished. The newest record is the
 *    one with the latest activity: its receivedTime (never later than its
 *    status.xml was written), status.xml and log.log mtimes. Kudu instances'
 *    clocks differ, so receivedTime alone can put a finished record ahead
 *    of one still writing its log.
 *  - It is idle when it claims to be running and the tree shows no activity
 *    for stuck_after. The last activity is the later of the newest mtime or
 *    ctime of what a running deployment touches (a future time counts as
 *    now: the share's clock is not ours; ctime because mtime can be set back
 *    by anyone and ctime cannot) and the last change the agent saw between
 *    two scans. Once the agent has itself observed stuck_after pass without
 *    a change, file times cannot hold it back (clock skew).
 *  - A lock whose lockExpiry has passed (or is null) is free by Kudu's own
 *    rule: the lock folder alone may go after quiet_period. "Passed" by
 *    the share's clock and, for a lock the agent saw before its expiry, by the
 *    monotonic time since then too.
 *  - Stuck means exactly: idle, or holding an expired lock. Either calls for
 *    a cleanup (the whole one when idle, the lock folder alone otherwise).
 *  - Nothing is removed until the agent has observed quiet_period without a
 *    change, whatever the file times say.
 *  - The ladder: an idle deployment found again within escalate_within of
 *    the previous cleanup has recurred. With allow_full_clear its cleanup
 *    removes Kudu's deployment state too (every record, active, pending),
 *    never tools/, settings.xml or what is not Kudu's.
 *
 * Times from the share may be anything an int64_t holds (clock_ns_from
 * saturates); every difference taken here saturates too (clock_sub_ns).
 *
 * policy_decide works in four steps, each its own function: assess (the
 * facts: what claims to run, how old the last activity is, idle, expired,
 * quiet), plan (a verdict per entry and the removals in order), explain
 * (the one-line reason) and next check (when time alone could change it).
 */
#ifndef LOCKWARDEN_POLICY_H
#define LOCKWARDEN_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "site.h"

struct policy_params {
	uint64_t stuck_after_ms;
	uint64_t quiet_period_ms;
	/* report: plan the cleanup as if quiet_period had been observed
	 * without a change, to show what would go. Never proof of idleness. */
	bool plan_as_if_quiet;

	/* The ladder (the manual procedure's last step). previous_clear_ns is
	 * the wall time of this site's previous cleanup that took the usual
	 * step, by any instance, as its archive session on the share names it
	 * (so by the cleaning instance's clock). A stuck deployment found
	 * again within escalate_within of it has recurred; with
	 * allow_full_clear its cleanup becomes the full clear. A time ahead of
	 * now_wall_ns is not believed (another clock: a cleanup of any age
	 * could look recent), so it never escalates. */
	bool previous_clear_known;
	int64_t previous_clear_ns;
	uint64_t escalate_within_ms;
	bool allow_full_clear;
};

/* What the agent has observed scan after scan, carried by its owner. (Not
 * "watch": that word is for inotify, watch.c.) */
struct policy_history {
	bool started;             /* at least one scan was observed */
	uint64_t start_ms;        /* monotonic time of the first observed scan */
	bool seen_change;         /* a change was seen since start */
	uint64_t last_change_ms;  /* monotonic time the last change is dated at */
	uint64_t fingerprint;     /* of the last observed snapshot */
	int64_t last_scan_wall_ns;/* when the previous scan began, by the share's clock
				   * (site_share_time_ns) */
	uint64_t last_scan_ms;    /* monotonic time it was observed */
	/* The clock times are judged by moved unlike the monotonic clock
	 * between two scans:
	 * file time ages are not believed (the agent judges by what it saw)
	 * until a change shows an mtime that agrees with the wall clock. */
	bool clock_jumped;

	/* The lock folder's info.lock as first seen: how far its lockExpiry
	 * was then, by the share's clock, and when that was on the monotonic
	 * clock. The lock counts as expired only once both clocks agree, so a
	 * wall clock that jumps ahead cannot expire a live lock early. */
	bool lock_known;
	ino_t lock_ino;
	int64_t lock_mtime_ns;
	int64_t lock_expiry_ns;
	uint64_t lock_seen_ms;
	int64_t lock_left_ms;
};

/* A hash of everything whose change counts as activity: the identity of
 * the site root, locks/ and deployments/; the name and lstat (type, inode,
 * mtime, ctime, size) of every entry of locks/ and deployments/ but lockwarden's
 * own trash; info.lock; and status.xml and log.log of every record that is
 * not finished. */
uint64_t policy_fingerprint(const struct site_snapshot *snap);

/* Folds one scan, finished at monotonic now_ms, into h. The first scan
 * starts the history and is not a change. Returns true when it saw a change.
 *
 * A change happened after the previous scan began and before this one did.
 * It is dated by the newest activity time (mtime or ctime) when that falls inside this
 * window (the change itself, seen through the share's clock), and at this
 * scan otherwise (a removal leaves no mtime; a clock far off is not
 * believed). So a deployment that stops writing is judged from its last
 * write, not from the scan that happened to notice it. */
bool policy_observe(struct policy_history *h, const struct site_snapshot *snap,
		    uint64_t now_ms);

enum policy_verdict {
	POLICY_LIVE,      /* part of a deployment that is running or may be */
	POLICY_STUCK,     /* part of a stuck deployment */
	POLICY_LEFTOVER,  /* a harmless leftover of a finished operation */
	POLICY_KEPT,      /* Kudu's, never removed (history, active, tools, ...) */
	POLICY_FOREIGN,   /* not Kudu's, or not of the shape Kudu makes */
	POLICY_CLEARED,   /* Kudu's deployment state, removed by the full clear only */
};
const char *policy_verdict_name(enum policy_verdict v); /* "live", ..., "not Kudu's" */

/* Which step of the manual procedure a cleanup takes. */
enum policy_step {
	POLICY_STEP_NONE,       /* nothing of Kudu's is removed */
	POLICY_STEP_LOCK,       /* the expired lock folder alone */
	POLICY_STEP_CLEAR,      /* the usual step: locks, pending, temp-* */
	POLICY_STEP_FULL_CLEAR, /* the last step: deployments/ but tools/ and settings.xml */
};
/* "none", "lock", "clear", "full-clear": the archive note's words. */
const char *policy_step_name(enum policy_step s);
/* The hook's LOCKWARDEN_STEP: "full-clear" for the last step, "clear"
 * for every other cleanup. */
const char *policy_step_hook_name(enum policy_step s);

struct policy_entry {
	enum policy_verdict verdict;
	bool remove;              /* removed by the cleanup this decision calls for */
	char reason[192];
};

struct policy_decision {
	bool blocked;             /* the site root is unusable: nothing may be removed */
	bool claims_running;
	bool lock_expired;        /* the lock folder's lockExpiry has passed or is null */
	bool stuck;               /* idle past stuck_after, or the lock expired (see above) */
	bool act;                 /* remove the entries marked remove, now */
	/* A stuck deployment found again within escalate_within of the
	 * previous cleanup (policy_params); the cleanup takes the last step
	 * only with allow_full_clear. */
	bool recurred;
	enum policy_step step;    /* what the removals amount to */
	int64_t since_clear_ms;   /* age of the previous cleanup when recurred, else -1 */
	int64_t activity_age_ms;  /* -1 when nothing tells */
	uint64_t quiet_ms;        /* observed without a change (0 before the first scan) */
	/* How long until the decision could change with nothing new on disk:
	 * the agent re-scans then. UINT64_MAX: not by time alone. */
	uint64_t next_check_ms;
	/* The record that claims to run, else the unfinished record the
	 * cleanup removes (the newest by activity), "" when none. */
	char deployment_id[KUDU_TEXT_MAX];
	char reason[320];         /* one line, also the hook's LOCKWARDEN_REASON */

	struct policy_entry *entries;   /* one per snapshot entry, same order */
	size_t n_entries;
	size_t *removals;         /* indexes into entries, in removal order */
	size_t n_removals;
};

/* Decides on snap. history may be NULL (report: nothing observed). now_wall_ns
 * is the wall clock, now_mono_ms the monotonic clock of policy_history.
 * Returns 0, or -ENOMEM (out is then empty, policy_decision_free safe). */
int policy_decide(const struct site_snapshot *snap, const struct policy_history *history,
		  const struct policy_params *params, int64_t now_wall_ns,
		  uint64_t now_mono_ms, struct policy_decision *out);
void policy_decision_free(struct policy_decision *d);

#endif
