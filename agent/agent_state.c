/* agent_state.c - what any part of the daemon may ask of the top (agent.c)
 * without calling up: a stop and a scan are flags set here, read by agent.c
 * when the loop wakes it (its uv_async_t), never a call back up. */
#include "agent_state.h"

uint64_t agent_mono_now_ms(struct agent *a)
{
	uv_update_time(&a->loop);
	return uv_now(&a->loop);
}

static void wake_top(struct agent *a)
{
	/* After the last close nothing is read any more. */
	if (!uv_is_closing((uv_handle_t *)&a->wake))
		(void)uv_async_send(&a->wake); /* fails only on a closing handle */
}

void agent_request_stop(struct agent *a, int exit_code)
{
	if (!a->stopping) {
		a->stopping = true;
		a->exit_code = exit_code;
	}
	wake_top(a);
}

void agent_request_rescan(struct agent *a)
{
	a->scan_wanted = true;
	wake_top(a);
}
