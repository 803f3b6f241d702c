/* policy.c - the stuck/live decision: assess the facts, explain them in
 * one line, and say when time alone could change them. The plan is in
 * policy_plan.c, the history of scans in policy_history.c. Pure: no clock,
 * no file, no environment; see policy.h for the rule. */
#include "policy.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "clock.h"
#include "fmt.h"
#include "log.h"

/* ---- step 1: assess -------------------------------------------------------- */

/* When the record says it was received (else started). */
static int64_t record_received(const struct site_entry *e)
{
	if (e->status.received_ns != KUDU_TIME_NONE)
		return e->status.received_ns;
	if (e->status.start_ns != KUDU_TIME_NONE)
		return e->status.start_ns;
	return e->status_st.mtime_ns;
}

/* Records whose last writes are this close are not ordered by them: some
 * servers keep mtimes to 2 s (FAT-backed, some NAS), and a record written
 * in the same moment as another says nothing about which ran last. */
#define CLAIM_TIE_NS (2 * CLOCK_NS_PER_MS * 1000)

/* Is record e, last active at e_ns, newer than best, last active at
 * best_ns? Activity within CLAIM_TIE_NS is decided by receivedTime, as
 * Kudu orders its records. */
static bool newer_record(const struct site_entry *e, int64_t e_ns, const struct site_entry *best,
			 int64_t best_ns)
{
	int64_t ahead = clock_sub_ns(e_ns, best_ns);
	if (ahead > CLAIM_TIE_NS)
		return true;
	return ahead >= -CLAIM_TIE_NS && record_received(e) > record_received(best);
}

/* The record that claims to run, if any: the one with the latest activity
 * (receivedTime alone could put a finished record ahead of one still
 * writing its log, as clocks of Kudu instances differ). */
static size_t find_newest_record(const struct site_snapshot *snap)
{
	size_t best = NO_INDEX;
	int64_t best_ns = INT64_MIN;
	for (size_t i = 0; i < snap->n_entries; i++) {
		const struct site_entry *e = &snap->entries[i];
		if (!policy_is_record(e) || e->status_err != 0)
			continue;
		int64_t ns = policy_record_activity_ns(e);
		if (best == NO_INDEX || newer_record(e, ns, &snap->entries[best], best_ns)) {
			best = i;
			best_ns = ns;
		}
	}
	return best;
}

static size_t find_lock_folder(const struct site_snapshot *snap)
{
	size_t found = NO_INDEX;
	for (size_t i = 0; i < snap->n_entries; i++) {
		const struct site_entry *e = &snap->entries[i];
		if (e->kind == KUDU_NAME_LOCK_FOLDER && e->st.type == S_IFDIR)
			found = i;
	}
	return found;
}

/* An unfinished record whose walk cannot tell (recordwalk.h: too many
 * entries, too deep, a mount or an unreadable entry inside) could hide its
 * deployment's activity: it is never judged stuck, so nothing is. */
static size_t blind_record(const struct site_snapshot *snap)
{
	for (size_t i = 0; i < snap->n_entries; i++)
		if (snap->entries[i].tree.cannot_tell)
			return i;
	return NO_INDEX;
}

/* What cannot be seen whole is not judged: an unreadable area could hide
 * the running deployment's activity. */
static bool snapshot_blocked(const struct site_snapshot *snap)
{
	return snap->root_err != 0 || snap->over_cap || blind_record(snap) != NO_INDEX ||
	       (snap->locks_err != 0 && snap->locks_err != -ENOENT) ||
	       (snap->deployments_err != 0 && snap->deployments_err != -ENOENT);
}

/* Shown, never acted on: lockExpiry has passed by this host's clock. A
 * missing, null or unreadable lockExpiry is unknown, not expired. */
static bool lock_has_expired(const struct policy_assessment *a, int64_t now_wall_ns)
{
	const struct site_entry *lf;

	if (a->lock_folder == NO_INDEX)
		return false;
	lf = &a->snap->entries[a->lock_folder];
	return lf->info_err == 0 && lf->info.expiry_ns != KUDU_TIME_NONE &&
	       lf->info.expiry_ns <= now_wall_ns;
}

/* Found again within escalate_within of the previous cleanup? */
static void assess_recurrence(struct policy_assessment *a, const struct policy_params *params,
			      int64_t now_wall_ns)
{
	a->since_clear_ms = -1;
	if (!a->stuck || !params->previous_clear_known || params->previous_clear_ns > now_wall_ns)
		return;
	int64_t since_ms = clock_ns_to_ms(clock_sub_ns(now_wall_ns, params->previous_clear_ns));
	if ((uint64_t)since_ms >= params->escalate_within_ms)
		return;
	a->recurred = true;
	a->since_clear_ms = since_ms;
	a->full_clear = params->allow_full_clear;
}

static void assess(struct policy_assessment *a, const struct site_snapshot *snap,
		   const struct policy_history *history, const struct policy_params *params,
		   int64_t now_wall_ns, uint64_t now_mono_ms)
{
	int64_t newest_ns = policy_newest_activity_ns(snap);

	memset(a, 0, sizeof(*a));
	a->snap = snap;
	a->observing = history && history->started;
	a->blocked = snapshot_blocked(snap);
	a->lock_folder = find_lock_folder(snap);
	a->newest = find_newest_record(snap);
	a->newest_running = a->newest != NO_INDEX && !policy_record_finished(&snap->entries[a->newest]);
	a->claims = (a->lock_folder != NO_INDEX || a->newest_running) && !a->blocked;
	a->lock_expired = lock_has_expired(a, now_wall_ns);
	/* The file times' age is for a person to read; a future one shows as 0. */
	a->activity_age_ms = -1;
	if (newest_ns != INT64_MIN)
		a->activity_age_ms = newest_ns >= now_wall_ns
			? 0 : clock_ns_to_ms(clock_sub_ns(now_wall_ns, newest_ns));
	fmt_age(a->activity_age_ms, a->age, sizeof(a->age));
	if (a->observing) {
		a->quiet_ms = policy_mono_since(now_mono_ms, history->last_change_ms);
		if (a->quiet_ms > INT64_MAX)
			a->quiet_ms = INT64_MAX;
	}
	/* The one rule: watched unchanged for stuck_after by this agent. */
	a->stuck = a->claims && a->observing && a->quiet_ms >= params->stuck_after_ms;
}

/* ---- step 3: explain (the one-line reason) ----------------------------------- */

static void describe_claim(const struct policy_assessment *a, char *out, size_t size)
{
	const struct site_snapshot *snap = a->snap;
	char op[KUDU_TEXT_MAX * 4] = "", label[NAME_MAX * 4 + 1] = "";
	char lock[KUDU_TEXT_MAX * 8] = "", record[NAME_MAX * 4 + 64] = "";

	if (a->lock_folder != NO_INDEX) {
		const struct site_entry *e = &snap->entries[a->lock_folder];
		if (e->info_err == 0 && e->info.op[0]) {
			log_escape(e->info.op, op, sizeof(op));
			snprintf(lock, sizeof(lock), "deployment lock held by '%s'", op);
		} else {
			snprintf(lock, sizeof(lock), "deployment lock folder present");
		}
	}
	if (a->newest_running) {
		const struct site_entry *e = &snap->entries[a->newest];
		policy_record_label(e, label, sizeof(label));
		snprintf(record, sizeof(record), "deployment %s is %s", label,
			 kudu_state_name(e->status.state));
	}
	snprintf(out, size, "%s%s%s", lock, lock[0] && record[0] ? ", " : "", record);
}

/* ", found again 12m after the previous cleanup: full clear", or "". */
static void describe_recurrence(const struct policy_assessment *a, char *out, size_t size)
{
	char since[32];

	out[0] = '\0';
	if (!a->recurred)
		return;
	fmt_age(a->since_clear_ms, since, sizeof(since));
	snprintf(out, size, ", found again %s after the previous cleanup%s", since,
		 a->full_clear ? ": full clear" : "");
}

static int blocked_errno(const struct site_snapshot *snap)
{
	if (snap->root_err)
		return snap->root_err;
	if (snap->locks_err && snap->locks_err != -ENOENT)
		return snap->locks_err;
	if (snap->deployments_err && snap->deployments_err != -ENOENT)
		return snap->deployments_err;
	return -E2BIG; /* over the cap */
}

static void explain(const struct policy_assessment *a, const struct policy_params *params,
		    char *out, size_t size)
{
	char claim[512], stuck_after[32], watched[32], ladder[96];

	describe_claim(a, claim, sizeof(claim));
	describe_recurrence(a, ladder, sizeof(ladder));
	fmt_age((int64_t)params->stuck_after_ms, stuck_after, sizeof(stuck_after));
	fmt_age((int64_t)a->quiet_ms, watched, sizeof(watched));
	size_t blind = a->blocked ? blind_record(a->snap) : NO_INDEX;
	if (blind != NO_INDEX) {
		char label[NAME_MAX * 4 + 1];
		policy_record_label(&a->snap->entries[blind], label, sizeof(label));
		snprintf(out, size,
			 "deployment %s cannot be seen whole (%s): never judged stuck, nothing is removed",
			 label, site_tree_why(&a->snap->entries[blind].tree));
	} else if (a->blocked && a->snap->over_cap) {
		snprintf(out, size, "%s/ holds %zu entries of Kudu's shape, more than the "
			 SITE_MAX_ENTRIES_TEXT " this agent judges: cannot tell, never judged stuck, "
			 "nothing is removed",
			 a->snap->over_cap_area == SITE_AREA_LOCKS ? "locks" : "deployments",
			 a->snap->n_over_cap);
	} else if (a->blocked) {
		snprintf(out, size,
			 "the site tree cannot be read whole (%s): nothing is judged or removed",
			 strerror(-blocked_errno(a->snap)));
	} else if (a->stuck) {
		snprintf(out, size, "%s, watched with no change for %s (stuck_after %s)%s", claim,
			 watched, stuck_after, ladder);
	} else if (a->claims && a->observing) {
		snprintf(out, size, "%s; watched with no change for %s of stuck_after %s "
			 "(newest file time %s old)", claim, watched, stuck_after, a->age);
	} else if (a->claims) {
		snprintf(out, size, "%s; nothing watched yet (newest file time %s old; stuck only "
			 "once watched with no change for stuck_after %s)", claim, a->age, stuck_after);
	} else {
		snprintf(out, size, "no deployment is running");
	}
}

/* ---- step 4: the next check ---------------------------------------------------- */

/* Milliseconds until a threshold is reached, never 0 (a timer of 0 would
 * spin) and rounded up so the threshold has surely passed. */
static uint64_t until(uint64_t threshold_ms, uint64_t elapsed_ms)
{
	return elapsed_ms >= threshold_ms ? 1 : threshold_ms - elapsed_ms;
}

static uint64_t next_check(const struct policy_assessment *a, const struct policy_params *params)
{
	if (a->claims && a->observing && !a->stuck)
		return until(params->stuck_after_ms, a->quiet_ms);
	return UINT64_MAX;
}

/* ---- the decision ---------------------------------------------------------------- */

int policy_decide(const struct site_snapshot *snap, const struct policy_history *history,
		  const struct policy_params *params, int64_t now_wall_ns,
		  uint64_t now_mono_ms, struct policy_decision *out)
{
	struct policy_assessment a;

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

	assess(&a, snap, history, params, now_wall_ns, now_mono_ms);
	/* Session names are dated by the cleaning instances' own clocks: this
	 * host's clock is the nearest to theirs. The ladder only chooses how
	 * much a cleanup takes, never whether there is one. */
	assess_recurrence(&a, params, now_wall_ns);
	out->blocked = a.blocked;
	out->claims_running = a.lock_folder != NO_INDEX || a.newest_running;
	out->lock_expired = a.lock_expired;
	out->stuck = a.stuck;
	out->activity_age_ms = a.activity_age_ms;
	out->quiet_ms = a.quiet_ms;
	out->recurred = a.recurred;
	out->since_clear_ms = a.since_clear_ms;

	policy_plan(&a, out);
	explain(&a, params, out->reason, sizeof(out->reason));
	if (!a.blocked && !out->act)
		out->next_check_ms = next_check(&a, params);
	return 0;
}

void policy_decision_free(struct policy_decision *d)
{
	free(d->entries);
	free(d->removals);
	memset(d, 0, sizeof(*d));
}

