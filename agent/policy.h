/* policy.h - whether a deployment is stuck, and what a cleanup removes.
 *
 * Pure: a function of one snapshot, of what the agent has observed so far
 * (policy_history) and of the clocks passed in. It never reads a clock, a
 * file or the environment. This is where every dangerous decision is made,
 * so it is the most tested file of the project.
 *
 * The rule (issue 18, ../shared/KUDU.md): file times can prove life, never
 * death.
 *  - A deployment claims to be running when locks/deployment/ exists, or the
 *    newest record's status.xml is not finished. The newest record is the
 *    one with the latest activity: its receivedTime (never later than its
 *    status.xml was written), status.xml and log.log mtimes. Kudu instances'
 *    clocks differ, so receivedTime alone can put a finished record ahead
 *    of one still writing its log.
 *  - It is stuck only when it claims to run and this agent has itself
 *    watched everything its verdict rests on (policy_fingerprint) stay
 *    unchanged for stuck_after, on its monotonic clock. The first scan
 *    starts the watch; a change is dated at the scan that saw it.
 *  - File times may only add evidence of life: an mtime or ctime in the
 *    future of the scan's wall time counts as a change seen at that scan.
 *    No file time, no lockExpiry and no clock (this host's, the share's,
 *    Kudu's) can make the agent act sooner: on SMB ctime equals mtime and
 *    an open handle's mtime stays frozen for other clients, so an old file
 *    time proves nothing about now.
 *  - An expired lockExpiry is Kudu's own business (Kudu treats the lock as
 *    free and starts the next deploy itself): it is shown, never acted on.
 *    The lock folder goes only with a stuck deployment, last.
 *  - The ladder: a stuck deployment found again within escalate_within of
 *    the previous cleanup has recurred. With allow_full_clear its cleanup
 *    removes Kudu's deployment state too (every record, active, pending),
 *    never tools/, settings.xml or what is not Kudu's.
 *  - Nothing named .lockwarden-* is ever planned for removal: the name alone
 *    proves nothing about who made it (it is foreign, counted, reported).
 *
 * Times from the share may be anything an int64_t holds (clock_ns_from
 * saturates); every difference taken here saturates too (clock_sub_ns).
 *
 * policy_decide works in four steps, each its own function: assess (the
 * facts: what claims to run, how long it was watched unchanged), plan (a
 * verdict per entry and the removals in order), explain (the one-line
 * reason) and next check (when time alone could change it).
 */
#ifndef LOCKWARDEN_POLICY_H
#define LOCKWARDEN_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "site.h"

struct policy_params {
	uint64_t stuck_after_ms;

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
 * "watch": that word is for inotify, watch.c.) Zeroed: nothing observed. */
struct policy_history {
	bool started;             /* at least one scan was observed */
	uint64_t start_ms;        /* monotonic time of the first observed scan */
	bool seen_change;         /* a change was seen since start */
	uint64_t last_change_ms;  /* monotonic time of the scan that saw the last change */
	uint64_t fingerprint;     /* of the last observed snapshot */
};

/* A hash of everything whose change counts as activity: the identity of
 * the site root, locks/ and deployments/; the name and lstat (type, inode,
 * mtime, ctime, size) of every entry of locks/ and deployments/ but lockwarden's
 * own trash; info.lock; and status.xml and log.log of every record that is
 * not finished. */
uint64_t policy_fingerprint(const struct site_snapshot *snap);

/* Folds one scan, finished at monotonic now_ms, into h. The first scan
 * starts the watch and is not a change. Returns true when it saw a change:
 * a fingerprint unlike the last one, or a file time in the future of the
 * scan's wall time (snap->scanned_ns). The change is dated at now_ms, never
 * earlier: a file time may say when something was written, but a clock
 * that is off would then date it back and make the agent act sooner. */
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
	POLICY_STEP_CLEAR,      /* the usual step: locks, pending, temp-* */
	POLICY_STEP_FULL_CLEAR, /* the last step: deployments/ but tools/ and settings.xml */
};
/* "none", "clear", "full-clear": the archive note's words. */
const char *policy_step_name(enum policy_step s);
/* The hook's LOCKWARDEN_STEP: "full-clear" for the last step, "clear"
 * otherwise. */
const char *policy_step_hook_name(enum policy_step s);

struct policy_entry {
	enum policy_verdict verdict;
	bool remove;              /* removed by the cleanup this decision calls for */
	char reason[192];
};

struct policy_decision {
	bool blocked;             /* the site root is unusable: nothing may be removed */
	bool claims_running;
	/* The lock folder's lockExpiry has passed by this host's clock: shown,
	 * never acted on. A missing, null or unreadable lockExpiry is unknown,
	 * not expired. */
	bool lock_expired;
	bool stuck;               /* claims to run, watched unchanged for stuck_after */
	bool act;                 /* remove the entries marked remove, now */
	/* A stuck deployment found again within escalate_within of the
	 * previous cleanup (policy_params); the cleanup takes the last step
	 * only with allow_full_clear. */
	bool recurred;
	enum policy_step step;    /* what the removals amount to */
	int64_t since_clear_ms;   /* age of the previous cleanup when recurred, else -1 */
	/* The newest file time's age by this host's clock, for a person to
	 * read (report); never evidence. -1 when nothing tells. */
	int64_t activity_age_ms;
	uint64_t quiet_ms;        /* watched without a change (0 before the first scan) */
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

/* Decides on snap. history may be NULL (report: nothing observed, so never
 * stuck). now_wall_ns is the wall clock (for what is shown, and the
 * ladder), now_mono_ms the monotonic clock of policy_history.
 * Returns 0, or -ENOMEM (out is then empty, policy_decision_free safe). */
int policy_decide(const struct site_snapshot *snap, const struct policy_history *history,
		  const struct policy_params *params, int64_t now_wall_ns,
		  uint64_t now_mono_ms, struct policy_decision *out);
void policy_decision_free(struct policy_decision *d);

#endif
