/* hookq.c - when the restart hook runs (see hookq.h). */
#include "hookq.h"
#include "container_of.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"


static void run_pending(struct hookq *q);

/* The collected run is started or given up. */
static void drop(struct hookq *q)
{
	q->pending = false;
	free(q->removed);
	q->removed = NULL;
	q->count = 0;
	q->step[0] = '\0';
}

/* Runs collected into one keep the highest step: a full clear among them
 * is what the restart follows. */
static void set_step(struct hookq *q, const char *step)
{
	if (strcmp(q->step, "full-clear") != 0)
		snprintf(q->step, sizeof(q->step), "%s", step);
}

static char *env_pair(const char *name, const char *value)
{
	size_t n = strlen(name) + strlen(value) + 2;
	char *s = malloc(n);
	if (s)
		snprintf(s, n, "%s=%s", name, value);
	return s;
}

static uint64_t now_ms(struct hookq *q)
{
	uv_update_time(q->loop);
	return uv_now(q->loop);
}

static void on_hook_done(struct hook *h, int64_t exit_status, int term_signal, bool timed_out)
{
	struct hookq *q = container_of(h, struct hookq, hook);
	bool failed = exit_status != 0 || term_signal != 0 || timed_out;

	if (timed_out)
		q->runs_timeout++;
	else if (failed)
		q->runs_failed++;
	else
		q->runs_ok++;
	q->done(q, failed);
	if (q->pending)
		run_pending(q);
}

static void on_timer(uv_timer_t *t)
{
	run_pending(container_of(t, struct hookq, timer));
}

/* True when the cooldown holds the run back (the timer is then set). */
static bool held_by_cooldown(struct hookq *q, uint64_t now)
{
	uint64_t cooldown = q->cfg->hook_cooldown;
	if (!q->ran || now - q->started_ms >= cooldown || q->once)
		return false;
	uint64_t wait_ms = cooldown - (now - q->started_ms);
	char shown[32];
	config_format_duration(cooldown, shown, sizeof(shown));
	log_info("hook held back by the cooldown ([hook] cooldown = %s): runs in %llu s", shown,
		 (unsigned long long)((wait_ms + 999) / 1000));
	uv_timer_start(&q->timer, on_timer, wait_ms, 0);
	return true;
}

static int start(struct hookq *q)
{
	char count[16];
	snprintf(count, sizeof(count), "%u", q->count);
	/* Everything from the tree goes in as environment values, never into
	 * the command line, so no name can be read as shell syntax. */
	char *env[9] = {
		env_pair("LOCKWARDEN_SITE_ROOT", q->cfg->site_root),
		env_pair("LOCKWARDEN_REMOVED", q->removed ? q->removed : ""),
		env_pair("LOCKWARDEN_REMOVED_COUNT", count),
		env_pair("LOCKWARDEN_DEPLOYMENT_ID", q->deployment_id),
		env_pair("LOCKWARDEN_REASON", q->reason),
		env_pair("LOCKWARDEN_INSTANCE", q->instance),
		env_pair("LOCKWARDEN_INCIDENT", q->incident),
		env_pair("LOCKWARDEN_STEP", q->step[0] ? q->step : "clear"),
		NULL,
	};
	bool ok = true;
	for (int i = 0; i < 8; i++)
		ok = ok && env[i];
	int r = ok ? hook_start(&q->hook, q->cfg->hook_command, env, q->cfg->hook_timeout,
				on_hook_done)
		   : UV_ENOMEM;
	for (int i = 0; i < 8; i++)
		free(env[i]);
	return r;
}

static void go_on(struct hookq *q, int go, uint64_t now);

/* Runs the collected hook if nothing holds it back; otherwise leaves it
 * pending and arranges to come back. */
static void run_pending(struct hookq *q)
{
	if (!q->pending || q->stopped || q->asking || hook_running(&q->hook))
		return;
	uint64_t now = now_ms(q);
	if (held_by_cooldown(q, now))
		return;
	int go = q->starting ? q->starting(q) : 0;
	if (go == HOOKQ_STARTING_ASKED) {
		q->asking = true;
		return;
	}
	go_on(q, go, now);
}

void hookq_starting_answer(struct hookq *q, int go)
{
	if (!q->asking)
		return;
	q->asking = false;
	if (!q->pending || q->stopped)
		return;
	go_on(q, go, now_ms(q));
}

/* Starts the run starting() allowed, or drops the one it refused. */
static void go_on(struct hookq *q, int go, uint64_t now)
{
	if (go != 0) {
		if (go < 0)
			log_warning("hook not run: %s", go == -ESTALE
				    ? "the incident was taken over by another instance"
				    : strerror(-go));
		else
			log_info("hook not run again: it was started for incident %s before", q->incident);
		drop(q);
		q->done(q, false);
		return;
	}
	int r = start(q);
	if (r < 0) {
		log_msg(q->start_failed ? LOG_LEVEL_DEBUG : LOG_LEVEL_ERROR,
			"cannot start the hook: %s%s", uv_strerror(r),
			q->once ? "" : "; tried again every rescan_interval");
		q->start_failed = true;
		if (q->once) {
			q->pending = false;
			q->done(q, true);
		} else {
			uv_timer_start(&q->timer, on_timer, q->cfg->scan_rescan_interval, 0);
		}
		return;
	}
	drop(q);
	q->start_failed = false;
	q->ran = true;
	q->started_ms = now;
}

static bool add_path(struct hookq *q, const char *path)
{
	size_t old = q->removed ? strlen(q->removed) : 0;
	char *grown = realloc(q->removed, old + strlen(path) + 2);
	if (!grown) {
		log_error("out of memory collecting the hook's list");
		return false;
	}
	/* One line per entry; the last line has no newline. */
	snprintf(grown + old, strlen(path) + 2, "%s%s", old ? "\n" : "", path);
	q->removed = grown;
	q->count++;
	return true;
}

void hookq_add(struct hookq *q, const struct cleanup_job *job)
{
	bool added = false;
	for (size_t i = 0; i < job->n; i++) {
		if (job->results[i].err != 0)
			continue;
		char path[NAME_MAX + 32];
		snprintf(path, sizeof(path), "%s/%s", job->targets[i].area, job->targets[i].name);
		added = add_path(q, path) || added;
	}
	if (!added)
		return;
	q->pending = true;
	snprintf(q->reason, sizeof(q->reason), "%s", job->reason);
	snprintf(q->deployment_id, sizeof(q->deployment_id), "%s", job->deployment_id);
	snprintf(q->incident, sizeof(q->incident), "%s", job->incident);
	set_step(q, policy_step_hook_name(job->step));
	run_pending(q);
}

void hookq_add_list(struct hookq *q, const char *removed, unsigned count, const char *reason,
		    const char *incident, const char *step)
{
	const char *p = removed;
	for (unsigned i = 0; i < count && *p; i++) {
		char path[NAME_MAX + 32];
		const char *nl = strchr(p, '\n');
		size_t l = nl ? (size_t)(nl - p) : strlen(p);
		snprintf(path, sizeof(path), "%.*s", (int)l, p);
		add_path(q, path);
		p = nl ? nl + 1 : p + l;
	}
	q->pending = true;
	snprintf(q->reason, sizeof(q->reason), "%s", reason);
	q->deployment_id[0] = '\0';
	snprintf(q->incident, sizeof(q->incident), "%s", incident);
	set_step(q, step);
	run_pending(q);
}

void hookq_seen_elsewhere(struct hookq *q, uint64_t now)
{
	q->ran = true;
	q->started_ms = now;
}

int hookq_init(struct hookq *q, uv_loop_t *loop, const struct config *cfg, bool once,
	       hookq_done_cb done)
{
	memset(q, 0, sizeof(*q));
	q->loop = loop;
	q->cfg = cfg;
	q->once = once;
	q->done = done;
	int r = uv_timer_init(loop, &q->timer);
	if (r == 0)
		r = hook_init(&q->hook, loop);
	return r;
}

bool hookq_busy(const struct hookq *q)
{
	return q->pending || q->asking || hook_running(&q->hook);
}

void hookq_stop(struct hookq *q, uint64_t grace_ms)
{
	q->stopped = true;
	uv_timer_stop(&q->timer);
	if (hook_running(&q->hook))
		hook_stop(&q->hook, grace_ms);
}

static void on_closed(uv_handle_t *h)
{
}

static void on_hook_closed(struct hook *h)
{
}

void hookq_close(struct hookq *q)
{
	uv_close((uv_handle_t *)&q->timer, on_closed);
	hook_close(&q->hook, on_hook_closed);
	free(q->removed);
	q->removed = NULL;
}
