/* shareclock.h - how far this host's wall clock is from the share's.
 *
 * File times on the share are stamped by the file server's clock, and
 * lockExpiry by Kudu's (which agrees with the share's: both are kept in
 * time by the platform). One scaled-out instance whose own clock is hours
 * ahead would judge a fresh lock expired and every file time hours old, so
 * the agent judges them by the share's clock instead of its own: it
 * measures the offset by creating a probe file, CLOCK_PROBE_PREFIX
 * <instance>, in its archive folder (on the same share as the site root on
 * App Service), reading the change time the server gave it, and removing
 * it again at once. offset = this host's wall time around the create -
 * that change time. A new file is used, not a rewritten one: the server
 * answers a create with its own times, where a write may be stamped first
 * by the client kernel's clock (cifs caches writes).
 *
 * The probe runs on the scan's worker thread (the share can hang), at the
 * first scan, then every SHARECLOCK_EVERY_MS, and at once when this host's
 * wall clock moved unlike its monotonic clock since the last probe (a jump).
 * Only when the archive folder is on the same filesystem as the site root:
 * another filesystem's clock says nothing about the share's.
 *
 * Blocking I/O; never logs (it runs off the loop): the caller compares the
 * state before and after and says what changed.
 */
#ifndef LOCKWARDEN_SHARECLOCK_H
#define LOCKWARDEN_SHARECLOCK_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "clock.h"

#define CLOCK_PROBE_PREFIX ".lockwarden-clock-"
#define SHARECLOCK_EVERY_MS (5 * 60 * 1000ULL)
/* Wall and monotonic clocks drifting apart by more than this since the
 * last probe is a jump of this host's clock: probe again at once. */
#define SHARECLOCK_JUMP_MS 2000
/* A probe whose create took longer than this is not believed: the time
 * read around it is too vague. */
#define SHARECLOCK_SLOW_MS 1000

/* Carried from one scan to the next by the agent. Zeroed: never probed. */
struct shareclock {
	bool probed;        /* at least one probe was attempted */
	uint64_t probed_ms; /* monotonic time of the last attempt */
	int64_t drift_ns;   /* wall - monotonic at the last good probe */
	bool known;         /* offset_ns was measured, and still holds */
	int64_t offset_ns;  /* this host's wall clock minus the share's */
	/* 0 measured; -EXDEV the archive folder is on another filesystem than
	 * the site root; -ETIMEDOUT the probe was too slow to believe; another
	 * negative errno: the probe could not be made. */
	int err;
	char what[80];      /* which step failed ("create <name>"), for the log */
};

/* Probes when due (see above). site_dev: the site root's device, as this
 * scan saw it. create_dir: make the archive folder when it is missing (the
 * agent will archive there anyway; report only looks). */
void shareclock_update(struct shareclock *sc, const char *archive_dir, const char *instance,
		       dev_t site_dev, bool create_dir, const struct clock_now *now);

#endif
