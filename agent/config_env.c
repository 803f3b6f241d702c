/* config_env.c - LOCKWARDEN_<SECTION>_<KEY> environment variables (App
 * Service app settings): one per key of config.def, parsed like the file's
 * values; an unknown LOCKWARDEN_ name is an error naming it. */
#include "config.h"
#include "config_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Matches an environment name part ("STUCK_AFTER", len bytes) against one
 * of our lower-case names. */
static bool env_name_is(const char *env, size_t len, const char *name)
{
	if (strlen(name) != len)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];

		if (c >= 'a' && c <= 'z')
			c = (char)(c - 'a' + 'A');
		if (env[i] != c)
			return false;
	}
	return true;
}

static int load_env_one(struct config *cfg, const char *entry, char *err, size_t err_size)
{
	const char *eq = strchr(entry, '=');
	const char *rest = entry + strlen(ENV_PREFIX);
	const char *section = NULL;
	const struct key_info *k = NULL;
	char s_name[CONFIG_SHOWN_MAX + 4], s_value[CONFIG_SHOWN_MAX + 4], why[256];
	char *name, *copy, *value;
	union config_value v = { 0 };
	int rc = 0;

	if (!eq)
		return 0;
	for (size_t i = 0; i < config_n_keys && !section; i++) {
		size_t slen = strlen(config_keys[i].section);

		if (rest + slen < eq && rest[slen] == '_' &&
		    env_name_is(rest, slen, config_keys[i].section))
			section = config_keys[i].section;
	}
	/* LOCKWARDEN_ variables of other sections belong to someone else
	 * (scripts, tests) and are left alone. */
	if (!section)
		return 0;
	rest += strlen(section) + 1;
	for (size_t i = 0; i < config_n_keys && !k; i++)
		if (strcmp(config_keys[i].section, section) == 0 &&
		    env_name_is(rest, (size_t)(eq - rest), config_keys[i].name))
			k = &config_keys[i];

	name = strndup(entry, (size_t)(eq - entry));
	copy = strdup(eq + 1);
	if (!name || !copy) {
		config_set_err(err, err_size, "environment: out of memory");
		rc = -ENOMEM;
		goto out;
	}
	/* Trimmed like a file value, so check-config can write it back. */
	value = config_trim(copy);
	config_shown(name, s_name);
	config_shown(value, s_value);
	if (!k) {
		config_set_err(err, err_size, "environment %s='%s': unknown key in [%s]", s_name,
			s_value, section);
		rc = -EINVAL;
		goto out;
	}
	/* The first definition wins, as with getenv(). */
	if (*(const enum config_source *)config_cfield(cfg, k->source_off) == CONFIG_FROM_ENV)
		goto out;
	rc = config_parse_value(k, value, &v, why, sizeof(why));
	if (rc < 0) {
		config_set_err(err, err_size, "environment %s='%s': %s", s_name, s_value, why);
		goto out;
	}
	config_store_value(cfg, k, &v, CONFIG_FROM_ENV, 0);
out:
	free(name);
	free(copy);
	return rc;
}

int config_load_env(struct config *cfg, char *const *envp, char *err, size_t err_size)
{
	for (char *const *e = envp; *e; e++) {
		int rc;

		if (strncmp(*e, ENV_PREFIX, strlen(ENV_PREFIX)) != 0)
			continue;
		rc = load_env_one(cfg, *e, err, err_size);
		if (rc < 0)
			return rc;
	}
	return 0;
}
