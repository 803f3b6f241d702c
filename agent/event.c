/* event.c - the one place where the decision path's events reach their
 * observers (event.h). */
#include "event.h"

#include <errno.h>

int agent_events_observe(struct agent_events *e, agent_observer *fn, void *ctx)
{
	if (e->n >= AGENT_OBSERVERS_MAX)
		return -ENOSPC;
	e->fn[e->n] = fn;
	e->ctx[e->n++] = ctx;
	return 0;
}

void agent_emit(const struct agent_events *e, const struct agent_event *ev)
{
	for (size_t i = 0; i < e->n; i++)
		e->fn[i](e->ctx[i], ev);
}
