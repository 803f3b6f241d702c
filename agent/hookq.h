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

struct hookq {
	struct hook hook;
	uv_timer_t timer;         /* a run held back by the cooldown, or a retry */
	uv_loop_t *loop;
	const struct config *cfg; /* the owner's, current after a reload */
	bool once;                /* a start failure ends the run, no retry */
	hookq_done_cb done;

	bool pending;             /* a run is due */
	char *removed;            /* "path\npath..." for LOCKWARDEN_REMOVED */
	unsigned count;
	char reason[320];
	char deployment_id[KUDU_TEXT_MAX];
	bool ran;
	bool start_failed;        /* the last start failed: said once */
	uint64_t started_ms;
	bool stopped;
};

int hookq_init(struct hookq *q, uv_loop_t *loop, const struct config *cfg, bool once,
	       hookq_done_cb done);
/* Adds what job removed to the next run and runs it when it may. */
void hookq_add(struct hookq *q, const struct cleanup_job *job);
/* A run is going on or due. */
bool hookq_busy(const struct hookq *q);
/* No new run; the running one gets SIGTERM, then SIGKILL after grace_ms. */
void hookq_stop(struct hookq *q, uint64_t grace_ms);
void hookq_close(struct hookq *q);

#endif
