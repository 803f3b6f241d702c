/* clock.c - the clocks, and saturating arithmetic on times from outside. */
#include "clock.h"

#include <time.h>

void clock_read(struct clock_now *out)
{
	struct timespec mono, wall;

	/* Back to back: the two readings are one instant for every purpose of
	 * the policy (milliseconds), whatever the scan around them costs. */
	clock_gettime(CLOCK_MONOTONIC, &mono);
	clock_gettime(CLOCK_REALTIME, &wall);
	out->wall_ns = clock_ns_from(wall.tv_sec, wall.tv_nsec);
	out->mono_ms = (uint64_t)mono.tv_sec * 1000u + (uint64_t)mono.tv_nsec / 1000000u;
}

int64_t clock_wall_ns(void)
{
	struct timespec wall;
	clock_gettime(CLOCK_REALTIME, &wall);
	return clock_ns_from(wall.tv_sec, wall.tv_nsec);
}

struct timespec clock_mono_deadline(uint64_t after_ms)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	t.tv_sec += (time_t)(after_ms / 1000);
	t.tv_nsec += (long)(after_ms % 1000) * 1000000L;
	if (t.tv_nsec >= 1000000000L) {
		t.tv_sec++;
		t.tv_nsec -= 1000000000L;
	}
	return t;
}

int64_t clock_ns_from(int64_t sec, int64_t nsec)
{
	int64_t ns;
	if (__builtin_mul_overflow(sec, CLOCK_NS_PER_S, &ns))
		return sec < 0 ? INT64_MIN : INT64_MAX;
	return clock_add_ns(ns, nsec);
}

int64_t clock_add_ns(int64_t a, int64_t b)
{
	int64_t sum;
	if (__builtin_add_overflow(a, b, &sum))
		return b < 0 ? INT64_MIN : INT64_MAX;
	return sum;
}

int64_t clock_sub_ns(int64_t a, int64_t b)
{
	int64_t diff;
	if (__builtin_sub_overflow(a, b, &diff))
		return b > 0 ? INT64_MIN : INT64_MAX;
	return diff;
}
