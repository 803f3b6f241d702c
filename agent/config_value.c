/* config_value.c - the syntax of durations and booleans, wherever a value
 * comes from (the file, the environment, the command line), and durations
 * shown back the way they are written. */
#include "config_value.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

bool config_is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool is_letter(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

int config_parse_duration(const char *text, uint64_t *out_ms)
{
	/* Ranks make units go from largest to smallest, each at most once,
	 * so "30m1h" and "1m1m" (most likely typos) are refused. */
	static const struct {
		const char *name;
		uint64_t ms;
	} units[] = {
		{ "d", 24 * 3600 * 1000ULL },
		{ "h", 3600 * 1000ULL },
		{ "m", 60 * 1000ULL },
		{ "s", 1000ULL },
		{ "ms", 1ULL },
	};
	const char *p = text;
	uint64_t total_ms = 0;
	int last_rank = -1;
	bool overflow = false;

	while (config_is_blank(*p))
		p++;
	if (!*p)
		return -EINVAL;
	while (*p && !config_is_blank(*p)) {
		uint64_t n = 0, unit_ms = 0;
		const char *unit;
		size_t unit_len;
		int rank = -1;

		if (!is_digit(*p))
			return -EINVAL;
		for (; is_digit(*p); p++) {
			unsigned d = (unsigned)(*p - '0');

			if (n > (UINT64_MAX - d) / 10)
				overflow = true;
			else
				n = n * 10 + d;
		}
		unit = p;
		while (is_letter(*p))
			p++;
		unit_len = (size_t)(p - unit);
		if (unit_len == 0) {
			/* A bare number means seconds, but only on its own:
			 * "1h30" could mean seconds or minutes. */
			if (last_rank >= 0)
				return -EINVAL;
			unit_ms = 1000;
			rank = (int)(sizeof(units) / sizeof(units[0]));
		} else {
			for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
				if (strlen(units[i].name) == unit_len &&
				    strncmp(units[i].name, unit, unit_len) == 0) {
					unit_ms = units[i].ms;
					rank = (int)i;
				}
			}
			if (rank < 0 || rank <= last_rank)
				return -EINVAL;
		}
		last_rank = rank;
		/* Keep checking the syntax after an overflow: "99…9x" is a
		 * typo first, a range problem second. */
		if (overflow || n > UINT64_MAX / unit_ms || total_ms > UINT64_MAX - n * unit_ms)
			overflow = true;
		else
			total_ms += n * unit_ms;
	}
	while (config_is_blank(*p))
		p++;
	if (*p)
		return -EINVAL;
	if (overflow)
		return -ERANGE;
	*out_ms = total_ms;
	return 0;
}

void config_format_duration(uint64_t ms, char *out, size_t out_size)
{
	static const struct {
		const char *name;
		uint64_t s;
	} units[] = {
		{ "d", 24 * 3600 }, { "h", 3600 }, { "m", 60 }, { "s", 1 },
	};
	uint64_t left_s;
	size_t used = 0;

	if (out_size == 0)
		return;
	out[0] = '\0';
	if (ms == 0) {
		snprintf(out, out_size, "0s");
		return;
	}
	/* "1s500ms" reads worse than "1500ms", and sub-second values are
	 * rare enough that one unit is clearer. */
	if (ms % 1000 != 0) {
		snprintf(out, out_size, "%" PRIu64 "ms", ms);
		return;
	}
	left_s = ms / 1000;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		uint64_t n = left_s / units[i].s;
		int len;

		if (n == 0)
			continue;
		left_s -= n * units[i].s;
		len = snprintf(out + used, out_size - used, "%" PRIu64 "%s", n, units[i].name);
		if (len < 0 || (size_t)len >= out_size - used)
			return;  /* cut short, but terminated */
		used += (size_t)len;
	}
}

int config_parse_bool(const char *text, bool *out)
{
	static const char *const yes[] = { "true", "yes", "on", "1" };
	static const char *const no[] = { "false", "no", "off", "0" };

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(text, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(text, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -EINVAL;
}
