/* notify.c - sd_notify(3) messages through libsystemd, loaded only when
 * there is a service manager to talk to.
 *
 * Inside an App Service container there is no systemd and NOTIFY_SOCKET is
 * unset; loading libsystemd there would cost about 1 MiB of resident memory
 * (it pulls in libgcrypt, libzstd, liblzma, ...) for nothing, a third of the
 * agent's budget. So the library is opened with dlopen() the first time a
 * message is to be sent, and only if NOTIFY_SOCKET is set.
 *
 * The static build (make static, LOCKWARDEN_STATIC) is for containers and
 * links no loader: a dlopen() there would need the very glibc the static
 * file is meant to do without, and fail in ways that say nothing. It sends
 * nothing, and says once, when it finds NOTIFY_SOCKET, that under systemd
 * the dynamic build (the .deb) is the one to use.
 */
#include "notify.h"

#ifndef LOCKWARDEN_STATIC
#include <dlfcn.h>
#endif
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include "log.h"

#define LIBSYSTEMD "libsystemd.so.0"

/* The library's entry points, resolved once; both NULL when there is no
 * service manager or no library. Written on the loop's thread only. */
static struct {
	bool tried;
	__typeof__(sd_notify) *notify;
	__typeof__(sd_watchdog_enabled) *watchdog_enabled;
} sd;

#ifdef LOCKWARDEN_STATIC
static bool load(void)
{
	if (sd.tried)
		return false;
	sd.tried = true;
	if (getenv("NOTIFY_SOCKET"))
		log_warning("NOTIFY_SOCKET is set, but this static build cannot talk to systemd "
			    "(no readiness, no watchdog): under systemd use the dynamic build "
			    "(the Debian package)");
	return false;
}
#else
static bool load(void)
{
	if (sd.tried)
		return sd.notify != NULL;
	sd.tried = true;
	if (!getenv("NOTIFY_SOCKET"))
		return false;
	void *lib = dlopen(LIBSYSTEMD, RTLD_NOW | RTLD_LOCAL);
	if (!lib) {
		log_warning("NOTIFY_SOCKET is set but %s cannot be loaded: %s; not notifying",
			    LIBSYSTEMD, dlerror());
		return false;
	}
	sd.notify = (__typeof__(sd_notify) *)dlsym(lib, "sd_notify");
	sd.watchdog_enabled = (__typeof__(sd_watchdog_enabled) *)dlsym(lib, "sd_watchdog_enabled");
	if (!sd.notify || !sd.watchdog_enabled) {
		log_warning("%s lacks sd_notify: not notifying", LIBSYSTEMD);
		sd.notify = NULL;
		sd.watchdog_enabled = NULL;
		return false;
	}
	return true;
}
#endif

static void send_state(const char *state)
{
	if (!load())
		return;
	int r = sd.notify(0, state);
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
	if (!load() || sd.watchdog_enabled(0, &usec) <= 0)
		return 0;
	return usec / 1000 ? usec / 1000 : 1;
}
