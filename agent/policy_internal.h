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
	bool lock_expired;        /* shown only (policy_decision) */
	int64_t activity_age_ms;  /* the newest file time's age, shown only; -1 when none */
	uint64_t quiet_ms;        /* watched without a change */
	bool stuck;               /* claims, watched unchanged for stuck_after */
	bool recurred;            /* stuck within escalate_within of the last cleanup */
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
