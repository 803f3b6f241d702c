/* config_env.c - LOCKWARDEN_<SECTION>_<KEY> environment variables (App
 * Service app settings): one per key of config.def, parsed like the file's
 * values. An unknown key in one of our sections is an error; any other
 * LOCKWARDEN_ name that is neither a key nor one the pieces around the agent
 * read is a warning. Both name the nearest known variable ("did you
 * mean"). */
#include "config_env.h"
#include "config_table.h"
#include "config_value.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* LOCKWARDEN_ names that are not keys but are ours all the same: the
 * container entrypoint's (CONFIG, ENV_FILE), the hooks' settings (PROC,
 * RESTART_*: app settings too, so they reach the agent's environment), and
 * what the agent tells a hook (hookq.c), which a hook may pass on to a
 * lockwarden it runs. test/packaging/test_env_names.py checks that every
 * name packaging/ reads is here or a key. */
static const char *const env_others[] = {
	"CONFIG", "ENV_FILE", "PROC",
	"RESTART_API_VERSION", "RESTART_ARM_URL", "RESTART_CLIENT_ID", "RESTART_HOSTNAME",
	"RESTART_IMDS_ENDPOINT", "RESTART_MI_RES_ID", "RESTART_PID", "RESTART_PRINCIPAL_ID",
	"RESTART_RESOURCE", "RESTART_RESOURCE_GROUP", "RESTART_SITE", "RESTART_SLOT",
	"RESTART_SUBSCRIPTION", "RESTART_TIMEOUT", "RESTART_WAIT",
	"REMOVED", "REMOVED_COUNT", "DEPLOYMENT_ID", "REASON", "INSTANCE", "INCIDENT", "STEP",
};

/* Names longer than this are not compared: no known one comes close. */
#define ENV_NAME_COMPARED_MAX 64

static char env_upper(char c)
{
	return c >= 'a' && c <= 'z' ? (char)(c - 'a' + 'A') : c;
}

/* Levenshtein distance between a[0..alen) and b (upper-cased), or SIZE_MAX
 * when either is too long to be worth it. */
static size_t env_distance(const char *a, size_t alen, const char *b)
{
	size_t blen = strlen(b), prev[ENV_NAME_COMPARED_MAX + 1], cur[ENV_NAME_COMPARED_MAX + 1];

	if (alen > ENV_NAME_COMPARED_MAX || blen > ENV_NAME_COMPARED_MAX)
		return SIZE_MAX;
	for (size_t j = 0; j <= blen; j++)
		prev[j] = j;
	for (size_t i = 1; i <= alen; i++) {
		cur[0] = i;
		for (size_t j = 1; j <= blen; j++) {
			size_t sub = prev[j - 1] + (a[i - 1] != env_upper(b[j - 1]));
			size_t del = prev[j] + 1, ins = cur[j - 1] + 1;

			cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
		}
		memcpy(prev, cur, (blen + 1) * sizeof(prev[0]));
	}
	return prev[blen];
}

/* The known variable nearest to LOCKWARDEN_<name> (name: len bytes after
 * the prefix) into out, "" when none is near enough to be a likely typo. A
 * key also matches by its name alone, for a variable that left out the
 * section (LOCKWARDEN_STUCK_AFTER). */
static void env_nearest(const char *name, size_t len, char *out, size_t size)
{
	size_t best = SIZE_MAX;
	char full[ENV_NAME_COMPARED_MAX + 2];

	out[0] = '\0';
	for (size_t i = 0; i < config_n_keys; i++) {
		snprintf(full, sizeof(full), "%s_%s", config_keys[i].section, config_keys[i].name);
		size_t d = env_distance(name, len, full), alone = env_distance(name, len,
									       config_keys[i].name);

		if (alone < d)
			d = alone;
		if (d < best) {
			best = d;
			snprintf(out, size, ENV_PREFIX "%s", full);
		}
	}
	for (size_t i = 0; i < sizeof(env_others) / sizeof(env_others[0]); i++) {
		size_t d = env_distance(name, len, env_others[i]);

		if (d < best) {
			best = d;
			snprintf(out, size, ENV_PREFIX "%s", env_others[i]);
		}
	}
	for (char *c = out; *c; c++)
		*c = env_upper(*c);
	/* A few edits, and fewer than half the name's letters. */
	if (best > 3 || 2 * best >= len)
		out[0] = '\0';
}

/* "; did you mean NAME?" for the nearest known name, or "". */
static void env_did_you_mean(const char *name, size_t len, char *out, size_t size)
{
	char near[ENV_NAME_COMPARED_MAX + 16];

	env_nearest(name, len, near, sizeof(near));
	if (near[0])
		snprintf(out, size, "; did you mean %s?", near);
	else
		out[0] = '\0';
}

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

/* The section of ours a LOCKWARDEN_ name's rest (up to eq) starts with,
 * followed by '_'; NULL when none. */
static const char *env_section(const char *rest, const char *eq)
{
	for (size_t i = 0; i < config_n_keys; i++) {
		size_t slen = strlen(config_keys[i].section);

		if (rest + slen < eq && rest[slen] == '_' &&
		    env_name_is(rest, slen, config_keys[i].section))
			return config_keys[i].section;
	}
	return NULL;
}

static int load_env_one(struct config *cfg, const char *entry, char *err, size_t err_size)
{
	const char *eq = strchr(entry, '=');
	const char *rest = entry + strlen(ENV_PREFIX);
	const char *section = NULL;
	const struct key_info *k = NULL;
	char s_name[CONFIG_SHOWN_MAX + 4], s_value[CONFIG_SHOWN_MAX + 4], why[256], hint[96];
	char *name, *copy, *value;
	union config_value v = { 0 };
	int rc = 0;

	if (!eq)
		return 0;
	/* Other LOCKWARDEN_ names may be someone else's: config_env_warnings
	 * says them, nothing fails here. */
	section = env_section(rest, eq);
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
		env_did_you_mean(entry + strlen(ENV_PREFIX), (size_t)(eq - entry) - strlen(ENV_PREFIX),
				 hint, sizeof(hint));
		config_set_err(err, err_size, "environment %s='%s': unknown key in [%s]%s", s_name,
			s_value, section, hint);
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

static bool env_is_other(const char *rest, const char *eq)
{
	for (size_t i = 0; i < sizeof(env_others) / sizeof(env_others[0]); i++)
		if (strlen(env_others[i]) == (size_t)(eq - rest) &&
		    memcmp(rest, env_others[i], (size_t)(eq - rest)) == 0)
			return true;
	return false;
}

size_t config_env_warnings(char *const *envp, char (*out)[CONFIG_ERROR_MAX], size_t max)
{
	size_t n = 0;

	for (char *const *e = envp; *e; e++) {
		const char *rest, *eq = strchr(*e, '=');
		char name[CONFIG_SHOWN_MAX + 4], hint[96], *copy;

		if (strncmp(*e, ENV_PREFIX, strlen(ENV_PREFIX)) != 0 || !eq)
			continue;
		rest = *e + strlen(ENV_PREFIX);
		if (env_section(rest, eq) || env_is_other(rest, eq))
			continue;
		if (n++ >= max)
			continue;
		copy = strndup(*e, (size_t)(eq - *e));
		config_shown(copy ? copy : "?", name);
		free(copy);
		env_did_you_mean(rest, (size_t)(eq - rest), hint, sizeof(hint));
		snprintf(out[n - 1], CONFIG_ERROR_MAX,
			 "environment %s is not a setting of lockwarden and is ignored%s", name,
			 hint[0] ? hint : " (settings are " ENV_PREFIX "<SECTION>_<KEY>: "
			 "check-config lists them)");
	}
	return n;
}
