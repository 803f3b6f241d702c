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
 * verdict per entry and the removals in order: policy_plan.h), explain
 * (the one-line reason) and next check (when time alone could change it).
 * What counts as activity, and the history of scans: policy_history.h.
 */
#ifndef LOCKWARDEN_POLICY_H
#define LOCKWARDEN_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy_history.h"
#include "policy_plan.h"
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

/* Decides on snap. history may be NULL (report: nothing observed, so never
 * stuck). now_wall_ns is the wall clock (for what is shown, and the
 * ladder), now_mono_ms the monotonic clock of policy_history.
 * Returns 0, or -ENOMEM (out is then empty, policy_decision_free safe). */
int policy_decide(const struct site_snapshot *snap, const struct policy_history *history,
		  const struct policy_params *params, int64_t now_wall_ns,
		  uint64_t now_mono_ms, struct policy_decision *out);
void policy_decision_free(struct policy_decision *d);

#endif
