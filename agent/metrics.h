/* metrics.h - the metrics file: what the agent did, in the Prometheus text
 * exposition format (version 0.0.4), for a textfile collector or a scraper
 * that reads files.
 *
 * metrics_format() is pure (the values in, the text out, unit tested);
 * metrics_write_file() is the blocking I/O, run on a worker thread by the
 * agent (agent_metrics.c), because the file usually lives on the /home share,
 * which can hang. Counters count from the agent's start (a restart starts
 * them again at 0, which Prometheus' rate() and increase() handle as a
 * counter reset). Functions return 0 or a negative errno.
 */
#ifndef LOCKWARDEN_METRICS_H
#define LOCKWARDEN_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct metrics {
	uint64_t incidents;        /* stuck deployments found (dry runs too) */
	uint64_t removed;          /* Kudu entries removed */
	uint64_t kept;             /* entries kept beside a name Kudu made again */
	uint64_t abandoned;        /* cleanups rolled back on a sign of life */
	uint64_t hook_ok, hook_failed, hook_timeout; /* hook runs that finished */
	uint64_t restarts_lost;    /* restarts that may have been lost (incident.h) */
	int64_t start_ns;          /* wall clock when the agent started */
	int64_t last_scan_ns;      /* wall clock when the last scan began; 0: none yet */
	bool stuck;                /* the last decision found a stuck deployment */
	bool share_up;             /* the site root answers and can be read */
};

/* The file's text for m into out (NUL-terminated). Returns its length, or
 * -ENOSPC when out is too small. version and instance become label values
 * of lockwarden_build_info (escaped as the format wants). */
int metrics_format(const struct metrics *m, const char *version, const char *instance,
		   char *out, size_t size);

/* True when a and b differ in anything but the last scan's time: a change
 * the file should show now rather than at the next minute. */
bool metrics_changed(const struct metrics *a, const struct metrics *b);

/* pattern with every "$INSTANCE" replaced by instance, into out. Returns 0
 * or -ENAMETOOLONG. */
int metrics_path(const char *pattern, const char *instance, char *out, size_t size);

/* Writes len bytes of text to path atomically: a temporary file beside it
 * (path + ".tmp", never following a link), then rename(2), so a reader sees
 * the old file or the new one, never half of one. The folder is made
 * (one level) if it is missing. Blocking. */
int metrics_write_file(const char *path, const char *text, size_t len);

#endif
