/* agent_observe.c - what the decision path's events (event.h) say to the
 * outside: the log lines (text, json, journal fields: each event keeps its
 * name and fields) and sd_notify's STATUS=. Observers only: they read the
 * agent and the event, and decide nothing. */
#include "agent_observe.h"
#include "agent_state.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "isotime.h"
#include "log.h"
#include "notify.h"
#include "policy.h"

/* ---- the log lines ----------------------------------------------------------- */

static void log_share_out(const struct agent *a, const struct agent_event *ev)
{
	char took[32];

	config_format_duration(ev->ms, took, sizeof(took));
	log_event(LOG_LEVEL_WARNING, "share",
		  LOG_FIELDS(LOG_STR("state", "unreachable"), LOG_STR("site_root", a->cfg.site_root),
			     LOG_STR("operation", ev->what), LOG_INT("out_ms", ev->ms)),
		  "site root %s is not answering: a %s has not returned for %s; "
		  "judging and removing nothing until it answers", a->cfg.site_root,
		  ev->what, took);
}

static void log_share_back(const struct agent *a, const struct agent_event *ev)
{
	char took[32];

	config_format_duration(ev->ms, took, sizeof(took));
	log_event(LOG_LEVEL_INFO, "share",
		  LOG_FIELDS(LOG_STR("state", "back"), LOG_STR("site_root", a->cfg.site_root),
			     LOG_INT("out_ms", ev->ms)),
		  "site root %s answers again after %s out; watching it afresh for "
		  "stuck_after before any removal", a->cfg.site_root, took);
}

static void log_decided(const struct agent_event *ev)
{
	const struct policy_decision *d = ev->decision;

	log_debug("scan %lu done: %zu entries, %s%s%s, quiet %llu ms, next check %s%llu ms",
		  ev->scan, ev->snap->n_entries,
		  d->stuck ? "stuck" : d->claims_running ? "running" : "idle",
		  d->act ? ", act" : "", d->blocked ? ", blocked" : "",
		  (unsigned long long)d->quiet_ms, d->next_check_ms == UINT64_MAX ? "never " : "",
		  d->next_check_ms == UINT64_MAX ? 0ULL : (unsigned long long)d->next_check_ms);
	if (!ev->blocked_changed)
		return;
	if (d->blocked)
		log_warning("%s", d->reason);
	else
		log_info("the site tree can be read again");
}

static void log_recurred(const struct agent_event *ev)
{
	char since[32], within[32];

	config_format_duration((uint64_t)ev->decision->since_clear_ms, since, sizeof(since));
	config_format_duration(ev->escalate_within_ms, within, sizeof(within));
	log_warning("the stuck deployment recurred %s after the site's previous cleanup "
		    "(within [policy] escalate_within = %s): the usual cleanup is taken again. The "
		    "manual procedure's last step, removing everything in deployments/ but tools/ "
		    "and settings.xml (the deployment history goes with it; each record is archived "
		    "first), is taken only with [policy] allow_full_clear = true", since, within);
}

static void log_dry_run(const struct agent_event *ev)
{
	const struct site_snapshot *snap = ev->snap;
	const struct policy_decision *d = ev->decision;
	const char *names[64];
	char paths[64][NAME_MAX + 32];
	size_t n = 0;

	for (size_t i = 0; i < d->n_removals && n < 64; i++, n++) {
		site_entry_path(&snap->entries[d->removals[i]], paths[n], sizeof(paths[n]));
		names[n] = paths[n];
	}
	log_event(LOG_LEVEL_WARNING, "incident",
		  LOG_FIELDS(LOG_STR("reason", d->reason), LOG_STR("deployment_id", d->deployment_id),
			     LOG_LIST("will_remove", names, n), LOG_BOOL("dry_run", true)),
		  "dry run: stuck deployment: %s", d->reason);
	for (size_t i = 0; i < d->n_removals; i++) {
		const struct site_entry *e = &snap->entries[d->removals[i]];
		char path[NAME_MAX * 4 + 32], escaped[sizeof(path)];
		site_entry_path(e, path, sizeof(path));
		log_escape(path, escaped, sizeof(escaped));
		log_info("dry run: would remove %s: %s", escaped, d->entries[d->removals[i]].reason);
	}
	log_info("dry run: nothing removed, no hook run");
}

/* Why, and what is about to be removed; a cleanup that keeps failing is
 * retried every rescan and said once, not on every attempt. */
static void log_incident(const struct agent_event *ev)
{
	const struct cleanup_job *job = ev->job;
	char (*paths)[NAME_MAX + 32] = calloc(job->n ? job->n : 1, sizeof(*paths));
	const char **entries = calloc(job->n ? job->n : 1, sizeof(*entries));
	size_t n = paths && entries ? job->n : 0;

	for (size_t i = 0; i < n; i++) {
		snprintf(paths[i], sizeof(paths[i]), "%s/%s", job->targets[i].area,
			 job->targets[i].name);
		entries[i] = paths[i];
	}
	log_event(ev->repeated ? LOG_LEVEL_DEBUG : LOG_LEVEL_WARNING, "incident",
		  LOG_FIELDS(LOG_STR("incident", job->incident), LOG_STR("reason", job->reason),
			     LOG_STR("deployment_id", job->deployment_id),
			     LOG_STR("step", policy_step_name(job->step)),
			     LOG_LIST("will_remove", entries, n), LOG_BOOL("dry_run", false)),
		  "stuck deployment: %s; cleaning up", job->reason);
	free(entries);
	free(paths);
	if (ev->full_clear_new) {
		size_t foreign = job->evidence.n_foreign;
		log_warning("full clear ([policy] allow_full_clear): every deployment record, "
			    "active and pending go too, each archived first; tools/, settings.xml "
			    "and %zu %s that %s not Kudu's stay", foreign,
			    foreign == 1 ? "entry" : "entries", foreign == 1 ? "is" : "are");
	}
}

static void log_restart_checked(const struct agent *a, const struct agent_event *ev)
{
	char within[32], expiry[40];

	if (ev->verify == VERIFY_LOCK_BACK) {
		isotime_format(a->verify.removed.expiry_ns, "-", expiry, sizeof(expiry));
		log_error("the restart did not end the stuck lock: locks/deployment came back %llu s "
			  "after the hook succeeded, with the same holder and lockExpiry %s and no new "
			  "deployment, so Kudu still holds it; restart the site with its Kudu (scm) "
			  "container by hand, or wait for the lockExpiry",
			  (unsigned long long)((ev->ms - a->verify.since_ms) / 1000), expiry);
		return;
	}
	config_format_duration(a->cfg.hook_verify_within, within, sizeof(within));
	log_info("the restart ended the stuck lock: locks/deployment did not come back within "
		 "%s ([hook] verify_within)", within);
}

void agent_observe_log(void *ctx, const struct agent_event *ev)
{
	const struct agent *a = ctx;

	switch (ev->type) {
	case AGENT_EV_SHARE_OUT:
		log_share_out(a, ev);
		break;
	case AGENT_EV_SHARE_BACK:
		log_share_back(a, ev);
		break;
	case AGENT_EV_TREE_GONE:
		log_event(LOG_LEVEL_WARNING, "share",
			  LOG_FIELDS(LOG_STR("state", "unreachable"),
				     LOG_STR("site_root", a->cfg.site_root), LOG_STR("why", ev->what)),
			  "site root %s: %s; removing nothing until it is back",
			  a->cfg.site_root, ev->what);
		break;
	case AGENT_EV_TREE_BACK:
		log_event(LOG_LEVEL_INFO, "share",
			  LOG_FIELDS(LOG_STR("state", "back"), LOG_STR("site_root", a->cfg.site_root)),
			  "site root %s is back; watching it afresh for stuck_after before any removal",
			  a->cfg.site_root);
		break;
	case AGENT_EV_TREE_UNAVAILABLE:
		log_debug("scan %lu done: site tree unavailable", ev->scan);
		break;
	case AGENT_EV_DECIDED:
		log_decided(ev);
		break;
	case AGENT_EV_RECURRED:
		log_recurred(ev);
		break;
	case AGENT_EV_DRY_RUN:
		log_dry_run(ev);
		break;
	case AGENT_EV_INCIDENT:
		log_incident(ev);
		break;
	case AGENT_EV_CLEANUP_DONE:
		if (ev->no_hook)
			log_info("cleanup done; no hook configured");
		break;
	case AGENT_EV_RESTART_CHECKED:
		log_restart_checked(a, ev);
		break;
	case AGENT_EV_SCANNED:
	case AGENT_EV_HOOK_DONE:
		break;
	}
}

/* ---- sd_notify's STATUS= -------------------------------------------------------- */

/* READY=1 with the first status, STATUS= after, each new status once. */
static void say_status(struct agent *a, const char *status, bool always)
{
	if (!a->ready_sent) {
		notify_ready(status);
		a->ready_sent = true;
	} else if (always || strcmp(status, a->last_status) != 0) {
		notify_status(status);
	}
	snprintf(a->last_status, sizeof(a->last_status), "%s", status);
}

void agent_observe_notify(void *ctx, const struct agent_event *ev)
{
	struct agent *a = ctx;
	const struct policy_decision *d = ev->decision;
	char status[sizeof(a->last_status)];

	switch (ev->type) {
	case AGENT_EV_SHARE_OUT:
		snprintf(status, sizeof(status), "blocked: site root %s is not answering",
			 a->cfg.site_root);
		say_status(a, status, true);
		break;
	case AGENT_EV_TREE_UNAVAILABLE:
		/* Only the first: the status says what the last verdict was. */
		if (!a->ready_sent) {
			notify_ready("blocked: the site tree is unavailable");
			a->ready_sent = true;
		}
		break;
	case AGENT_EV_DECIDED:
		if (d->blocked)
			snprintf(status, sizeof(status), "blocked: %s", d->reason);
		else
			snprintf(status, sizeof(status), "%s: %s",
				 d->stuck ? "stuck" : d->claims_running ? "running" : "idle", d->reason);
		say_status(a, status, false);
		break;
	case AGENT_EV_SHARE_BACK:
	case AGENT_EV_TREE_GONE:
	case AGENT_EV_TREE_BACK:
	case AGENT_EV_SCANNED:
	case AGENT_EV_RECURRED:
	case AGENT_EV_DRY_RUN:
	case AGENT_EV_INCIDENT:
	case AGENT_EV_CLEANUP_DONE:
	case AGENT_EV_HOOK_DONE:
	case AGENT_EV_RESTART_CHECKED:
		break;
	}
}
