/* agent_internal.h - the daemon's state, shared by its three files:
 * agent.c (lifecycle: start, signals, reload, shutdown, pruning), agent_scan.c
 * (scans and the decision after each) and agent_cleanup.c (what a decision
 * starts: the cleanup, the dry run, the hook, --once's outcome). Not for
 * other modules. */
#ifndef LOCKWARDEN_AGENT_INTERNAL_H
#define LOCKWARDEN_AGENT_INTERNAL_H

#include <limits.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "agent.h"
#include "cleanup.h"
#include "config.h"
#include "hookq.h"
#include "incident.h"
#include "kudu.h"
#include "policy.h"
#include "site.h"
#include "tree.h"
#include "verify.h"
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
/* ... and a worker still blocked on the share after this is left behind. */
#define SHUTDOWN_WORKER_GRACE_MS 1500

struct agent;

struct scan_job {
	uv_work_t req;
	struct agent *agent;
	unsigned generation;      /* the root it scanned; stale after a reload */
	uint64_t started_ms;      /* monotonic time it was queued */
	bool full;                /* re-read everything (scan.h) */
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
	uv_timer_t hang_timer;    /* a scan or cleanup that does not return */
	uv_timer_t exit_timer;    /* a stop that a blocked worker holds up */
	uv_signal_t sigterm, sigint, sighup;
	struct watch_set watches;
	struct hookq hooks;       /* when the hook runs */
	struct incident inc;      /* the claim shared with the other instances */
	bool kudu_work;           /* the last decision had Kudu leftovers to remove */
	struct incident_notes notes; /* the archive's sessions, as the last scan saw them */
	bool notes_known;         /* a first scan set what was cleared before this agent */
	bool said_recurrence;     /* a recurrence without allow_full_clear was said ... */
	int64_t said_recurrence_ns; /* ... for the previous cleanup of this time */

	unsigned generation;      /* bumped when the site root changes */
	struct scan_job *scan;    /* the scan in flight, if any */
	struct site_snapshot *last_snap; /* the previous scan, reused by the next */
	bool scan_again;          /* asked for while one was in flight */
	bool full_next;           /* the next scan re-reads everything */
	uint64_t last_scan_ms;    /* monotonic time the last scan was started */
	uint64_t reap_started_ms; /* monotonic time the cleanup in flight began */
	bool share_out;           /* said that the share is not answering */
	uint64_t share_out_ms;    /* when the operation that did not return began */
	unsigned long scans;
	struct policy_history history;
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

	/* After a cleanup that removed the lock folder: the lock, to watch for
	 * it coming back once the hook (the restart) has succeeded. */
	bool verify_due;
	struct kudu_info_lock verify_lock;
	struct verify_restart verify;

	bool once_done;           /* --once: the final decision has been made */
	bool stopping;
	int exit_code;
};

static inline uint64_t agent_mono_now_ms(struct agent *a)
{
	uv_update_time(&a->loop);
	return uv_now(&a->loop);
}

/* agent_scan.c */
void agent_request_scan(struct agent *a);
void agent_forget_last_snapshot(struct agent *a);
void agent_on_watch_event(struct watch_set *set);
void agent_on_rescan_timer(uv_timer_t *t);
/* Called whenever a scan or a cleanup starts or returns: says once that the
 * share is not answering, and once that it answers again. */
void agent_check_share(struct agent *a);

/* agent_cleanup.c */
/* The decision's removals: Kudu's leftovers need the incident's claim; our
 * own trash is swept only while no other instance is at work. */
void agent_act(struct agent *a, const struct site_snapshot *snap,
	       const struct policy_decision *d);
/* After each decision and hook: what the incident still needs. */
void agent_settle(struct agent *a);
/* The hook runs once per incident across instances ([hook] scope = site). */
bool agent_site_scope(const struct agent *a);
/* An incident cleared on the share (by any instance, this one too). */
void agent_on_incident_cleared(struct incident *inc, const struct incident_note *note);
/* Before the hook starts (hookq): a site-scope start is written into the claim. */
int agent_on_hook_starting(struct hookq *q);
void agent_log_dry_run(struct agent *a, const struct site_snapshot *snap,
		       const struct policy_decision *d);
void agent_hook_done(struct hookq *q, bool failed);

/* agent.c */
/* Stops everything; the loop ends when the last handle is closed. Called
 * again from the reap/scan/hook callbacks until nothing is in flight. */
void agent_begin_shutdown(struct agent *a, int exit_code);

#endif
