/* agent_metrics.h - the metrics file kept current: an observer of the
 * decision path's events (event.h), written off the loop. */
#ifndef LOCKWARDEN_AGENT_METRICS_H
#define LOCKWARDEN_AGENT_METRICS_H

#include <stdbool.h>

#include "event.h"

struct agent;

void agent_metrics_init(struct agent *a);
/* The observer (ctx: the agent): each event updates what the file shows,
 * written now if that changed. */
void agent_metrics_observe(void *ctx, const struct agent_event *ev);
/* After a reload: the minute's timer runs only while a file is set. */
void agent_metrics_reloaded(struct agent *a);
/* Stopping: one last write if anything changed; true while a write is in flight. */
bool agent_metrics_busy(struct agent *a);
void agent_metrics_stop(struct agent *a);
void agent_metrics_close(struct agent *a);

#endif
