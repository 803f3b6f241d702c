/* agent.c - the daemon's event loop: scans, decisions, cleanups, the hook,
 * signals and the service manager, around one struct agent. */
#include "agent.h"

#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "archive.h"
#include "clock.h"
#include "hook.h"
#include "log.h"
#include "notify.h"
#include "policy.h"
#include "reap.h"
#include "scan.h"
#include "site.h"
#include "trust.h"
#include "watch.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

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
};

struct reap_job {
	uv_work_t req;
	struct agent *agent;
	char root[PATH_MAX];
	dev_t root_dev;
	ino_t root_ino;
	size_t n;
	struct reap_target *targets;
	struct reap_result *results;
	bool sweep;               /* our own trash: no archive, no hook */
	char (*what)[192];        /* each target's verdict reason, for the note */
	char reason[320];
	char deployment_id[KUDU_TEXT_MAX];
	char archive_dir[PATH_MAX];
	char instance[32];
	char archive_error[256];  /* why nothing could be archived, "" when fine */
	char archive_path[PATH_MAX]; /* the session folder, "" when none */
	int64_t started_ns;
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
	uv_timer_t hook_timer;    /* a hook held back by the cooldown */
	uv_timer_t watchdog_timer;
	uv_timer_t prune_timer;   /* old archives go now and then */
	uv_signal_t sigterm, sigint, sighup;
	struct watch_set watches;
	struct hook hook;

	unsigned generation;      /* bumped when the site root changes */
	struct scan_job *scan;    /* the scan in flight, if any */
	struct site_snapshot *last_snap; /* the previous scan, reused by the next */
	bool scan_again;          /* asked for while one was in flight */
	uint64_t last_scan_ms;    /* monotonic time the last scan was started */
	unsigned long scans;
	struct policy_history history;
	bool ready_sent;
	bool was_blocked;
	/* The share's identity, to notice it vanishing or being replaced. */
	bool have_tree;
	dev_t tree_dev;
	bool tree_had_entries;
	bool tree_was_mount;      /* the root was a mount point (the share) */
	bool tree_gone;
	char last_status[400];
	uint64_t last_dry_run_plan;
	uint64_t last_failure_plan[2]; /* [0] cleanups, [1] trash sweeps */
	uint64_t last_cleanup_plan;

	struct reap_job *reap;    /* the cleanup in flight, if any */
	struct reap_job *sweep;   /* the trash sweep in flight, if any */
	struct prune_job *prune;  /* the archive pruning in flight, if any */
	char instance[32];        /* this instance, as the archive names it */
	atomic_bool cancel;

	/* The hook's next run, collected while one runs or the cooldown lasts. */
	bool hook_pending;
	char *pending_removed;    /* "path\npath\n..." */
	unsigned pending_count;
	char pending_reason[320];
	char pending_id[KUDU_TEXT_MAX];
	bool hook_ran;
	uint64_t hook_started_ms;

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
static void run_pending_hook(struct agent *a);

/* ---- the hook -------------------------------------------------------------- */

static char *env_pair(const char *name, const char *value)
{
	size_t n = strlen(name) + strlen(value) + 2;
	char *s = malloc(n);
	if (s)
		snprintf(s, n, "%s=%s", name, value);
	return s;
}

static void on_hook_done(struct hook *h, int64_t exit_status, int term_signal, bool timed_out)
{
	struct agent *a = container_of(h, struct agent, hook);

	if (a->stopping) {
		begin_shutdown(a, a->exit_code); /* the hook was the last thing running */
		return;
	}
	if (a->opt.once) {
		a->exit_code = exit_status == 0 ? 0 : 1;
		if (!a->hook_pending) {
			begin_shutdown(a, a->exit_code);
			return;
		}
	}
	if (a->hook_pending)
		run_pending_hook(a);
}

static void on_hook_timer(uv_timer_t *t)
{
	run_pending_hook(container_of(t, struct agent, hook_timer));
}

/* Runs the collected hook if nothing stops it; otherwise leaves it pending
 * and arranges to come back. */
static void run_pending_hook(struct agent *a)
{
	if (!a->hook_pending || a->stopping || hook_running(&a->hook))
		return;
	uint64_t now = mono_now_ms(a);
	if (a->hook_ran && now - a->hook_started_ms < a->cfg.hook_cooldown &&
	    !a->opt.once) {
		uint64_t wait_ms = a->cfg.hook_cooldown - (now - a->hook_started_ms);
		char cooldown[32];
		config_format_duration(a->cfg.hook_cooldown, cooldown, sizeof(cooldown));
		log_info("hook held back by the cooldown ([hook] cooldown = %s): runs in %llu s",
			 cooldown, (unsigned long long)((wait_ms + 999) / 1000));
		uv_timer_start(&a->hook_timer, on_hook_timer, wait_ms, 0);
		return;
	}
	char count[16];
	snprintf(count, sizeof(count), "%u", a->pending_count);
	/* Everything from the tree goes in as environment values, never into
	 * the command line, so no name can be read as shell syntax. */
	char *env[6] = {
		env_pair("LOCKWARDEN_SITE_ROOT", a->cfg.site_root),
		env_pair("LOCKWARDEN_REMOVED", a->pending_removed ? a->pending_removed : ""),
		env_pair("LOCKWARDEN_REMOVED_COUNT", count),
		env_pair("LOCKWARDEN_DEPLOYMENT_ID", a->pending_id),
		env_pair("LOCKWARDEN_REASON", a->pending_reason),
		NULL,
	};
	bool ok = true;
	for (int i = 0; i < 5; i++)
		ok = ok && env[i];
	int r = ok ? hook_start(&a->hook, a->cfg.hook_command, env, a->cfg.hook_timeout,
				on_hook_done)
		   : UV_ENOMEM;
	for (int i = 0; i < 5; i++)
		free(env[i]);
	a->hook_pending = false;
	free(a->pending_removed);
	a->pending_removed = NULL;
	a->pending_count = 0;
	if (r < 0) {
		log_error("cannot start the hook: %s", uv_strerror(r));
		if (a->opt.once)
			begin_shutdown(a, 1);
		return;
	}
	a->hook_ran = true;
	a->hook_started_ms = now;
}

static void queue_hook(struct agent *a, const struct reap_job *job)
{
	for (size_t i = 0; i < job->n; i++) {
		if (job->results[i].err != 0)
			continue;
		char path[NAME_MAX + 32];
		snprintf(path, sizeof(path), "%s/%s", job->targets[i].area, job->targets[i].name);
		size_t old = a->pending_removed ? strlen(a->pending_removed) : 0;
		char *grown = realloc(a->pending_removed, old + strlen(path) + 2);
		if (!grown) {
			log_error("out of memory collecting the hook's list");
			continue;
		}
		/* One line per entry; the last line has no newline. */
		snprintf(grown + old, strlen(path) + 2, "%s%s", old ? "\n" : "", path);
		a->pending_removed = grown;
		a->pending_count++;
		a->hook_pending = true;
	}
	if (!a->hook_pending)
		return;
	snprintf(a->pending_reason, sizeof(a->pending_reason), "%s", job->reason);
	snprintf(a->pending_id, sizeof(a->pending_id), "%s", job->deployment_id);
	run_pending_hook(a);
}

/* ---- the cleanup ----------------------------------------------------------- */

/* On the worker thread: archive every target, write the note, remove what
 * was archived, and write the note again with the outcome. A target that
 * could not be archived is not removed. */
static void reap_work(uv_work_t *req)
{
	struct reap_job *job = container_of(req, struct reap_job, req);
	struct archive_session session;
	struct archive_item *items;
	int r;

	if (job->sweep) {
		/* Trash was archived before it was renamed. */
		reap_run(job->root, job->root_dev, job->root_ino, job->targets, job->n,
			 &job->agent->cancel, job->results);
		return;
	}
	items = calloc(job->n, sizeof(*items));

	if (!items) {
		snprintf(job->archive_error, sizeof(job->archive_error), "out of memory");
		goto refuse_all;
	}
	r = archive_begin(job->archive_dir, job->instance, job->started_ns, &session,
			  job->archive_error, sizeof(job->archive_error));
	if (r < 0)
		goto refuse_all;
	snprintf(job->archive_path, sizeof(job->archive_path), "%s", session.path);
	for (size_t i = 0; i < job->n; i++) {
		items[i].target = &job->targets[i];
		items[i].what = job->what[i];
		archive_copy_target(&session, job->root, job->root_dev, job->root_ino, &items[i]);
	}
	struct archive_note note = {
		.time_ns = job->started_ns, .instance = job->instance, .site_root = job->root,
		.reason = job->reason, .deployment_id = job->deployment_id, .done = false,
		.items = items, .n_items = job->n,
	};
	bool any_archived = false;
	for (size_t i = 0; i < job->n; i++)
		any_archived = any_archived || items[i].archive_err == 0;
	r = any_archived ? archive_write_note(&session, &note) : 0;
	if (r < 0 || !any_archived) {
		if (r < 0)
			snprintf(job->archive_error, sizeof(job->archive_error),
				 "cannot write the note in %s: %s", session.path, strerror(-r));
		/* Nothing will be removed: leave no session behind, or every
		 * retry would add one. */
		archive_discard(&session);
		if (r < 0)
			goto refuse_all;
		for (size_t i = 0; i < job->n; i++) {
			job->results[i].err = items[i].archive_err;
			snprintf(job->results[i].detail, sizeof(job->results[i].detail),
				 "not archived, so not removed: %s",
				 items[i].archive_err == -ESTALE ? "changed since it was judged"
								 : strerror(-items[i].archive_err));
		}
		job->archive_path[0] = '\0';
		free(items);
		return;
	}
	for (size_t i = 0; i < job->n; i++) {
		struct reap_result *res = &job->results[i];
		if (items[i].archive_err) {
			res->err = items[i].archive_err;
			snprintf(res->detail, sizeof(res->detail), "not archived, so not removed: %s",
				 items[i].archive_err == -ESTALE ? "changed since it was judged"
								 : strerror(-items[i].archive_err));
			continue;
		}
		reap_run(job->root, job->root_dev, job->root_ino, &job->targets[i], 1,
			 &job->agent->cancel, res);
		items[i].result = res;
	}
	note.done = true;
	r = archive_write_note(&session, &note);
	if (r < 0)
		snprintf(job->archive_error, sizeof(job->archive_error),
			 "cannot complete the note in %s: %s", session.path, strerror(-r));
	archive_end(&session);
	free(items);
	return;

refuse_all:
	for (size_t i = 0; i < job->n; i++) {
		job->results[i].err = -EIO;
		snprintf(job->results[i].detail, sizeof(job->results[i].detail),
			 "not removed: nothing could be archived");
	}
	free(items);
}

static void free_reap_job(struct reap_job *job)
{
	free(job->targets);
	free(job->results);
	free(job->what);
	free(job);
}

/* A hash of what a plan or its failures would remove, so a repeated plan or
 * a failure that keeps coming back is logged once, not on every scan. */
static uint64_t plan_hash(const char *const *names, size_t n, const int *errs)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < n; i++) {
		for (const char *p = names[i]; *p; p++)
			h = (h ^ (unsigned char)*p) * 0x100000001b3ULL;
		h = (h ^ (uint64_t)(errs ? errs[i] : 0)) * 0x100000001b3ULL;
	}
	return h;
}

static void reap_after(uv_work_t *req, int status)
{
	struct reap_job *job = container_of(req, struct reap_job, req);
	struct agent *a = job->agent;
	bool any_failed = false, any_removed = false;
	const char *failed_names[64];
	int failed_errs[64];
	size_t n_failed = 0;

	uint64_t *last_failure = &a->last_failure_plan[job->sweep];
	if (job->sweep)
		a->sweep = NULL;
	else
		a->reap = NULL;
	if (status == 0 && job->archive_error[0])
		log_msg(*last_failure ? LOG_LEVEL_DEBUG : LOG_LEVEL_ERROR, "archive: %s",
			job->archive_error);
	for (size_t i = 0; i < job->n && status == 0; i++) {
		const struct reap_target *t = &job->targets[i];
		const struct reap_result *r = &job->results[i];
		char name[NAME_MAX * 4 + 1];
		log_escape(t->name, name, sizeof(name));
		if (r->err == 0) {
			any_removed = true;
			if (job->sweep)
				log_info("finished removing %s/%s (%lu %s)", t->area, name,
					 r->files_removed, r->files_removed == 1 ? "entry" : "entries");
			else if (r->detail[0])
				log_info("removed %s/%s (%s)", t->area, name, r->detail);
			else
				log_info("removed %s/%s (%lu %s)", t->area, name, r->files_removed,
					 r->files_removed == 1 ? "entry" : "entries");
			continue;
		}
		any_failed = true;
		if (n_failed < 64) {
			failed_names[n_failed] = t->name;
			failed_errs[n_failed++] = r->err;
		}
	}
	uint64_t failure_plan = plan_hash(failed_names, n_failed, failed_errs);
	for (size_t i = 0; i < job->n && status == 0; i++) {
		const struct reap_target *t = &job->targets[i];
		const struct reap_result *r = &job->results[i];
		char name[NAME_MAX * 4 + 1];
		if (r->err == 0)
			continue;
		log_escape(t->name, name, sizeof(name));
		/* The same failure on every retry is said once; the retries go on
		 * at the rescan pace. */
		log_msg(failure_plan == *last_failure ? LOG_LEVEL_DEBUG : LOG_LEVEL_WARNING,
			"%s %s/%s: %s%s%s", r->err == -ESTALE ? "kept" : "could not remove",
			t->area, name, r->detail[0] ? r->detail : strerror(-r->err),
			r->err == -ESTALE ? "" : "; retried on the next scan",
			r->err == -ESTALE ? " (changed since it was judged)" : "");
	}
	*last_failure = any_failed ? failure_plan : 0;

	if (status == 0 && any_removed && job->archive_path[0])
		log_info("archive: what was removed is recorded in %s", job->archive_path);
	if (status == 0 && !a->stopping && !job->sweep) {
		if (any_removed && a->cfg.hook_command[0])
			queue_hook(a, job);
		else if (any_removed)
			log_info("cleanup done; no hook configured");
	}
	bool was_sweep = job->sweep;
	free_reap_job(job);

	if (a->stopping) {
		begin_shutdown(a, a->exit_code);
		return;
	}
	if (a->opt.once && !was_sweep) {
		a->exit_code = any_failed ? 1 : 0;
		if (!hook_running(&a->hook) && !a->hook_pending)
			begin_shutdown(a, a->exit_code);
		return;
	}
	/* What was removed is a change: look at the tree again. A cleanup
	 * that removed nothing is retried at the rescan pace, never at once. */
	if (any_removed)
		request_scan(a);
}

/* Starts a cleanup of the decision's Kudu leftovers (sweep false: archived,
 * folders only moved aside to trash) or a sweep of our own trash folders
 * (sweep true: emptied and removed, nothing to archive). The two run side by
 * side, so emptying a large record never delays the next cleanup. */
static void start_job(struct agent *a, const struct site_snapshot *snap,
		      const struct policy_decision *d, bool sweep)
{
	struct reap_job *job = calloc(1, sizeof(*job));
	size_t n = 0;

	if (!job)
		goto oom;
	for (size_t i = 0; i < d->n_removals; i++)
		if ((snap->entries[d->removals[i]].kind == KUDU_NAME_TRASH) == sweep)
			n++;
	if (n == 0) {
		free(job);
		return;
	}
	job->agent = a;
	job->sweep = sweep;
	job->targets = calloc(n, sizeof(*job->targets));
	job->results = calloc(n, sizeof(*job->results));
	job->what = calloc(n, sizeof(*job->what));
	if (!job->targets || !job->results || !job->what)
		goto oom;
	snprintf(job->archive_dir, sizeof(job->archive_dir), "%s", a->cfg.archive_dir);
	snprintf(job->instance, sizeof(job->instance), "%s", a->instance);
	job->started_ns = clock_wall_ns();
	snprintf(job->root, sizeof(job->root), "%s", a->cfg.site_root);
	job->root_dev = snap->root.dev;
	job->root_ino = snap->root.ino;
	snprintf(job->reason, sizeof(job->reason), "%s", d->reason);
	snprintf(job->deployment_id, sizeof(job->deployment_id), "%s", d->deployment_id);
	for (size_t i = 0; i < d->n_removals; i++) {
		const struct site_entry *e = &snap->entries[d->removals[i]];
		if ((e->kind == KUDU_NAME_TRASH) != sweep)
			continue;
		struct reap_target *t = &job->targets[job->n];
		reap_target_from_entry(t, e);
		/* --once finishes everything before it exits. */
		t->trash_only = !sweep && e->st.type == S_IFDIR && !a->opt.once;
		snprintf(job->what[job->n], sizeof(job->what[0]), "%s",
			 d->entries[d->removals[i]].reason);
		job->n++;
	}
	if (!sweep) {
		/* A cleanup that keeps failing is retried every rescan; say so
		 * once, not on every attempt. */
		const char *names[64];
		size_t n_names = 0;
		for (size_t i = 0; i < job->n && n_names < 64; i++)
			names[n_names++] = job->targets[i].name;
		uint64_t plan = plan_hash(names, n_names, NULL);
		log_msg(plan == a->last_cleanup_plan && a->last_failure_plan[0] ? LOG_LEVEL_DEBUG
										 : LOG_LEVEL_WARNING,
			"stuck deployment: %s; cleaning up", d->reason);
		a->last_cleanup_plan = plan;
	}
	if (!a->reap && !a->sweep)
		atomic_store(&a->cancel, false);
	int r = uv_queue_work(&a->loop, &job->req, reap_work, reap_after);
	if (r < 0) {
		log_error("cannot start the %s: %s", sweep ? "trash sweep" : "cleanup", uv_strerror(r));
		free_reap_job(job);
		return;
	}
	if (sweep)
		a->sweep = job;
	else
		a->reap = job;
	return;
oom:
	log_error("out of memory planning the cleanup");
	if (job)
		free_reap_job(job);
}

static void log_dry_run(struct agent *a, const struct site_snapshot *snap,
			const struct policy_decision *d)
{
	const char *names[64];
	size_t n = 0;
	for (size_t i = 0; i < d->n_removals && n < 64; i++)
		names[n++] = snap->entries[d->removals[i]].name;
	uint64_t plan = plan_hash(names, n, NULL) ^ (uint64_t)d->n_removals;
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
	job->err = scan_site(job->root, clock_wall_ns(), job->prev, &job->snap);
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

	if (policy_decide(snap, &a->history, &params, snap->scanned_ns, now_ms, &d) < 0) {
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

	bool once_final = a->opt.once && now_ms - a->history.start_ms >= a->cfg.policy_quiet_period;
	if (d.act && !a->stopping && (!a->opt.once || once_final)) {
		if (a->cfg.policy_dry_run) {
			log_dry_run(a, snap, &d);
		} else {
			if (!a->reap)
				start_job(a, snap, &d, false);
			if (!a->sweep)
				start_job(a, snap, &d, true);
		}
	}
	if (a->opt.once && once_final && !a->once_done) {
		a->once_done = true;
		if (!a->reap) {
			if (!d.stuck)
				log_info("once: nothing stuck: %s", d.reason);
			begin_shutdown(a, 0);
		}
		policy_decision_free(&d);
		return;
	}

	uint64_t next = d.next_check_ms;
	if (a->opt.once) {
		uint64_t left = a->cfg.policy_quiet_period - (now_ms - a->history.start_ms);
		next = next < left ? next : left;
	}
	if (next != UINT64_MAX && !a->stopping)
		uv_timer_start(&a->decide_timer, on_decide_timer, next, 0);
	else
		uv_timer_stop(&a->decide_timer);
	policy_decision_free(&d);
}

static void forget_last_snapshot(struct agent *a)
{
	if (a->last_snap) {
		site_snapshot_free(a->last_snap);
		free(a->last_snap);
		a->last_snap = NULL;
	}
}

/* Is this scan still of the tree the agent has been watching? A share that
 * is unmounted shows a missing or suddenly empty folder, one remounted shows
 * another device. Then nothing seen before may count: the watch starts over
 * when the tree is back, so a share that returns never looks as if it had
 * been quiet all along. Returns true when the scan may be judged. */
static bool same_tree(struct agent *a, const struct site_snapshot *snap)
{
	const char *why = NULL;

	if (snap->root_err)
		why = strerror(-snap->root_err);
	else if (a->have_tree && a->tree_was_mount && !snap->root_is_mount)
		why = "it is no longer a mount point (the share is not mounted)";
	else if (a->have_tree && snap->root.dev != a->tree_dev)
		why = "it is now another filesystem";
	else if (a->have_tree && a->tree_had_entries && snap->n_entries == 0 &&
		 snap->locks_err == -ENOENT && snap->deployments_err == -ENOENT)
		why = "locks/ and deployments/ vanished";

	if (why) {
		if (!a->tree_gone)
			log_warning("site root %s: %s; removing nothing until it is back",
				    a->cfg.site_root, why);
		a->tree_gone = true;
		memset(&a->history, 0, sizeof(a->history));
		/* Another device is a new tree (a share mounted again gets a new
		 * device number): judged afresh from the next scan on, which is
		 * its baseline. The folder under an unmounted share is not the
		 * share: it stays gone until a mount is back, and a vanished tree
		 * until its entries are. */
		if (snap->root_err == 0 && snap->root.dev != a->tree_dev &&
		    (snap->root_is_mount || !a->tree_was_mount)) {
			a->tree_dev = snap->root.dev;
			a->tree_had_entries = snap->n_entries > 0;
		}
		return false;
	}
	if (a->tree_gone)
		log_info("site root %s is back; watching it afresh for quiet_period before any removal",
			 a->cfg.site_root);
	a->tree_gone = false;
	a->have_tree = true;
	a->tree_dev = snap->root.dev;
	a->tree_had_entries = snap->n_entries > 0;
	a->tree_was_mount = snap->root_is_mount;
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
		uint64_t now_ms = mono_now_ms(a);
		watch_sync(&a->watches, &job->snap);
		if (same_tree(a, &job->snap)) {
			if (policy_observe(&a->history, &job->snap, now_ms))
				log_debug("the site tree changed");
			decide(a, &job->snap, now_ms);
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
		memset(&a->history, 0, sizeof(a->history));
		/* Not freed here: a scan in flight may be reading it; the next
		 * scan of the old generation is dropped and replaces it. */
		a->have_tree = false;
		a->tree_gone = false;
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

static void on_hook_closed(struct hook *h)
{
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
		if (hook_running(&a->hook))
			hook_stop(&a->hook, SHUTDOWN_HOOK_GRACE_MS);
		uv_timer_stop(&a->rescan_timer);
		uv_timer_stop(&a->soon_timer);
		uv_timer_stop(&a->decide_timer);
		uv_timer_stop(&a->hook_timer);
		uv_timer_stop(&a->watchdog_timer);
		uv_timer_stop(&a->prune_timer);
		if (a->prune)
			uv_cancel((uv_req_t *)&a->prune->req);
		uv_signal_stop(&a->sighup);
		watch_close(&a->watches, on_watches_closed);
	}
	if (a->scan || a->reap || a->sweep || a->prune || hook_running(&a->hook))
		return; /* their callbacks call back here */
	if (uv_is_closing((uv_handle_t *)&a->rescan_timer))
		return;
	uv_close((uv_handle_t *)&a->rescan_timer, on_close_noop);
	uv_close((uv_handle_t *)&a->soon_timer, on_close_noop);
	uv_close((uv_handle_t *)&a->decide_timer, on_close_noop);
	uv_close((uv_handle_t *)&a->hook_timer, on_close_noop);
	uv_close((uv_handle_t *)&a->watchdog_timer, on_close_noop);
	uv_close((uv_handle_t *)&a->prune_timer, on_close_noop);
	uv_close((uv_handle_t *)&a->sigterm, on_close_noop);
	uv_close((uv_handle_t *)&a->sigint, on_close_noop);
	uv_close((uv_handle_t *)&a->sighup, on_close_noop);
	hook_close(&a->hook, on_hook_closed);
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
	uv_timer_init(&a->loop, &a->hook_timer);
	uv_timer_init(&a->loop, &a->watchdog_timer);
	uv_timer_init(&a->loop, &a->prune_timer);
	char host[256] = "";
	gethostname(host, sizeof(host) - 1);
	archive_instance_id(getenv("WEBSITE_INSTANCE_ID"), host, a->instance, sizeof(a->instance));
	hook_init(&a->hook, &a->loop);
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
	free(a->pending_removed);
	forget_last_snapshot(a);
	config_free(&a->cfg);
	free(a);
	return code;
}
