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

#include "config.h"

struct agent_options {
	const char *config_path;         /* NULL: the default path */
	struct config_overrides over;    /* kept for reloads */
	bool once;
	bool insecure_config;            /* skip trust_check_config on reload too */
};

/* Runs the daemon until SIGTERM/SIGINT (or, with once, one pass). cfg is
 * taken over by the agent. Returns the exit code: 0, or 1 on a runtime
 * failure. */
int agent_run(struct config *cfg, const struct agent_options *opt);

#endif
