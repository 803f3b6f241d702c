/* log.h - the agent's one log sink.
 *
 * Everything the agent says goes through these helpers. The sink is chosen
 * once, in log_open(): when stderr is connected to the journal (JOURNAL_STREAM
 * names stderr's device and inode) every line gets a "<N>" priority prefix so
 * journald files it at the right level; otherwise each line starts with a UTC
 * timestamp and the level, which is what App Service's log stream and
 * supervisord log files want. One line per event; newlines inside a message
 * are replaced so a hostile file name cannot forge extra log lines.
 */
#ifndef LOCKWARDEN_LOG_H
#define LOCKWARDEN_LOG_H

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
