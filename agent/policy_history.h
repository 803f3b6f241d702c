/* policy_history.h - what counts as activity in a snapshot and a record,
 * and the history of observed scans: when this agent last saw a change.
 * Pure, the bottom of the policy (policy.h says the rule). */
#ifndef LOCKWARDEN_POLICY_HISTORY_H
#define LOCKWARDEN_POLICY_HISTORY_H

#include <stdbool.h>
#include <stdint.h>

#include "site.h"

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

#endif
