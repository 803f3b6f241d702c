/* agent.c - the daemon's event loop: scans, decisions, cleanups, the hook,
 * signals and the service manager, around one struct agent. */
#include "agent.h"
#include "container_of.h"

#include <errno.h>
#include <stdatomic.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "archive.h"
#include "cleanup.h"
#include "clock.h"
#include "hookq.h"
#include "incident.h"
#include "log.h"
#include "notify.h"
#include "policy.h"
#include "reap.h"
#include "scan.h"
#include "site.h"
#include "tree.h"
#include "trust.h"
#include "watch.h"


/* Events come in bursts (a deployment writes many files at once); one scan
 * a little after the first event covers the whole burst. In a storm that
 * lasts, event-driven scans come at most every EVENT_MIN_GAP_MS: a change is
 * dated by its mtime anyway, and decisions come from the decision timer, so
 * scanning faster would only burn CPU. */
#define EVENT_DEBOUNCE_MS 10
#define EVENT_MIN_GAP_MS 250
/* SIGTERM must end the agent within 2 s: the hook gets SIGKILL after this. */
#define SHUTDOWN_HOOK_GRACE_MS 1000

struct agent;

struct scan_job {
	uv_work_t req;
	struct agent *agent;
	unsigned generation;      /* the root it scanned; stale after a reload */
	char root[PATH_MAX];
	const struct site_snapshot *prev; /* read-only while the job runs */
	int err;
	struct site_snapshot snap;
	char claim_dir[PATH_MAX];
	struct claim_view claim;  /* looked at after the listing (see scan_work) */
	const struct incident_notes *prev_notes; /* read-only while the job runs */
	bool read_notes;
	struct incident_notes notes;
};

struct prune_job {
	uv_work_t req;
	struct agent *agent;
	char dir[PATH_MAX];
	uint64_t keep_ms;
	unsigned pruned;
	int err;
};

struct agent {
	uv_loop_t loop;
	struct config cfg;
	struct agent_options opt;

	uv_timer_t rescan_timer;  /* the ground truth: a full scan every rescan_interval */
	uv_timer_t soon_timer;    /* debounced scan after watch events */
	uv_timer_t decide_timer;  /* a scan at the moment something could become removable */
	uv_timer_t watchdog_timer;
	uv_timer_t prune_timer;   /* old archives go now and then */
	uv_signal_t sigterm, sigint, sighup;
	struct watch_set watches;
	struct hookq hooks;       /* when the hook runs */
	struct incident inc;      /* the claim shared with the other instances */
	bool kudu_work;           /* the last decision had Kudu leftovers to remove */
	struct incident_notes notes; /* the archive's sessions, as the last scan saw them */
	bool notes_known;         /* a first scan set what was cleared before this agent */

	unsigned generation;      /* bumped when the site root changes */
	struct scan_job *scan;    /* the scan in flight, if any */
	struct site_snapshot *last_snap; /* the previous scan, reused by the next */
	bool scan_again;          /* asked for while one was in flight */
	uint64_t last_scan_ms;    /* monotonic time the last scan was started */
	unsigned long scans;
	struct policy_watch watched;
	bool ready_sent;
	bool was_blocked;
	struct tree_identity tree; /* to notice the share vanishing or being replaced */
	char last_status[400];
	uint64_t last_dry_run_plan;
	uint64_t last_failure_plan[2]; /* [0] cleanups, [1] trash sweeps */
	uint64_t last_cleanup_plan;

	struct cleanup_job *reap; /* the cleanup in flight, if any */
	struct cleanup_job *sweep; /* the trash sweep in flight, if any */
	struct prune_job *prune;  /* the archive pruning in flight, if any */
	char instance[32];        /* this instance, as the archive names it */
	atomic_bool cancel;

	bool once_done;           /* --once: the final decision has been made */
	bool stopping;
	int exit_code;
};

static uint64_t mono_now_ms(struct agent *a)
{
	uv_update_time(&a->loop);
	return uv_now(&a->loop);
}

static void request_scan(struct agent *a);
static void begin_shutdown(struct agent *a, int exit_code);

static bool site_scope(const struct agent *a)
{
	return strcmp(a->cfg.hook_scope, "instance") != 0;
}

/* ---- the incident's claim ----------------------------------------------------- */

/* After each decision and hook: what the incident still needs. */
static void settle(struct agent *a)
{
	struct incident *inc = &a->inc;

	if (!incident_held(inc) || a->reap || a->kudu_work)
		return;
	/* An incident taken over after its removals: the hook the dead owner
	 * did not start is still due, exactly once. */
	if (site_scope(a) && a->cfg.hook_command[0] && inc->mine.n_removed &&
	    !inc->mine.hook_started && !inc->hook_queued && !a->opt.once) {
		inc->hook_queued = true;
		hookq_add_list(&a->hooks, inc->mine.removed, inc->mine.n_removed,
			       "finishing an incident taken over from another instance",
			       inc->mine.incident);
	}
	if (!hookq_busy(&a->hooks))
		incident_settle(inc);
}

/* An incident cleared on the share (by any instance, this one too). */
static void on_incident_cleared(struct incident *inc, const struct incident_note *note)
{
	struct agent *a = container_of(inc, struct agent, inc);
	char reason[160];

	if (site_scope(a)) {
		/* The site's cooldown, as this agent saw it begin. */
		if (strcmp(note->instance, a->instance) != 0)
			hookq_seen_elsewhere(&a->hooks, mono_now_ms(a));
		return;
	}
	if (!a->cfg.hook_command[0] || a->opt.once || a->stopping)
		return;
	snprintf(reason, sizeof(reason), "incident %s cleared by instance %s", note->incident,
		 note->instance);
	log_info("%s; running this instance's hook", reason);
	hookq_add_list(&a->hooks, "", 0, reason, note->incident);
}

/* On the cleanup's worker thread. */
static void on_removed(void *ctx, const char *path)
{
	incident_removed(ctx, path);
}

static int on_hook_starting(struct hookq *q)
{
	struct agent *a = container_of(q, struct agent, hooks);
	return site_scope(a) ? incident_hook_starting(&a->inc) : 0;
}

/* ---- the hook -------------------------------------------------------------- */

static void on_hook_run_done(struct hookq *q, bool failed)
{
	struct agent *a = container_of(q, struct agent, hooks);

	if (a->stopping) {
		begin_shutdown(a, a->exit_code); /* the hook was the last thing running */
		return;
	}
	if (!a->opt.once) {
		settle(a);
		request_scan(a); /* the incident may be over */
	}
	if (a->opt.once) {
		/* The hook's outcome never hides the cleanup's: a partial
		 * cleanup stays partial whatever the hook did. */
		if (failed && a->exit_code == AGENT_ONCE_CLEARED)
			a->exit_code = AGENT_ONCE_HOOK_FAILED;
		if (!q->pending)
			begin_shutdown(a, a->exit_code);
	}
}

/* ---- the cleanup ----------------------------------------------------------- */

/* --once: the cleanup is over; exit once the hook it calls for has run. */
static void once_cleanup_done(struct agent *a, const struct cleanup_outcome *out)
{
	a->exit_code = out->any_failed || out->abandoned ? AGENT_ONCE_PARTIAL : AGENT_ONCE_CLEARED;
	if (!hookq_busy(&a->hooks))
		begin_shutdown(a, a->exit_code);
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

	if (job->sweep)
		a->sweep = NULL;
	else
		a->reap = NULL;
	if (status == 0) {
		cleanup_log(job, *last_failure, &out);
		*last_failure = out.failure_plan;
	}
	if (status == 0 && !a->stopping && !job->sweep) {
		/* Instance scope: every instance, this one too, runs its hook
		 * once the incident is cleared (settle); --once cannot wait. */
		if (out.any_removed && a->cfg.hook_command[0] && (site_scope(a) || a->opt.once)) {
			hookq_add(&a->hooks, job);
			a->inc.hook_queued = true;
		}
		/* Everything went: the incident ends now, unless its hook is
		 * due (then when the hook is over). Otherwise the next scan
		 * says what is left. */
		if (out.any_removed && !out.any_failed && !out.abandoned) {
			a->kudu_work = false;
			settle(a);
		}
		else if (out.any_removed)
			log_info("cleanup done; no hook configured");
	}
	bool was_sweep = job->sweep;
	cleanup_free(job);

	if (a->stopping) {
		begin_shutdown(a, a->exit_code);
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
		request_scan(a);
}

/* Starts a cleanup of the decision's Kudu leftovers (sweep false: archived,
 * folders only moved aside to trash) or a sweep of our own trash folders
 * (sweep true: emptied and removed, nothing to archive). The two run side by
 * side, so emptying a large record never delays the next cleanup. */
static void start_job(struct agent *a, const struct site_snapshot *snap,
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
	if (sweep)
		a->sweep = job;
	else
		a->reap = job;
}

static void log_dry_run(struct agent *a, const struct site_snapshot *snap,
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

/* ---- scanning -------------------------------------------------------------- */

static void scan_work(uv_work_t *req)
{
	struct scan_job *job = container_of(req, struct scan_job, req);
	struct clock_now now;

	/* Both clocks at the one instant the scan begins: the policy compares
	 * their movements between scans, and a slow scan must not look like a
	 * wall-clock jump. */
	clock_read(&now);
	job->err = scan_site(job->root, &now, job->prev, &job->snap);
	/* After the listing: an owner claims before it renames anything
	 * aside, so trash listed while no claim exists is nobody's work in
	 * progress. */
	char claim[PATH_MAX];
	claim_path_for(job->claim_dir, claim, sizeof(claim));
	claim_look(claim, &job->claim);
	/* One pass (--once) runs no instance-scope hook and keeps no
	 * cooldown: it need not read the archive's notes. */
	if (job->read_notes)
		incident_read_notes(job->claim_dir, job->prev_notes, &job->notes);
}

static void set_status(struct agent *a, const struct policy_decision *d)
{
	char status[400];
	if (d->blocked)
		snprintf(status, sizeof(status), "blocked: %s", d->reason);
	else
		snprintf(status, sizeof(status), "%s: %s", d->stuck ? "stuck" : d->claims_running ? "running" : "idle",
			 d->reason);
	if (!a->ready_sent) {
		notify_ready(status);
		a->ready_sent = true;
	} else if (strcmp(status, a->last_status) != 0) {
		notify_status(status);
	}
	snprintf(a->last_status, sizeof(a->last_status), "%s", status);
}

/* The decision's removals: Kudu's leftovers need the incident's claim; our
 * own trash is swept only while no other instance is at work. */
static void act(struct agent *a, const struct site_snapshot *snap, const struct policy_decision *d)
{
	const char *names[64];
	size_t n = 0;
	for (size_t i = 0; i < d->n_removals; i++)
		if (snap->entries[d->removals[i]].kind != KUDU_NAME_TRASH && n < 64)
			names[n++] = snap->entries[d->removals[i]].name;
	a->kudu_work = n > 0;
	if (n > 0 && !a->reap) {
		int err = 0;
		enum incident_turn turn = incident_claim(&a->inc, cleanup_plan_hash(names, n, NULL), &err);
		if (turn != INCIDENT_OTHERS)
			start_job(a, snap, d, false, err);
	}
	if (!a->sweep && (incident_held(&a->inc) || a->inc.seen.err == -ENOENT))
		start_job(a, snap, d, true, 0);
}

static void on_decide_timer(uv_timer_t *t)
{
	request_scan(container_of(t, struct agent, decide_timer));
}

static void decide(struct agent *a, struct site_snapshot *snap, uint64_t now_ms)
{
	struct policy_params params = {
		.stuck_after_ms = a->cfg.policy_stuck_after,
		.quiet_period_ms = a->cfg.policy_quiet_period,
	};
	struct policy_decision d;

	if (policy_decide(snap, &a->watched, &params, snap->scanned_ns, now_ms, &d) < 0) {
		log_error("out of memory deciding");
		return;
	}
	a->scans++;
	log_debug("scan %lu done: %zu entries, %s%s%s, quiet %llu ms, next check %s%llu ms",
		  a->scans, snap->n_entries, d.stuck ? "stuck" : d.claims_running ? "running" : "idle",
		  d.act ? ", act" : "", d.blocked ? ", blocked" : "",
		  (unsigned long long)d.quiet_ms, d.next_check_ms == UINT64_MAX ? "never " : "",
		  d.next_check_ms == UINT64_MAX ? 0ULL : (unsigned long long)d.next_check_ms);
	if (d.blocked != a->was_blocked) {
		if (d.blocked)
			log_warning("%s", d.reason);
		else
			log_info("the site tree can be read again");
		a->was_blocked = d.blocked;
	}
	set_status(a, &d);
	if (!d.act)
		a->kudu_work = false;

	bool once_final = a->opt.once && now_ms - a->watched.start_ms >= a->cfg.policy_quiet_period;
	if (d.act && !a->stopping && (!a->opt.once || once_final)) {
		if (a->cfg.policy_dry_run) {
			log_dry_run(a, snap, &d);
		} else {
			act(a, snap, &d);
		}
	}
	if (a->opt.once && (once_final || d.blocked) && !a->once_done) {
		a->once_done = true;
		if (!a->reap) {
			/* Nothing was started: the tree says how this pass ends. */
			int code = d.blocked ? AGENT_ONCE_UNREADABLE
				 : !d.stuck ? AGENT_ONCE_NOTHING_STUCK
				 : a->cfg.policy_dry_run ? AGENT_ONCE_STUCK_DRY_RUN
				 : AGENT_ONCE_PARTIAL;
			if (d.blocked)
				log_error("once: the site tree cannot be read: %s", d.reason);
			else if (!d.stuck)
				log_info("once: nothing stuck: %s", d.reason);
			else if (!a->cfg.policy_dry_run)
				log_warning("once: stuck, but nothing could be removed: %s", d.reason);
			begin_shutdown(a, code);
		}
		policy_decision_free(&d);
		return;
	}

	uint64_t next = d.next_check_ms;
	if (a->opt.once) {
		uint64_t left = a->cfg.policy_quiet_period - (now_ms - a->watched.start_ms);
		next = next < left ? next : left;
	}
	if (next != UINT64_MAX && !a->stopping)
		uv_timer_start(&a->decide_timer, on_decide_timer, next, 0);
	else
		uv_timer_stop(&a->decide_timer);
	policy_decision_free(&d);
	if (!a->stopping && !a->cfg.policy_dry_run)
		settle(a);
}

static void forget_last_snapshot(struct agent *a)
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
			log_warning("site root %s: %s; removing nothing until it is back",
				    a->cfg.site_root, why);
		memset(&a->watched, 0, sizeof(a->watched));
		return false;
	case TREE_BACK:
		log_info("site root %s is back; watching it afresh for quiet_period before any removal",
			 a->cfg.site_root);
		return true;
	case TREE_SAME:
		break;
	}
	return true;
}

static void scan_after(uv_work_t *req, int status)
{
	struct scan_job *job = container_of(req, struct scan_job, req);
	struct agent *a = job->agent;

	a->scan = NULL;
	if (status == 0 && job->err < 0)
		log_error("scan of %s failed: %s", job->root, strerror(-job->err));
	if (status == 0 && job->err == 0 && !a->stopping && job->generation == a->generation) {
		uint64_t now_ms = job->snap.scanned_mono_ms;
		watch_sync(&a->watches, &job->snap);
		if (same_tree(a, &job->snap)) {
			if (policy_observe(&a->watched, &job->snap, now_ms))
				log_debug("the site tree changed");
			if (incident_observe(&a->inc, &job->claim, now_ms) && site_scope(a))
				hookq_seen_elsewhere(&a->hooks, now_ms);
			if (!a->cfg.policy_dry_run && incident_take_over_expired(&a->inc, now_ms))
				a->scan_again = true; /* judged afresh, not from this scan */
			if (!a->cfg.policy_dry_run) {
				incident_learn(&a->inc, &a->notes, &job->notes, !a->notes_known,
					       on_incident_cleared);
				a->notes_known = true;
				incident_notes_free(&a->notes);
				a->notes = job->notes;
				memset(&job->notes, 0, sizeof(job->notes));
			}
			decide(a, &job->snap, now_ms);
		} else if (a->opt.once) {
			/* One pass cannot wait for the share to come back. */
			a->once_done = true;
			begin_shutdown(a, job->snap.root_err && job->snap.root_err != -ENOENT
						  ? AGENT_ONCE_UNREADABLE : AGENT_ONCE_UNAVAILABLE);
		} else {
			a->scans++;
			log_debug("scan %lu done: site tree unavailable", a->scans);
			uv_timer_stop(&a->decide_timer);
			if (!a->ready_sent) {
				notify_ready("blocked: the site tree is unavailable");
				a->ready_sent = true;
			}
		}
	}
	/* Keep this scan for the next one to reuse; the previous one goes. */
	if (status == 0 && job->err == 0 && job->generation == a->generation) {
		struct site_snapshot *keep = malloc(sizeof(*keep));
		if (keep) {
			*keep = job->snap;
			memset(&job->snap, 0, sizeof(job->snap));
		}
		forget_last_snapshot(a);
		a->last_snap = keep;
	}
	site_snapshot_free(&job->snap);
	incident_notes_free(&job->notes);
	free(job);
	if (a->stopping) {
		begin_shutdown(a, a->exit_code);
		return;
	}
	if (a->scan_again) {
		a->scan_again = false;
		request_scan(a);
	}
}

static void request_scan(struct agent *a)
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
	job->read_notes = !a->opt.once && !a->cfg.policy_dry_run;
	snprintf(job->claim_dir, sizeof(job->claim_dir), "%s", a->cfg.archive_dir);
	a->last_scan_ms = mono_now_ms(a);
	snprintf(job->root, sizeof(job->root), "%s", a->cfg.site_root);
	int r = uv_queue_work(&a->loop, &job->req, scan_work, scan_after);
	if (r < 0) {
		log_error("cannot start a scan: %s", uv_strerror(r));
		free(job);
		return;
	}
	a->scan = job;
}

static void on_rescan_timer(uv_timer_t *t)
{
	request_scan(container_of(t, struct agent, rescan_timer));
}

static void on_soon_timer(uv_timer_t *t)
{
	request_scan(container_of(t, struct agent, soon_timer));
}

static void on_watch_event(struct watch_set *set)
{
	struct agent *a = container_of(set, struct agent, watches);
	/* Coalesce a burst: one pending timer, however many events. */
	if (uv_is_active((uv_handle_t *)&a->soon_timer) || a->stopping)
		return;
	uint64_t since = mono_now_ms(a) - a->last_scan_ms;
	uint64_t delay = EVENT_DEBOUNCE_MS;
	if (since < EVENT_MIN_GAP_MS && EVENT_MIN_GAP_MS - since > delay)
		delay = EVENT_MIN_GAP_MS - since;
	uv_timer_start(&a->soon_timer, on_soon_timer, delay, 0);
	/* The scan now due sees everything until it runs; the watches are
	 * resumed when it is done (watch_sync). */
	watch_pause(&a->watches);
}

/* ---- archive pruning -------------------------------------------------------- */

#define PRUNE_EVERY_MS (6 * 3600 * 1000ULL)

static void prune_work(uv_work_t *req)
{
	struct prune_job *job = container_of(req, struct prune_job, req);
	job->err = archive_prune(job->dir, job->keep_ms, clock_wall_ns(), &job->pruned);
}

static void prune_after(uv_work_t *req, int status)
{
	struct prune_job *job = container_of(req, struct prune_job, req);
	struct agent *a = job->agent;

	a->prune = NULL;
	if (status == 0 && job->pruned)
		log_info("archive: pruned %u cleanup records older than the [archive] keep", job->pruned);
	if (status == 0 && job->err < 0)
		log_warning("archive: pruning %s: %s", job->dir, strerror(-job->err));
	free(job);
	if (a->stopping)
		begin_shutdown(a, a->exit_code);
}

static void on_prune_timer(uv_timer_t *t)
{
	struct agent *a = container_of(t, struct agent, prune_timer);
	if (a->prune || a->stopping)
		return;
	struct prune_job *job = calloc(1, sizeof(*job));
	if (!job)
		return;
	job->agent = a;
	snprintf(job->dir, sizeof(job->dir), "%s", a->cfg.archive_dir);
	job->keep_ms = a->cfg.archive_keep;
	if (uv_queue_work(&a->loop, &job->req, prune_work, prune_after) < 0) {
		free(job);
		return;
	}
	a->prune = job;
}

/* ---- watchdog, signals, reload, shutdown ------------------------------------ */

static void on_watchdog_timer(uv_timer_t *t)
{
	notify_watchdog();
}

static void log_settings(const struct agent *a)
{
	char stuck[32], quiet[32], rescan[32];
	config_format_duration(a->cfg.policy_stuck_after, stuck, sizeof(stuck));
	config_format_duration(a->cfg.policy_quiet_period, quiet, sizeof(quiet));
	config_format_duration(a->cfg.scan_rescan_interval, rescan, sizeof(rescan));
	log_info("watching %s (stuck_after %s, quiet_period %s, rescan_interval %s%s%s)",
		 a->cfg.site_root, stuck, quiet, rescan, a->cfg.policy_dry_run ? ", dry run" : "",
		 a->cfg.hook_command[0] ? "" : ", no hook");
}

static void reload(struct agent *a)
{
	struct config fresh;
	char err[CONFIG_ERROR_MAX];

	notify_reloading();
	int r = a->opt.insecure_config ? 0 : trust_check_config_file(a->opt.config_path, err,
								       sizeof(err));
	if (r == 0)
		r = config_load(&fresh, a->opt.config_path, environ, &a->opt.over, err, sizeof(err));
	if (r == 0 && !a->opt.insecure_config &&
	    trust_check_hook(fresh.hook_command, err, sizeof(err)) < 0) {
		config_free(&fresh);
		r = -EPERM;
	}
	if (r < 0) {
		log_error("reload failed, keeping the old configuration: %s", err);
		notify_ready(a->last_status);
		return;
	}
	bool new_root = strcmp(fresh.site_root, a->cfg.site_root) != 0;
	config_free(&a->cfg);
	a->cfg = fresh;
	log_set_level(a->cfg.log_level);
	log_info("reloaded configuration%s%s", a->cfg.file ? " from " : "",
		 a->cfg.file ? a->cfg.file : "");
	if (new_root) {
		/* A new tree is a new watch: nothing seen in the old one counts. */
		a->generation++;
		memset(&a->watched, 0, sizeof(a->watched));
		/* Not freed here: a scan in flight may be reading it; the next
		 * scan of the old generation is dropped and replaces it. */
		memset(&a->tree, 0, sizeof(a->tree));
		watch_set_root(&a->watches, a->cfg.site_root);
	}
	log_settings(a);
	uv_timer_start(&a->rescan_timer, on_rescan_timer, a->cfg.scan_rescan_interval,
		       a->cfg.scan_rescan_interval);
	notify_ready(a->last_status);
	request_scan(a);
}

static void on_close_noop(uv_handle_t *h)
{
}

/* Once its handler is gone libuv restores the default action, which would
 * make a second SIGTERM during the last moments of a clean stop kill the
 * agent (status 143). The agent is stopping anyway: ignore them. */
static void on_stop_signal_closed(uv_handle_t *h)
{
	signal(SIGTERM, SIG_IGN);
	signal(SIGINT, SIG_IGN);
}

static void on_watches_closed(struct watch_set *set)
{
}

/* Stops everything; the loop ends when the last handle is closed. Called
 * again from the reap/scan/hook callbacks until nothing is in flight. */
static void begin_shutdown(struct agent *a, int exit_code)
{
	if (!a->stopping) {
		a->stopping = true;
		a->exit_code = exit_code;
		notify_stopping();
		atomic_store(&a->cancel, true);
		if (a->scan)
			uv_cancel((uv_req_t *)&a->scan->req);
		hookq_stop(&a->hooks, SHUTDOWN_HOOK_GRACE_MS);
		uv_timer_stop(&a->rescan_timer);
		uv_timer_stop(&a->soon_timer);
		uv_timer_stop(&a->decide_timer);
		uv_timer_stop(&a->watchdog_timer);
		uv_timer_stop(&a->prune_timer);
		if (a->prune)
			uv_cancel((uv_req_t *)&a->prune->req);
		uv_signal_stop(&a->sighup);
		watch_close(&a->watches, on_watches_closed);
	}
	if (a->scan || a->reap || a->sweep || a->prune || hook_running(&a->hooks.hook))
		return; /* their callbacks call back here */
	if (uv_is_closing((uv_handle_t *)&a->rescan_timer))
		return;
	uv_close((uv_handle_t *)&a->rescan_timer, on_close_noop);
	uv_close((uv_handle_t *)&a->soon_timer, on_close_noop);
	uv_close((uv_handle_t *)&a->decide_timer, on_close_noop);
	uv_close((uv_handle_t *)&a->watchdog_timer, on_close_noop);
	uv_close((uv_handle_t *)&a->prune_timer, on_close_noop);
	uv_close((uv_handle_t *)&a->sigterm, on_stop_signal_closed);
	uv_close((uv_handle_t *)&a->sigint, on_stop_signal_closed);
	uv_close((uv_handle_t *)&a->sighup, on_close_noop);
	hookq_close(&a->hooks);
	incident_close(&a->inc, site_scope(a) && a->cfg.hook_command[0] && a->inc.mine.n_removed &&
				!a->inc.mine.hook_started);
}

static void on_signal(uv_signal_t *s, int signum)
{
	struct agent *a = s->data;

	if (signum == SIGHUP) {
		if (!a->stopping)
			reload(a);
		return;
	}
	if (a->stopping)
		return;
	log_info("stopping on %s", signum == SIGTERM ? "SIGTERM" : "SIGINT");
	begin_shutdown(a, 0);
}

static int start_signal(struct agent *a, uv_signal_t *s, int signum)
{
	int r = uv_signal_init(&a->loop, s);
	if (r == 0) {
		s->data = a;
		r = uv_signal_start(s, on_signal, signum);
	}
	if (r < 0)
		log_error("cannot handle signal %d: %s", signum, uv_strerror(r));
	return r;
}

int agent_run(struct config *cfg, const struct agent_options *opt)
{
	struct agent *a = calloc(1, sizeof(*a));
	int r;

	if (!a) {
		log_error("out of memory");
		config_free(cfg);
		return 1;
	}
	a->cfg = *cfg;
	memset(cfg, 0, sizeof(*cfg));
	a->opt = *opt;
	r = uv_loop_init(&a->loop);
	if (r < 0) {
		log_error("cannot start the event loop: %s", uv_strerror(r));
		config_free(&a->cfg);
		free(a);
		return 1;
	}
	uv_timer_init(&a->loop, &a->rescan_timer);
	uv_timer_init(&a->loop, &a->soon_timer);
	uv_timer_init(&a->loop, &a->decide_timer);
	uv_timer_init(&a->loop, &a->watchdog_timer);
	uv_timer_init(&a->loop, &a->prune_timer);
	char host[256] = "";
	gethostname(host, sizeof(host) - 1);
	archive_instance_id(getenv("WEBSITE_INSTANCE_ID"), host, a->instance, sizeof(a->instance));
	hookq_init(&a->hooks, &a->loop, &a->cfg, a->opt.once, on_hook_run_done);
	a->hooks.starting = on_hook_starting;
	snprintf(a->hooks.instance, sizeof(a->hooks.instance), "%s", a->instance);
	incident_init(&a->inc, &a->loop, &a->cfg, a->instance);
	watch_init(&a->watches, &a->loop, on_watch_event);
	watch_set_root(&a->watches, a->cfg.site_root);
	if (start_signal(a, &a->sigterm, SIGTERM) < 0 || start_signal(a, &a->sigint, SIGINT) < 0 ||
	    start_signal(a, &a->sighup, SIGHUP) < 0) {
		a->exit_code = 1;
		begin_shutdown(a, 1);
	} else {
		log_settings(a);
		uint64_t wd_ms = notify_watchdog_ms();
		if (wd_ms) {
			/* Half the period, as sd_watchdog_enabled(3) advises. */
			uv_timer_start(&a->watchdog_timer, on_watchdog_timer, wd_ms / 2 ? wd_ms / 2 : 1,
				       wd_ms / 2 ? wd_ms / 2 : 1);
			notify_watchdog();
		}
		uv_timer_start(&a->rescan_timer, on_rescan_timer, a->cfg.scan_rescan_interval,
			       a->cfg.scan_rescan_interval);
		uv_timer_start(&a->prune_timer, on_prune_timer, 0, PRUNE_EVERY_MS);
		request_scan(a);
	}

	uv_run(&a->loop, UV_RUN_DEFAULT);
	r = uv_loop_close(&a->loop);
	if (r < 0) {
		log_error("event loop did not close cleanly: %s", uv_strerror(r));
		a->exit_code = a->exit_code ? a->exit_code : 1;
	}
	int code = a->exit_code;
	log_debug("stopped");
	forget_last_snapshot(a);
	incident_notes_free(&a->notes);
	incident_free(&a->inc);
	config_free(&a->cfg);
	free(a);
	return code;
}
