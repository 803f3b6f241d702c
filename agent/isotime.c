/* isotime.c - Kudu's ISO-8601 times, parsed and shown. Counted by hand
 * rather than with timegm()/mktime(): those depend on the process's TZ or
 * are not standard. */
#include "isotime.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <time.h>

#include "text.h"

static bool parse_fixed_digits(const char *s, size_t n, int *out)
{
	int v = 0;

	for (size_t i = 0; i < n; i++) {
		if (!text_is_digit(s[i]))
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return true;
}

static bool is_leap_year(int year)
{
	return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

static int days_in_month(int year, int month)
{
	static const int days[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

	if (month == 2 && is_leap_year(year))
		return 29;
	return days[month - 1];
}

/* Days from 1970-01-01 to year-month-day in the proleptic Gregorian calendar
 * (year >= 1, already validated). Counted by hand rather than with timegm():
 * timegm is not standard and mktime depends on the process's TZ. */
static int64_t days_since_epoch(int year, int month, int day)
{
	/* Days in the months before each month of a common year. */
	static const int before_month[12] = { 0, 31, 59, 90, 120, 151,
					       181, 212, 243, 273, 304, 334 };
	/* Days from 0001-01-01 to 1970-01-01. */
	const int64_t epoch_from_year_1 = 719162;
	int64_t y = year - 1;
	int64_t days = 365 * y + y / 4 - y / 100 + y / 400;

	days += before_month[month - 1];
	if (month > 2 && is_leap_year(year))
		days++;
	days += day - 1;
	return days - epoch_from_year_1;
}

int isotime_parse(const char *s, size_t len, int64_t *unix_ns)
{
	int year, month, day, hour, minute, second;
	int64_t frac_ns = 0, offset_s = 0, secs, ns;
	size_t i;

	if (!s || !unix_ns || len < 19)
		return -EINVAL;
	if (!parse_fixed_digits(s, 4, &year) || s[4] != '-' ||
	    !parse_fixed_digits(s + 5, 2, &month) || s[7] != '-' ||
	    !parse_fixed_digits(s + 8, 2, &day))
		return -EINVAL;
	if (s[10] != 'T' && s[10] != 't' && s[10] != ' ')
		return -EINVAL;
	if (!parse_fixed_digits(s + 11, 2, &hour) || s[13] != ':' ||
	    !parse_fixed_digits(s + 14, 2, &minute) || s[16] != ':' ||
	    !parse_fixed_digits(s + 17, 2, &second))
		return -EINVAL;
	i = 19;
	if (i < len && s[i] == '.') {
		int64_t scale = 100000000;
		size_t first = ++i;

		for (; i < len && text_is_digit(s[i]); i++) {
			frac_ns += (s[i] - '0') * scale;
			scale /= 10;
		}
		if (i == first)
			return -EINVAL;
	}
	if (i < len && (s[i] == 'Z' || s[i] == 'z')) {
		i++;
	} else if (i < len && (s[i] == '+' || s[i] == '-')) {
		int off_h, off_m;

		if (len - i < 6 || !parse_fixed_digits(s + i + 1, 2, &off_h) ||
		    s[i + 3] != ':' || !parse_fixed_digits(s + i + 4, 2, &off_m) ||
		    off_h > 23 || off_m > 59)
			return -EINVAL;
		offset_s = (int64_t)off_h * 3600 + off_m * 60;
		if (s[i] == '-')
			offset_s = -offset_s;
		i += 6;
	}
	if (i != len)
		return -EINVAL;

	if (year < 1 || month < 1 || month > 12 || day < 1 ||
	    day > days_in_month(year, month) || hour > 23 || minute > 59 || second > 60)
		return -EINVAL;

	/* At most about 2.5e11 seconds either side of the epoch: no overflow
	 * until the conversion to nanoseconds, which is checked. */
	secs = days_since_epoch(year, month, day) * 86400 + hour * 3600 + minute * 60 +
	       second - offset_s;
	/* Before the epoch, borrow a second so that the product does not
	 * overflow when only the sum with the fraction fits. */
	if (secs < 0 && frac_ns > 0) {
		secs++;
		frac_ns -= 1000000000;
	}
	if (__builtin_mul_overflow(secs, (int64_t)1000000000, &ns) ||
	    __builtin_add_overflow(ns, frac_ns, &ns) || ns == ISOTIME_NONE)
		return -ERANGE;
	*unix_ns = ns;
	return 0;
}

const char *isotime_format(int64_t unix_ns, const char *none_text, char *out, size_t size)
{
	/* Floor division: a time before 1970 still shows its own second. */
	time_t t = (time_t)(unix_ns >= 0 ? unix_ns / 1000000000LL
					 : (unix_ns + 1) / 1000000000LL - 1);
	struct tm tm;

	if (unix_ns == ISOTIME_NONE || !gmtime_r(&t, &tm) ||
	    strftime(out, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(out, size, "%s", none_text);
	return out;
}
