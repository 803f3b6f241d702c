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

#include "config_env.h"
#include "config_table.h"
#include "config_value.h"
#include "log.h"

#define CONFIG_DEFAULT_PATH "/etc/lockwarden/lockwarden.ini"

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

/* Releases what config_load allocated; cfg is zeroed. */
void config_free(struct config *cfg);

/* Writes the effective configuration as an ini file, each key with its doc
 * line and, when not the default, where its value came from. */
void config_print(const struct config *cfg, FILE *out);

/* Writes the documented sample file: every key's doc line, and the key at
 * its default, commented out. */
void config_print_sample(FILE *out);

#endif
