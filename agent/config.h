/* config.h - the agent's configuration: built-in defaults, then the ini
 * file, then LOCKWARDEN_<SECTION>_<KEY> environment variables, then the
 * command line (each beats the one before). Every key is declared once in
 * config.def.
 *
 * Errors name where the bad value came from: "FILE:LINE: [section] key =
 * 'value': why" for the file, "environment LOCKWARDEN_X_Y='value': why" for
 * the environment. Functions return 0 or a negative errno.
 */
#ifndef LOCKWARDEN_CONFIG_H
#define LOCKWARDEN_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

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

#define CONFIG_DEFAULT_PATH "/etc/lockwarden/lockwarden.ini"
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

/* Command-line values that beat the file and the environment. */
struct config_overrides {
	const char *site_root;  /* NULL: not given */
	bool dry_run;           /* true: --dry-run given */
	bool verbose;           /* true: -v given, log level debug */
};

/* Fills cfg from defaults, the file, the environment (envp, NULL-terminated
 * "NAME=value" strings, normally environ) and the overrides.
 *
 * path: the file to read; NULL means the default path, where a missing file
 * means built-in defaults. A missing file named explicitly is an error.
 *
 * On failure returns -EINVAL (bad value, unknown section or key), -ENOENT
 * (missing file named explicitly) or another -errno, writes one line naming
 * file, line, key and value into err, and leaves cfg empty (config_free safe).
 * Unknown LOCKWARDEN_<SECTION>_<KEY> variables whose SECTION is one of ours
 * are errors too, naming the nearest key: the lost value may be the one
 * that kept the agent cautious (dry_run), so it does not run without it.
 * Other unknown LOCKWARDEN_ names: config_env_warnings. */
int config_load(struct config *cfg, const char *path, char *const *envp,
		const struct config_overrides *over, char *err, size_t err_size);

/* A configuration can be valid and still unwise. Writes one line for each
 * such finding into out[0..max) (for example quiet_period set: it no longer
 * has any effect) and returns how many. The caller logs them: check-config
 * and the daemon at start. */
#define CONFIG_WARNINGS_MAX 4
size_t config_warnings(const struct config *cfg, char (*out)[CONFIG_ERROR_MAX], size_t max);

/* LOCKWARDEN_ variables of envp that are no key and none of the names the
 * entrypoint and hooks read (a misspelled or missing section, e.g.
 * LOCKWARDEN_HOOKS_COMMAND, LOCKWARDEN_STUCK_AFTER): config_load ignores
 * them, so each is one line into out[0..max), naming the nearest known
 * variable when one is close. Returns how many there are (more than max
 * when some did not fit). The daemon logs them as warnings; check-config
 * fails on them. */
#define CONFIG_ENV_WARNINGS_MAX 8
size_t config_env_warnings(char *const *envp, char (*out)[CONFIG_ERROR_MAX], size_t max);

/* Releases what config_load allocated; cfg is zeroed. */
void config_free(struct config *cfg);

/* Writes the effective configuration as an ini file, each key with its doc
 * line and, when not the default, where its value came from. */
void config_print(const struct config *cfg, FILE *out);

/* Writes the documented sample file: every key's doc line, and the key at
 * its default, commented out. */
void config_print_sample(FILE *out);

/* "90", "90s", "15m", "2h", "250ms", "1h30m" -> milliseconds. A bare number
 * is seconds. -EINVAL for anything else, -ERANGE on overflow. */
int config_parse_duration(const char *text, uint64_t *out_ms);

/* Formats ms the way the file would say it: "15m", "90s", "1h30m", "250ms".
 * (CONFIG_DURATION_AUTO is not a duration: callers show it as "auto".) */
void config_format_duration(uint64_t ms, char *out, size_t out_size);

/* true/false, yes/no, on/off, 1/0 (any case). -EINVAL otherwise. */
int config_parse_bool(const char *text, bool *out);

#endif
