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

/* The counters, one line each: X(field, name, help). A counter added here
 * is in struct metrics, in the file and in metrics_changed() at once. Each
 * name ends in _total (Prometheus' naming rule for counters); counts of
 * Kudu entries in _entries_total. */
#define METRICS_COUNTERS(X) \
	X(incidents, "lockwarden_incidents_total", \
	  "Stuck deployments found (in a dry run too).") \
	X(removed, "lockwarden_removed_entries_total", "Kudu entries removed.") \
	X(kept, "lockwarden_kept_entries_total", \
	  "Entries a rolled-back cleanup kept beside a name Kudu made again meanwhile.") \
	X(abandoned, "lockwarden_cleanups_abandoned_total", \
	  "Cleanups rolled back, nothing removed, because the deployment showed a sign of life.") \
	X(restarts_lost, "lockwarden_restarts_maybe_lost_total", \
	  "Incidents whose restart may have been lost (a hook marked, no end, its maker gone), " \
	  "as this instance saw them.")

struct metrics {
#define METRICS_FIELD(field, name, help) uint64_t field;
	METRICS_COUNTERS(METRICS_FIELD)
#undef METRICS_FIELD
	uint64_t hook_ok, hook_failed, hook_timeout; /* hook runs that finished */
	int64_t start_ns;          /* wall clock when the agent started */
	int64_t last_scan_ns;      /* wall clock when the last scan began; 0: none yet */
	bool stuck;                /* the last decision found a stuck deployment */
	bool share_up;             /* the site root answers and can be read */
	/* How long a deployment has claimed to run while the agent saw no
	 * change (the last decision's); 0 when none claims to run. */
	uint64_t claimed_quiet_ms;
	int64_t last_cleanup_ns;   /* wall clock when the last cleanup that removed
				    * something ended; 0: none since the start */
	int64_t last_hook_ns;      /* wall clock when the last hook run ended; 0: none */
	uint64_t last_hook_ms;     /* how long it ran */
	bool last_hook_ok;         /* it exited 0 */
};

/* The file's text for m into out (NUL-terminated). Returns its length, or
 * -ENOSPC when out is too small. Every sample carries the label
 * instance_id="instance" (not "instance": Prometheus sets that label to
 * the scraped target, and would rename ours exported_instance), so that
 * the files of several instances sharing one folder of a textfile
 * collector never hold the same series; version is a label of
 * lockwarden_build_info. Label values are escaped as the format wants. */
int metrics_format(const struct metrics *m, const char *version, const char *instance,
		   char *out, size_t size);

/* True when a and b differ in anything but the times that move on their
 * own (the last scan's, and how long a deployment has been quiet, unless
 * it starts or stops claiming to run): a change the file should show now
 * rather than at the next minute. */
bool metrics_changed(const struct metrics *a, const struct metrics *b);

/* pattern with every "$INSTANCE" replaced by instance, into out. Returns 0
 * or -ENAMETOOLONG. */
int metrics_path(const char *pattern, const char *instance, char *out, size_t size);

/* Writes len bytes of text to path atomically: a temporary file beside it
 * (path + ".tmp", never following a link), then rename(2), so a reader sees
 * the old file or the new one, never half of one. The folder is made
 * (one level) if it is missing. The file is mode 0644 and a folder it made
 * 0755 whatever the umask (the systemd unit's UMask=0077 would make them
 * root's alone, and a collector runs as another user). Blocking. */
int metrics_write_file(const char *path, const char *text, size_t len);

#endif
