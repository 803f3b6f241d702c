/* isotime.h - the ISO-8601 times Kudu writes ("2021-09-10T01:26:58.0314218Z"),
 * as nanoseconds since the Unix epoch, UTC.
 *
 * Pure: no clock, no time zone, no locale. A parsed time fits an int64_t
 * of nanoseconds or is refused; arithmetic on parsed times goes through the
 * saturating helpers of clock.h, since the share can hold any year.
 */
#ifndef LOCKWARDEN_ISOTIME_H
#define LOCKWARDEN_ISOTIME_H

#include <stddef.h>
#include <stdint.h>

/* A missing or null time. No parsed time equals it. */
#define ISOTIME_NONE INT64_MIN

/* Syntax: YYYY-MM-DD, then 'T' (or 't', or a space: some tools print ISO
 * times that way and nothing else could be meant), hh:mm:ss, an optional
 * fraction of 1 or more digits (digits past the ninth are below a nanosecond
 * and ignored), then 'Z'/'z', "+hh:mm", "-hh:mm" or nothing (UTC). Seconds
 * may be 60 (a leap second), counted like POSIX does as the next minute's
 * first second; hour 24 is rejected. Returns -EINVAL for anything else, and
 * -ERANGE for a valid time that nanoseconds in an int64_t cannot hold
 * (before 1677-09-21 or after 2262-04-11) or that would equal
 * ISOTIME_NONE. */
int isotime_parse(const char *s, size_t len, int64_t *unix_ns);

/* Writes unix_ns as "2026-11-26T03:51:59Z" (whole seconds, UTC, floored)
 * into out, or none_text for ISOTIME_NONE or a time that cannot be shown.
 * Returns out, so it can be used as a printf argument. */
const char *isotime_format(int64_t unix_ns, const char *none_text, char *out, size_t size);

#endif
