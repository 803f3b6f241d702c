/* metrics.c - the metrics file's text (pure) and its atomic write (I/O). */
#include "metrics.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct out_buf {
	char *p;
	size_t size, len;
	bool full;
};

static void put(struct out_buf *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct out_buf *o, const char *fmt, ...)
{
	va_list ap;
	if (o->full)
		return;
	va_start(ap, fmt);
	int n = vsnprintf(o->p + o->len, o->size - o->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= o->size - o->len) {
		o->full = true;
		return;
	}
	o->len += (size_t)n;
}

/* A label value: backslash, double quote and newline escaped (the format's
 * only escapes); other control bytes cannot come from the agent's ids. */
static void put_label(struct out_buf *o, const char *value)
{
	for (const char *c = value; *c; c++) {
		if (*c == '\\' || *c == '"')
			put(o, "\\%c", *c);
		else if (*c == '\n')
			put(o, "\\n");
		else
			put(o, "%c", *c);
	}
}

static void put_family(struct out_buf *o, const char *name, const char *type, const char *help)
{
	put(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A sample's name and labels: instance_id first, then more ("" or
 * ",result=\"ok\""), ending with the space before the value. */
static void put_name(struct out_buf *o, const char *name, const char *instance,
		     const char *more)
{
	put(o, "%s{instance_id=\"", name);
	put_label(o, instance);
	put(o, "\"%s} ", more);
}

static void put_counter(struct out_buf *o, const char *name, const char *help,
			const char *instance, uint64_t v)
{
	put_family(o, name, "counter", help);
	put_name(o, name, instance, "");
	put(o, "%" PRIu64 "\n", v);
}

static void put_gauge(struct out_buf *o, const char *name, const char *help,
		      const char *instance, int v)
{
	put_family(o, name, "gauge", help);
	put_name(o, name, instance, "");
	put(o, "%d\n", v);
}

/* Seconds with milliseconds, as Prometheus times are: a Unix time (ns
 * since the epoch) or a duration (ms). */
static void put_seconds(struct out_buf *o, const char *name, const char *help,
			const char *instance, uint64_t ms)
{
	put_family(o, name, "gauge", help);
	put_name(o, name, instance, "");
	put(o, "%" PRIu64 ".%03d\n", ms / 1000, (int)(ms % 1000));
}

static void put_time(struct out_buf *o, const char *name, const char *help,
		     const char *instance, int64_t ns)
{
	put_seconds(o, name, help, instance, ns > 0 ? (uint64_t)(ns / 1000000) : 0);
}

int metrics_format(const struct metrics *m, const char *version, const char *instance,
		   char *out, size_t size)
{
	struct out_buf o = { .p = out, .size = size };
	static const char *const results[] = { "ok", "failed", "timeout" };
	const uint64_t runs[] = { m->hook_ok, m->hook_failed, m->hook_timeout };

	if (size == 0)
		return -ENOSPC;
	out[0] = '\0';
	put_family(&o, "lockwarden_build_info", "gauge", "The agent's version; always 1.");
	put(&o, "lockwarden_build_info{instance_id=\"");
	put_label(&o, instance);
	put(&o, "\",version=\"");
	put_label(&o, version);
	put(&o, "\"} 1\n");
	put_time(&o, "lockwarden_start_time_seconds",
		 "When the agent started (Unix time); the counters count from then.", instance,
		 m->start_ns);
#define METRICS_PUT(field, name, help) put_counter(&o, name, help, instance, m->field);
	METRICS_COUNTERS(METRICS_PUT)
#undef METRICS_PUT
	put_family(&o, "lockwarden_hook_runs_total", "counter",
		   "Restart hook runs that finished, by result.");
	for (size_t i = 0; i < 3; i++) {
		char more[32];

		snprintf(more, sizeof(more), ",result=\"%s\"", results[i]);
		put_name(&o, "lockwarden_hook_runs_total", instance, more);
		put(&o, "%" PRIu64 "\n", runs[i]);
	}
	put_time(&o, "lockwarden_last_scan_timestamp_seconds",
		 "When the last scan of the site tree began (Unix time); 0 before the first.",
		 instance, m->last_scan_ns);
	put_gauge(&o, "lockwarden_stuck", "1 while the last decision found a stuck deployment.",
		  instance, m->stuck);
	put_gauge(&o, "lockwarden_share_up", "1 while the site root answers and can be read.",
		  instance, m->share_up);
	put_seconds(&o, "lockwarden_claimed_quiet_seconds",
		    "How long a deployment has claimed to run while the agent saw no change in "
		    "the site tree; 0 when none claims to run.", instance, m->claimed_quiet_ms);
	put_time(&o, "lockwarden_last_cleanup_timestamp_seconds",
		 "When the last cleanup that removed something ended (Unix time); 0: none since "
		 "the agent started.", instance, m->last_cleanup_ns);
	/* No hook has run yet: no result to alert on. */
	if (m->last_hook_ns) {
		put_time(&o, "lockwarden_last_hook_timestamp_seconds",
			 "When the last restart hook run ended (Unix time).", instance,
			 m->last_hook_ns);
		put_seconds(&o, "lockwarden_last_hook_duration_seconds",
			    "How long the last restart hook run took.", instance, m->last_hook_ms);
		put_gauge(&o, "lockwarden_last_hook_success",
			  "1 when the last restart hook run exited 0, else 0.", instance,
			  m->last_hook_ok);
	}
	return o.full ? -ENOSPC : (int)o.len;
}

bool metrics_changed(const struct metrics *a, const struct metrics *b)
{
#define METRICS_DIFFER(field, name, help) a->field != b->field ||
	return METRICS_COUNTERS(METRICS_DIFFER)
	       a->hook_ok != b->hook_ok || a->hook_failed != b->hook_failed ||
	       a->hook_timeout != b->hook_timeout || a->start_ns != b->start_ns ||
	       a->stuck != b->stuck || a->share_up != b->share_up ||
	       (a->claimed_quiet_ms == 0) != (b->claimed_quiet_ms == 0) ||
	       a->last_cleanup_ns != b->last_cleanup_ns || a->last_hook_ns != b->last_hook_ns;
#undef METRICS_DIFFER
}

int metrics_path(const char *pattern, const char *instance, char *out, size_t size)
{
	static const char token[] = "$INSTANCE";
	size_t o = 0;

	for (const char *p = pattern; *p;) {
		const char *piece = p;
		size_t len = 1;
		if (strncmp(p, token, sizeof(token) - 1) == 0) {
			piece = instance;
			len = strlen(instance);
			p += sizeof(token) - 1;
		} else {
			p++;
		}
		if (o + len >= size)
			return -ENAMETOOLONG;
		memcpy(out + o, piece, len);
		o += len;
	}
	if (size == 0)
		return -ENAMETOOLONG;
	out[o] = '\0';
	return 0;
}

static int write_all(int fd, const char *text, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, text, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		text += n;
		len -= (size_t)n;
	}
	return 0;
}

/* The file is read by a collector running as another user: 0644 whatever
 * the umask. Returns fd, or a negative errno (fd closed). */
static int readable(int fd)
{
	if (fchmod(fd, 0644) == 0)
		return fd;
	int r = -errno;
	close(fd);
	return r;
}

/* openat(), not open(): the tests' pause shim stops the agent there. */
static int open_temp(const char *tmp)
{
	int fd = openat(AT_FDCWD, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd >= 0 || errno != ENOENT)
		return fd < 0 ? -errno : readable(fd);
	/* The folder is missing (a fresh /home/LogFiles): make it, once. */
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s", tmp);
	char *slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return -ENOENT;
	*slash = '\0';
	if (mkdir(dir, 0755) == 0)
		chmod(dir, 0755); /* past the umask: a collector must get in */
	else if (errno != EEXIST)
		return -errno;
	fd = openat(AT_FDCWD, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
	return fd < 0 ? -errno : readable(fd);
}

int metrics_write_file(const char *path, const char *text, size_t len)
{
	char tmp[PATH_MAX];

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	int fd = open_temp(tmp);
	if (fd < 0)
		return fd;
	int r = write_all(fd, text, len);
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0)
		unlink(tmp);
	return r;
}
