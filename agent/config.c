/* config.c - built-in defaults, the ini file, LOCKWARDEN_<SECTION>_<KEY>
 * environment variables and command-line overrides, in that order, all
 * driven by the one key table in config.def.
 *
 * Value syntax, the same wherever a value comes from:
 *   PATH      absolute, trailing slashes dropped ("/home/site/" is "/home/site")
 *   STRING    anything on one line, kept exactly (the hook command)
 *   DURATION  whole numbers with units, largest first: "250ms", "90s", "15m",
 *             "2h", "1d", "1h30m"; a bare number is seconds. No fractions,
 *             no signs, no spaces inside ("1h 30m" is an error).
 *   BOOL      true/false, yes/no, on/off, 1/0, any case
 *   LEVEL     debug, info, warning, error
 *
 * Comments in the file: a line starting with ';' or '#'. A comment may also
 * follow a value after whitespace ("stuck_after = 20m ; why"), except for
 * STRING keys, whose value is the whole rest of the line: a hook command is
 * shell, where ';' and '#' mean something, and cutting it at " ;" would
 * silently run half a command.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ini.h>

/* inih's line buffer, in bytes with "\n" and the terminating NUL. Hook
 * commands can be long; 8 KiB leaves plenty of room. */
#define CONFIG_LINE_MAX 8192
/* The longest line we accept, not counting its '\n': one more byte and
 * inih's buffer could no longer hold the line with "\n\0". */
#define CONFIG_LINE_BYTES_MAX (CONFIG_LINE_MAX - 2)
/* How much of a value or line an error message shows (escaped bytes). */
#define CONFIG_SHOWN_MAX 160
#define ENV_PREFIX "LOCKWARDEN_"

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

static const struct key_info keys[] = {
#define CONFIG_KEY(section, key, type, def, min, max, doc) \
	{ #section, #key, KEY_##type, def, (uint64_t)(min), (uint64_t)(max), doc, \
	  offsetof(struct config, section##_##key), \
	  offsetof(struct config, section##_##key##_source), \
	  offsetof(struct config, section##_##key##_line) },
#include "config.def"
};

#define N_KEYS (sizeof(keys) / sizeof(keys[0]))

/* A parsed value, before it is stored into struct config. */
union value {
	char *str;
	uint64_t ms;
	bool b;
	enum log_level level;
};

static void *field(struct config *cfg, size_t off)
{
	return (char *)cfg + off;
}

static const void *cfield(const struct config *cfg, size_t off)
{
	return (const char *)cfg + off;
}

static void set_err(char *err, size_t err_size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t err_size, const char *fmt, ...)
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
static void shown_cut(const char *text, bool already_cut, char out[CONFIG_SHOWN_MAX + 4])
{
	size_t need = 0;

	for (const unsigned char *p = (const unsigned char *)text; *p; p++)
		need += (*p >= 0x20 && *p < 0x7f && *p != '\\') ? 1 : 4;
	log_escape(text, out, CONFIG_SHOWN_MAX + 1);
	if (already_cut || need > CONFIG_SHOWN_MAX)
		strcat(out, "...");
}

static void shown(const char *text, char out[CONFIG_SHOWN_MAX + 4])
{
	shown_cut(text, false, out);
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool is_letter(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* Trims whitespace at both ends of s, in place; returns the new start. */
static char *trim(char *s)
{
	size_t len;

	while (is_blank(*s))
		s++;
	len = strlen(s);
	while (len > 0 && is_blank(s[len - 1]))
		s[--len] = '\0';
	return s;
}

/* Where a comment after a value starts: the first ';' or '#' that follows
 * whitespace, or the end of s when there is none. */
static size_t inline_comment_at(const char *s)
{
	size_t i;

	for (i = 0; s[i]; i++)
		if ((s[i] == ';' || s[i] == '#') && i > 0 && (s[i - 1] == ' ' || s[i - 1] == '\t'))
			break;
	return i;
}

int config_parse_duration(const char *text, uint64_t *out_ms)
{
	/* Ranks make units go from largest to smallest, each at most once,
	 * so "30m1h" and "1m1m" (most likely typos) are refused. */
	static const struct {
		const char *name;
		uint64_t ms;
	} units[] = {
		{ "d", 24 * 3600 * 1000ULL },
		{ "h", 3600 * 1000ULL },
		{ "m", 60 * 1000ULL },
		{ "s", 1000ULL },
		{ "ms", 1ULL },
	};
	const char *p = text;
	uint64_t total_ms = 0;
	int last_rank = -1;
	bool overflow = false;

	while (is_blank(*p))
		p++;
	if (!*p)
		return -EINVAL;
	while (*p && !is_blank(*p)) {
		uint64_t n = 0, unit_ms = 0;
		const char *unit;
		size_t unit_len;
		int rank = -1;

		if (!is_digit(*p))
			return -EINVAL;
		for (; is_digit(*p); p++) {
			unsigned d = (unsigned)(*p - '0');

			if (n > (UINT64_MAX - d) / 10)
				overflow = true;
			else
				n = n * 10 + d;
		}
		unit = p;
		while (is_letter(*p))
			p++;
		unit_len = (size_t)(p - unit);
		if (unit_len == 0) {
			/* A bare number means seconds, but only on its own:
			 * "1h30" could mean seconds or minutes. */
			if (last_rank >= 0)
				return -EINVAL;
			unit_ms = 1000;
			rank = (int)(sizeof(units) / sizeof(units[0]));
		} else {
			for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
				if (strlen(units[i].name) == unit_len &&
				    strncmp(units[i].name, unit, unit_len) == 0) {
					unit_ms = units[i].ms;
					rank = (int)i;
				}
			}
			if (rank < 0 || rank <= last_rank)
				return -EINVAL;
		}
		last_rank = rank;
		/* Keep checking the syntax after an overflow: "99…9x" is a
		 * typo first, a range problem second. */
		if (overflow || n > UINT64_MAX / unit_ms || total_ms > UINT64_MAX - n * unit_ms)
			overflow = true;
		else
			total_ms += n * unit_ms;
	}
	while (is_blank(*p))
		p++;
	if (*p)
		return -EINVAL;
	if (overflow)
		return -ERANGE;
	*out_ms = total_ms;
	return 0;
}

void config_format_duration(uint64_t ms, char *out, size_t out_size)
{
	static const struct {
		const char *name;
		uint64_t s;
	} units[] = {
		{ "d", 24 * 3600 }, { "h", 3600 }, { "m", 60 }, { "s", 1 },
	};
	uint64_t left_s;
	size_t used = 0;

	if (out_size == 0)
		return;
	out[0] = '\0';
	if (ms == 0) {
		snprintf(out, out_size, "0s");
		return;
	}
	/* "1s500ms" reads worse than "1500ms", and sub-second values are
	 * rare enough that one unit is clearer. */
	if (ms % 1000 != 0) {
		snprintf(out, out_size, "%" PRIu64 "ms", ms);
		return;
	}
	left_s = ms / 1000;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		uint64_t n = left_s / units[i].s;
		int len;

		if (n == 0)
			continue;
		left_s -= n * units[i].s;
		len = snprintf(out + used, out_size - used, "%" PRIu64 "%s", n, units[i].name);
		if (len < 0 || (size_t)len >= out_size - used)
			return;  /* cut short, but terminated */
		used += (size_t)len;
	}
}

int config_parse_bool(const char *text, bool *out)
{
	static const char *const yes[] = { "true", "yes", "on", "1" };
	static const char *const no[] = { "false", "no", "off", "0" };

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(text, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(text, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -EINVAL;
}

static int parse_path(const char *text, char **out, char *why, size_t why_size)
{
	size_t len = strlen(text);

	if (len == 0 || text[0] != '/') {
		set_err(why, why_size, "must be an absolute path");
		return -EINVAL;
	}
	/* "/home/site/" and "/home/site" are the same folder; keep one form
	 * so joined paths never get "//" in them. */
	while (len > 1 && text[len - 1] == '/')
		len--;
	if (len >= PATH_MAX) {
		set_err(why, why_size, "path longer than %d bytes", PATH_MAX - 1);
		return -ENAMETOOLONG;
	}
	/* A control character or a space before a dropped slash could not be
	 * written back into the file unchanged (the reader trims values). */
	for (size_t i = 0; i < len; i++) {
		if ((unsigned char)text[i] < 0x20 || text[i] == 0x7f) {
			set_err(why, why_size, "a path cannot contain control characters");
			return -EINVAL;
		}
	}
	if (text[len - 1] == ' ') {
		set_err(why, why_size, "a path cannot end with a space");
		return -EINVAL;
	}
	/* The file could not say it back: " ;" would start a comment. */
	if (text[inline_comment_at(text)]) {
		set_err(why, why_size, "a path cannot contain ';' or '#' after a space");
		return -EINVAL;
	}
	*out = strndup(text, len);
	if (!*out) {
		set_err(why, why_size, "out of memory");
		return -ENOMEM;
	}
	return 0;
}

/* Parses text (already trimmed) as key k's type, checking bounds. On
 * failure writes why the value is refused. */
static int parse_value(const struct key_info *k, const char *text, union value *v,
		       char *why, size_t why_size)
{
	char lo[32], hi[32];
	int rc;

	/* check-config writes every value back as one line of the file. */
	if (strchr(text, '\n')) {
		set_err(why, why_size, "a value cannot span lines");
		return -EINVAL;
	}
	switch (k->type) {
	case KEY_STRING:
		if (strcmp(k->section, "hook") == 0 && strcmp(k->name, "scope") == 0 &&
		    strcmp(text, "site") != 0 && strcmp(text, "instance") != 0) {
			set_err(why, why_size, "not a scope (use site or instance)");
			return -EINVAL;
		}
		v->str = strdup(text);
		if (!v->str) {
			set_err(why, why_size, "out of memory");
			return -ENOMEM;
		}
		return 0;
	case KEY_PATH:
		return parse_path(text, &v->str, why, why_size);
	case KEY_DURATION:
		rc = config_parse_duration(text, &v->ms);
		config_format_duration(k->min_ms, lo, sizeof(lo));
		config_format_duration(k->max_ms, hi, sizeof(hi));
		if (rc == -ERANGE) {
			set_err(why, why_size, "too large, must be between %s and %s", lo, hi);
			return -EINVAL;
		}
		if (rc < 0) {
			set_err(why, why_size, "not a duration (use 90s, 15m or 2h)");
			return -EINVAL;
		}
		if (v->ms < k->min_ms || v->ms > k->max_ms) {
			set_err(why, why_size, "must be between %s and %s", lo, hi);
			return -EINVAL;
		}
		return 0;
	case KEY_BOOL:
		if (config_parse_bool(text, &v->b) < 0) {
			set_err(why, why_size, "not a boolean (use true or false)");
			return -EINVAL;
		}
		return 0;
	case KEY_LEVEL:
		if (log_level_parse(text, &v->level) < 0) {
			set_err(why, why_size, "not a log level (use debug, info, warning or error)");
			return -EINVAL;
		}
		return 0;
	}
	set_err(why, why_size, "unknown type");
	return -EINVAL;
}

/* Stores a parsed value (taking over its string) with where it came from. */
static void store_value(struct config *cfg, const struct key_info *k, union value *v,
			enum config_source source, unsigned line)
{
	void *f = field(cfg, k->value_off);

	switch (k->type) {
	case KEY_STRING:
	case KEY_PATH:
		free(*(char **)f);
		*(char **)f = v->str;
		v->str = NULL;
		break;
	case KEY_DURATION:
		*(uint64_t *)f = v->ms;
		break;
	case KEY_BOOL:
		*(bool *)f = v->b;
		break;
	case KEY_LEVEL:
		*(enum log_level *)f = v->level;
		break;
	}
	*(enum config_source *)field(cfg, k->source_off) = source;
	*(unsigned *)field(cfg, k->line_off) = line;
}

static const struct key_info *find_key(const char *section, const char *name)
{
	for (size_t i = 0; i < N_KEYS; i++)
		if (strcmp(keys[i].section, section) == 0 && strcmp(keys[i].name, name) == 0)
			return &keys[i];
	return NULL;
}

static bool known_section(const char *section)
{
	for (size_t i = 0; i < N_KEYS; i++)
		if (strcmp(keys[i].section, section) == 0)
			return true;
	return false;
}

/* The defaults go through the same parser as the file, so config.def holds
 * them exactly as a user would write them. */
static int load_defaults(struct config *cfg, char *err, size_t err_size)
{
	char why[128];

	for (size_t i = 0; i < N_KEYS; i++) {
		union value v = { 0 };
		int rc = parse_value(&keys[i], keys[i].def, &v, why, sizeof(why));

		if (rc < 0) {
			set_err(err, err_size, "built-in default [%s] %s = '%s': %s",
				keys[i].section, keys[i].name, keys[i].def, why);
			return rc;
		}
		store_value(cfg, &keys[i], &v, CONFIG_FROM_DEFAULT, 0);
	}
	return 0;
}

/* State of one file parse, shared by the reader and the handler. */
struct file_parse {
	struct config *cfg;
	FILE *fp;
	const char *path;
	unsigned lineno;          /* the line the last chunk belongs to */
	bool line_ended;          /* the last chunk ended with '\n' */
	size_t line_bytes;        /* bytes of the current line so far, no '\n' */
	char text[CONFIG_SHOWN_MAX + 1];  /* its start, for syntax errors */
	size_t text_len;
	int rc;                   /* the first error, 0 while none */
	char *err;
	size_t err_size;
};

static void file_error(struct file_parse *fp, int rc, const char *section, const char *name,
		       const char *value, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));

/* "FILE:LINE: [section] key = 'value': why". The first error wins. */
static void file_error(struct file_parse *fp, int rc, const char *section, const char *name,
		       const char *value, const char *fmt, ...)
{
	char s_path[CONFIG_SHOWN_MAX + 4], s_section[CONFIG_SHOWN_MAX + 4];
	char s_name[CONFIG_SHOWN_MAX + 4], s_value[CONFIG_SHOWN_MAX + 4];
	char why[256];
	va_list ap;

	if (fp->rc)
		return;
	fp->rc = rc;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	shown(fp->path, s_path);
	shown(section, s_section);
	shown(name, s_name);
	shown(value, s_value);
	set_err(fp->err, fp->err_size, "%s:%u: [%s] %s = '%s': %s", s_path, fp->lineno,
		s_section, s_name, s_value, why);
}

/* inih's reader: an fgets that also counts lines. A line longer than
 * inih's buffer arrives in several calls, so a new line starts only after
 * a chunk that ended in '\n'. Lines too long for inih's buffer and NUL
 * bytes (which would silently cut a line short) end the parse here. */
static char *read_chunk(char *buf, int size, void *stream)
{
	struct file_parse *fp = stream;
	char s_path[CONFIG_SHOWN_MAX + 4];
	int n = 0, c = 0;

	if (fp->rc || size < 2)
		return NULL;
	errno = 0;
	while (n < size - 1 && (c = getc(fp->fp)) != EOF && c != '\0') {
		buf[n++] = (char)c;
		if (c == '\n')
			break;
	}
	/* Terminated even when returning NULL: inih may go on to use what
	 * it had read of the line so far. */
	buf[n] = '\0';
	shown(fp->path, s_path);
	if (c == EOF && ferror(fp->fp)) {
		int e = errno ? errno : EIO;

		fp->rc = -e;
		set_err(fp->err, fp->err_size, "%s: cannot read: %s", s_path, strerror(e));
		return NULL;
	}
	if (c == '\0') {
		fp->rc = -EINVAL;
		set_err(fp->err, fp->err_size, "%s:%u: NUL byte in the line", s_path,
			fp->line_ended ? fp->lineno + 1 : fp->lineno);
		return NULL;
	}
	if (n == 0)
		return NULL;

	if (fp->line_ended) {
		fp->lineno++;
		fp->line_bytes = 0;
		fp->text_len = 0;
	}
	fp->line_ended = buf[n - 1] == '\n';
	size_t content = (size_t)n - (fp->line_ended ? 1 : 0);
	fp->line_bytes += content;
	for (size_t i = 0; i < content && fp->text_len < sizeof(fp->text) - 1; i++)
		fp->text[fp->text_len++] = buf[i];
	fp->text[fp->text_len] = '\0';

	if (fp->line_bytes > CONFIG_LINE_BYTES_MAX) {
		fp->rc = -EINVAL;
		set_err(fp->err, fp->err_size, "%s:%u: line longer than %d bytes", s_path,
			fp->lineno, CONFIG_LINE_BYTES_MAX);
		/* inih may still hand the cut line to the handler, which
		 * ignores it because rc is set. */
		return NULL;
	}
	return buf;
}

static int on_pair(void *user, const char *section, const char *name, const char *raw_value)
{
	struct file_parse *fp = user;
	char section_buf[64], why[256];
	const struct key_info *k;
	union value v = { 0 };
	char *copy, *value;
	int rc;

	if (fp->rc)
		return 0;
	/* "[ policy ]" means [policy]. */
	snprintf(section_buf, sizeof(section_buf), "%s", section);
	section = trim(section_buf);

	copy = strdup(raw_value);
	if (!copy) {
		file_error(fp, -ENOMEM, section, name, "", "out of memory");
		return 0;
	}
	value = copy;
	k = find_key(section, name);
	/* Only the hook's command is the rest of the line verbatim (the
	 * shell's ; and #); a comment may follow any other value. */
	if (!k || k->type != KEY_STRING || strcmp(k->name, "command") != 0) {
		value[inline_comment_at(value)] = '\0';
		value = trim(value);
	}

	if (!*section)
		file_error(fp, -EINVAL, section, name, value, "key before any [section]");
	else if (!known_section(section))
		file_error(fp, -EINVAL, section, name, value, "unknown section [%s]", section);
	else if (!k)
		file_error(fp, -EINVAL, section, name, value, "unknown key in [%s]", section);
	else if (*(const enum config_source *)cfield(fp->cfg, k->source_off) == CONFIG_FROM_FILE)
		file_error(fp, -EINVAL, section, name, value, "given twice, first on line %u",
			   *(const unsigned *)cfield(fp->cfg, k->line_off));
	else if ((rc = parse_value(k, value, &v, why, sizeof(why))) < 0)
		file_error(fp, rc, section, name, value, "%s", why);
	else
		store_value(fp->cfg, k, &v, CONFIG_FROM_FILE, fp->lineno);

	free(copy);
	return fp->rc == 0;
}

/* inih's knobs are globals of the library; set them before every parse so
 * nothing else in the process can change how our file reads. */
static void set_ini_knobs(void)
{
	/* An indented line must not be glued to the value above it: a
	 * half-written hook command should be an error, not a surprise. */
	ini_allow_multiline = false;
	ini_allow_bom = true;
	ini_start_comment_prefixes = (char *)";#";
	/* Comments after values are cut in on_pair, per type: inih would
	 * also cut a hook command at " ;". */
	ini_allow_inline_comments = false;
	ini_allow_no_value = false;
	ini_use_stack = false;
	ini_allow_realloc = true;
	ini_initial_alloc = 256;
	ini_max_line = CONFIG_LINE_MAX;
	ini_stop_on_first_error = true;
}

static int load_file(struct config *cfg, const char *path, char *err, size_t err_size)
{
	const char *p = path ? path : CONFIG_DEFAULT_PATH;
	char s_path[CONFIG_SHOWN_MAX + 4];
	struct file_parse fp = {
		.cfg = cfg, .path = p, .line_ended = true, .err = err, .err_size = err_size,
	};
	struct stat st = { 0 };
	int fd, rc;

	shown(p, s_path);
	fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;

		/* Without a file the defaults apply; only a file the user
		 * named must exist. */
		if (!path && e == ENOENT)
			return 0;
		set_err(err, err_size, "%s: cannot read: %s", s_path, strerror(e));
		return -e;
	}
	/* open() succeeds on a folder; only reading it would fail. */
	if (fstat(fd, &st) < 0 || S_ISDIR(st.st_mode)) {
		int e = S_ISDIR(st.st_mode) ? EISDIR : errno;

		close(fd);
		set_err(err, err_size, "%s: cannot read: %s", s_path, strerror(e));
		return -e;
	}
	fp.fp = fdopen(fd, "r");
	if (!fp.fp) {
		int e = errno;

		close(fd);
		set_err(err, err_size, "%s: cannot read: %s", s_path, strerror(e));
		return -e;
	}
	cfg->file = strdup(p);
	if (!cfg->file) {
		fclose(fp.fp);
		set_err(err, err_size, "%s: out of memory", s_path);
		return -ENOMEM;
	}

	set_ini_knobs();
	rc = ini_parse_stream(read_chunk, &fp, on_pair, &fp);
	fclose(fp.fp);

	if (fp.rc)
		return fp.rc;
	if (rc == -2) {
		set_err(err, err_size, "%s: out of memory", s_path);
		return -ENOMEM;
	}
	if (rc > 0) {
		/* inih refused the line itself: no '=', or a '[' without ']'. */
		char s_text[CONFIG_SHOWN_MAX + 4];

		shown_cut(trim(fp.text), fp.line_bytes > fp.text_len, s_text);
		set_err(err, err_size, "%s:%d: syntax error: '%s'", s_path, rc, s_text);
		return -EINVAL;
	}
	if (rc < 0) {
		set_err(err, err_size, "%s: cannot parse (inih returned %d)", s_path, rc);
		return -EIO;
	}
	return 0;
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

static int load_env_one(struct config *cfg, const char *entry, char *err, size_t err_size)
{
	const char *eq = strchr(entry, '=');
	const char *rest = entry + strlen(ENV_PREFIX);
	const char *section = NULL;
	const struct key_info *k = NULL;
	char s_name[CONFIG_SHOWN_MAX + 4], s_value[CONFIG_SHOWN_MAX + 4], why[256];
	char *name, *copy, *value;
	union value v = { 0 };
	int rc = 0;

	if (!eq)
		return 0;
	for (size_t i = 0; i < N_KEYS && !section; i++) {
		size_t slen = strlen(keys[i].section);

		if (rest + slen < eq && rest[slen] == '_' &&
		    env_name_is(rest, slen, keys[i].section))
			section = keys[i].section;
	}
	/* LOCKWARDEN_ variables of other sections belong to someone else
	 * (scripts, tests) and are left alone. */
	if (!section)
		return 0;
	rest += strlen(section) + 1;
	for (size_t i = 0; i < N_KEYS && !k; i++)
		if (strcmp(keys[i].section, section) == 0 &&
		    env_name_is(rest, (size_t)(eq - rest), keys[i].name))
			k = &keys[i];

	name = strndup(entry, (size_t)(eq - entry));
	copy = strdup(eq + 1);
	if (!name || !copy) {
		set_err(err, err_size, "environment: out of memory");
		rc = -ENOMEM;
		goto out;
	}
	/* Trimmed like a file value, so check-config can write it back. */
	value = trim(copy);
	shown(name, s_name);
	shown(value, s_value);
	if (!k) {
		set_err(err, err_size, "environment %s='%s': unknown key in [%s]", s_name,
			s_value, section);
		rc = -EINVAL;
		goto out;
	}
	/* The first definition wins, as with getenv(). */
	if (*(const enum config_source *)cfield(cfg, k->source_off) == CONFIG_FROM_ENV)
		goto out;
	rc = parse_value(k, value, &v, why, sizeof(why));
	if (rc < 0) {
		set_err(err, err_size, "environment %s='%s': %s", s_name, s_value, why);
		goto out;
	}
	store_value(cfg, k, &v, CONFIG_FROM_ENV, 0);
out:
	free(name);
	free(copy);
	return rc;
}

static int load_env(struct config *cfg, char *const *envp, char *err, size_t err_size)
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

static int load_overrides(struct config *cfg, const struct config_overrides *over,
			  char *err, size_t err_size)
{
	if (over->site_root) {
		const struct key_info *k = find_key("site", "root");
		char s_value[CONFIG_SHOWN_MAX + 4], why[256];
		union value v = { 0 };
		int rc;

		rc = parse_value(k, over->site_root, &v, why, sizeof(why));
		if (rc < 0) {
			shown(over->site_root, s_value);
			set_err(err, err_size, "command line: [site] root = '%s': %s", s_value, why);
			return rc;
		}
		store_value(cfg, k, &v, CONFIG_FROM_COMMAND_LINE, 0);
	}
	if (over->dry_run) {
		union value v = { .b = true };

		store_value(cfg, find_key("policy", "dry_run"), &v, CONFIG_FROM_COMMAND_LINE, 0);
	}
	if (over->verbose) {
		union value v = { .level = LOG_LEVEL_DEBUG };

		store_value(cfg, find_key("log", "level"), &v, CONFIG_FROM_COMMAND_LINE, 0);
	}
	return 0;
}

int config_load(struct config *cfg, const char *path, char *const *envp,
		const struct config_overrides *over, char *err, size_t err_size)
{
	int rc;

	memset(cfg, 0, sizeof(*cfg));
	if (err && err_size)
		err[0] = '\0';
	rc = load_defaults(cfg, err, err_size);
	if (rc == 0)
		rc = load_file(cfg, path, err, err_size);
	if (rc == 0 && envp)
		rc = load_env(cfg, envp, err, err_size);
	if (rc == 0 && over)
		rc = load_overrides(cfg, over, err, err_size);
	if (rc < 0)
		config_free(cfg);
	return rc;
}

void config_free(struct config *cfg)
{
	for (size_t i = 0; i < N_KEYS; i++)
		if (keys[i].type == KEY_STRING || keys[i].type == KEY_PATH)
			free(*(char **)field(cfg, keys[i].value_off));
	free(cfg->file);
	memset(cfg, 0, sizeof(*cfg));
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
	for (size_t i = 0; i < N_KEYS; i++) {
		bool first = true;

		for (size_t j = 0; j < i; j++)
			if (strcmp(keys[j].section, keys[i].section) == 0)
				first = false;
		if (!first)
			continue;
		fprintf(out, "\n[%s]\n", keys[i].section);
		for (size_t j = i; j < N_KEYS; j++) {
			if (strcmp(keys[j].section, keys[i].section) != 0)
				continue;
			if (j != i)
				putc('\n', out);
			fprintf(out, "; %s\n", keys[j].doc);
			print_key(out, &keys[j], ctx);
		}
	}
}

static void print_effective_key(FILE *out, const struct key_info *k, const void *ctx)
{
	const struct config *cfg = ctx;
	const void *f = cfield(cfg, k->value_off);
	char buf[32];
	const char *value = "";

	switch (*(const enum config_source *)cfield(cfg, k->source_off)) {
	case CONFIG_FROM_DEFAULT:
		break;
	case CONFIG_FROM_FILE:
		fputs("; from ", out);
		print_escaped(out, cfg->file ? cfg->file : "?");
		fprintf(out, ":%u\n", *(const unsigned *)cfield(cfg, k->line_off));
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
		config_format_duration(*(const uint64_t *)f, buf, sizeof(buf));
		value = buf;
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
	"; (Kudu) deployments. Every setting is shown at its built-in default.\n"
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

static void print_sample_key(FILE *out, const struct key_info *k, const void *ctx)
{
	if (strcmp(k->section, "hook") == 0 && strcmp(k->name, "command") == 0)
		fputs("; to restart the site after a cleanup:\n"
		      ";command = /usr/lib/lockwarden/hooks/restart-site\n", out);
	print_key_line(out, k->name, k->def);
}

void config_print_sample(FILE *out)
{
	fputs(sample_header, out);
	print_sections(out, NULL, print_sample_key);
}
