/* config_table.c - the one key table (config.def) and what every source of
 * values shares: a value parsed as its key's type and checked against its
 * bounds, stored with where it came from, and errors that show the value.
 * The file (config.c) and the environment (config_env.c) both go through
 * here, so a value means the same wherever it is written. */
#include "config_table.h"
#include "config_value.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"

const struct key_info config_keys[] = {
#define CONFIG_KEY(section, key, type, def, min, max, doc) \
	{ #section, #key, KEY_##type, def, (uint64_t)(min), (uint64_t)(max), doc, \
	  offsetof(struct config, section##_##key), \
	  offsetof(struct config, section##_##key##_source), \
	  offsetof(struct config, section##_##key##_line) },
#include "config.def"
};

const size_t config_n_keys = sizeof(config_keys) / sizeof(config_keys[0]);

void config_set_err(char *err, size_t err_size, const char *fmt, ...)
{
	va_list ap;

	if (!err || err_size == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, err_size, fmt, ap);
	va_end(ap);
}

/* Escapes text for an error message (control characters and backslashes as
 * \xNN), showing at most CONFIG_SHOWN_MAX bytes and "..." when cut (or when
 * the caller says text is already a cut copy). */
void config_shown_cut(const char *text, bool already_cut, char out[CONFIG_SHOWN_MAX + 4])
{
	size_t need = 0;

	for (const unsigned char *p = (const unsigned char *)text; *p; p++)
		need += (*p >= 0x20 && *p < 0x7f && *p != '\\') ? 1 : 4;
	log_escape(text, out, CONFIG_SHOWN_MAX + 1);
	if (already_cut || need > CONFIG_SHOWN_MAX)
		strcat(out, "...");
}

void config_shown(const char *text, char out[CONFIG_SHOWN_MAX + 4])
{
	config_shown_cut(text, false, out);
}

/* Trims whitespace at both ends of s, in place; returns the new start. */
char *config_trim(char *s)
{
	size_t len;

	while (config_is_blank(*s))
		s++;
	len = strlen(s);
	while (len > 0 && config_is_blank(s[len - 1]))
		s[--len] = '\0';
	return s;
}

/* Where a comment after a value starts: the first ';' or '#' that follows
 * whitespace, or the end of s when there is none. */
size_t config_comment_at(const char *s)
{
	size_t i;

	for (i = 0; s[i]; i++)
		if ((s[i] == ';' || s[i] == '#') && i > 0 && (s[i - 1] == ' ' || s[i - 1] == '\t'))
			break;
	return i;
}

static int parse_path(const char *text, char **out, char *why, size_t why_size)
{
	size_t len = strlen(text);

	if (len == 0 || text[0] != '/') {
		config_set_err(why, why_size, "must be an absolute path");
		return -EINVAL;
	}
	/* "/home/site/" and "/home/site" are the same folder; keep one form
	 * so joined paths never get "//" in them. */
	while (len > 1 && text[len - 1] == '/')
		len--;
	if (len >= PATH_MAX) {
		config_set_err(why, why_size, "path longer than %d bytes", PATH_MAX - 1);
		return -ENAMETOOLONG;
	}
	/* A control character or a space before a dropped slash could not be
	 * written back into the file unchanged (the reader trims values). */
	for (size_t i = 0; i < len; i++) {
		if ((unsigned char)text[i] < 0x20 || text[i] == 0x7f) {
			config_set_err(why, why_size, "a path cannot contain control characters");
			return -EINVAL;
		}
	}
	if (text[len - 1] == ' ') {
		config_set_err(why, why_size, "a path cannot end with a space");
		return -EINVAL;
	}
	/* The file could not say it back: " ;" would start a comment. */
	if (text[config_comment_at(text)]) {
		config_set_err(why, why_size, "a path cannot contain ';' or '#' after a space");
		return -EINVAL;
	}
	*out = strndup(text, len);
	if (!*out) {
		config_set_err(why, why_size, "out of memory");
		return -ENOMEM;
	}
	return 0;
}

/* The STRING keys whose values have a syntax of their own. */
static int check_string(const struct key_info *k, const char *text, char *why, size_t why_size)
{
	enum log_format format;
	char *path;
	int rc;

	if (strcmp(k->section, "hook") == 0 && strcmp(k->name, "scope") == 0 &&
	    strcmp(text, "site") != 0 && strcmp(text, "instance") != 0) {
		config_set_err(why, why_size, "not a scope (use site or instance)");
		return -EINVAL;
	}
	if (strcmp(k->section, "log") == 0 && strcmp(k->name, "format") == 0 &&
	    log_format_parse(text, &format) < 0) {
		config_set_err(why, why_size, "not a log format (use text or json)");
		return -EINVAL;
	}
	/* Empty means no metrics file; anything else is a path. */
	if (strcmp(k->section, "metrics") == 0 && strcmp(k->name, "file") == 0 && text[0]) {
		rc = parse_path(text, &path, why, why_size);
		if (rc < 0)
			return rc;
		free(path);
	}
	return 0;
}

/* Parses text (already trimmed) as key k's type, checking bounds. On
 * failure writes why the value is refused. */
int config_parse_value(const struct key_info *k, const char *text, union config_value *v,
		       char *why, size_t why_size)
{
	char lo[32], hi[32];
	int rc;

	/* check-config writes every value back as one line of the file. */
	if (strchr(text, '\n')) {
		config_set_err(why, why_size, "a value cannot span lines");
		return -EINVAL;
	}
	switch (k->type) {
	case KEY_STRING:
		rc = check_string(k, text, why, why_size);
		if (rc < 0)
			return rc;
		v->str = strdup(text);
		if (!v->str) {
			config_set_err(why, why_size, "out of memory");
			return -ENOMEM;
		}
		return 0;
	case KEY_PATH:
		return parse_path(text, &v->str, why, why_size);
	case KEY_AUTO_DURATION:
		if (strcasecmp(text, "auto") == 0) {
			v->ms = CONFIG_DURATION_AUTO;
			return 0;
		}
		/* fall through */
	case KEY_DURATION:
		rc = config_parse_duration(text, &v->ms);
		config_format_duration(k->min_ms, lo, sizeof(lo));
		config_format_duration(k->max_ms, hi, sizeof(hi));
		if (rc == -ERANGE) {
			config_set_err(why, why_size, "too large, must be between %s and %s%s", lo, hi,
				       k->type == KEY_AUTO_DURATION ? ", or auto" : "");
			return -EINVAL;
		}
		if (rc < 0) {
			config_set_err(why, why_size, "not a duration (use 90s, 15m or 2h%s)",
				       k->type == KEY_AUTO_DURATION ? ", or auto" : "");
			return -EINVAL;
		}
		if (v->ms < k->min_ms || v->ms > k->max_ms) {
			config_set_err(why, why_size, "must be between %s and %s%s", lo, hi,
				       k->type == KEY_AUTO_DURATION ? ", or auto" : "");
			return -EINVAL;
		}
		return 0;
	case KEY_BOOL:
		if (config_parse_bool(text, &v->b) < 0) {
			config_set_err(why, why_size, "not a boolean (use true or false)");
			return -EINVAL;
		}
		return 0;
	case KEY_LEVEL:
		if (log_level_parse(text, &v->level) < 0) {
			config_set_err(why, why_size, "not a log level (use debug, info, warning or error)");
			return -EINVAL;
		}
		return 0;
	}
	config_set_err(why, why_size, "unknown type");
	return -EINVAL;
}

/* Stores a parsed value (taking over its string) with where it came from. */
void config_store_value(struct config *cfg, const struct key_info *k, union config_value *v,
			enum config_source source, unsigned line)
{
	void *f = config_field(cfg, k->value_off);

	switch (k->type) {
	case KEY_STRING:
	case KEY_PATH:
		free(*(char **)f);
		*(char **)f = v->str;
		v->str = NULL;
		break;
	case KEY_DURATION:
	case KEY_AUTO_DURATION:
		*(uint64_t *)f = v->ms;
		break;
	case KEY_BOOL:
		*(bool *)f = v->b;
		break;
	case KEY_LEVEL:
		*(enum log_level *)f = v->level;
		break;
	}
	*(enum config_source *)config_field(cfg, k->source_off) = source;
	*(unsigned *)config_field(cfg, k->line_off) = line;
}
