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

enum key_type { KEY_STRING, KEY_PATH, KEY_DURATION, KEY_BOOL, KEY_LEVEL };

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

/* text escaped for a message, at most CONFIG_SHOWN_MAX bytes, "..." when cut. */
void config_shown(const char *text, char out[CONFIG_SHOWN_MAX + 4]);

#endif
