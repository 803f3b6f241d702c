/* config.c - built-in defaults, the ini file, LOCKWARDEN_<SECTION>_<KEY>
 * environment variables and command-line overrides, in that order, all
 * driven by the one key table in config.def. (A value parsed, checked and
 * stored: config_table.c; value syntax: config_value.c; the environment:
 * config_env.c; what check-config prints: config_print.c.)
 *
 * Value syntax, the same wherever a value comes from:
 *   PATH      absolute, trailing slashes dropped ("/home/site/" is "/home/site")
 *   STRING    anything on one line, kept exactly (the hook command)
 *   DURATION  whole numbers with units, largest first: "250ms", "90s", "15m",
 *             "2h", "1d", "1h30m"; a bare number is seconds. No fractions,
 *             no signs, no spaces inside ("1h 30m" is an error).
 *   AUTO_DURATION  a DURATION, or "auto" (any case): worked out at run time
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
#include "config_env.h"
#include "config_table.h"
#include "config_value.h"

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

static const struct key_info *find_key(const char *section, const char *name)
{
	for (size_t i = 0; i < config_n_keys; i++)
		if (strcmp(config_keys[i].section, section) == 0 && strcmp(config_keys[i].name, name) == 0)
			return &config_keys[i];
	return NULL;
}

static bool known_section(const char *section)
{
	for (size_t i = 0; i < config_n_keys; i++)
		if (strcmp(config_keys[i].section, section) == 0)
			return true;
	return false;
}

/* The defaults go through the same parser as the file, so config.def holds
 * them exactly as a user would write them. */
static int load_defaults(struct config *cfg, char *err, size_t err_size)
{
	char why[128];

	for (size_t i = 0; i < config_n_keys; i++) {
		union config_value v = { 0 };
		int rc = config_parse_value(&config_keys[i], config_keys[i].def, &v, why, sizeof(why));

		if (rc < 0) {
			config_set_err(err, err_size, "built-in default [%s] %s = '%s': %s",
				config_keys[i].section, config_keys[i].name, config_keys[i].def, why);
			return rc;
		}
		config_store_value(cfg, &config_keys[i], &v, CONFIG_FROM_DEFAULT, 0);
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
	config_shown(fp->path, s_path);
	config_shown(section, s_section);
	config_shown(name, s_name);
	config_shown(value, s_value);
	config_set_err(fp->err, fp->err_size, "%s:%u: [%s] %s = '%s': %s", s_path, fp->lineno,
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
	config_shown(fp->path, s_path);
	if (c == EOF && ferror(fp->fp)) {
		int e = errno ? errno : EIO;

		fp->rc = -e;
		config_set_err(fp->err, fp->err_size, "%s: cannot read: %s", s_path, strerror(e));
		return NULL;
	}
	if (c == '\0') {
		fp->rc = -EINVAL;
		config_set_err(fp->err, fp->err_size, "%s:%u: NUL byte in the line", s_path,
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
		config_set_err(fp->err, fp->err_size, "%s:%u: line longer than %d bytes", s_path,
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
	union config_value v = { 0 };
	char *copy, *value;
	int rc;

	if (fp->rc)
		return 0;
	/* "[ policy ]" means [policy]. */
	snprintf(section_buf, sizeof(section_buf), "%s", section);
	section = config_trim(section_buf);

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
		value[config_comment_at(value)] = '\0';
		value = config_trim(value);
	}

	if (!*section)
		file_error(fp, -EINVAL, section, name, value, "key before any [section]");
	else if (!known_section(section))
		file_error(fp, -EINVAL, section, name, value, "unknown section [%s]", section);
	else if (!k)
		file_error(fp, -EINVAL, section, name, value, "unknown key in [%s]", section);
	else if (*(const enum config_source *)config_cfield(fp->cfg, k->source_off) == CONFIG_FROM_FILE)
		file_error(fp, -EINVAL, section, name, value, "given twice, first on line %u",
			   *(const unsigned *)config_cfield(fp->cfg, k->line_off));
	else if ((rc = config_parse_value(k, value, &v, why, sizeof(why))) < 0)
		file_error(fp, rc, section, name, value, "%s", why);
	else
		config_store_value(fp->cfg, k, &v, CONFIG_FROM_FILE, fp->lineno);

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

	config_shown(p, s_path);
	fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;

		/* Without a file the defaults apply; only a file the user
		 * named must exist. */
		if (!path && e == ENOENT)
			return 0;
		config_set_err(err, err_size, "%s: cannot read: %s", s_path, strerror(e));
		return -e;
	}
	/* open() succeeds on a folder; only reading it would fail. */
	if (fstat(fd, &st) < 0 || S_ISDIR(st.st_mode)) {
		int e = S_ISDIR(st.st_mode) ? EISDIR : errno;

		close(fd);
		config_set_err(err, err_size, "%s: cannot read: %s", s_path, strerror(e));
		return -e;
	}
	fp.fp = fdopen(fd, "r");
	if (!fp.fp) {
		int e = errno;

		close(fd);
		config_set_err(err, err_size, "%s: cannot read: %s", s_path, strerror(e));
		return -e;
	}
	cfg->file = strdup(p);
	if (!cfg->file) {
		fclose(fp.fp);
		config_set_err(err, err_size, "%s: out of memory", s_path);
		return -ENOMEM;
	}

	set_ini_knobs();
	rc = ini_parse_stream(read_chunk, &fp, on_pair, &fp);
	fclose(fp.fp);

	if (fp.rc)
		return fp.rc;
	if (rc == -2) {
		config_set_err(err, err_size, "%s: out of memory", s_path);
		return -ENOMEM;
	}
	if (rc > 0) {
		/* inih refused the line itself: no '=', or a '[' without ']'. */
		char s_text[CONFIG_SHOWN_MAX + 4];

		config_shown_cut(config_trim(fp.text), fp.line_bytes > fp.text_len, s_text);
		config_set_err(err, err_size, "%s:%d: syntax error: '%s'", s_path, rc, s_text);
		return -EINVAL;
	}
	if (rc < 0) {
		config_set_err(err, err_size, "%s: cannot parse (inih returned %d)", s_path, rc);
		return -EIO;
	}
	return 0;
}

static int load_overrides(struct config *cfg, const struct config_overrides *over,
			  char *err, size_t err_size)
{
	if (over->site_root) {
		const struct key_info *k = find_key("site", "root");
		char s_value[CONFIG_SHOWN_MAX + 4], why[256];
		union config_value v = { 0 };
		int rc;

		rc = config_parse_value(k, over->site_root, &v, why, sizeof(why));
		if (rc < 0) {
			config_shown(over->site_root, s_value);
			config_set_err(err, err_size, "command line: [site] root = '%s': %s", s_value, why);
			return rc;
		}
		config_store_value(cfg, k, &v, CONFIG_FROM_COMMAND_LINE, 0);
	}
	if (over->dry_run) {
		union config_value v = { .b = true };

		config_store_value(cfg, find_key("policy", "dry_run"), &v, CONFIG_FROM_COMMAND_LINE, 0);
	}
	if (over->verbose) {
		union config_value v = { .level = LOG_LEVEL_DEBUG };

		config_store_value(cfg, find_key("log", "level"), &v, CONFIG_FROM_COMMAND_LINE, 0);
	}
	return 0;
}

/* [archive] dir left at its default follows the site root: Kudu keeps
 * LogFiles/ beside site/ on the share (/home/site, /home/LogFiles), where
 * the agents meet and the share's clock is measured, and a site root given
 * for a copy of the tree never writes into this host's /home. */
static int archive_follows_root(struct config *cfg, char *err, size_t err_size)
{
	const char *slash = strrchr(cfg->site_root, '/');
	char *dir;

	if (cfg->archive_dir_source != CONFIG_FROM_DEFAULT || !slash)
		return 0;
	if (asprintf(&dir, "%.*s/LogFiles/lockwarden", (int)(slash - cfg->site_root),
		     cfg->site_root) < 0) {
		config_set_err(err, err_size, "out of memory");
		return -ENOMEM;
	}
	free(cfg->archive_dir);
	cfg->archive_dir = dir;
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
		rc = config_load_env(cfg, envp, err, err_size);
	if (rc == 0 && over)
		rc = load_overrides(cfg, over, err, err_size);
	if (rc == 0)
		rc = archive_follows_root(cfg, err, err_size);
	if (rc < 0)
		config_free(cfg);
	return rc;
}

void config_free(struct config *cfg)
{
	for (size_t i = 0; i < config_n_keys; i++)
		if (config_keys[i].type == KEY_STRING || config_keys[i].type == KEY_PATH)
			free(*(char **)config_field(cfg, config_keys[i].value_off));
	free(cfg->file);
	memset(cfg, 0, sizeof(*cfg));
}
