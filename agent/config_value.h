/* config_value.h - the syntax of durations and booleans, wherever a value
 * comes from. Pure; the bottom of the configuration's files. */
#ifndef LOCKWARDEN_CONFIG_VALUE_H
#define LOCKWARDEN_CONFIG_VALUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Whitespace as the file and the environment trim it. */
bool config_is_blank(char c);

/* "90", "90s", "15m", "2h", "250ms", "1h30m" -> milliseconds. A bare number
 * is seconds. -EINVAL for anything else, -ERANGE on overflow. */
int config_parse_duration(const char *text, uint64_t *out_ms);

/* Formats ms the way the file would say it: "15m", "90s", "1h30m", "250ms".
 * (CONFIG_DURATION_AUTO is not a duration: callers show it as "auto".) */
void config_format_duration(uint64_t ms, char *out, size_t out_size);

/* true/false, yes/no, on/off, 1/0 (any case). -EINVAL otherwise. */
int config_parse_bool(const char *text, bool *out);

#endif
