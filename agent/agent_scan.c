/* agent_scan.c - scans off the loop, and the decision after each: inotify
 * events and the periodic rescan only ask for a scan; the policy decides;
 * the restart check and the next timer follow, and what the verdict starts
 * is agent_cleanup.c's. What a scan found is told as events (event.h). */
#include "agent_scan.h"
#include "agent_cleanup.h"
#include "agent_share.h"
#include "agent_state.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "container_of.h"
#include "fmt.h"
#include "log.h"
#include "clock.h"
#include "scan.h"
#include "sitekind.h"

/* ---- scanning -------------------------------------------------------------- */

static void scan_work(uv_work_t *req)
{
	struct scan_job *job = container_of(req, struct scan_job, req);
	struct clock_now now;

	/* Both clocks at the one instant the scan begins: the monotonic one
	 * dates what the agent watched, the wall one is what file times in the
	 * future are compared with. */
	clock_read(&now);
	job->err = scan_site(job->root, &now, job->prev, job->full, &job->snap);
	/* After the listing: an owner claims before it renames anything
	 * aside, so trash listed while no claim exists is nobody's work in
	 * progress. */
	/* While the root is missing its parent is watched instead (watch.h):
	 * looked at here, never on the loop thread. */
	if (job->snap.root_err) {
		char parent[PATH_MAX];
		struct stat st;
		watch_parent_path(job->root, parent, sizeof(parent));
		if (stat(parent, &st) == 0 && S_ISDIR(st.st_mode))
			job->parent = (struct site_stat){ .present = true, .type = S_IFDIR,
							  .dev = st.st_dev, .ino = st.st_ino };
	}
	incident_look_run(job->claim_dir, &job->look);
	/* One pass (--once) runs no instance-scope hook and keeps no
	 * cooldown: it reads the archive's notes only on the full scan its
	 * removals rest on, for the ladder. */
	if (job->read_notes)
		incident_read_notes(job->claim_dir, job->prev_notes, &job->notes);
	/* A completed record's log.log is read here, once (silence_read.h):
	 * an idle rescan makes no call for it. */
	if (job->read_silence && job->err == 0 &&
	    silence_cache_update(job->root, &job->snap, job->prev_silence, SILENCE_READS_PER_SCAN,
				 &job->silence) < 0)
		job->read_silence = false;
}

/* ---- stuck_after in effect --------------------------------------------------- */

void agent_update_stuck_after(struct agent *a)
{
	const uint64_t cap_ms = CONFIG_STUCK_AFTER_DEFAULT_MS;
	struct silence_history h = { 0 };
	struct silence_auto au = { .stuck_after_ms = cap_ms, .basis = SILENCE_UNREAD };
	char why[400], cap[32];

	if (a->cfg.policy_stuck_after != CONFIG_DURATION_AUTO) {
		a->stuck_after_ms = a->cfg.policy_stuck_after;
		a->auto_logged = false;
		a->silence_known = false;
		return;
	}
	if (a->silence_known) {
		silence_cache_history(&a->silence, &h);
		silence_auto_compute(&h, a->cfg.policy_auto_floor, cap_ms, &au);
	}
	bool same = a->auto_logged && au.basis == a->auto_basis &&
		    au.stuck_after_ms == a->stuck_after_ms;
	a->stuck_after_ms = au.stuck_after_ms;
	if (same)
		return;
	if (a->silence_known)
		silence_auto_explain(&h, &au, a->cfg.policy_auto_floor, cap_ms, why, sizeof(why));
	else
		snprintf(why, sizeof(why), "%s (the default until the site's completed deployments "
			 "are read)", fmt_age((int64_t)cap_ms, cap, sizeof(cap)));
	log_info("stuck_after auto: %s", why);
	a->auto_logged = true;
	a->auto_basis = au.basis;
}

/* The history a finished scan read (on the loop thread, after the job). */
static void adopt_silence(struct agent *a, struct scan_job *job)
{
	if (!job->read_silence || job->generation != a->generation)
		return;
	/* A tree that could not be read says nothing about the history: what
	 * was read before stays, and is not read again when the share is back. */
	if (job->snap.root_err ||
	    (job->snap.deployments_err && job->snap.deployments_err != -ENOENT))
		return;
	silence_cache_free(&a->silence);
	a->silence = job->silence;
	memset(&job->silence, 0, sizeof(job->silence));
	a->silence_known = true;
	/* The rest of a long history follows at once, not a rescan later. */
	if (a->silence.unread > 0)
		a->scan_again = true;
}

static void on_decide_timer(uv_timer_t *t)
{
	agent_request_scan(container_of(t, struct agent, decide_timer));
}

/* The ladder's input: the site's previous cleanup, from the archive's
 * notes on the share (any instance's, this one's after a restart too), never
 * from this agent's memory. The incident being worked on is not its own
 * recurrence. */
static void ladder_params(const struct agent *a, struct policy_params *params)
{
	const char *exclude = incident_held(&a->inc) ? a->inc.mine.incident : "";

	params->allow_full_clear = a->cfg.policy_allow_full_clear;
	params->escalate_within_ms = a->cfg.policy_escalate_within;
	params->previous_clear_known = incident_last_clear(&a->notes, exclude,
							   &params->previous_clear_ns);
}

/* With allow_full_clear off, a recurrence is said once (per previous
 * cleanup), with how to take the last step. */
static void say_recurrence(struct agent *a, const struct policy_params *params,
			   const struct policy_decision *d)
{
	if (!d->recurred || params->allow_full_clear ||
	    (a->said_recurrence && a->said_recurrence_ns == params->previous_clear_ns))
		return;
	a->said_recurrence = true;
	a->said_recurrence_ns = params->previous_clear_ns;
	agent_emit(&a->events, &(struct agent_event){ .type = AGENT_EV_RECURRED, .decision = d,
		   .escalate_within_ms = params->escalate_within_ms });
}

/* --once: how the pass ends when it starts nothing (nothing removed, or
 * nothing removable); false while it must go on watching. */
static bool once_ends(struct agent *a, const struct policy_decision *d)
{
	int code;

	if (d->blocked) {
		code = AGENT_ONCE_UNREADABLE;
		log_error("once: the site tree cannot be read: %s", d->reason);
	} else if (d->stuck) {
		code = a->cfg.policy_dry_run ? AGENT_ONCE_STUCK_DRY_RUN : AGENT_ONCE_PARTIAL;
		if (!a->cfg.policy_dry_run)
			log_warning("once: stuck, but nothing could be removed: %s", d->reason);
	} else if (!d->claims_running) {
		code = AGENT_ONCE_NOTHING_STUCK;
		log_info("once: nothing stuck: %s", d->reason);
	} else if (a->history.seen_change) {
		/* A change is life: this pass will not see it stop. */
		code = AGENT_ONCE_NOTHING_STUCK;
		log_info("once: nothing stuck: the deployment changed while watched, so it is alive: %s",
			 d->reason);
	} else {
		return false;
	}
	a->once_done = true;
	agent_request_stop(a, code);
	return true;
}

static void decide(struct agent *a, struct site_snapshot *snap, uint64_t now_ms)
{
	agent_update_stuck_after(a);
	struct policy_params params = { .stuck_after_ms = a->stuck_after_ms };
	struct policy_decision d;

	ladder_params(a, &params);
	if (policy_decide(snap, &a->history, &params, snap->scanned_ns, now_ms, &d) < 0) {
		log_error("out of memory deciding");
		return;
	}
	a->scans++;
	bool blocked_changed = d.blocked != a->was_blocked;
	a->was_blocked = d.blocked;
	a->stuck = d.stuck;
	agent_emit(&a->events, &(struct agent_event){ .type = AGENT_EV_DECIDED, .scan = a->scans,
		   .snap = snap, .decision = &d, .blocked_changed = blocked_changed });
	a->site_claims_running = d.claims_running;
	if (d.stuck || d.act)
		incident_saw_stuck(&a->inc);
	else if (d.claims_running)
		incident_saw_running(&a->inc);
	if (!d.act)
		a->kudu_work = false;

	if (d.act && !snap->memo.full && !a->stopping && !a->cfg.policy_dry_run &&
	    (!a->reap || !a->sweep)) {
		/* An idle rescan re-reads only what Kudu's writes can have
		 * changed (scan.h); what is removed rests on a scan that
		 * re-read everything. It follows at once. */
		log_debug("a cleanup is due: scanning everything again first");
		a->full_next = true;
		a->scan_again = true;
		policy_decision_free(&d);
		return;
	}
	if (d.act && !a->stopping) {
		say_recurrence(a, &params, &d);
		if (a->cfg.policy_dry_run) {
			agent_dry_run(a, snap, &d);
		} else {
			agent_act(a, snap, &d);
		}
	}
	/* The trash of committed cleanups, finished apart from any decision
	 * (after a restart too): the policy never plans it. */
	agent_sweep(a, snap);
	/* One pass watches as the daemon does, until the tree says how it
	 * ends: unreadable, nothing running, a change (alive), or stuck. */
	if (a->opt.once && !a->once_done) {
		if (a->reap || a->claiming) {
			/* The cleanup started: its end ends the pass. */
			a->once_done = true;
		} else if (once_ends(a, &d)) {
			policy_decision_free(&d);
			return;
		}
	}

	if (d.next_check_ms != UINT64_MAX && !a->stopping)
		uv_timer_start(&a->decide_timer, on_decide_timer, d.next_check_ms, 0);
	else
		uv_timer_stop(&a->decide_timer);
	policy_decision_free(&d);
	if (!a->stopping && !a->cfg.policy_dry_run)
		agent_settle(a);
}

void agent_forget_last_snapshot(struct agent *a)
{
	if (a->last_snap) {
		site_snapshot_free(a->last_snap);
		free(a->last_snap);
		a->last_snap = NULL;
	}
}

/* Is this scan still of the tree the agent has been watching (tree.c)?
 * When it is not, nothing seen before may count. */
static bool same_tree(struct agent *a, const struct site_snapshot *snap)
{
	bool was_gone = a->tree.gone;
	const char *why;

	switch (tree_check(&a->tree, snap, &why)) {
	case TREE_GONE:
		if (!was_gone)
			agent_emit(&a->events, &(struct agent_event){ .type = AGENT_EV_TREE_GONE,
				   .what = why });
		memset(&a->history, 0, sizeof(a->history));
		return false;
	case TREE_BACK:
		agent_emit(&a->events, &(struct agent_event){ .type = AGENT_EV_TREE_BACK });
		return true;
	case TREE_SAME:
		break;
	}
	return true;
}

/* Did the restart end the lock it was run for (verify.h)? */
static void check_restart(struct agent *a, const struct site_snapshot *snap, uint64_t now_ms)
{
	enum verify_outcome v = verify_check(&a->verify, snap, now_ms);

	if (v == VERIFY_LOCK_BACK || v == VERIFY_DONE)
		agent_emit(&a->events, &(struct agent_event){ .type = AGENT_EV_RESTART_CHECKED,
			   .verify = v, .ms = now_ms });
}

/* A scan that outlasted the hang limit straddles an outage: what it read
 * before and after does not make one moment of the tree, and its times are
 * stale. Nothing is decided from it; a fresh scan follows. */
static void drop_overdue_scan(struct agent *a, struct scan_job *job)
{
	log_debug("scan took longer than the hang limit: not judged, scanning again");
	agent_forget_last_snapshot(a);
	/* The logs it read are each complete: kept. */
	if (job->err == 0)
		adopt_silence(a, job);
	silence_cache_free(&job->silence);
	site_snapshot_free(&job->snap);
	free(job);
	if (a->stopping)
		agent_request_stop(a, a->exit_code);
	else
		agent_request_scan(a);
}

/* What the other instances left on the share: the claim and the archive's
 * notes. */
static void observe_incidents(struct agent *a, struct scan_job *job, uint64_t now_ms)
{
	incident_observe(&a->inc, &job->look, now_ms);
	/* A takeover is answered off the loop; the tree is then judged
	 * afresh, not from this scan (agent_on_incident_done). */
	if (!a->cfg.policy_dry_run)
		incident_take_over_expired(&a->inc, now_ms);
	if (!job->read_notes)
		return;
	/* A dry run and one pass only read them (the ladder): neither runs
	 * an instance-scope hook. */
	if (!a->cfg.policy_dry_run && !a->opt.once) {
		incident_learn(&a->inc, &a->notes, &job->notes, !a->notes_known,
			       agent_on_incident_cleared);
		a->notes_known = true;
	}
	incident_tie_notes(&a->inc, &job->notes);
	incident_notes_free(&a->notes);
	a->notes = job->notes;
	memset(&job->notes, 0, sizeof(job->notes));
}

static void tree_unavailable(struct agent *a, const struct scan_job *job)
{
	if (a->opt.once) {
		/* One pass cannot wait for the share to come back. */
		a->once_done = true;
		agent_request_stop(a, job->snap.root_err && job->snap.root_err != -ENOENT
					? AGENT_ONCE_UNREADABLE : AGENT_ONCE_UNAVAILABLE);
		return;
	}
	a->scans++;
	uv_timer_stop(&a->decide_timer);
	agent_emit(&a->events, &(struct agent_event){ .type = AGENT_EV_TREE_UNAVAILABLE,
		   .scan = a->scans });
}

/* Once per site root: does it look like Kudu's tree on the share? Said as
 * warnings only (sitekind.h says why). */
static void check_site_kind(struct agent *a, const struct site_snapshot *snap)
{
	char why[640], fstype[64] = "";

	if (a->site_kind_checked)
		return;
	a->site_kind_checked = true;
	if (sitekind_not_kudu(a->cfg.site_root, snap->locks_err, snap->deployments_err, why,
			      sizeof(why)))
		log_warning("%s", why);
	if (sitekind_fstype(snap->root.dev, fstype, sizeof(fstype)) == 0 &&
	    sitekind_not_shared(a->cfg.site_root, fstype, why, sizeof(why)))
		log_warning("%s", why);
}

/* A whole scan of the current tree: watch, observe, decide. */
static void judge_scan(struct agent *a, struct scan_job *job)
{
	uint64_t now_ms = job->snap.scanned_mono_ms;

	watch_sync(&a->watches, &job->snap, &job->parent);
	adopt_silence(a, job);
	if (!same_tree(a, &job->snap)) {
		tree_unavailable(a, job);
		return;
	}
	check_site_kind(a, &job->snap);
	if (policy_observe(&a->history, &job->snap, now_ms))
		log_debug("the site tree changed");
	observe_incidents(a, job, now_ms);
	check_restart(a, &job->snap, now_ms);
	decide(a, &job->snap, now_ms);
}

/* Keeps this scan for the next one to reuse; the previous one goes. */
static void keep_snapshot(struct agent *a, struct scan_job *job)
{
	struct site_snapshot *keep = malloc(sizeof(*keep));

	if (keep) {
		*keep = job->snap;
		memset(&job->snap, 0, sizeof(job->snap));
	}
	agent_forget_last_snapshot(a);
	a->last_snap = keep;
}

static void scan_after(uv_work_t *req, int status)
{
	struct scan_job *job = container_of(req, struct scan_job, req);
	struct agent *a = job->agent;
	bool read = status == 0 && job->err == 0;

	a->scan = NULL;
	bool overdue = agent_mono_now_ms(a) - job->started_ms >=
		       scan_hang_limit_ms(a->cfg.scan_rescan_interval);
	agent_check_share_reply(a, read && job->snap.root_err == 0);
	/* So does a shorter scan that was in flight when the share answered
	 * again (another job, a claim, had been blocked for the limit). */
	overdue = overdue || (a->share_back_ms && job->started_ms <= a->share_back_ms);
	if (overdue && status == 0) {
		drop_overdue_scan(a, job);
		return;
	}
	if (status == 0 && job->err < 0)
		log_error("scan of %s failed: %s", job->root, strerror(-job->err));
	if (read && !a->stopping && job->generation == a->generation)
		judge_scan(a, job);
	agent_emit(&a->events, &(struct agent_event){ .type = AGENT_EV_SCANNED, .read = read,
		   .scanned_ns = job->snap.scanned_ns });
	if (read && job->generation == a->generation)
		keep_snapshot(a, job);
	site_snapshot_free(&job->snap);
	silence_cache_free(&job->silence);
	incident_notes_free(&job->notes);
	free(job);
	if (a->stopping) {
		agent_request_stop(a, a->exit_code);
		return;
	}
	if (a->scan_again) {
		a->scan_again = false;
		agent_request_scan(a);
	}
}

void agent_request_scan(struct agent *a)
{
	if (a->stopping || a->once_done)
		return;
	if (a->scan) {
		a->scan_again = true;
		return;
	}
	struct scan_job *job = calloc(1, sizeof(*job));
	if (!job) {
		log_error("out of memory starting a scan");
		return;
	}
	job->agent = a;
	job->generation = a->generation;
	job->prev = a->last_snap;
	job->prev_notes = &a->notes;
	job->read_silence = a->cfg.policy_stuck_after == CONFIG_DURATION_AUTO;
	job->prev_silence = &a->silence;
	job->full = a->full_next;
	/* One pass keeps no cooldown and runs no instance-scope hook: it reads
	 * the notes only for the ladder, on the full scan its removals rest on
	 * (a dry run forces none, so it reads them on every scan). */
	job->read_notes = !a->opt.once || job->full || a->cfg.policy_dry_run;
	snprintf(job->claim_dir, sizeof(job->claim_dir), "%s", a->cfg.archive_dir);
	incident_look_prepare(&a->inc, &job->look);
	a->full_next = false;
	a->last_scan_ms = agent_mono_now_ms(a);
	job->started_ms = a->last_scan_ms;
	snprintf(job->root, sizeof(job->root), "%s", a->cfg.site_root);
	int r = uv_queue_work(&a->loop, &job->req, scan_work, scan_after);
	if (r < 0) {
		log_error("cannot start a scan: %s", uv_strerror(r));
		free(job);
		return;
	}
	a->scan = job;
	agent_check_share(a);
}

void agent_on_rescan_timer(uv_timer_t *t)
{
	agent_request_scan(container_of(t, struct agent, rescan_timer));
}

static void on_soon_timer(uv_timer_t *t)
{
	agent_request_scan(container_of(t, struct agent, soon_timer));
}

void agent_on_watch_event(struct watch_set *set)
{
	struct agent *a = container_of(set, struct agent, watches);
	/* Coalesce a burst: one pending timer, however many events. */
	if (uv_is_active((uv_handle_t *)&a->soon_timer) || a->stopping)
		return;
	uint64_t since = agent_mono_now_ms(a) - a->last_scan_ms;
	uint64_t delay = EVENT_DEBOUNCE_MS;
	if (since < EVENT_MIN_GAP_MS && EVENT_MIN_GAP_MS - since > delay)
		delay = EVENT_MIN_GAP_MS - since;
	uv_timer_start(&a->soon_timer, on_soon_timer, delay, 0);
	/* The scan now due sees everything until it runs; the watches are
	 * resumed when it is done (watch_sync). */
	watch_pause(&a->watches);
}
