/* config_table.h - struct config and the one key table it comes from
 * (config.def), with what every source of values shares: parsing a value as
 * its key's type, storing it with where it came from, and showing it in an
 * error. Loading (config.h) and the environment (config_env.h) sit above. */
#ifndef LOCKWARDEN_CONFIG_TABLE_H
#define LOCKWARDEN_CONFIG_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "log.h"

/* An AUTO_DURATION key set to "auto" ([policy] stuck_after): the value is
 * worked out at run time. As a duration it means "never", so a reader that
 * forgot the case errs on the side of removing nothing. */
#define CONFIG_DURATION_AUTO UINT64_MAX
/* [policy] stuck_after's built-in default (config.def says "45m"; a unit
 * test keeps the two equal): above the longest live silence on record
 * (README "How long a live deployment stays silent"). stuck_after = auto
 * is never longer than this and falls back to it without usable history. */
#define CONFIG_STUCK_AFTER_DEFAULT_MS (45 * 60 * 1000ULL)

#define CONFIG_ERROR_MAX 512

/* Where a key's effective value came from, for check-config. */
enum config_source {
	CONFIG_FROM_DEFAULT,
	CONFIG_FROM_FILE,
	CONFIG_FROM_ENV,
	CONFIG_FROM_COMMAND_LINE,
};

#define CONFIG_TYPE_STRING char *
#define CONFIG_TYPE_PATH char *
#define CONFIG_TYPE_DURATION uint64_t
#define CONFIG_TYPE_AUTO_DURATION uint64_t
#define CONFIG_TYPE_BOOL bool
#define CONFIG_TYPE_LEVEL enum log_level

struct config {
#define CONFIG_KEY(section, key, type, def, min, max, doc) \
	CONFIG_TYPE_##type section##_##key;
#include "config.def"
	/* One per key, in config.def order. */
#define CONFIG_KEY(section, key, type, def, min, max, doc) \
	enum config_source section##_##key##_source;
#include "config.def"
	/* One per key: the file's line for a CONFIG_FROM_FILE value, else 0. */
#define CONFIG_KEY(section, key, type, def, min, max, doc) \
	unsigned section##_##key##_line;
#include "config.def"
	char *file;          /* the file that was read, NULL when none */
};

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

/* text escaped for a message, at most CONFIG_SHOWN_MAX bytes, "..." when cut
 * (or when already_cut: text is a cut copy). */
void config_shown(const char *text, char out[CONFIG_SHOWN_MAX + 4]);
void config_shown_cut(const char *text, bool already_cut, char out[CONFIG_SHOWN_MAX + 4]);
/* Where a comment after a value starts: the first ';' or '#' that follows
 * whitespace, or the end of s when there is none. */
size_t config_comment_at(const char *s);

#endif
