/* agent_cleanup.h - what a verdict starts: the claim, the cleanup, the trash
 * sweep, the dry run, the hook, and how --once ends (its exit codes:
 * agent_options.h). */
#ifndef LOCKWARDEN_AGENT_CLEANUP_H
#define LOCKWARDEN_AGENT_CLEANUP_H

#include <stdbool.h>

#include "incident.h"

struct agent;
struct hookq;
struct policy_decision;
struct site_snapshot;

/* The decision's removals: Kudu's leftovers need the incident's claim; our
 * own trash is swept only while no other instance is at work. */
/* Starts the sweep of committed trash the snapshot shows, when it may run. */
void agent_sweep(struct agent *a, const struct site_snapshot *snap);
void agent_act(struct agent *a, const struct site_snapshot *snap,
	       const struct policy_decision *d);
/* A dry run: what would be removed is told (AGENT_EV_DRY_RUN), once per plan. */
void agent_dry_run(struct agent *a, const struct site_snapshot *snap,
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
void agent_hook_done(struct hookq *q, bool failed);

#endif
