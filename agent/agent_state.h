/* agent_state.h - the daemon's state, one struct agent shared by the
 * daemon's files, and the few things every one of them may ask of the top
 * (agent.c) without calling up: the loop's clock, a stop, a scan. Not for
 * other modules.
 *
 * The daemon's files, top down (each calls only those below it):
 *   agent.c          set-up, the loop, signals, reload, shutdown, pruning
 *   agent_scan.c     scans off the loop, the verdict after each
 *   agent_cleanup.c  what a verdict starts: the claim, the cleanup, the hook
 *   agent_share.c    a share that does not answer
 *   agent_observe.c, agent_metrics.c  observers of the events (event.h)
 *   agent_state.c    this struct's requests to the top */
#ifndef LOCKWARDEN_AGENT_STATE_H
#define LOCKWARDEN_AGENT_STATE_H

#include <limits.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "agent_options.h"
#include "cleanup.h"
#include "config.h"
#include "event.h"
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

struct metrics_job;

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
	uv_async_t wake;          /* a request to the top: a stop, a scan (agent_state.c) */
	bool scan_wanted;         /* a scan was asked for from below (agent_request_rescan) */
	struct agent_events events; /* the observers of the decision path (event.h) */
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
	bool stuck;               /* the last decision found the site stuck */
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
	bool stopping;            /* a stop was asked for: nothing new starts */
	bool stop_begun;          /* ... and agent.c has begun it */
	int exit_code;
};

/* The loop's monotonic clock, brought up to date. */
uint64_t agent_mono_now_ms(struct agent *a);

/* Asks the top to stop with exit_code (the first request's code stays):
 * every part sees a->stopping at once, and agent.c carries the stop out on
 * the loop's next turn. Also called when a job returns while stopping, so
 * that the stop can finish once nothing is in flight. */
void agent_request_stop(struct agent *a, int exit_code);

/* Asks the top for a scan on the loop's next turn: what a cleanup, a hook or
 * a claim's answer changed is judged afresh. */
void agent_request_rescan(struct agent *a);

#endif
