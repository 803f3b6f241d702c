/* verify.h - did the site restart end the stuck lock?
 *
 * Each Kudu process keeps its deployment lock's expiry in memory, and users
 * report that deleting info.lock alone did not end the 409s. A site restart
 * restarts Kudu, which deletes locks/deployment when it starts; the evidence
 * on whether every way of restarting does that is mixed. So after a cleanup
 * that removed the lock folder and a hook that succeeded, the agent watches
 * for the very lock it removed coming back: the same lockExpiry, holder and
 * worker (a new deployment takes a new lock with a new expiry, so this is
 * not new activity). If it comes back within [hook] verify_within, the
 * restart did not clear Kudu's lock, and that is said loudly.
 *
 * Pure: a function of the removed lock, the snapshot and the clock passed in.
 */
#ifndef LOCKWARDEN_VERIFY_H
#define LOCKWARDEN_VERIFY_H

#include <stdbool.h>
#include <stdint.h>

#include "kudu.h"
#include "site.h"

struct verify_restart {
	bool armed;
	uint64_t since_ms;        /* monotonic time the hook succeeded */
	uint64_t within_ms;
	struct kudu_info_lock removed;
};

enum verify_outcome {
	VERIFY_IDLE,              /* nothing to watch */
	VERIFY_WATCHING,          /* within the window, the lock has not come back */
	VERIFY_DONE,              /* the window passed without the lock coming back */
	VERIFY_LOCK_BACK,         /* the removed lock is back: the restart did not end it */
};

/* Starts watching for removed coming back, for within_ms from now_ms. */
void verify_arm(struct verify_restart *v, const struct kudu_info_lock *removed,
		uint64_t now_ms, uint64_t within_ms);

/* The snapshot's lock folder holds the very lock removed (same lockExpiry,
 * holder and worker), or NULL. */
const struct site_entry *verify_same_lock(const struct site_snapshot *snap,
					  const struct kudu_info_lock *removed);

/* Judges one scan begun at now_ms (the monotonic clock verify_arm was given);
 * a scan begun before the arm is not judged. VERIFY_DONE and VERIFY_LOCK_BACK
 * disarm. */
enum verify_outcome verify_check(struct verify_restart *v, const struct site_snapshot *snap,
				 uint64_t now_ms);

#endif
