/* agent_cleanup.c - what a decision starts: the cleanup and the trash sweep
 * off the loop, the dry run's report, the hook after a cleanup, and how
 * --once ends. */
#include "agent_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "container_of.h"
#include "log.h"

/* ---- the incident's claim -------------------------------------------------- */

bool agent_site_scope(const struct agent *a)
{
	return strcmp(a->cfg.hook_scope, "instance") != 0;
}

void agent_settle(struct agent *a)
{
	struct incident *inc = &a->inc;

	if (!incident_held(inc) || a->reap || a->kudu_work)
		return;
	/* An incident taken over after its removals: the hook the dead owner
	 * did not start is still due, exactly once. */
	if (agent_site_scope(a) && a->cfg.hook_command[0] && inc->mine.n_removed &&
	    !inc->mine.hook_started && !inc->hook_queued && !a->opt.once) {
		inc->hook_queued = true;
		hookq_add_list(&a->hooks, inc->mine.removed, inc->mine.n_removed,
			       "finishing an incident taken over from another instance",
			       inc->mine.incident, incident_hook_step(&a->notes, inc->mine.incident));
	}
	if (!hookq_busy(&a->hooks))
		incident_settle(inc);
}

void agent_on_incident_cleared(struct incident *inc, const struct incident_note *note)
{
	struct agent *a = container_of(inc, struct agent, inc);
	char reason[160];

	if (agent_site_scope(a)) {
		/* The site's cooldown, as this agent saw it begin. */
		if (strcmp(note->instance, a->instance) != 0)
			hookq_seen_elsewhere(&a->hooks, agent_mono_now_ms(a));
		return;
	}
	if (!a->cfg.hook_command[0] || a->opt.once || a->stopping)
		return;
	snprintf(reason, sizeof(reason), "incident %s cleared by instance %s", note->incident,
		 note->instance);
	log_info("%s; running this instance's hook", reason);
	hookq_add_list(&a->hooks, "", 0, reason, note->incident,
		       strcmp(note->step, "full-clear") == 0 ? "full-clear" : "clear");
}

/* On the cleanup's worker thread. */
static void on_removed(void *ctx, const char *path)
{
	incident_removed(ctx, path);
}

int agent_on_hook_starting(struct hookq *q)
{
	struct agent *a = container_of(q, struct agent, hooks);
	return agent_site_scope(a) ? incident_hook_starting(&a->inc) : 0;
}

/* ---- the hook -------------------------------------------------------------- */

void agent_hook_done(struct hookq *q, bool failed)
{
	struct agent *a = container_of(q, struct agent, hooks);

	if (a->stopping) {
		agent_begin_shutdown(a, a->exit_code); /* the hook was the last thing running */
		return;
	}
	if (!a->opt.once) {
		agent_settle(a);
		agent_request_scan(a); /* the incident may be over */
	}
	if (a->verify_due && !failed)
		verify_arm(&a->verify, &a->verify_lock, uv_now(&a->loop), a->cfg.hook_verify_within);
	a->verify_due = false;
	if (a->opt.once) {
		/* The hook's outcome never hides the cleanup's: a partial
		 * cleanup stays partial whatever the hook did. */
		if (failed && a->exit_code == AGENT_ONCE_CLEARED)
			a->exit_code = AGENT_ONCE_HOOK_FAILED;
		if (!q->pending)
			agent_begin_shutdown(a, a->exit_code);
	}
}

/* ---- the cleanup ----------------------------------------------------------- */

/* --once: the cleanup is over; exit once the hook it calls for has run. */
static void once_cleanup_done(struct agent *a, const struct cleanup_outcome *out)
{
	a->exit_code = out->any_failed || out->abandoned ? AGENT_ONCE_PARTIAL : AGENT_ONCE_CLEARED;
	if (!hookq_busy(&a->hooks))
		agent_begin_shutdown(a, a->exit_code);
}

/* On the worker thread. */
static void reap_work(uv_work_t *req)
{
	struct cleanup_job *job = container_of(req, struct cleanup_job, req);
	struct agent *a = req->data;
	cleanup_run(job, &a->cancel);
}

static void reap_after(uv_work_t *req, int status)
{
	struct cleanup_job *job = container_of(req, struct cleanup_job, req);
	struct agent *a = req->data;
	struct cleanup_outcome out = { 0 };
	uint64_t *last_failure = &a->last_failure_plan[job->sweep];

	if (job->sweep) {
		a->sweep = NULL;
	} else {
		a->reap = NULL;
		agent_check_share(a);
	}
	if (status == 0) {
		cleanup_log(job, *last_failure, &out);
		*last_failure = out.failure_plan;
		if (out.lock_removed && job->has_lock) {
			a->verify_due = true;
			a->verify_lock = job->lock;
		}
	}
	if (status == 0 && !a->stopping && !job->sweep) {
		/* Instance scope: every instance, this one too, runs its hook
		 * once the incident is cleared (agent_settle); --once cannot
		 * wait. */
		if (out.any_removed && a->cfg.hook_command[0] &&
		    (agent_site_scope(a) || a->opt.once)) {
			hookq_add(&a->hooks, job);
			a->inc.hook_queued = true;
		} else if (out.any_removed && !a->cfg.hook_command[0]) {
			log_info("cleanup done; no hook configured");
		}
		/* Everything went: the incident ends now, unless its hook is
		 * due (then when the hook is over). Otherwise the next scan
		 * says what is left. */
		if (out.any_removed && !out.any_failed && !out.abandoned) {
			a->kudu_work = false;
			agent_settle(a);
		}
	}
	bool was_sweep = job->sweep;
	cleanup_free(job);

	if (a->stopping) {
		agent_begin_shutdown(a, a->exit_code);
		return;
	}
	if (a->opt.once && !was_sweep) {
		once_cleanup_done(a, &out);
		return;
	}
	/* What was removed is a change, and an abandoned cleanup is re-judged:
	 * look at the tree again. A cleanup that failed otherwise is retried at
	 * the rescan pace, never at once. */
	if (out.any_removed || out.abandoned)
		agent_request_scan(a);
}

/* Starts a cleanup of the decision's Kudu leftovers (sweep false: archived,
 * folders only moved aside to trash) or a sweep of our own trash folders
 * (sweep true: emptied and removed, nothing to archive). The two run side by
 * side, so emptying a large record never delays the next cleanup. */
static void start_cleanup(struct agent *a, const struct site_snapshot *snap,
			  const struct policy_decision *d, bool sweep, int claim_err)
{
	struct cleanup_settings settings = {
		.site_root = a->cfg.site_root, .archive_dir = a->cfg.archive_dir,
		.instance = a->instance,
		/* --once finishes everything before it exits. */
		.finish_folders = a->opt.once,
		.claim_fd = sweep ? -1 : a->inc.fd, .claim_err = sweep ? 0 : claim_err,
		.incident = a->inc.mine.incident,
		.on_removed = sweep ? NULL : on_removed, .ctx = &a->inc,
	};
	int err;
	struct cleanup_job *job = cleanup_prepare(snap, d, sweep, &settings, &err);

	if (!job) {
		if (err < 0)
			log_error("out of memory planning the cleanup");
		return;
	}
	if (!sweep) {
		/* A cleanup that keeps failing is retried every rescan; say so
		 * once, not on every attempt. */
		log_msg(job->plan == a->last_cleanup_plan && a->last_failure_plan[0]
				? LOG_LEVEL_DEBUG : LOG_LEVEL_WARNING,
			"stuck deployment: %s; cleaning up", d->reason);
		if (d->step == POLICY_STEP_FULL_CLEAR && job->plan != a->last_cleanup_plan)
			log_warning("full clear ([policy] allow_full_clear): every deployment record, "
				    "active and pending go too, each archived first; tools/, settings.xml "
				    "and %zu %s that %s not Kudu's stay", snap->n_foreign,
				    snap->n_foreign == 1 ? "entry" : "entries",
				    snap->n_foreign == 1 ? "is" : "are");
		a->last_cleanup_plan = job->plan;
	}
	if (!a->reap && !a->sweep)
		atomic_store(&a->cancel, false);
	job->req.data = a;
	int r = uv_queue_work(&a->loop, &job->req, reap_work, reap_after);
	if (r < 0) {
		log_error("cannot start the %s: %s", sweep ? "trash sweep" : "cleanup", uv_strerror(r));
		cleanup_free(job);
		return;
	}
	if (sweep) {
		a->sweep = job;
	} else {
		a->reap = job;
		a->reap_started_ms = agent_mono_now_ms(a);
		agent_check_share(a);
	}
}

void agent_log_dry_run(struct agent *a, const struct site_snapshot *snap,
			const struct policy_decision *d)
{
	const char *names[64];
	size_t n = 0;
	for (size_t i = 0; i < d->n_removals && n < 64; i++)
		names[n++] = snap->entries[d->removals[i]].name;
	uint64_t plan = cleanup_plan_hash(names, n, NULL) ^ (uint64_t)d->n_removals;
	if (plan == a->last_dry_run_plan)
		return;
	a->last_dry_run_plan = plan;
	log_warning("dry run: stuck deployment: %s", d->reason);
	for (size_t i = 0; i < d->n_removals; i++) {
		const struct site_entry *e = &snap->entries[d->removals[i]];
		char path[NAME_MAX * 4 + 32], escaped[sizeof(path)];
		site_entry_path(e, path, sizeof(path));
		log_escape(path, escaped, sizeof(escaped));
		log_info("dry run: would remove %s: %s", escaped, d->entries[d->removals[i]].reason);
	}
	log_info("dry run: nothing removed, no hook run");
}

void agent_act(struct agent *a, const struct site_snapshot *snap, const struct policy_decision *d)
{
	const char *names[64];
	size_t n = 0;
	for (size_t i = 0; i < d->n_removals; i++)
		if (snap->entries[d->removals[i]].kind != KUDU_NAME_TRASH && n < 64)
			names[n++] = snap->entries[d->removals[i]].name;
	a->kudu_work = n > 0;
	if (n > 0 && !a->reap) {
		int err = 0;
		enum incident_turn turn = incident_claim(&a->inc, cleanup_plan_hash(names, n, NULL),
							 &err);
		if (turn != INCIDENT_OTHERS)
			start_cleanup(a, snap, d, false, err);
	}
	if (!a->sweep && (incident_held(&a->inc) || a->inc.seen.err == -ENOENT))
		start_cleanup(a, snap, d, true, 0);
}
