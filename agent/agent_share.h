/* agent_share.h - a share that does not answer: every job on it (scan,
 * cleanup, trash sweep, claim, archive pruning) is timed from here. */
#ifndef LOCKWARDEN_AGENT_SHARE_H
#define LOCKWARDEN_AGENT_SHARE_H

#include <stdbool.h>

struct agent;

/* Called whenever a job on the share starts or returns: says once that the
 * share is not answering (AGENT_EV_SHARE_OUT), and once that it answers
 * again (AGENT_EV_SHARE_BACK). */
void agent_check_share(struct agent *a);
/* The same, after a scan returned: answered when it read the site root (a
 * real reply from the share); only that ends an outage said before. */
void agent_check_share_reply(struct agent *a, bool answered);

#endif
