/* clock.h - reading the clocks, and arithmetic on times that come from
 * outside.
 *
 * Times read from the share (statx/stat timestamps, lockExpiry, status.xml
 * times) are whatever a writer put there: 1700 or 2300 are possible, and
 * their nanoseconds do not fit an int64_t. Every such time goes through
 * clock_ns_from() once, which saturates instead of overflowing, and every
 * difference or sum of two such times through clock_sub_ns()/clock_add_ns(),
 * which saturate too. A saturated time is far in the past or far in the
 * future, never wrapped around to the other side.
 */
#ifndef LOCKWARDEN_CLOCK_H
#define LOCKWARDEN_CLOCK_H

#include <stdint.h>
#include <time.h>

#define CLOCK_NS_PER_S 1000000000LL
#define CLOCK_NS_PER_MS 1000000LL

/* Both clocks, read at one instant: the wall clock (for comparing with the
 * share's times) and the monotonic clock in milliseconds (the same clock as
 * libuv's uv_now(), for what the agent watched itself). A scan reads both
 * together, so a slow scan never looks like a wall-clock jump. */
struct clock_now {
	int64_t wall_ns;
	uint64_t mono_ms;
};

void clock_read(struct clock_now *out);
int64_t clock_wall_ns(void);

/* The CLOCK_MONOTONIC time after_ms from now, for a timed wait on a
 * condition variable set to that clock (a bounded wait on the share). */
struct timespec clock_mono_deadline(uint64_t after_ms);

/* sec * 1e9 + nsec, saturated to [INT64_MIN, INT64_MAX]. */
int64_t clock_ns_from(int64_t sec, int64_t nsec);

/* a + b and a - b, saturated. */
int64_t clock_add_ns(int64_t a, int64_t b);
int64_t clock_sub_ns(int64_t a, int64_t b);

/* A nanosecond difference as milliseconds, rounded toward zero. */
static inline int64_t clock_ns_to_ms(int64_t ns)
{
	return ns / CLOCK_NS_PER_MS;
}

#endif
