/* silence_read.c - the log.log of completed records, read once each
 * (silence_read.h). */
#include "silence_read.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <time.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "scan.h"

static bool completed_record(const struct site_entry *e)
{
	return e->area == SITE_AREA_DEPLOYMENTS &&
	       (e->kind == KUDU_NAME_RECORD || e->kind == KUDU_NAME_TEMP_RECORD) &&
	       e->st.type == S_IFDIR && e->status_err == 0 && kudu_status_finished(&e->status) &&
	       strlen(e->name) < KUDU_TEXT_MAX;
}

/* prev's entry for e, when it is the same record as the scan saw it. */
static const struct silence_cache_entry *known(const struct silence_cache *prev,
					       const struct site_entry *e)
{
	size_t lo = 0, hi = prev ? prev->n : 0;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct silence_cache_entry *c = &prev->entries[mid];
		int cmp = strcmp(c->name, e->name);

		if (cmp == 0)
			return c->dev == e->st.dev && c->ino == e->st.ino &&
			       !site_stat_change(&c->status_st, &e->status_st, false) &&
			       !site_stat_change(&c->log_st, &e->log_st, false) ? c : NULL;
		if (cmp < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* Reads at most SILENCE_LOG_READ_MAX bytes of fd into a malloc'd buffer. */
static int read_start(int fd, char **buf, size_t *len)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	size_t cap = st.st_size < SILENCE_LOG_READ_MAX ? (size_t)st.st_size : SILENCE_LOG_READ_MAX;
	char *data = malloc(cap + 1);
	size_t got = 0;

	if (!data)
		return -ENOMEM;
	/* A file that grew since fstat is read only as far as it was then:
	 * a completed deployment writes no more. */
	while (got < cap) {
		ssize_t n = read(fd, data + got, cap - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = -errno;
			free(data);
			return e;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	*buf = data;
	*len = got;
	return 0;
}

/* Reads deployments/<name>/log.log into c, without following a link: the
 * record folder must still be the one the scan saw. */
static void read_record_log(int depfd, const struct site_entry *e, struct silence_cache_entry *c)
{
	struct stat st;
	char *buf = NULL;
	size_t len = 0;
	int recfd = openat(depfd, e->name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (recfd < 0) {
		c->err = -errno;
		return;
	}
	if (fstat(recfd, &st) < 0 || st.st_dev != e->st.dev || st.st_ino != e->st.ino) {
		c->err = -ESTALE;
		close(recfd);
		return;
	}
	int fd = openat(recfd, "log.log", O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	close(recfd);
	if (fd < 0) {
		c->err = -errno;
		return;
	}
	c->err = read_start(fd, &buf, &len);
	close(fd);
	if (c->err == 0)
		silence_parse_log(buf, len, &c->log);
	free(buf);
}

static struct silence_cache_entry *add_entry(struct silence_cache *c)
{
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 64;
		struct silence_cache_entry *grown = realloc(c->entries, cap * sizeof(*grown));
		if (!grown)
			return NULL;
		c->entries = grown;
		c->cap = cap;
	}
	return &c->entries[c->n++];
}

/* deployments/ of root, opened for lookups only (first read only). */
static int open_deployments(const char *root)
{
	int rootfd = open(root, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (rootfd < 0)
		return -errno;
	int fd = openat(rootfd, "deployments", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	int e = errno;
	close(rootfd);
	return fd < 0 ? -e : fd;
}

int silence_cache_update(const char *root, const struct site_snapshot *snap,
			 const struct silence_cache *prev, size_t max_reads,
			 struct silence_cache *next)
{
	int depfd = -1, dep_err = 0;

	next->root_dev = snap->root.dev;
	next->root_ino = snap->root.ino;
	if (prev && (prev->root_dev != snap->root.dev || prev->root_ino != snap->root.ino))
		prev = NULL;
	for (size_t i = 0; i < snap->n_entries; i++) {
		const struct site_entry *e = &snap->entries[i];
		if (!completed_record(e))
			continue;
		const struct silence_cache_entry *old = known(prev, e);
		if (!old && max_reads == 0) {
			next->unread++;
			continue;
		}
		struct silence_cache_entry *c = add_entry(next);
		if (!c)
			goto nomem;
		if (old) {
			*c = *old;
			continue;
		}
		memset(c, 0, sizeof(*c));
		snprintf(c->name, sizeof(c->name), "%s", e->name);
		c->dev = e->st.dev;
		c->ino = e->st.ino;
		c->status_st = e->status_st;
		c->log_st = e->log_st;
		/* Nothing to open for a record whose log.log the scan did not see. */
		if (!e->log_st.present) {
			c->err = -ENOENT;
			continue;
		}
		/* Opened only when there is something new to read: an idle rescan
		 * makes no call here. */
		if (depfd < 0 && dep_err == 0) {
			depfd = open_deployments(root);
			if (depfd < 0)
				dep_err = depfd;
		}
		if (dep_err) {
			/* Not kept: tried again by a later update. */
			next->n--;
			next->unread++;
			continue;
		}
		read_record_log(depfd, e, c);
		max_reads--;
	}
	if (depfd >= 0)
		close(depfd);
	return 0;
nomem:
	if (depfd >= 0)
		close(depfd);
	silence_cache_free(next);
	return -ENOMEM;
}

void silence_cache_history(const struct silence_cache *c, struct silence_history *h)
{
	for (size_t i = 0; i < c->n; i++) {
		const struct silence_cache_entry *e = &c->entries[i];
		silence_history_add(h, e->name, &e->log);
	}
	for (size_t i = 0; i < c->unread; i++)
		silence_history_add(h, "", NULL);
}

void silence_cache_free(struct silence_cache *c)
{
	free(c->entries);
	memset(c, 0, sizeof(*c));
}

int silence_read_site(const char *root, struct silence_history *h)
{
	struct site_snapshot snap = { 0 };
	struct silence_cache cache = { 0 };
	struct clock_now now;
	int rc;

	clock_read(&now);
	rc = scan_site(root, &now, NULL, true, &snap);
	/* No deployments/ yet is a site with no history, not an unreadable one. */
	if (rc == 0)
		rc = snap.root_err ? snap.root_err
		   : snap.deployments_err == -ENOENT ? 0 : snap.deployments_err;
	if (rc == 0)
		rc = silence_cache_update(root, &snap, NULL, SIZE_MAX, &cache);
	if (rc == 0)
		silence_cache_history(&cache, h);
	silence_cache_free(&cache);
	site_snapshot_free(&snap);
	return rc;
}

/* check-config reads the site in a thread of its own while the caller waits
 * with a deadline: on a share that does not answer every call blocks, and a
 * configuration check must not hang on it. On the heap: past the deadline
 * the thread still owns it (the process is about to exit). */
struct read_job {
	pthread_mutex_t lock;
	pthread_cond_t done_cond;
	bool done, abandoned;
	char root[PATH_MAX];
	int rc;
	struct silence_history h;
};

static void *read_thread(void *arg)
{
	struct read_job *job = arg;
	struct silence_history h = { 0 };
	int rc = silence_read_site(job->root, &h);

	pthread_mutex_lock(&job->lock);
	job->rc = rc;
	job->h = h;
	job->done = true;
	bool abandoned = job->abandoned;
	pthread_cond_signal(&job->done_cond);
	pthread_mutex_unlock(&job->lock);
	if (abandoned)
		free(job);
	return NULL;
}

int silence_read_site_within(const char *root, uint64_t limit_ms, struct silence_history *h)
{
	struct read_job *job = calloc(1, sizeof(*job));
	pthread_condattr_t attr;
	pthread_t thread;
	struct timespec deadline;
	int r;

	if (!job)
		return -ENOMEM;
	snprintf(job->root, sizeof(job->root), "%s", root);
	if (pthread_mutex_init(&job->lock, NULL) != 0 || pthread_condattr_init(&attr) != 0 ||
	    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) != 0 ||
	    pthread_cond_init(&job->done_cond, &attr) != 0) {
		free(job);
		return -ENOMEM;
	}
	r = pthread_create(&thread, NULL, read_thread, job);
	if (r != 0) {
		free(job);
		return -r;
	}
	pthread_detach(thread);
	deadline = clock_mono_deadline(limit_ms);
	pthread_mutex_lock(&job->lock);
	while (!job->done && r == 0)
		r = pthread_cond_timedwait(&job->done_cond, &job->lock, &deadline);
	bool done = job->done;
	if (!done)
		job->abandoned = true;
	else
		*h = job->h;
	int rc = job->rc;
	pthread_mutex_unlock(&job->lock);
	if (!done)
		return -ETIMEDOUT;
	free(job);
	return rc;
}
