/* agent_metrics.c - keeps the metrics file (metrics.h) current: written on
 * every change the file shows and once a minute (the last scan's time),
 * always on a worker thread since the file is usually on the share. While a
 * write has not returned no other starts: a hung share holds one worker,
 * never the loop, and never a cleanup. A failed write is said once, and once
 * when the file can be written again. It observes the decision path's
 * events (event.h); nothing on that path calls it. */
#include "agent_metrics.h"
#include "agent_state.h"
#include "container_of.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "cleanup.h"
#include "log.h"
#include "policy.h"

#define METRICS_EVERY_MS (60 * 1000)

struct metrics_job {
	uv_work_t req;
	struct agent *agent;
	char path[PATH_MAX];
	char text[4096];
	size_t len;
	int err;
};

/* The gauges, from the agent's state. */
static void refresh(struct agent *a)
{
	struct metrics *m = &a->metrics;
	const struct hookq *q = &a->hooks;

	m->share_up = !a->share_out && !a->tree.gone && !a->was_blocked;
	/* A run ended since the last look (each end is an AGENT_EV_HOOK_DONE,
	 * seen here at once): it is the last hook. */
	if (q->runs_ok + q->runs_failed + q->runs_timeout !=
	    m->hook_ok + m->hook_failed + m->hook_timeout) {
		uv_update_time(&a->loop);
		m->last_hook_ns = clock_wall_ns();
		m->last_hook_ms = uv_now(&a->loop) - q->started_ms;
		m->last_hook_ok = q->runs_ok != m->hook_ok;
	}
	m->hook_ok = q->runs_ok;
	m->hook_failed = q->runs_failed;
	m->hook_timeout = q->runs_timeout;
	m->restarts_lost = a->inc.restarts_lost;
}

static void start_write(struct agent *a);

/* On a worker thread. */
static void write_work(uv_work_t *req)
{
	struct metrics_job *job = container_of(req, struct metrics_job, req);
	job->err = metrics_write_file(job->path, job->text, job->len);
}

static void say_outcome(struct agent *a, const struct metrics_job *job)
{
	if (job->err < 0 && !a->metrics_failing) {
		a->metrics_failing = true;
		log_event(LOG_LEVEL_ERROR, "metrics",
			  LOG_FIELDS(LOG_STR("path", job->path), LOG_STR("error", strerror(-job->err))),
			  "cannot write the metrics file %s: %s; cleanups go on, and it is tried "
			  "again on the next change and every minute", job->path, strerror(-job->err));
	} else if (job->err == 0 && a->metrics_failing) {
		a->metrics_failing = false;
		log_event(LOG_LEVEL_INFO, "metrics", LOG_FIELDS(LOG_STR("path", job->path)),
			  "the metrics file %s is written again", job->path);
	}
}

static void write_after(uv_work_t *req, int status)
{
	struct metrics_job *job = container_of(req, struct metrics_job, req);
	struct agent *a = job->agent;

	a->metrics_job = NULL;
	if (status == 0)
		say_outcome(a, job);
	free(job);
	if (a->metrics_again) {
		/* The values changed while it was written: once more. */
		a->metrics_again = false;
		start_write(a);
	}
	if (a->stopping && !a->metrics_job)
		agent_request_stop(a, a->exit_code);
}

static void start_write(struct agent *a)
{
	if (!a->cfg.metrics_file[0])
		return;
	if (a->metrics_job) {
		a->metrics_again = true;
		return;
	}
	struct metrics_job *job = calloc(1, sizeof(*job));
	if (!job)
		return;
	job->agent = a;
	refresh(a);
	int n = metrics_format(&a->metrics, LOCKWARDEN_VERSION, a->instance, job->text,
			       sizeof(job->text));
	if (n < 0 || metrics_path(a->cfg.metrics_file, a->instance, job->path,
				  sizeof(job->path)) < 0) {
		free(job); /* cannot happen: the text is small, the path checked */
		return;
	}
	job->len = (size_t)n;
	if (uv_queue_work(&a->loop, &job->req, write_work, write_after) < 0) {
		free(job);
		return;
	}
	a->metrics_shown = a->metrics;
	a->metrics_job = job;
}

static void on_metrics_timer(uv_timer_t *t)
{
	start_write(container_of(t, struct agent, metrics_timer));
}

void agent_metrics_init(struct agent *a)
{
	a->metrics.start_ns = clock_wall_ns();
	uv_timer_init(&a->loop, &a->metrics_timer);
	agent_metrics_reloaded(a);
}

void agent_metrics_reloaded(struct agent *a)
{
	/* No file, no wakeup: an idle agent stays idle. */
	if (!a->cfg.metrics_file[0]) {
		uv_timer_stop(&a->metrics_timer);
		return;
	}
	if (!uv_is_active((uv_handle_t *)&a->metrics_timer))
		uv_timer_start(&a->metrics_timer, on_metrics_timer, METRICS_EVERY_MS,
			       METRICS_EVERY_MS);
	start_write(a); /* a new path gets the file now */
}

/* Something the file shows may have changed: written now if it did. */
static void update(struct agent *a)
{
	refresh(a);
	if (metrics_changed(&a->metrics, &a->metrics_shown))
		start_write(a);
}

/* A stuck deployment found; incident "" (a dry run) counts every time. */
static void count_incident(struct agent *a, const char *incident)
{
	/* A cleanup retried for the same incident is the same incident. */
	if (incident[0] && strcmp(incident, a->metrics_incident) == 0)
		return;
	snprintf(a->metrics_incident, sizeof(a->metrics_incident), "%s", incident);
	a->metrics.incidents++;
	update(a);
}

static void count_cleanup(struct agent *a, const struct cleanup_outcome *out)
{
	a->metrics.removed += out->n_removed;
	a->metrics.kept += out->n_kept;
	if (out->n_removed)
		a->metrics.last_cleanup_ns = clock_wall_ns();
	a->metrics.abandoned += out->abandoned;
	update(a);
}

void agent_metrics_observe(void *ctx, const struct agent_event *ev)
{
	struct agent *a = ctx;

	switch (ev->type) {
	case AGENT_EV_DECIDED:
		/* Written with the scan's end (AGENT_EV_SCANNED), just after. */
		a->metrics.stuck = ev->decision->stuck;
		a->metrics.claimed_quiet_ms = ev->decision->claims_running ? ev->decision->quiet_ms : 0;
		break;
	case AGENT_EV_SCANNED:
		if (ev->read && ev->scanned_ns > 0)
			a->metrics.last_scan_ns = ev->scanned_ns;
		update(a);
		break;
	case AGENT_EV_INCIDENT:
		if (!ev->repeated)
			count_incident(a, ev->job->incident);
		break;
	case AGENT_EV_DRY_RUN:
		count_incident(a, "");
		break;
	case AGENT_EV_CLEANUP_DONE:
		count_cleanup(a, ev->outcome);
		break;
	case AGENT_EV_SHARE_OUT:
	case AGENT_EV_HOOK_DONE:
		update(a);
		break;
	case AGENT_EV_SHARE_BACK:
	case AGENT_EV_TREE_GONE:
	case AGENT_EV_TREE_BACK:
	case AGENT_EV_TREE_UNAVAILABLE:
	case AGENT_EV_RECURRED:
	case AGENT_EV_RESTART_CHECKED:
		break;
	}
}

bool agent_metrics_busy(struct agent *a)
{
	return a->metrics_job != NULL;
}

void agent_metrics_stop(struct agent *a)
{
	uv_timer_stop(&a->metrics_timer);
	/* --once ends here: the file shows the pass's end. */
	update(a);
}

void agent_metrics_close(struct agent *a)
{
	uv_close((uv_handle_t *)&a->metrics_timer, NULL);
}
