/* notify.h - telling a service manager how the agent is doing.
 *
 * Thin wrappers over sd_notify(3): they do nothing (and cost nothing) when
 * NOTIFY_SOCKET is unset, as inside an App Service container.
 */
#ifndef LOCKWARDEN_NOTIFY_H
#define LOCKWARDEN_NOTIFY_H

#include <stdint.h>

void notify_ready(const char *status);
void notify_status(const char *status);
void notify_reloading(void);       /* RELOADING=1 with MONOTONIC_USEC */
void notify_stopping(void);
void notify_watchdog(void);
/* The watchdog period systemd asked for (WATCHDOG_USEC for this pid), in
 * milliseconds; 0 when none. */
uint64_t notify_watchdog_ms(void);

#endif
