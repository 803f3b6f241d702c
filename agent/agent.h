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

/* --once ends with one of these (documented in the README and lockwarden(8)).
 * 1 stays a runtime failure, 64 usage, 78 configuration. */
enum agent_once_exit {
	AGENT_ONCE_NOTHING_STUCK = 0,
	AGENT_ONCE_STUCK_DRY_RUN = 2,  /* stuck, nothing removed (--dry-run), as report's 2 */
	AGENT_ONCE_CLEARED = 3,        /* every leftover removed; the hook, if any, succeeded */
	AGENT_ONCE_PARTIAL = 4,        /* stuck, but something was kept or could not be removed */
	AGENT_ONCE_HOOK_FAILED = 5,    /* cleared, but the hook failed, timed out or did not start */
	AGENT_ONCE_UNAVAILABLE = 6,    /* the site root is missing, the share not mounted or not answering */
	AGENT_ONCE_UNREADABLE = 7,     /* the tree could not be read (permissions, I/O) */
};

/* Runs the daemon until SIGTERM/SIGINT (or, with once, one pass). cfg is
 * taken over by the agent. Returns the exit code: 0, 1 on a runtime
 * failure, or with once an agent_once_exit. */
int agent_run(struct config *cfg, const struct agent_options *opt);

#endif
