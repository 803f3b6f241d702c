/* agent_options.h - what main() tells the daemon besides its configuration,
 * and how --once ends: read by every part of the daemon, so below them all. */
#ifndef LOCKWARDEN_AGENT_OPTIONS_H
#define LOCKWARDEN_AGENT_OPTIONS_H

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

#endif
