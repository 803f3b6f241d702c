/* config_internal.h - what the configuration's files share: the key table
 * (from config.def) and a few helpers. Not for other modules. */
#ifndef LOCKWARDEN_CONFIG_INTERNAL_H
#define LOCKWARDEN_CONFIG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

/* Every environment variable of the configuration starts with this. */
#define ENV_PREFIX "LOCKWARDEN_"

/* How much of a value or line an error message shows (escaped bytes). */
#define CONFIG_SHOWN_MAX 160

enum key_type { KEY_STRING, KEY_PATH, KEY_DURATION, KEY_AUTO_DURATION, KEY_BOOL, KEY_LEVEL };

struct key_info {
	const char *section;
	const char *name;
	enum key_type type;
	const char *def;
	uint64_t min_ms, max_ms;
	const char *doc;
	size_t value_off, source_off, line_off;
};

/* One per CONFIG_KEY of config.def, in its order. */
extern const struct key_info config_keys[];
extern const size_t config_n_keys;

static inline void *config_field(struct config *cfg, size_t off)
{
	return (char *)cfg + off;
}

static inline const void *config_cfield(const struct config *cfg, size_t off)
{
	return (const char *)cfg + off;
}

static inline bool config_is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* A parsed value, before it is stored into struct config. */
union config_value {
	char *str;
	uint64_t ms;
	bool b;
	enum log_level level;
};

/* err = the formatted message (nothing when err is NULL or empty). */
void config_set_err(char *err, size_t err_size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Trims whitespace at both ends of s, in place; returns the new start. */
char *config_trim(char *s);
/* Parses text (already trimmed) as key k's type, checking bounds; on
 * failure writes why the value is refused. */
int config_parse_value(const struct key_info *k, const char *text, union config_value *v,
		       char *why, size_t why_size);
/* Stores a parsed value (taking over its string) with where it came from. */
void config_store_value(struct config *cfg, const struct key_info *k, union config_value *v,
			enum config_source source, unsigned line);
/* The LOCKWARDEN_* variables of envp into cfg (config_env.c). */
int config_load_env(struct config *cfg, char *const *envp, char *err, size_t err_size);

/* text escaped for a message, at most CONFIG_SHOWN_MAX bytes, "..." when cut. */
void config_shown(const char *text, char out[CONFIG_SHOWN_MAX + 4]);

#endif
