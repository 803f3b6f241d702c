/* agent_share.c - a share that does not answer. During a storage failover
 * the share stops answering: every call on it blocks in the kernel until the
 * share is back. Every job on the share runs on a worker thread - scans,
 * cleanups, trash sweeps, the claim's I/O, archive pruning - and the loop
 * thread reads nothing there (it only re-arms an inotify watch whose folder
 * was replaced), so the agent notices from here: a job that has not returned
 * after scan_hang_limit_ms. The outage and its end are events (event.h). */
#include "agent_share.h"
#include "agent_state.h"

#include <stdint.h>
#include <string.h>

#include "container_of.h"
#include "scan.h"

struct busy_job {
	uint64_t since_ms;        /* UINT64_MAX when nothing is in flight */
	const char *what;
};

static void consider(struct busy_job *oldest, bool busy, uint64_t since_ms, const char *what)
{
	if (busy && since_ms < oldest->since_ms) {
		oldest->since_ms = since_ms;
		oldest->what = what;
	}
}

/* The oldest job on the share in flight. */
static struct busy_job oldest_busy(const struct agent *a)
{
	struct busy_job oldest = { UINT64_MAX, "" };
	consider(&oldest, a->scan, a->last_scan_ms, "scan");
	consider(&oldest, a->reap, a->reap_started_ms, "cleanup");
	consider(&oldest, a->sweep, a->sweep_started_ms, "trash sweep");
	consider(&oldest, a->prune, a->prune_started_ms, "archive pruning");
	consider(&oldest, incident_busy(&a->inc), incident_busy_since_ms(&a->inc),
		 incident_busy_what(&a->inc));
	return oldest;
}

static void on_hang_timer(uv_timer_t *t)
{
	agent_check_share(container_of(t, struct agent, hang_timer));
}

static void say_share_out(struct agent *a, uint64_t now_ms, const struct busy_job *oldest)
{
	a->share_out = true;
	a->share_out_ms = oldest->since_ms;
	agent_emit(&a->events, &(struct agent_event){ .type = AGENT_EV_SHARE_OUT,
		   .what = oldest->what, .ms = now_ms - oldest->since_ms });
	/* One pass (run from cron) cannot wait for the share: passes would
	 * pile up behind it. */
	if (a->opt.once && !a->stopping) {
		a->once_done = true;
		agent_request_stop(a, AGENT_ONCE_UNAVAILABLE);
	}
}

void agent_check_share(struct agent *a)
{
	agent_check_share_reply(a, false);
}

void agent_check_share_reply(struct agent *a, bool answered)
{
	uint64_t now_ms = agent_mono_now_ms(a);
	struct busy_job oldest = oldest_busy(a);
	uint64_t limit_ms = scan_hang_limit_ms(a->cfg.scan_rescan_interval);

	if (oldest.since_ms != UINT64_MAX && now_ms - oldest.since_ms >= limit_ms) {
		uv_timer_stop(&a->hang_timer);
		if (!a->share_out)
			say_share_out(a, now_ms, &oldest);
		return;
	}
	/* Only a real reply ends the outage: a share's client that gave up on
	 * the server returns EIO, which proves nothing about the server. */
	if (a->share_out && answered) {
		a->share_out = false;
		agent_emit(&a->events, &(struct agent_event){ .type = AGENT_EV_SHARE_BACK,
			   .ms = now_ms - a->share_out_ms });
		a->share_back_ms = now_ms;
		/* Nothing was seen while it was out: a change that came and went
		 * meanwhile must not pass for quiet. */
		memset(&a->history, 0, sizeof(a->history));
	}
	if (oldest.since_ms != UINT64_MAX && !a->stopping)
		uv_timer_start(&a->hang_timer, on_hang_timer, oldest.since_ms + limit_ms - now_ms, 0);
	else
		uv_timer_stop(&a->hang_timer);
}

