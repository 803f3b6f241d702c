/* silence.h - how long a live deployment on this site has been seen to stay
 * silent, learned from its completed records (issue 14, part 2).
 *
 * Pure: log text and numbers in, numbers and sentences out. The shell
 * (silence_read.c) reads the log.log of each completed record once; report,
 * check-config and the agent's stuck_after = auto use what is computed here.
 *
 * A deployment writes a line to its log.log as it goes. The longest gap
 * between two lines of one completed deployment is the longest it was seen
 * to be silent while alive; stuck_after well above that will not clear a
 * deployment like it. Lines are read by their leading time only, in both
 * shapes ../shared/KUDU.md shows (Kudu's "<time>,<message>,<guid>,<kind>"
 * with tabs before a child entry, and the 2024 production shape
 * "<time>,<site>,,,<id>,..."). A line without a leading time is skipped,
 * never an error: the log is Kudu's, in formats that change.
 */
#ifndef LOCKWARDEN_SILENCE_H
#define LOCKWARDEN_SILENCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kudu.h"

/* stuck_after = auto is this many times the longest silence seen. */
#define SILENCE_AUTO_FACTOR 3
/* check-config warns when a fixed stuck_after is below this many times it. */
#define SILENCE_WARN_FACTOR 2

/* What one completed record's log.log says. */
struct silence_log {
	bool usable;             /* at least two lines with a leading time */
	size_t timed_lines;
	size_t skipped_lines;    /* non-empty lines without a leading time */
	uint64_t longest_gap_ms; /* between a line and the latest time before it,
				  * rounded up to whole seconds */
	uint64_t span_ms;        /* the earliest time to the latest: how long it ran */
};

/* Reads buf[0..len) (need not be NUL-terminated; may stop mid-line when the
 * caller read only the start of a large file: a cut last line has no comma
 * after its time and is skipped). Times that go backwards are not a
 * silence: each line is compared with the latest time before it. */
void silence_parse_log(const char *buf, size_t len, struct silence_log *out);

/* The completed records of a site, folded together. */
struct silence_history {
	size_t completed;        /* completed records seen */
	size_t usable;           /* of them, with a usable log.log */
	size_t unread;           /* of them, whose log.log was not read yet */
	uint64_t longest_gap_ms;
	char longest_gap_id[KUDU_TEXT_MAX];
	uint64_t longest_run_ms;
	char longest_run_id[KUDU_TEXT_MAX];
};

/* Adds one completed record: log NULL when its log.log is not read yet; a
 * log that could not be read or is not usable still counts as completed. */
void silence_history_add(struct silence_history *h, const char *id, const struct silence_log *log);

enum silence_basis {
	SILENCE_NO_HISTORY,   /* no usable log.log: the default */
	SILENCE_UNREAD,       /* logs still being read: the default until then */
	SILENCE_FROM_HISTORY, /* SILENCE_AUTO_FACTOR x the longest silence */
	SILENCE_AT_FLOOR,     /* that was below the floor */
	SILENCE_AT_CAP,       /* that was above the cap */
};

struct silence_auto {
	uint64_t stuck_after_ms;
	enum silence_basis basis;
};

/* stuck_after = auto: SILENCE_AUTO_FACTOR x the longest silence, at least
 * floor_ms, at most cap_ms (the default, which is also the answer when there
 * is no usable history or part of it is unread: auto is never bolder than
 * the default on a site it knows nothing about). A floor above the cap
 * gives the cap. */
void silence_auto_compute(const struct silence_history *h, uint64_t floor_ms, uint64_t cap_ms,
			  struct silence_auto *out);

/* Why: "27m (3 x longest silence 9m in <id>, floor 25m, cap 45m)", or
 * the reason it is the floor, the cap or the default. */
void silence_auto_explain(const struct silence_history *h, const struct silence_auto *a,
			  uint64_t floor_ms, uint64_t cap_ms, char *out, size_t size);

/* report's line: "10 completed deployments; longest silence 2m10s in <id>;
 * stuck_after 15m is 6.9x that; longest deployment 7m in <id>".
 * stuck_label is how stuck_after is shown ("15m", "auto (6m30s)"). */
void silence_report_line(const struct silence_history *h, const char *stuck_label,
			 uint64_t stuck_after_ms, char *out, size_t size);

/* check-config: true (and one sentence in out) when a fixed stuck_after_ms
 * is below SILENCE_WARN_FACTOR x the longest silence seen. */
bool silence_warning(const struct silence_history *h, uint64_t stuck_after_ms, char *out,
		     size_t size);

#endif
