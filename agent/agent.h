/* agent.h - the daemon: one struct that owns the loop's handles and state.
 *
 * Scans run off the loop; events and the periodic rescan only ask for the
 * next scan; after each scan policy.c decides, and a cleanup (reap.c, off
 * the loop) and the hook (hook.c) follow. Every handle is embedded here and
 * recovered with container_of.
 */
#ifndef LOCKWARDEN_AGENT_H
#define LOCKWARDEN_AGENT_H

#include <stdbool.h>

#include "agent_options.h"
#include "config.h"

/* Runs the daemon until SIGTERM/SIGINT (or, with once, one pass). cfg is
 * taken over by the agent. Returns the exit code: 0, 1 on a runtime
 * failure, or with once an agent_once_exit. */
int agent_run(struct config *cfg, const struct agent_options *opt);

#endif
