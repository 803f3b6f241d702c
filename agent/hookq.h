/* hookq.h - when the restart hook runs: what it is told, the cooldown, and
 * retries.
 *
 * Each cleanup that removed something adds its removals to the next run.
 * Runs never overlap: what is removed while one runs, or while the cooldown
 * after the last start lasts, is collected into one later run. A hook that
 * cannot be started (out of descriptors or processes) is not dropped: the
 * incident still needs its restart, so the start is retried every
 * rescan_interval, and the failure is said once. The hook itself (process,
 * timeout, output) is hook.c's.
 */
#ifndef LOCKWARDEN_HOOKQ_H
#define LOCKWARDEN_HOOKQ_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "cleanup.h"
#include "config.h"
#include "hook.h"

struct hookq;

/* A run is over: failed when it exited non-zero, was killed or timed out,
 * or (with once) could not be started. */
typedef void (*hookq_done_cb)(struct hookq *q, bool failed);
/* Right before a start: 0 to start, 1 to drop the run as already done,
 * a negative errno to drop it (the incident is no longer this agent's), or
 * HOOKQ_STARTING_ASKED: the answer needs the share, and comes later through
 * hookq_starting_answer() (the loop never waits for it). */
#define HOOKQ_STARTING_ASKED 2
typedef int (*hookq_starting_cb)(struct hookq *q);

struct hookq {
	struct hook hook;
	uv_timer_t timer;         /* a run held back by the cooldown, or a retry */
	uv_loop_t *loop;
	const struct config *cfg; /* the owner's, current after a reload */
	bool once;                /* a start failure ends the run, no retry */
	hookq_done_cb done;
	hookq_starting_cb starting; /* NULL: always start */
	char instance[32];        /* LOCKWARDEN_INSTANCE */

	bool pending;             /* a run is due */
	char *removed;            /* "path\npath..." for LOCKWARDEN_REMOVED */
	unsigned count;
	char reason[320];
	char deployment_id[KUDU_TEXT_MAX];
	char incident[64];        /* LOCKWARDEN_INCIDENT */
	char step[16];            /* LOCKWARDEN_STEP: "clear" or "full-clear" */
	bool ran;
	bool asking;              /* waiting for starting()'s answer */
	bool start_failed;        /* the last start failed: said once */
	uint64_t started_ms;
	bool stopped;
	/* Runs that finished, by result (the metrics file). */
	unsigned long runs_ok, runs_failed, runs_timeout;
};

int hookq_init(struct hookq *q, uv_loop_t *loop, const struct config *cfg, bool once,
	       hookq_done_cb done);
/* Adds what job removed to the next run and runs it when it may. */
void hookq_add(struct hookq *q, const struct cleanup_job *job);
/* Adds removed ("path\npath", count lines) to the next run, for incident,
 * and runs it when it may: a run learnt from the share, not from a job.
 * step is the hook's step word ("clear" or "full-clear"). */
void hookq_add_list(struct hookq *q, const char *removed, unsigned count, const char *reason,
		    const char *incident, const char *step);
/* Another instance started a site-scope hook now: the cooldown counts
 * from here. */
void hookq_seen_elsewhere(struct hookq *q, uint64_t now_ms);
/* starting()'s answer, when it said HOOKQ_STARTING_ASKED: 0, 1 or a
 * negative errno, as starting() itself returns them. */
void hookq_starting_answer(struct hookq *q, int go);
/* A run is going on or due. */
bool hookq_busy(const struct hookq *q);
/* No new run; the running one gets SIGTERM, then SIGKILL after grace_ms. */
void hookq_stop(struct hookq *q, uint64_t grace_ms);
void hookq_close(struct hookq *q);

#endif
