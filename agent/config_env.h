/* config_env.h - LOCKWARDEN_<SECTION>_<KEY> environment variables: values
 * for the keys of config_table.h, and warnings about names that are none. */
#ifndef LOCKWARDEN_CONFIG_ENV_H
#define LOCKWARDEN_CONFIG_ENV_H

#include <stddef.h>

#include "config_table.h"

/* Every environment variable of the configuration starts with this. */
#define ENV_PREFIX "LOCKWARDEN_"

/* The LOCKWARDEN_* variables of envp into cfg, each beating the file's value. */
int config_load_env(struct config *cfg, char *const *envp, char *err, size_t err_size);

/* LOCKWARDEN_ variables of envp that are no key and none of the names the
 * entrypoint and hooks read (a misspelled or missing section, e.g.
 * LOCKWARDEN_HOOKS_COMMAND, LOCKWARDEN_STUCK_AFTER): config_load ignores
 * them, so each is one line into out[0..max), naming the nearest known
 * variable when one is close. Returns how many there are (more than max
 * when some did not fit). The daemon logs them as warnings; check-config
 * fails on them. */
#define CONFIG_ENV_WARNINGS_MAX 8
size_t config_env_warnings(char *const *envp, char (*out)[CONFIG_ERROR_MAX], size_t max);

#endif
