/* log.c - the one place that decides where and how log lines are written. */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The only mutable globals of the agent: the sink is process-wide by nature
 * (there is one stderr), and every module logs. */
static enum log_level current_level = LOG_LEVEL_INFO;
static int to_journal;

/* JOURNAL_STREAM is "DEV:INODE" of the stream systemd connected; it only
 * applies if stderr is still that stream (a child may have redirected it). */
static int stderr_is_journal(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	if (!js || sscanf(js, "%llu:%llu", &dev, &ino) != 2)
		return 0;
	if (fstat(STDERR_FILENO, &st) < 0)
		return 0;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void log_open(void)
{
	to_journal = stderr_is_journal();
	/* Line buffering: each event reaches the log stream as it happens. */
	setvbuf(stderr, NULL, _IOLBF, 0);
}

void log_set_level(enum log_level level)
{
	current_level = level;
}

enum log_level log_get_level(void)
{
	return current_level;
}

static const struct {
	const char *name;
	enum log_level level;
} level_names[] = {
	{ "error", LOG_LEVEL_ERROR },
	{ "warning", LOG_LEVEL_WARNING },
	{ "info", LOG_LEVEL_INFO },
	{ "debug", LOG_LEVEL_DEBUG },
};

int log_level_parse(const char *name, enum log_level *out)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcasecmp(name, level_names[i].name) == 0) {
			*out = level_names[i].level;
			return 0;
		}
	}
	return -EINVAL;
}

const char *log_level_name(enum log_level level)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
		if (level_names[i].level == level)
			return level_names[i].name;
	return "?";
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	char msg[2048];
	va_list ap;

	if (level > current_level)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* One event, one line, whatever a message carries. */
	for (char *p = msg; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';

	if (to_journal) {
		fprintf(stderr, "<%d>%s\n", (int)level, msg);
		return;
	}
	struct timespec ts;
	struct tm tm;
	char when[32];
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	fprintf(stderr, "%s.%03ldZ lockwarden[%d] %s: %s\n", when, ts.tv_nsec / 1000000,
		(int)getpid(), log_level_name(level), msg);
}

void log_escape(const char *name, char *out, unsigned long out_size)
{
	static const char hex[] = "0123456789abcdef";
	unsigned long o = 0;

	if (out_size == 0)
		return;
	for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
		if (*p >= 0x20 && *p < 0x7f && *p != '\\') {
			if (o + 1 >= out_size)
				break;
			out[o++] = (char)*p;
		} else {
			if (o + 4 >= out_size)
				break;
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hex[*p >> 4];
			out[o++] = hex[*p & 15];
		}
	}
	out[o] = '\0';
}
