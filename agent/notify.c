/* notify.c - sd_notify(3) messages; silent without NOTIFY_SOCKET. */
#include "notify.h"

#include <stdio.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include "log.h"

static void send_state(const char *state)
{
	int r = sd_notify(0, state);
	/* A service manager that went away is not the agent's failure. */
	if (r < 0)
		log_debug("sd_notify failed: %s", strerror(-r));
}

void notify_ready(const char *status)
{
	char msg[512];
	snprintf(msg, sizeof(msg), "READY=1\nSTATUS=%s", status);
	send_state(msg);
}

void notify_status(const char *status)
{
	char msg[512];
	snprintf(msg, sizeof(msg), "STATUS=%s", status);
	send_state(msg);
}

void notify_reloading(void)
{
	struct timespec ts;
	char msg[128];

	/* systemd wants the CLOCK_MONOTONIC time of the reload request so it can
	 * tell this reload from an older one (sd_notify(3), MONOTONIC_USEC). */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu",
		 (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000ULL);
	send_state(msg);
}

void notify_stopping(void)
{
	send_state("STOPPING=1");
}

void notify_watchdog(void)
{
	send_state("WATCHDOG=1");
}

uint64_t notify_watchdog_ms(void)
{
	uint64_t usec = 0;
	if (sd_watchdog_enabled(0, &usec) <= 0)
		return 0;
	return usec / 1000 ? usec / 1000 : 1;
}
