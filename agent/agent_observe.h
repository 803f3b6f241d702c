/* agent_observe.h - the log lines and sd_notify's STATUS= that the
 * decision path's events stand for (event.h): observers registered at
 * set-up, ctx the agent. */
#ifndef LOCKWARDEN_AGENT_OBSERVE_H
#define LOCKWARDEN_AGENT_OBSERVE_H

#include "event.h"

void agent_observe_log(void *ctx, const struct agent_event *ev);
void agent_observe_notify(void *ctx, const struct agent_event *ev);

#endif
