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
#include "metrics.h"
#include "policy.h"
#include "silence.h"
#include "silence_read.h"
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
/* stuck_after = auto: a scan reads at most this many new log.log files, so a
 * first look at a long history on a slow share does not look like a hang;
 * the next scan follows at once while some are left. */
#define SILENCE_READS_PER_SCAN 64

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
	struct incident_look look; /* the claim and hook marks, after the listing (scan_work) */
	struct site_stat parent;  /* the root's parent, looked at while the root is missing */
	const struct incident_notes *prev_notes; /* read-only while the job runs */
	bool read_notes;
	struct incident_notes notes;
	/* stuck_after = auto: completed records' log.log (silence_read.h). */
	bool read_silence;
	const struct silence_cache *prev_silence; /* read-only while the job runs */
	struct silence_cache silence;
};

struct prune_job {
	uv_work_t req;
	struct agent *agent;
	char dir[PATH_MAX];
	uint64_t keep_ms;
	unsigned pruned;
	int err;
};

struct metrics_job {
	uv_work_t req;
	struct agent *agent;
	char path[PATH_MAX];
	char text[4096];
	size_t len;
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
	uint64_t share_back_ms;   /* when it last answered again (0: never out) */
	unsigned long scans;
	struct policy_history history;
	/* stuck_after in effect (the policy's params): the configured value,
	 * or auto's, worked out from the completed records' logs. */
	uint64_t stuck_after_ms;
	struct silence_cache silence;
	bool silence_known;       /* a scan has read the history into silence */
	bool auto_logged;         /* auto's value below was logged */
	enum silence_basis auto_basis;
	bool ready_sent;
	bool was_blocked;
	bool site_kind_checked;   /* the root was checked to be Kudu's tree (sitekind.h) */
	struct tree_identity tree; /* to notice the share vanishing or being replaced */
	char last_status[400];
	uint64_t last_dry_run_plan;
	uint64_t last_failure_plan[2]; /* [0] cleanups, [1] trash sweeps */
	uint64_t last_cleanup_plan;

	struct cleanup_job *reap; /* the cleanup in flight, if any */
	struct cleanup_job *sweep; /* the trash sweep in flight, if any */
	struct prune_job *prune;  /* the archive pruning in flight, if any */
	/* The cleanup prepared from a decision while its claim is being made
	 * off the loop; it starts when the claim is answered. */
	struct cleanup_job *claiming;
	uint64_t claim_asked_ms;  /* monotonic time the claim was asked for */
	bool act_again;           /* a claim was due while another claim job ran */
	bool site_claims_running; /* the last decision saw a deployment claim to run */
	uint64_t sweep_started_ms; /* monotonic start of the trash sweep in flight */
	/* When the last trash sweep returned, on the clock of a snapshot's
	 * scanned_mono_ms (clock_read, not uv_now). */
	uint64_t sweep_ended_mono_ms;
	uint64_t prune_started_ms; /* ... and of the archive pruning */
	char instance[32];        /* this instance, as the archive names it */
	atomic_bool cancel;

	/* After a cleanup that removed the lock folder: the lock, to watch for
	 * it coming back once the hook (the restart) has succeeded. */
	bool verify_due;
	struct kudu_info_lock verify_lock;
	struct verify_restart verify;

	/* The metrics file (agent_metrics.c). */
	struct metrics metrics;   /* now */
	struct metrics metrics_shown; /* as the last write that was started had them */
	uv_timer_t metrics_timer; /* rewrites the file every minute */
	struct metrics_job *metrics_job; /* the write in flight, if any */
	bool metrics_again;       /* a change came while a write was in flight */
	bool metrics_failing;     /* said that the file cannot be written */
	char metrics_incident[64]; /* the last incident counted */

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
/* Called whenever a job on the share (scan, cleanup, trash sweep, claim,
 * archive pruning) starts or returns: says once that the share is not
 * answering, and once that it answers again. */
void agent_check_share(struct agent *a);
/* The same, after a scan returned: answered when it read the site root (a
 * real reply from the share); only that ends an outage said before. */
void agent_check_share_reply(struct agent *a, bool answered);
/* Sets a->stuck_after_ms from the configuration and, for auto, the history;
 * logs auto's value and why at start and whenever it changes. */
void agent_update_stuck_after(struct agent *a);

/* agent_cleanup.c */
/* The decision's removals: Kudu's leftovers need the incident's claim; our
 * own trash is swept only while no other instance is at work. */
/* Starts the sweep of committed trash the snapshot shows, when it may run. */
void agent_sweep(struct agent *a, const struct site_snapshot *snap);
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
/* A claim operation was queued on, and returned from, a worker thread
 * (incident.h): each is timed like any other job on the share. */
void agent_on_incident_queued(struct incident *inc);
void agent_on_incident_done(struct incident *inc, enum incident_op op, int result);
void agent_log_dry_run(struct agent *a, const struct site_snapshot *snap,
		       const struct policy_decision *d);
void agent_hook_done(struct hookq *q, bool failed);

/* agent_metrics.c */
void agent_metrics_init(struct agent *a);
/* After a reload: the minute's timer runs only while a file is set. */
void agent_metrics_reloaded(struct agent *a);
/* Something the file shows may have changed: written now if it did. */
void agent_metrics_update(struct agent *a);
/* A stuck deployment found; incident "" (a dry run) counts every time. */
void agent_metrics_incident(struct agent *a, const char *incident);
void agent_metrics_cleanup(struct agent *a, const struct cleanup_outcome *out);
void agent_metrics_scanned(struct agent *a, int64_t scanned_ns);
/* Stopping: one last write if anything changed; true while a write is in flight. */
bool agent_metrics_busy(struct agent *a);
void agent_metrics_stop(struct agent *a);
void agent_metrics_close(struct agent *a);

/* agent.c */
/* Stops everything; the loop ends when the last handle is closed. Called
 * again from the reap/scan/hook callbacks until nothing is in flight. */
void agent_begin_shutdown(struct agent *a, int exit_code);

#endif
