/* agent.c - the daemon's top: set-up, the loop, signals, reload, shutdown,
 * the watchdog and archive pruning, around one struct agent (agent_state.h).
 * Scans and verdicts: agent_scan.c; what they start: agent_cleanup.c. Those
 * below never call up here: they set a request (a stop, a scan) that wakes
 * the loop, and their events go to the observers registered here. */
#include "agent.h"
#include "agent_cleanup.h"
#include "agent_metrics.h"
#include "agent_observe.h"
#include "agent_scan.h"
#include "agent_share.h"
#include "agent_state.h"
#include "container_of.h"

#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "archive.h"
#include "clock.h"
#include "hookq.h"
#include "log.h"
#include "notify.h"
#include "trust.h"
#include "watch.h"

/* ---- archive pruning -------------------------------------------------------- */

#define PRUNE_EVERY_MS (6 * 3600 * 1000ULL)

static void prune_work(uv_work_t *req)
{
	struct prune_job *job = container_of(req, struct prune_job, req);
	job->err = archive_prune(job->dir, job->keep_ms, clock_wall_ns(), &job->pruned);
	/* The hook marks of incidents older than the archive kept (claim.h). */
	int dfd = incident_open_archive(job->dir, false);
	if (dfd >= 0) {
		claim_prune_marks(dfd, job->keep_ms, clock_wall_ns());
		close(dfd);
	}
}

static void prune_after(uv_work_t *req, int status)
{
	struct prune_job *job = container_of(req, struct prune_job, req);
	struct agent *a = job->agent;

	a->prune = NULL;
	agent_check_share(a);
	if (status == 0 && job->pruned)
		log_event(LOG_LEVEL_INFO, "archive", LOG_FIELDS(LOG_INT("pruned", job->pruned)),
			  "archive: pruned %u cleanup records older than the [archive] keep", job->pruned);
	if (status == 0 && job->err < 0)
		log_warning("archive: pruning %s: %s", job->dir, strerror(-job->err));
	free(job);
	if (a->stopping)
		agent_request_stop(a, a->exit_code);
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
	a->prune_started_ms = agent_mono_now_ms(a);
	agent_check_share(a);
}

/* ---- watchdog, signals, reload, shutdown ------------------------------------ */

static void on_watchdog_timer(uv_timer_t *t)
{
	notify_watchdog();
}

/* event: "start" once, "settings" after a reload. */
static void log_settings(const struct agent *a, const char *event)
{
	char stuck[32], rescan[32];
	if (a->cfg.policy_stuck_after == CONFIG_DURATION_AUTO)
		snprintf(stuck, sizeof(stuck), "auto");
	else
		config_format_duration(a->cfg.policy_stuck_after, stuck, sizeof(stuck));
	config_format_duration(a->cfg.scan_rescan_interval, rescan, sizeof(rescan));
	log_event(LOG_LEVEL_INFO, event,
		  LOG_FIELDS(LOG_STR("version", LOCKWARDEN_VERSION), LOG_STR("site_root", a->cfg.site_root),
			     LOG_INT("stuck_after_ms", a->stuck_after_ms),
			     LOG_BOOL("dry_run", a->cfg.policy_dry_run),
			     LOG_BOOL("hook", a->cfg.hook_command[0] != '\0'),
			     LOG_BOOL("once", a->opt.once)),
		  "watching %s (stuck_after %s, rescan_interval %s%s%s)",
		  a->cfg.site_root, stuck, rescan, a->cfg.policy_dry_run ? ", dry run" : "",
		  a->cfg.hook_command[0] ? "" : ", no hook");
	if (!a->cfg.hook_command[0])
		log_warning("no restart hook ([hook] command is empty): a cleanup removes Kudu's "
			    "leftovers but restarts nothing, and a Kudu that keeps its lock in "
			    "memory keeps answering 409 until something restarts the site; set "
			    "up restart-site (README.md, \"Choosing and testing a restart hook\")");
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
	log_set_format_named(a->cfg.log_format);
	log_event(LOG_LEVEL_INFO, "reload", LOG_FIELDS(LOG_STR("file", a->cfg.file ? a->cfg.file : "")),
		  "reloaded configuration%s%s", a->cfg.file ? " from " : "",
		  a->cfg.file ? a->cfg.file : "");
	if (new_root) {
		/* A new tree is a new watch: nothing seen in the old one counts. */
		a->generation++;
		memset(&a->history, 0, sizeof(a->history));
		/* Not freed here: a scan in flight may be reading it; the next
		 * scan of the old generation is dropped and replaces it. */
		memset(&a->tree, 0, sizeof(a->tree));
		a->site_kind_checked = false;
		watch_set_root(&a->watches, a->cfg.site_root);
	}
	agent_update_stuck_after(a);
	log_settings(a, "settings");
	agent_metrics_reloaded(a);
	uv_timer_start(&a->rescan_timer, agent_on_rescan_timer, a->cfg.scan_rescan_interval,
		       a->cfg.scan_rescan_interval);
	notify_ready(a->last_status);
	agent_request_scan(a);
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

/* The stop has waited SHUTDOWN_WORKER_GRACE_MS. A worker thread still
 * blocked in the kernel on a share that does not answer cannot be cancelled
 * or joined (uv_loop_close would fail, and libuv joins its threads at exit),
 * so the agent leaves without it. That is safe because nothing is half
 * decided: decisions are made on this thread from complete scans only, and
 * every removal step a worker takes is one atomic rename or unlink, done or
 * not done. What it leaves is either a target still in place, judged
 * afresh by the next start, or a .lockwarden-trash-* folder, which the next
 * start sweeps. A claim operation left behind leaves a claim that is no
 * longer renewed, or one half written: either is waited out by the other
 * instances for claim_expiry and taken over, like a dead owner's. */
static void on_exit_timer(uv_timer_t *t)
{
	struct agent *a = container_of(t, struct agent, exit_timer);
	if (!a->scan && !a->reap && !a->sweep && !a->prune && !incident_busy(&a->inc) &&
	    !agent_metrics_busy(a))
		return; /* only the hook is left, and hookq kills it */
	log_warning("stopping: a worker thread is stuck on the share (in a %s); exiting without "
		    "waiting for it", a->scan ? "scan" : a->reap ? "cleanup" :
		    a->sweep ? "trash sweep" : a->prune ? "archive pruning" :
		    incident_busy(&a->inc) ? incident_busy_what(&a->inc) : "metrics write");
	fflush(stdout);
	fflush(stderr);
	_exit(a->exit_code);
}

/* Stops everything; the loop ends when the last handle is closed. Called
 * again (through on_wake) as each job in flight returns, until none is. */
static void shut_down(struct agent *a)
{
	if (!a->stop_begun) {
		a->stop_begun = true;
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
		uv_timer_stop(&a->hang_timer);
		uv_timer_start(&a->exit_timer, on_exit_timer, SHUTDOWN_WORKER_GRACE_MS, 0);
		if (a->prune)
			uv_cancel((uv_req_t *)&a->prune->req);
		uv_signal_stop(&a->sighup);
		watch_close(&a->watches, on_watches_closed);
		agent_metrics_stop(a);
	}
	if (a->scan || a->reap || a->sweep || a->prune || hook_running(&a->hooks.hook) ||
	    agent_metrics_busy(a))
		return; /* their callbacks call back here */
	if (uv_is_closing((uv_handle_t *)&a->rescan_timer))
		return;
	/* The claim is released (or left to expire) off the loop: its
	 * callback calls back here once it returned. */
	if (incident_stop(&a->inc, agent_site_scope(a) && a->cfg.hook_command[0] &&
				   incident_hook_due(&a->inc)))
		return;
	uv_close((uv_handle_t *)&a->rescan_timer, on_close_noop);
	uv_close((uv_handle_t *)&a->soon_timer, on_close_noop);
	uv_close((uv_handle_t *)&a->decide_timer, on_close_noop);
	uv_close((uv_handle_t *)&a->watchdog_timer, on_close_noop);
	uv_close((uv_handle_t *)&a->prune_timer, on_close_noop);
	uv_close((uv_handle_t *)&a->hang_timer, on_close_noop);
	uv_close((uv_handle_t *)&a->exit_timer, on_close_noop);
	uv_close((uv_handle_t *)&a->sigterm, on_stop_signal_closed);
	uv_close((uv_handle_t *)&a->sigint, on_stop_signal_closed);
	uv_close((uv_handle_t *)&a->sighup, on_close_noop);
	uv_close((uv_handle_t *)&a->wake, on_close_noop);
	agent_metrics_close(a);
	hookq_close(&a->hooks);
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
	log_event(LOG_LEVEL_INFO, "stop",
		  LOG_FIELDS(LOG_STR("signal", signum == SIGTERM ? "SIGTERM" : "SIGINT")),
		  "stopping on %s", signum == SIGTERM ? "SIGTERM" : "SIGINT");
	agent_request_stop(a, 0);
	shut_down(a);
}

/* A request from below (agent_state.h): a stop, or a scan. */
static void on_wake(uv_async_t *h)
{
	struct agent *a = container_of(h, struct agent, wake);

	if (a->stopping) {
		shut_down(a);
		return;
	}
	if (a->scan_wanted) {
		a->scan_wanted = false;
		agent_request_scan(a);
	}
}

/* The decision path's events go to the log, sd_notify and the metrics file,
 * in that order (event.h). */
static int observe_events(struct agent *a)
{
	int r = agent_events_observe(&a->events, agent_observe_log, a);
	if (r == 0)
		r = agent_events_observe(&a->events, agent_observe_notify, a);
	if (r == 0)
		r = agent_events_observe(&a->events, agent_metrics_observe, a);
	if (r < 0)
		log_error("cannot observe the agent's events: %s", strerror(-r));
	return r;
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
	if (observe_events(a) < 0) {
		config_free(&a->cfg);
		free(a);
		return 1;
	}
	r = uv_loop_init(&a->loop);
	if (r == 0) {
		r = uv_async_init(&a->loop, &a->wake, on_wake);
		if (r < 0)
			uv_loop_close(&a->loop);
	}
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
	uv_timer_init(&a->loop, &a->hang_timer);
	uv_timer_init(&a->loop, &a->exit_timer);
	char host[256] = "";
	gethostname(host, sizeof(host) - 1);
	archive_instance_id(getenv("WEBSITE_INSTANCE_ID"), host, a->instance, sizeof(a->instance));
	agent_metrics_init(a);
	hookq_init(&a->hooks, &a->loop, &a->cfg, a->opt.once, agent_hook_done);
	a->hooks.starting = agent_on_hook_starting;
	snprintf(a->hooks.instance, sizeof(a->hooks.instance), "%s", a->instance);
	incident_init(&a->inc, &a->loop, &a->cfg, a->instance, agent_on_incident_done);
	a->inc.queued = agent_on_incident_queued;
	watch_init(&a->watches, &a->loop, agent_on_watch_event);
	watch_set_root(&a->watches, a->cfg.site_root);
	if (start_signal(a, &a->sigterm, SIGTERM) < 0 || start_signal(a, &a->sigint, SIGINT) < 0 ||
	    start_signal(a, &a->sighup, SIGHUP) < 0) {
		agent_request_stop(a, 1);
		shut_down(a);
	} else {
		agent_update_stuck_after(a);
		log_settings(a, "start");
		uint64_t wd_ms = notify_watchdog_ms();
		if (wd_ms) {
			/* Half the period, as sd_watchdog_enabled(3) advises. */
			uv_timer_start(&a->watchdog_timer, on_watchdog_timer, wd_ms / 2 ? wd_ms / 2 : 1,
				       wd_ms / 2 ? wd_ms / 2 : 1);
			notify_watchdog();
		}
		uv_timer_start(&a->rescan_timer, agent_on_rescan_timer, a->cfg.scan_rescan_interval,
			       a->cfg.scan_rescan_interval);
		uv_timer_start(&a->prune_timer, on_prune_timer, 0, PRUNE_EVERY_MS);
		agent_request_scan(a);
	}

	uv_run(&a->loop, UV_RUN_DEFAULT);
	r = uv_loop_close(&a->loop);
	if (r < 0) {
		log_error("event loop did not close cleanly: %s", uv_strerror(r));
		a->exit_code = a->exit_code ? a->exit_code : 1;
	}
	int code = a->exit_code;
	log_debug("stopped");
	agent_forget_last_snapshot(a);
	silence_cache_free(&a->silence);
	incident_notes_free(&a->notes);
	incident_free(&a->inc);
	config_free(&a->cfg);
	free(a);
	return code;
}
