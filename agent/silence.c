/* silence.c - the longest silence inside completed deployments, and what
 * stuck_after = auto makes of it (silence.h). */
#include "silence.h"

#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "fmt.h"
#include "isotime.h"

/* The leading time of one line (without its '\n'), or false. Tabs indent a
 * child entry; a time is followed by a comma in every shape Kudu writes, so
 * a line cut short inside its time is not mistaken for an earlier one. */
static bool line_time(const char *line, size_t len, int64_t *ns)
{
	size_t i = 0;

	/* A UTF-8 byte-order mark can start the file. */
	if (len >= 3 && memcmp(line, "\xef\xbb\xbf", 3) == 0)
		i = 3;
	while (i < len && (line[i] == '\t' || line[i] == ' '))
		i++;
	const char *start = line + i;
	const char *comma = memchr(start, ',', len - i);
	if (!comma)
		return false;
	return isotime_parse(start, (size_t)(comma - start), ns) == 0;
}

/* A nanosecond difference (>= 0) as milliseconds, rounded up to whole
 * seconds: a silence is never shown, or used, shorter than it was. */
static uint64_t ceil_seconds_ms(int64_t ns)
{
	uint64_t s = (uint64_t)(ns / CLOCK_NS_PER_S) + (ns % CLOCK_NS_PER_S != 0);
	return s * 1000;
}

void silence_parse_log(const char *buf, size_t len, struct silence_log *out)
{
	int64_t first = 0, latest = 0;
	size_t pos = 0;

	memset(out, 0, sizeof(*out));
	while (pos < len) {
		const char *nl = memchr(buf + pos, '\n', len - pos);
		size_t end = nl ? (size_t)(nl - buf) : len;
		size_t line_len = end - pos;
		int64_t t;

		if (line_len > 0 && buf[end - 1] == '\r')
			line_len--;
		if (line_time(buf + pos, line_len, &t)) {
			if (out->timed_lines == 0) {
				first = latest = t;
			} else {
				int64_t gap = clock_sub_ns(t, latest);
				if (gap > 0 && ceil_seconds_ms(gap) > out->longest_gap_ms)
					out->longest_gap_ms = ceil_seconds_ms(gap);
				if (t > latest)
					latest = t;
				if (t < first)
					first = t;
			}
			out->timed_lines++;
		} else if (line_len > 0) {
			out->skipped_lines++;
		}
		pos = end + 1;
	}
	out->usable = out->timed_lines >= 2;
	if (out->usable)
		out->span_ms = ceil_seconds_ms(clock_sub_ns(latest, first));
}

void silence_history_add(struct silence_history *h, const char *id, const struct silence_log *log)
{
	h->completed++;
	if (!log) {
		h->unread++;
		return;
	}
	if (!log->usable)
		return;
	/* The first record wins a tie, so the id shown does not flip. */
	if (h->usable == 0 || log->longest_gap_ms > h->longest_gap_ms) {
		h->longest_gap_ms = log->longest_gap_ms;
		snprintf(h->longest_gap_id, sizeof(h->longest_gap_id), "%s", id);
	}
	if (h->usable == 0 || log->span_ms > h->longest_run_ms) {
		h->longest_run_ms = log->span_ms;
		snprintf(h->longest_run_id, sizeof(h->longest_run_id), "%s", id);
	}
	h->usable++;
}

static uint64_t times_factor(uint64_t ms, uint64_t factor)
{
	return ms > UINT64_MAX / factor ? UINT64_MAX : ms * factor;
}

void silence_auto_compute(const struct silence_history *h, uint64_t floor_ms, uint64_t cap_ms,
			  struct silence_auto *out)
{
	/* Part of the history unread could hold the longest silence: until
	 * all of it is read, nothing is learned from it. */
	if (h->unread > 0) {
		out->basis = SILENCE_UNREAD;
		out->stuck_after_ms = cap_ms;
		return;
	}
	if (h->usable == 0) {
		out->basis = SILENCE_NO_HISTORY;
		out->stuck_after_ms = cap_ms;
		return;
	}
	uint64_t ms = times_factor(h->longest_gap_ms, SILENCE_AUTO_FACTOR);
	out->basis = SILENCE_FROM_HISTORY;
	if (ms < floor_ms) {
		ms = floor_ms;
		out->basis = SILENCE_AT_FLOOR;
	}
	if (ms > cap_ms) {
		ms = cap_ms;
		out->basis = SILENCE_AT_CAP;
	}
	out->stuck_after_ms = ms;
}

void silence_auto_explain(const struct silence_history *h, const struct silence_auto *a,
			  uint64_t floor_ms, uint64_t cap_ms, char *out, size_t size)
{
	char value[32], gap[32], times[32], floor[32], cap[32];
	uint64_t raw = times_factor(h->longest_gap_ms, SILENCE_AUTO_FACTOR);

	fmt_age((int64_t)a->stuck_after_ms, value, sizeof(value));
	fmt_age((int64_t)h->longest_gap_ms, gap, sizeof(gap));
	fmt_age(raw > INT64_MAX ? INT64_MAX : (int64_t)raw, times, sizeof(times));
	fmt_age((int64_t)floor_ms, floor, sizeof(floor));
	fmt_age((int64_t)cap_ms, cap, sizeof(cap));
	switch (a->basis) {
	case SILENCE_NO_HISTORY:
		snprintf(out, size, "%s (the default: no usable history, %zu completed deployment%s "
			 "but none with a log.log of two timed lines)", value, h->completed,
			 h->completed == 1 ? "" : "s");
		break;
	case SILENCE_UNREAD:
		snprintf(out, size, "%s (the default until the history is read: %zu of %zu completed "
			 "deployments read)", value, h->completed - h->unread, h->completed);
		break;
	case SILENCE_FROM_HISTORY:
		snprintf(out, size, "%s (%d × longest silence %s in %s, floor %s, cap %s)", value,
			 SILENCE_AUTO_FACTOR, gap, h->longest_gap_id, floor, cap);
		break;
	case SILENCE_AT_FLOOR:
		snprintf(out, size, "%s (the floor: %d × longest silence %s in %s is %s; floor %s, "
			 "cap %s)", value, SILENCE_AUTO_FACTOR, gap, h->longest_gap_id, times, floor,
			 cap);
		break;
	case SILENCE_AT_CAP:
		snprintf(out, size, "%s (the cap: %d × longest silence %s in %s is %s; floor %s, "
			 "cap %s)", value, SILENCE_AUTO_FACTOR, gap, h->longest_gap_id, times, floor,
			 cap);
		break;
	}
}

void silence_report_line(const struct silence_history *h, const char *stuck_label,
			 uint64_t stuck_after_ms, char *out, size_t size)
{
	char gap[32], run[32];
	const char *s = h->completed == 1 ? "" : "s";

	if (h->completed == 0) {
		snprintf(out, size, "no completed deployments: no history to compare stuck_after %s "
			 "with", stuck_label);
		return;
	}
	if (h->usable == 0) {
		snprintf(out, size, "%zu completed deployment%s, none with a log.log of two timed "
			 "lines: no history to compare stuck_after %s with", h->completed, s,
			 stuck_label);
		return;
	}
	fmt_age((int64_t)h->longest_gap_ms, gap, sizeof(gap));
	fmt_age((int64_t)h->longest_run_ms, run, sizeof(run));
	if (h->longest_gap_ms == 0) {
		snprintf(out, size, "%zu completed deployment%s; longest silence under a second; "
			 "longest deployment %s in %s", h->completed, s, run, h->longest_run_id);
		return;
	}
	/* One decimal, rounded down: "6.9×" never overstates the margin. */
	uint64_t tenths = stuck_after_ms / h->longest_gap_ms * 10 +
			  stuck_after_ms % h->longest_gap_ms * 10 / h->longest_gap_ms;
	snprintf(out, size, "%zu completed deployment%s; longest silence %s in %s; stuck_after %s "
		 "is %llu.%llu× that; longest deployment %s in %s", h->completed, s, gap,
		 h->longest_gap_id, stuck_label, (unsigned long long)(tenths / 10),
		 (unsigned long long)(tenths % 10), run, h->longest_run_id);
}

bool silence_warning(const struct silence_history *h, uint64_t stuck_after_ms, char *out,
		     size_t size)
{
	char stuck[32], gap[32];

	if (h->usable == 0 ||
	    stuck_after_ms >= times_factor(h->longest_gap_ms, SILENCE_WARN_FACTOR))
		return false;
	fmt_age((int64_t)stuck_after_ms, stuck, sizeof(stuck));
	fmt_age((int64_t)h->longest_gap_ms, gap, sizeof(gap));
	snprintf(out, size, "[policy] stuck_after = %s is below %d × the longest silence seen in a "
		 "completed deployment on this site (%s in %s): a live deployment that is silent "
		 "that long again could be cleared; raise stuck_after, or use auto",
		 stuck, SILENCE_WARN_FACTOR, gap, h->longest_gap_id);
	return true;
}
