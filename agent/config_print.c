/* config_print.c - what check-config prints: the effective configuration
 * with where each value came from, the documented sample (conf/lockwarden.ini
 * and the man page come from it), and the warnings about values that are
 * valid but risky. */
#include "config.h"
#include "config_table.h"

#include <stdio.h>
#include <string.h>

#include "log.h"

/* Where a key's value came from, as a warning shows it: " (FILE:LINE)",
 * " (environment)", or nothing for a default or the command line. */
static void value_origin(const struct config *cfg, enum config_source source, unsigned line,
			 char *out, size_t size)
{
	char path[CONFIG_SHOWN_MAX + 4];

	out[0] = '\0';
	if (source == CONFIG_FROM_FILE && cfg->file) {
		config_shown(cfg->file, path);
		snprintf(out, size, " (%s:%u)", path, line);
	} else if (source == CONFIG_FROM_ENV) {
		snprintf(out, size, " (environment)");
	}
}

/* The full clear allowed, but the recurrence it waits for can hardly
 * happen: a deployment that starts after a cleanup is judged stuck only
 * stuck_after later. */
static size_t ladder_warning(const struct config *cfg, char (*out)[CONFIG_ERROR_MAX], size_t max)
{
	char within[32], stuck[32], within_from[CONFIG_SHOWN_MAX + 32];

	if (max == 0 || !cfg->policy_allow_full_clear ||
	    cfg->policy_escalate_within > cfg->policy_stuck_after)
		return 0;
	config_format_duration(cfg->policy_escalate_within, within, sizeof(within));
	config_format_duration(cfg->policy_stuck_after, stuck, sizeof(stuck));
	value_origin(cfg, cfg->policy_escalate_within_source, cfg->policy_escalate_within_line,
		     within_from, sizeof(within_from));
	snprintf(out[0], CONFIG_ERROR_MAX,
		 "[policy] escalate_within = %s%s is not longer than [policy] stuck_after = %s: a "
		 "deployment that starts after a cleanup is judged stuck only stuck_after later, so "
		 "the full clear ([policy] allow_full_clear) would hardly ever be taken",
		 within, within_from, stuck);
	return 1;
}

size_t config_warnings(const struct config *cfg, char (*out)[CONFIG_ERROR_MAX], size_t max)
{
	size_t n = 0;

	/* Kept in config.def so that old files load; the rule it served
	 * (watched quiet before any removal) is now stuck_after itself. */
	if (n < max && cfg->policy_quiet_period_source != CONFIG_FROM_DEFAULT) {
		char quiet[32], quiet_from[CONFIG_SHOWN_MAX + 32];

		config_format_duration(cfg->policy_quiet_period, quiet, sizeof(quiet));
		value_origin(cfg, cfg->policy_quiet_period_source, cfg->policy_quiet_period_line,
			     quiet_from, sizeof(quiet_from));
		snprintf(out[n++], CONFIG_ERROR_MAX,
			 "[policy] quiet_period = %s%s: quiet_period no longer has any effect: nothing "
			 "is removed before stuck_after has been watched", quiet, quiet_from);
	}
	/* A floor set for auto while stuck_after is fixed: probably a half-done
	 * change, and the floor does nothing. */
	if (n < max && cfg->policy_auto_floor_source != CONFIG_FROM_DEFAULT &&
	    cfg->policy_stuck_after != CONFIG_DURATION_AUTO) {
		char floor[32], floor_from[CONFIG_SHOWN_MAX + 32];

		config_format_duration(cfg->policy_auto_floor, floor, sizeof(floor));
		value_origin(cfg, cfg->policy_auto_floor_source, cfg->policy_auto_floor_line,
			     floor_from, sizeof(floor_from));
		snprintf(out[n++], CONFIG_ERROR_MAX,
			 "[policy] auto_floor = %s%s has no effect: [policy] stuck_after is not auto",
			 floor, floor_from);
	}
	n += ladder_warning(cfg, out + n, max - n);
	return n;
}

/* Writes text for a comment line: a file name may hold a newline, which
 * would end the comment and inject a line. */
static void print_escaped(FILE *out, const char *text)
{
	for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
		if (*p >= 0x20 && *p < 0x7f && *p != '\\')
			putc(*p, out);
		else
			fprintf(out, "\\x%02x", *p);
	}
}

static void print_key_line(FILE *out, const char *name, const char *value)
{
	if (*value)
		fprintf(out, "%s = %s\n", name, value);
	else
		fprintf(out, "%s =\n", name);
}

/* Calls print_key for every key, grouped under its section, sections in
 * config.def order. */
static void print_sections(FILE *out, const void *ctx,
			   void (*print_key)(FILE *out, const struct key_info *k, const void *ctx))
{
	for (size_t i = 0; i < config_n_keys; i++) {
		bool first = true;

		for (size_t j = 0; j < i; j++)
			if (strcmp(config_keys[j].section, config_keys[i].section) == 0)
				first = false;
		if (!first)
			continue;
		fprintf(out, "\n[%s]\n", config_keys[i].section);
		for (size_t j = i; j < config_n_keys; j++) {
			if (strcmp(config_keys[j].section, config_keys[i].section) != 0)
				continue;
			if (j != i)
				putc('\n', out);
			fprintf(out, "; %s\n", config_keys[j].doc);
			print_key(out, &config_keys[j], ctx);
		}
	}
}

static void print_effective_key(FILE *out, const struct key_info *k, const void *ctx)
{
	const struct config *cfg = ctx;
	const void *f = config_cfield(cfg, k->value_off);
	char buf[32];
	const char *value = "";

	switch (*(const enum config_source *)config_cfield(cfg, k->source_off)) {
	case CONFIG_FROM_DEFAULT:
		break;
	case CONFIG_FROM_FILE:
		fputs("; from ", out);
		print_escaped(out, cfg->file ? cfg->file : "?");
		fprintf(out, ":%u\n", *(const unsigned *)config_cfield(cfg, k->line_off));
		break;
	case CONFIG_FROM_ENV:
		fputs("; from environment " ENV_PREFIX, out);
		for (const char *p = k->section; *p; p++)
			putc(*p >= 'a' && *p <= 'z' ? *p - 'a' + 'A' : *p, out);
		putc('_', out);
		for (const char *p = k->name; *p; p++)
			putc(*p >= 'a' && *p <= 'z' ? *p - 'a' + 'A' : *p, out);
		putc('\n', out);
		break;
	case CONFIG_FROM_COMMAND_LINE:
		fputs("; from the command line\n", out);
		break;
	}
	switch (k->type) {
	case KEY_STRING:
	case KEY_PATH:
		value = *(char *const *)f ? *(char *const *)f : "";
		break;
	case KEY_DURATION:
	case KEY_AUTO_DURATION:
		config_format_duration(*(const uint64_t *)f, buf, sizeof(buf));
		value = *(const uint64_t *)f == CONFIG_DURATION_AUTO && k->type == KEY_AUTO_DURATION
			? "auto" : buf;
		break;
	case KEY_BOOL:
		value = *(const bool *)f ? "true" : "false";
		break;
	case KEY_LEVEL:
		value = log_level_name(*(const enum log_level *)f);
		break;
	}
	print_key_line(out, k->name, value);
}

void config_print(const struct config *cfg, FILE *out)
{
	fputs("; lockwarden: the configuration in effect.\n", out);
	if (cfg->file) {
		fputs("; Read from ", out);
		print_escaped(out, cfg->file);
		fputs(", then the environment and the command line.\n", out);
	} else {
		fputs("; No file was read: built-in defaults, then the environment and the\n"
		      "; command line.\n", out);
	}
	print_sections(out, cfg, print_effective_key);
}

static const char sample_header[] =
	"; lockwarden.ini - settings of lockwarden, which clears stuck App Service\n"
	"; (Kudu) deployments. Every setting is shown at its built-in default,\n"
	"; commented out (# key = value), so that a later release's better defaults\n"
	"; reach this install too. To set one, remove its # and change the value.\n"
	";\n"
	"; Where a setting comes from, each beating the one before: the built-in\n"
	"; default < this file < the environment variable LOCKWARDEN_<SECTION>_<KEY>\n"
	"; (e.g. LOCKWARDEN_POLICY_STUCK_AFTER=20m) < the command line.\n"
	"; `lockwarden check-config` prints what is in effect and where it came from.\n"
	";\n"
	"; Durations are whole numbers with a unit, largest first: 250ms, 90s, 15m,\n"
	"; 2h, 1d, 1h30m; a bare number is seconds. Booleans: true or false (also\n"
	"; yes/no, on/off, 1/0).\n"
	";\n"
	"; Lines starting with ; or # are comments, and a comment may follow a value\n"
	"; after a space (stuck_after = 20m ; why), except in [hook] command: its\n"
	"; value is the whole rest of the line, exactly as written, so it may hold\n"
	"; ;, #, &&, |, quotes and $VARS. Write a comment about it on its own line.\n"
	";\n"
	"; The hook command runs as root, with /bin/sh -c, after a cleanup.\n";

/* The hooks' folder of the Debian package and of the container image;
 * `make install` writes its own $(HOOKDIR) over it. */
#define SAMPLE_HOOKDIR "/usr/lib/lockwarden/hooks"

/* Every key commented out at its default: a file that pins a default
 * would keep it through an upgrade that changed it. */
static void print_sample_key(FILE *out, const struct key_info *k, const void *ctx)
{
	if (strcmp(k->section, "hook") == 0 && strcmp(k->name, "command") == 0)
		fputs("; to restart the site after a cleanup (README.md, \"Choosing and testing a\n"
		      "; restart hook\"):\n"
		      "# command = " SAMPLE_HOOKDIR "/restart-site\n", out);
	fputs("# ", out);
	print_key_line(out, k->name, k->def);
}

void config_print_sample(FILE *out)
{
	fputs(sample_header, out);
	print_sections(out, NULL, print_sample_key);
}
