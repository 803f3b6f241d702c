/* log.c - the one place that decides where and how log lines are written. */
#include "log.h"

#include <ctype.h>
#ifndef LOCKWARDEN_STATIC
#include <dlfcn.h>
#endif
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <systemd/sd-journal.h>
#include <time.h>
#include <unistd.h>

#include "jsonw.h"

/* The only mutable globals of the agent: the sink is process-wide by nature
 * (there is one stderr), and every module logs. Set on the loop's thread
 * before any worker starts (log_open, log_set_*), read from any thread. */
static enum log_level current_level = LOG_LEVEL_INFO;
static enum log_format current_format = LOG_FORMAT_TEXT;
static char current_instance[64];
static int to_journal;
/* sd_journal_sendv from libsystemd, loaded only when stderr is the journal
 * (as notify.c loads sd_notify: an App Service container has no journal,
 * and the library costs memory). NULL when there is no journal. */
static __typeof__(sd_journal_sendv) *journal_sendv;
static int journal_tried;
/* Set by whichever thread saw the socket refuse an entry. */
static atomic_bool journal_refused;

/* Journal fields per entry: MESSAGE, PRIORITY, SYSLOG_IDENTIFIER,
 * LOCKWARDEN_EVENT, LOCKWARDEN_INSTANCE, and the event's own. */
#define LOG_FIELDS_MAX 16

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

/* Where sd_journal_sendv() sends; it returns success, silently, when the
 * socket is not there, so "the journal is really there" is checked here. */
#define JOURNAL_SOCKET "/run/systemd/journal/socket"

static void journal_load(void)
{
	if (journal_tried)
		return;
	journal_tried = 1;
#ifndef LOCKWARDEN_STATIC
	if (access(JOURNAL_SOCKET, W_OK) != 0)
		return;
	void *lib = dlopen("libsystemd.so.0", RTLD_NOW | RTLD_LOCAL);
	if (lib)
		journal_sendv = (__typeof__(sd_journal_sendv) *)dlsym(lib, "sd_journal_sendv");
#endif
	/* The static build loads no library (notify.c says why): its lines go
	 * to stderr, which systemd passes on to the journal all the same. */
}

void log_open(void)
{
	const char *format = getenv("LOCKWARDEN_LOG_FORMAT");
	enum log_format f;

	to_journal = stderr_is_journal();
	atomic_store(&journal_refused, false);
	if (to_journal)
		journal_load();
	/* Before the configuration is read, so that its warnings already come
	 * in the format asked for; config_load() checks the value. */
	if (format && log_format_parse(format, &f) == 0)
		current_format = f;
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

static const struct {
	const char *name;
	enum log_format format;
} format_names[] = {
	{ "text", LOG_FORMAT_TEXT },
	{ "json", LOG_FORMAT_JSON },
};

int log_format_parse(const char *name, enum log_format *out)
{
	for (size_t i = 0; i < sizeof(format_names) / sizeof(format_names[0]); i++) {
		if (strcmp(name, format_names[i].name) == 0) {
			*out = format_names[i].format;
			return 0;
		}
	}
	return -EINVAL;
}

const char *log_format_name(enum log_format format)
{
	return format == LOG_FORMAT_JSON ? "json" : "text";
}

void log_set_format(enum log_format format)
{
	current_format = format;
}

void log_set_format_named(const char *name)
{
	enum log_format format;
	if (name && log_format_parse(name, &format) == 0)
		current_format = format;
}

void log_set_instance(const char *instance)
{
	snprintf(current_instance, sizeof(current_instance), "%s", instance);
}

/* Now, UTC, to the millisecond: "2026-11-29T06:50:00.123Z". */
static void format_now(char *out, size_t size)
{
	struct timespec ts;
	struct tm tm;
	char when[32];

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out, size, "%s.%03ldZ", when, ts.tv_nsec / 1000000);
}

static void json_field(FILE *out, const struct log_field *f)
{
	fprintf(out, ",\"%s\":", f->key);
	switch (f->type) {
	case LOG_FIELD_STR:
		fputc('"', out);
		jsonw_escape(out, f->str ? f->str : "");
		fputc('"', out);
		break;
	case LOG_FIELD_INT:
		fprintf(out, "%lld", f->num);
		break;
	case LOG_FIELD_BOOL:
		fputs(f->num ? "true" : "false", out);
		break;
	case LOG_FIELD_LIST:
		fputc('[', out);
		for (size_t i = 0; i < f->n; i++) {
			fputs(i ? ",\"" : "\"", out);
			jsonw_escape(out, f->list[i]);
			fputc('"', out);
		}
		fputc(']', out);
		break;
	case LOG_FIELD_END:
		break;
	}
}

/* One JSON object, written to stderr with a single call so that lines from
 * two threads never interleave. Returns 0 or -ENOMEM. */
static int write_json(enum log_level level, const char *event, const struct log_field *fields,
		      const char *msg)
{
	char *buf = NULL, when[40];
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);

	if (!out)
		return -ENOMEM;
	format_now(when, sizeof(when));
	fprintf(out, "{\"time\":\"%s\",\"level\":\"%s\",\"event\":\"", when,
		log_level_name(level));
	jsonw_escape(out, event);
	fputs("\",\"instance\":\"", out);
	jsonw_escape(out, current_instance);
	fprintf(out, "\",\"pid\":%d,\"message\":\"", (int)getpid());
	jsonw_escape(out, msg);
	fputc('"', out);
	for (const struct log_field *f = fields; f && f->type != LOG_FIELD_END; f++)
		json_field(out, f);
	fputs("}\n", out);
	if (fclose(out) != 0) {
		free(buf);
		return -ENOMEM;
	}
	fwrite(buf, 1, len, stderr);
	free(buf);
	return 0;
}

/* "LOCKWARDEN_<KEY>=value" (a list: one value a line) into *out. */
static int journal_field(const struct log_field *f, char **out)
{
	char key[64];
	size_t k = 0;
	for (const char *p = f->key; *p && k + 1 < sizeof(key); p++)
		key[k++] = (char)toupper((unsigned char)*p);
	key[k] = '\0';
	size_t len = 0;
	FILE *m = open_memstream(out, &len);
	if (!m)
		return -ENOMEM;
	fprintf(m, "LOCKWARDEN_%s=", key);
	if (f->type == LOG_FIELD_STR)
		fputs(f->str ? f->str : "", m);
	else if (f->type == LOG_FIELD_INT)
		fprintf(m, "%lld", f->num);
	else if (f->type == LOG_FIELD_BOOL)
		fputs(f->num ? "true" : "false", m);
	else
		for (size_t i = 0; i < f->n; i++)
			fprintf(m, "%s%s", i ? "\n" : "", f->list[i]);
	return fclose(m) == 0 ? 0 : -ENOMEM;
}

/* The event as one journal entry. Returns sd_journal_sendv's result. */
static int write_journal(enum log_level level, const char *event, const struct log_field *fields,
			 const char *msg)
{
	char *s[LOG_FIELDS_MAX] = { 0 };
	struct iovec iov[LOG_FIELDS_MAX];
	int n = 0, r = 0;

	if (asprintf(&s[n++], "MESSAGE=%s", msg) < 0 ||
	    asprintf(&s[n++], "PRIORITY=%d", (int)level) < 0 ||
	    asprintf(&s[n++], "SYSLOG_IDENTIFIER=lockwarden") < 0 ||
	    asprintf(&s[n++], "LOCKWARDEN_EVENT=%s", event) < 0 ||
	    asprintf(&s[n++], "LOCKWARDEN_INSTANCE=%s", current_instance) < 0) {
		s[n - 1] = NULL;
		r = -ENOMEM;
	}
	for (const struct log_field *f = fields; r == 0 && f && f->type != LOG_FIELD_END &&
	     n < LOG_FIELDS_MAX; f++)
		r = journal_field(f, &s[n++]);
	for (int i = 0; r == 0 && i < n; i++)
		iov[i] = (struct iovec){ .iov_base = s[i], .iov_len = strlen(s[i]) };
	if (r == 0)
		r = journal_sendv(iov, n);
	for (int i = 0; i < n; i++)
		free(s[i]);
	return r;
}

static void log_vevent(enum log_level level, const char *event, const struct log_field *fields,
		       const char *fmt, va_list ap)
{
	char msg[2048], when[40];

	if (level > current_level)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	/* One event, one line, whatever a message carries. */
	for (char *p = msg; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';

	if (to_journal) {
		/* The journal really there takes the fields; a socket that
		 * refuses once is not tried again (the "<N>" lines remain). */
		if (journal_sendv && !atomic_load(&journal_refused) &&
		    write_journal(level, event, fields, msg) == 0)
			return;
		atomic_store(&journal_refused, true);
		fprintf(stderr, "<%d>%s\n", (int)level, msg);
		return;
	}
	if (current_format == LOG_FORMAT_JSON && write_json(level, event, fields, msg) == 0)
		return;
	format_now(when, sizeof(when));
	fprintf(stderr, "%s lockwarden[%d] %s: %s\n", when, (int)getpid(), log_level_name(level),
		msg);
}

void log_event(enum log_level level, const char *event, const struct log_field *fields,
	       const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vevent(level, event, fields, fmt, ap);
	va_end(ap);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vevent(level, level == LOG_LEVEL_ERROR ? "error" : "log", NULL, fmt, ap);
	va_end(ap);
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
