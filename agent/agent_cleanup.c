/* agent_cleanup.c - what a verdict starts: the claim, the cleanup and the
 * trash sweep off the loop, the dry run, the hook after a cleanup, and how
 * --once ends. What they did is told as events (event.h); a stop or a scan
 * they need is asked of the top (agent_state.h), never called. */
#include "agent_cleanup.h"
#include "agent_share.h"
#include "agent_state.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "container_of.h"
#include "log.h"
#include "scan.h"

/* ---- the incident's claim -------------------------------------------------- */

bool agent_site_scope(const struct agent *a)
{
	return strcmp(a->cfg.hook_scope, "instance") != 0;
}

void agent_settle(struct agent *a)
{
	struct incident *inc = &a->inc;

	/* Not while the last decision found the site stuck: a taker judges
	 * afresh first, and the one restart comes after what is left went. */
	if (!incident_held(inc) || a->reap || a->kudu_work || a->stuck)
		return;
	/* Taken over while a deployment still claims to run (the dead
	 * owner's cleanup left the lock or a record): that goes first, once
	 * it is judged stuck; the one restart comes after. */
	if (incident_hook_due(inc) && a->site_claims_running)
		return;
	/* An incident taken over after its cleanup began: the hook the dead
	 * owner did not mark is still due, at most once (its mark decides). */
	if (agent_site_scope(a) && a->cfg.hook_command[0] && incident_hook_due(inc) &&
	    !inc->hook_queued && !a->opt.once) {
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
	if (!agent_site_scope(a))
		return 0;
	int r = incident_hook_starting(&a->inc);
	return r == INCIDENT_HOOK_ASKED ? HOOKQ_STARTING_ASKED : r;
}

/* ---- the hook -------------------------------------------------------------- */

void agent_hook_done(struct hookq *q, bool failed)
{
	struct agent *a = container_of(q, struct agent, hooks);

	incident_hook_ended(&a->inc, failed ? 1 : 0);
	agent_emit(&a->events, &(struct agent_event){ .type = AGENT_EV_HOOK_DONE, .failed = failed });
	if (a->stopping) {
		agent_request_stop(a, a->exit_code); /* the hook was the last thing running */
		return;
	}
	if (!a->opt.once) {
		agent_settle(a);
		agent_request_rescan(a); /* the incident may be over */
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
			agent_request_stop(a, a->exit_code);
	}
}

/* ---- the cleanup ----------------------------------------------------------- */

/* --once: the cleanup is over; exit once the hook it calls for has run. A
 * cleanup that did not commit removed nothing and runs no hook. */
static void once_cleanup_done(struct agent *a, const struct cleanup_outcome *out)
{
	a->exit_code = out->committed && !out->any_failed ? AGENT_ONCE_CLEARED : AGENT_ONCE_PARTIAL;
	if (!hookq_busy(&a->hooks))
		agent_request_stop(a, a->exit_code);
}

/* On the worker thread. */
static void reap_work(uv_work_t *req)
{
	struct cleanup_job *job = container_of(req, struct cleanup_job, req);
	struct agent *a = req->data;
	cleanup_run(job, &a->cancel);
}

/* Trash the sweep found gone is what the sweep wanted. A scan can list
 * trash already removed: the share's client shows a folder's old attributes
 * for up to a second, and an unchanged folder is not listed again (scan.h).
 * That is no failure to retry, nor to say after "finished removing". */
static void forget_already_gone(struct cleanup_job *job)
{
	size_t kept = 0;
	for (size_t i = 0; i < job->n; i++) {
		if (job->results[i].err == -ENOENT) {
			log_debug("trash %s/%s was already gone", job->targets[i].area,
				  job->targets[i].name);
			continue;
		}
		job->targets[kept] = job->targets[i];
		job->results[kept++] = job->results[i];
	}
	job->n = kept;
}

static void reap_after(uv_work_t *req, int status)
{
	struct cleanup_job *job = container_of(req, struct cleanup_job, req);
	struct agent *a = req->data;
	struct cleanup_outcome out = { 0 };
	uint64_t *last_failure = &a->last_failure_plan[job->sweep];

	if (job->sweep) {
		struct clock_now now;
		clock_read(&now);
		a->sweep = NULL;
		a->sweep_ended_mono_ms = now.mono_ms;
	} else {
		a->reap = NULL;
	}
	agent_check_share(a);
	if (status == 0) {
		if (job->sweep)
			forget_already_gone(job);
		cleanup_log(job, *last_failure, &out);
		agent_emit(&a->events, &(struct agent_event){ .type = AGENT_EV_CLEANUP_DONE,
			   .job = job, .outcome = &out,
			   .no_hook = !job->sweep && !a->stopping && out.committed &&
				      !a->cfg.hook_command[0] });
		*last_failure = out.failure_plan;
		if (out.lock_removed && job->has_lock) {
			a->verify_due = true;
			a->verify_lock = job->lock;
		}
	}
	if (status == 0 && out.abandoned && !job->sweep) {
		/* Rolled back on a sign of life: the tree is judged afresh,
		 * and the agent watches it for stuck_after again before it
		 * acts. */
		memset(&a->history, 0, sizeof(a->history));
	}
	if (status == 0 && !a->stopping && !job->sweep) {
		/* The hook runs only after a committed cleanup. Instance scope:
		 * every instance, this one too, runs its hook once the incident
		 * is cleared (agent_settle); --once cannot wait. */
		if (out.committed && a->cfg.hook_command[0] &&
		    (agent_site_scope(a) || a->opt.once)) {
			hookq_add(&a->hooks, job);
			a->inc.hook_queued = true;
		}
		/* Everything went: the incident ends now, unless its hook is
		 * due (then when the hook is over). Otherwise the next scan
		 * says what is left. */
		if (out.committed && !out.any_failed) {
			a->kudu_work = false;
			agent_settle(a);
		}
	}
	bool was_sweep = job->sweep;
	cleanup_free(job);

	if (a->stopping) {
		agent_request_stop(a, a->exit_code);
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
		agent_request_rescan(a);
}

/* Prepares a cleanup of the decision's Kudu leftovers (d: archived, moved
 * aside, committed or rolled back) or a sweep of the trash of committed
 * cleanups (d NULL: emptied and removed, nothing to archive). The two run
 * side by side, so emptying a large record never delays the next cleanup. */
static struct cleanup_job *prepare_cleanup(struct agent *a, const struct site_snapshot *snap,
					   const struct policy_decision *d)
{
	bool sweep = d == NULL;
	struct cleanup_settings settings = {
		.site_root = a->cfg.site_root, .archive_dir = a->cfg.archive_dir,
		.instance = a->instance,
		.finish_folders = a->opt.once,
		/* The claim's descriptor and outcome are set once it is made. */
		.claim_fd = -1, .claim_err = 0,
		.incident = a->inc.mine.incident,
		.on_removed = sweep ? NULL : on_removed, .ctx = &a->inc,
		.fenced = sweep ? NULL : incident_fenced,
	};
	int err;
	struct cleanup_job *job = sweep ? cleanup_prepare_sweep(snap, &a->notes, &settings, &err)
				       : cleanup_prepare(snap, d, &settings, &err);

	if (!job && err < 0)
		log_error("out of memory planning the cleanup");
	return job;
}

/* Queues a prepared cleanup or sweep on a worker thread. */
static void launch_cleanup(struct agent *a, struct cleanup_job *job)
{
	bool sweep = job->sweep;

	if (!sweep) {
		/* A cleanup that keeps failing is retried every rescan; say so
		 * once, not on every attempt. */
		agent_emit(&a->events, &(struct agent_event){ .type = AGENT_EV_INCIDENT, .job = job,
			   .repeated = job->plan == a->last_cleanup_plan && a->last_failure_plan[0],
			   .full_clear_new = job->step == POLICY_STEP_FULL_CLEAR &&
					     job->plan != a->last_cleanup_plan });
		a->last_cleanup_plan = job->plan;
		job->started_ns = clock_wall_ns(); /* the claim took its time */
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
		a->sweep_started_ms = agent_mono_now_ms(a);
	} else {
		a->reap = job;
		a->reap_started_ms = agent_mono_now_ms(a);
	}
	agent_check_share(a);
}

/* The claim asked for in agent_act is answered (INCIDENT_OP_CLAIM): the
 * cleanup prepared meanwhile starts only when the claim is ours, or could
 * not be made at all (then the cleanup says why and removes nothing). A
 * claim that took longer than the hang limit straddled an outage: the
 * decision it was asked for is stale, and the next scan judges afresh. */
static void claim_answered(struct agent *a, int result)
{
	struct cleanup_job *job = a->claiming;
	bool overdue = agent_mono_now_ms(a) - a->claim_asked_ms >=
		       scan_hang_limit_ms(a->cfg.scan_rescan_interval);

	a->claiming = NULL;
	if (!job)
		return;
	if (result == 1 || overdue || a->stopping) {
		if (overdue && result != 1)
			log_debug("the claim took longer than the hang limit: judging afresh");
		cleanup_free(job);
		if (a->opt.once && !a->stopping) {
			log_warning("once: stuck, but nothing could be removed: %s",
				    result == 1 ? "the incident is another instance's"
						: "the share did not answer in time");
			agent_request_stop(a, AGENT_ONCE_PARTIAL);
		} else {
			agent_request_rescan(a);
		}
		return;
	}
	job->claim_fd = result == 0 ? a->inc.fd : -1;
	job->claim_err = result < 0 ? result : 0;
	snprintf(job->incident, sizeof(job->incident), "%s", a->inc.mine.incident);
	launch_cleanup(a, job);
}

void agent_on_incident_queued(struct incident *inc)
{
	agent_check_share(container_of(inc, struct agent, inc));
}

void agent_on_incident_done(struct incident *inc, enum incident_op op, int result)
{
	struct agent *a = container_of(inc, struct agent, inc);

	switch (op) {
	case INCIDENT_OP_CLAIM:
		claim_answered(a, result);
		break;
	case INCIDENT_OP_TAKE_OVER:
		/* Judged afresh, not from the scan that saw it expire. */
		if (result == 0)
			agent_request_rescan(a);
		break;
	case INCIDENT_OP_HOOK_MARK:
		hookq_starting_answer(&a->hooks, result);
		break;
	case INCIDENT_OP_RENEW:
	case INCIDENT_OP_HOOK_END:
	case INCIDENT_OP_RELEASE:
	case INCIDENT_OP_LEAVE:
		break;
	}
	agent_check_share(a);
	if (a->stopping) {
		agent_request_stop(a, a->exit_code);
		return;
	}
	if (a->act_again && !incident_busy(inc)) {
		a->act_again = false;
		agent_request_rescan(a);
	}
}

void agent_dry_run(struct agent *a, const struct site_snapshot *snap,
		   const struct policy_decision *d)
{
	const char *names[64] = { 0 };
	size_t n = 0;
	for (size_t i = 0; i < d->n_removals && n < 64; i++)
		names[n++] = snap->entries[d->removals[i]].name;
	/* Said once per plan, not on every scan that finds it again. */
	uint64_t plan = cleanup_plan_hash(names, n, NULL) ^ (uint64_t)d->n_removals;
	if (plan == a->last_dry_run_plan)
		return;
	a->last_dry_run_plan = plan;
	agent_emit(&a->events, &(struct agent_event){ .type = AGENT_EV_DRY_RUN, .snap = snap,
		   .decision = d });
}

void agent_act(struct agent *a, const struct site_snapshot *snap, const struct policy_decision *d)
{
	const char *names[64];
	size_t n = 0;
	for (size_t i = 0; i < d->n_removals; i++)
		if (snap->entries[d->removals[i]].kind != KUDU_NAME_TRASH && n < 64)
			names[n++] = snap->entries[d->removals[i]].name;
	a->kudu_work = n > 0;
	if (n > 0 && !a->reap && !a->claiming) {
		/* The claim comes first, off the loop; the cleanup is prepared
		 * from this scan now and starts when the claim is answered. */
		switch (incident_claim(&a->inc, cleanup_plan_hash(names, n, NULL))) {
		case INCIDENT_ASKED:
			a->claiming = prepare_cleanup(a, snap, d);
			a->claim_asked_ms = agent_mono_now_ms(a);
			break;
		case INCIDENT_BUSY:
			a->act_again = true; /* a scan once the claim's I/O returned */
			break;
		case INCIDENT_OTHERS:
			break;
		}
	}
}

void agent_sweep(struct agent *a, const struct site_snapshot *snap)
{
	/* Only the trash of committed cleanups, and only while no other
	 * instance is at work on the site, nor a cleanup of this agent's: the
	 * one that just committed deletes its own files itself (a sweep beside
	 * it took them first, and its log then missed their removal). A scan
	 * begun before the last sweep returned still lists the trash that
	 * sweep removed: the next scan sweeps what is left. */
	if (!a->sweep && !a->reap && !a->stopping && !a->cfg.policy_dry_run && !a->opt.once &&
	    snap->scanned_mono_ms > a->sweep_ended_mono_ms &&
	    (incident_held(&a->inc) || incident_unclaimed(&a->inc))) {
		struct cleanup_job *job = prepare_cleanup(a, snap, NULL);
		if (job)
			launch_cleanup(a, job);
	}
}
