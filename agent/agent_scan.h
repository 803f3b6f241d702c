/* agent_scan.h - scans off the loop and the verdict after each. */
#ifndef LOCKWARDEN_AGENT_SCAN_H
#define LOCKWARDEN_AGENT_SCAN_H

#include <uv.h>

struct agent;
struct watch_set;

/* A scan now, or once the one in flight returned. */
void agent_request_scan(struct agent *a);
void agent_forget_last_snapshot(struct agent *a);
void agent_on_watch_event(struct watch_set *set);
void agent_on_rescan_timer(uv_timer_t *t);
/* Sets a->stuck_after_ms from the configuration and, for auto, the history;
 * logs auto's value and why at start and whenever it changes. */
void agent_update_stuck_after(struct agent *a);

#endif
