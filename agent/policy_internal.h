/* policy_internal.h - what the three files of the policy share, and
 * nothing else includes.
 *
 *   policy_history.c  what counts as activity, and the history of scans
 *   policy.c          a decision: assess, explain, next check
 *   policy_plan.c     a decision's plan: a verdict per entry, removals in order
 */
#ifndef LOCKWARDEN_POLICY_INTERNAL_H
#define LOCKWARDEN_POLICY_INTERNAL_H

#include "policy.h"

#define NO_INDEX ((size_t)-1)

/* The facts of one decision, from which the plan, the reason and the next
 * check follow. */
struct policy_assessment {
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
	bool recurred;            /* the whole cleanup, within escalate_within of the last */
	int64_t since_clear_ms;   /* the previous cleanup's age when recurred, else -1 */
	bool full_clear;          /* recurred and allow_full_clear: the last step */
	char age[32];             /* activity age, formatted */
};

/* A deployment record: a record's name on a folder. */
bool policy_is_record(const struct site_entry *e);
/* Kudu said it ended (complete, Failed or Success). */
bool policy_record_finished(const struct site_entry *e);
/* The newest mtime or ctime among what a running deployment touches;
 * INT64_MIN when nothing is there. */
int64_t policy_newest_activity_ns(const struct site_snapshot *snap);
/* The lock folder's info.lock is the one the history remembers. */
bool policy_same_lock(const struct policy_history *h, const struct site_entry *lock);
/* Monotonic milliseconds from since_ms to now_ms, 0 when they disagree. */
uint64_t policy_mono_since(uint64_t now_ms, uint64_t since_ms);
/* The latest of a record's receivedTime (never later than its status.xml
 * was written), status.xml and log.log mtimes: what "newest" means. */
int64_t policy_record_activity_ns(const struct site_entry *e);
/* The record's id (or its name) escaped for a message. */
void policy_record_label(const struct site_entry *e, char *out, size_t size);

/* Step 2 of a decision: a verdict per entry, the removals in order, act,
 * deployment_id. out->entries and out->removals are allocated. */
void policy_plan(const struct policy_assessment *a, struct policy_decision *out);

#endif
