/* log.h - the agent's one log sink.
 *
 * Everything the agent says goes through these helpers. The sink is chosen
 * once, in log_open(): when stderr is connected to the journal (JOURNAL_STREAM
 * names stderr's device and inode) every line gets a "<N>" priority prefix so
 * journald files it at the right level; otherwise each line starts with a UTC
 * timestamp and the level, which is what App Service's log stream and
 * supervisord log files want. One line per event; newlines inside a message
 * are replaced so a hostile file name cannot forge extra log lines.
 *
 * [log] format = json writes each line as one JSON object instead (time,
 * level, event, instance, message and the event's fields), for App
 * Service's console log in Log Analytics. Under the journal the format does
 * not matter: the fields go to sd_journal_sendv() as LOCKWARDEN_* journal
 * fields when the journal's socket takes them, else the "<N>" lines.
 *
 * Every line has an event name: the ones README.md's table lists, given with
 * log_event(); "error" for other errors and "log" for everything else.
 */
#ifndef LOCKWARDEN_LOG_H
#define LOCKWARDEN_LOG_H

#include <stddef.h>

enum log_level {
	LOG_LEVEL_ERROR = 3,   /* the syslog priorities, so "<N>" is the level */
	LOG_LEVEL_WARNING = 4,
	LOG_LEVEL_INFO = 6,
	LOG_LEVEL_DEBUG = 7,
};

/* Decides the sink from the environment; safe to call again (tests, reload). */
void log_open(void);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* "debug", "info", "warning", "error" -> level; returns 0 or -EINVAL. */
int log_level_parse(const char *name, enum log_level *out);
const char *log_level_name(enum log_level level);

enum log_format {
	LOG_FORMAT_TEXT,
	LOG_FORMAT_JSON,
};

/* "text", "json" -> format; returns 0 or -EINVAL. */
int log_format_parse(const char *name, enum log_format *out);
const char *log_format_name(enum log_format format);
void log_set_format(enum log_format format);
/* The configuration's [log] format (already checked): unknown names are ignored. */
void log_set_format_named(const char *name);
/* This instance's id (the archive's), in every json line and journal entry. */
void log_set_instance(const char *instance);

enum log_field_type {
	LOG_FIELD_END,
	LOG_FIELD_STR,   /* any bytes: escaped as jsonw_escape() does */
	LOG_FIELD_INT,
	LOG_FIELD_BOOL,
	LOG_FIELD_LIST,  /* n strings: a JSON array, one journal value a line */
};

/* One field of an event. key: lower case ASCII letters, digits and '_'. */
struct log_field {
	const char *key;
	enum log_field_type type;
	const char *str;
	long long num;
	const char *const *list;
	size_t n;
};

#define LOG_STR(k, v) { .key = (k), .type = LOG_FIELD_STR, .str = (v) }
#define LOG_INT(k, v) { .key = (k), .type = LOG_FIELD_INT, .num = (long long)(v) }
#define LOG_BOOL(k, v) { .key = (k), .type = LOG_FIELD_BOOL, .num = (v) ? 1 : 0 }
#define LOG_LIST(k, v, count) { .key = (k), .type = LOG_FIELD_LIST, .list = (v), .n = (count) }
/* The fields of one call: log_event(level, "removed", LOG_FIELDS(LOG_STR(...)), ...). */
#define LOG_FIELDS(...) ((const struct log_field[]){ __VA_ARGS__, { .type = LOG_FIELD_END } })

/* One event: its stable name (README.md's table), its fields (may be NULL)
 * and the human message. */
void log_event(enum log_level level, const char *event, const struct log_field *fields,
	       const char *fmt, ...) __attribute__((format(printf, 4, 5)));

void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warning(...) log_msg(LOG_LEVEL_WARNING, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__)

/* Copies at most out_size-1 bytes of a name taken from the watched folders
 * into out, with control characters, backslashes and bytes that are not
 * printable ASCII written as \xNN, so it can be logged or printed safely. */
void log_escape(const char *name, char *out, unsigned long out_size);

#endif
