/* event.h - what the daemon's decision path (scan -> verdict -> cleanup ->
 * hook) tells the rest of the agent: one event type, and one place where its
 * observers are called. The path emits an event and goes on; the log lines,
 * the metrics file and sd_notify's STATUS= are observers registered at
 * set-up (agent.c), and they decide nothing. An observer runs on the loop
 * thread, at once, inside agent_emit.
 */
#ifndef LOCKWARDEN_EVENT_H
#define LOCKWARDEN_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct site_snapshot;
struct policy_decision;
struct cleanup_job;
struct cleanup_outcome;

enum agent_event_type {
	AGENT_EV_SHARE_OUT,       /* a job on the share has not returned for the hang limit */
	AGENT_EV_SHARE_BACK,      /* ... and the share answered again */
	AGENT_EV_TREE_GONE,       /* the site root is missing, unmounted or replaced */
	AGENT_EV_TREE_BACK,       /* ... and it is back */
	AGENT_EV_TREE_UNAVAILABLE, /* a scan ended without a tree to judge */
	AGENT_EV_DECIDED,         /* a scan was judged: the verdict */
	AGENT_EV_SCANNED,         /* a scan returned, judged or not */
	AGENT_EV_RECURRED,        /* stuck again soon after the previous cleanup */
	AGENT_EV_DRY_RUN,         /* stuck, and what a cleanup would remove */
	AGENT_EV_INCIDENT,        /* a cleanup starts */
	AGENT_EV_CLEANUP_DONE,    /* a cleanup or trash sweep returned */
	AGENT_EV_HOOK_DONE,       /* the hook ended (ok, failed or timed out) */
	AGENT_EV_RESTART_CHECKED, /* the restart did, or did not, end the lock */
};

struct agent_event {
	enum agent_event_type type;
	unsigned long scan;              /* DECIDED, TREE_UNAVAILABLE: the scan's number */
	const char *what;                /* SHARE_OUT: the operation; TREE_GONE: why */
	uint64_t ms;                     /* SHARE_OUT, SHARE_BACK: how long out;
					  * RESTART_CHECKED: monotonic now */
	const struct site_snapshot *snap;     /* DECIDED, DRY_RUN */
	const struct policy_decision *decision; /* DECIDED, DRY_RUN, RECURRED */
	bool blocked_changed;            /* DECIDED: blocked now and not before, or back */
	bool read;                       /* SCANNED: the tree was read */
	int64_t scanned_ns;              /* SCANNED: its wall time */
	const struct cleanup_job *job;   /* INCIDENT, CLEANUP_DONE */
	bool repeated;                   /* INCIDENT: the same plan, retried after a failure */
	bool full_clear_new;             /* INCIDENT: the full clear, its first attempt */
	const struct cleanup_outcome *outcome; /* CLEANUP_DONE */
	bool no_hook;                    /* CLEANUP_DONE: committed, and no hook configured */
	bool failed;                     /* HOOK_DONE */
	int verify;                      /* RESTART_CHECKED: VERIFY_LOCK_BACK or VERIFY_DONE */
	uint64_t escalate_within_ms;     /* RECURRED */
};

typedef void agent_observer(void *ctx, const struct agent_event *ev);

/* The log lines, sd_notify and the metrics file. */
#define AGENT_OBSERVERS_MAX 4

struct agent_events {
	agent_observer *fn[AGENT_OBSERVERS_MAX];
	void *ctx[AGENT_OBSERVERS_MAX];
	size_t n;
};

/* Adds an observer, called after those added before it. -ENOSPC when full. */
int agent_events_observe(struct agent_events *e, agent_observer *fn, void *ctx);

/* Tells every observer, in the order they were added. */
void agent_emit(const struct agent_events *e, const struct agent_event *ev);

#endif
