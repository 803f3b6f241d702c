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

static void put_counter(struct out_buf *o, const char *name, const char *help, uint64_t v)
{
	put_family(o, name, "counter", help);
	put(o, "%s %" PRIu64 "\n", name, v);
}

/* Seconds since the epoch with milliseconds, as Prometheus times are. */
static void put_time(struct out_buf *o, const char *name, const char *help, int64_t ns)
{
	int64_t ms = ns > 0 ? ns / 1000000 : 0;
	put_family(o, name, "gauge", help);
	put(o, "%s %" PRId64 ".%03d\n", name, ms / 1000, (int)(ms % 1000));
}

int metrics_format(const struct metrics *m, const char *version, const char *instance,
		   char *out, size_t size)
{
	struct out_buf o = { .p = out, .size = size };

	if (size == 0)
		return -ENOSPC;
	out[0] = '\0';
	put_family(&o, "lockwarden_build_info", "gauge", "The agent's version and instance; always 1.");
	put(&o, "lockwarden_build_info{version=\"");
	put_label(&o, version);
	put(&o, "\",instance_id=\"");
	put_label(&o, instance);
	put(&o, "\"} 1\n");
	put_time(&o, "lockwarden_start_time_seconds",
		 "When the agent started (Unix time); the counters count from then.", m->start_ns);
	put_counter(&o, "lockwarden_incidents_total",
		    "Stuck deployments found (in a dry run too).", m->incidents);
	put_counter(&o, "lockwarden_removed_total", "Kudu entries removed.", m->removed);
	put_counter(&o, "lockwarden_kept_total",
		    "Entries a rolled-back cleanup kept beside a name Kudu made again meanwhile.",
		    m->kept);
	put_counter(&o, "lockwarden_cleanups_abandoned_total",
		    "Cleanups rolled back, nothing removed, because the deployment showed a sign of life.",
		    m->abandoned);
	put_family(&o, "lockwarden_hook_runs_total", "counter",
		   "Restart hook runs that finished, by result.");
	put(&o, "lockwarden_hook_runs_total{result=\"ok\"} %" PRIu64 "\n", m->hook_ok);
	put(&o, "lockwarden_hook_runs_total{result=\"failed\"} %" PRIu64 "\n", m->hook_failed);
	put(&o, "lockwarden_hook_runs_total{result=\"timeout\"} %" PRIu64 "\n", m->hook_timeout);
	put_counter(&o, "lockwarden_restarts_maybe_lost_total",
		    "Incidents whose restart may have been lost (a hook marked, no end, its maker "
		    "gone), as this instance saw them.", m->restarts_lost);
	put_time(&o, "lockwarden_last_scan_timestamp_seconds",
		 "When the last scan of the site tree began (Unix time); 0 before the first.",
		 m->last_scan_ns);
	put_family(&o, "lockwarden_stuck", "gauge", "1 while the last decision found a stuck deployment.");
	put(&o, "lockwarden_stuck %d\n", m->stuck ? 1 : 0);
	put_family(&o, "lockwarden_share_up", "gauge", "1 while the site root answers and can be read.");
	put(&o, "lockwarden_share_up %d\n", m->share_up ? 1 : 0);
	return o.full ? -ENOSPC : (int)o.len;
}

bool metrics_changed(const struct metrics *a, const struct metrics *b)
{
	return a->incidents != b->incidents || a->removed != b->removed || a->kept != b->kept ||
	       a->abandoned != b->abandoned ||
	       a->hook_ok != b->hook_ok || a->hook_failed != b->hook_failed ||
	       a->hook_timeout != b->hook_timeout || a->start_ns != b->start_ns ||
	       a->restarts_lost != b->restarts_lost ||
	       a->stuck != b->stuck || a->share_up != b->share_up;
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

/* openat(), not open(): the tests' pause shim stops the agent there. */
static int open_temp(const char *tmp)
{
	int fd = openat(AT_FDCWD, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd >= 0 || errno != ENOENT)
		return fd < 0 ? -errno : fd;
	/* The folder is missing (a fresh /home/LogFiles): make it, once. */
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s", tmp);
	char *slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return -ENOENT;
	*slash = '\0';
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return -errno;
	fd = openat(AT_FDCWD, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
	return fd < 0 ? -errno : fd;
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
