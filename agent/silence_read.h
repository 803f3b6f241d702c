/* silence_read.h - reading the log.log of completed records, each once.
 *
 * The I/O side of silence.h. On the share every call is a network round
 * trip and idle rescans must cost a fixed number of them whatever the
 * history (scan.h), so a completed record's log.log is read once, when a
 * scan first shows it completed, and the result is kept in memory keyed by
 * the record's name and identity (its folder's device and inode, the lstat
 * of its status.xml and log.log as the scan saw them). A record that is
 * redeployed gets a new status.xml and is read again; nothing else is.
 * An update where every completed record is already known makes no call.
 *
 * Blocking: the agent runs silence_cache_update on the scan's worker thread
 * (the share can hang), report and check-config directly.
 */
#ifndef LOCKWARDEN_SILENCE_READ_H
#define LOCKWARDEN_SILENCE_READ_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "silence.h"
#include "site.h"

/* At most this much of a log.log is read, from its start: a real one is a
 * few KiB; a huge one is judged by its first MiB (a silence after that is
 * not seen, README says so). */
#define SILENCE_LOG_READ_MAX (1024 * 1024)

struct silence_cache_entry {
	char name[KUDU_TEXT_MAX];
	dev_t dev;
	ino_t ino;
	struct site_stat status_st;
	struct site_stat log_st;
	int err;                  /* 0 read, or why not (-ENOENT: no log.log) */
	struct silence_log log;
};

struct silence_cache {
	dev_t root_dev;           /* the site root it was read under */
	ino_t root_ino;
	struct silence_cache_entry *entries; /* in snapshot order (sorted by name) */
	size_t n, cap;
	size_t unread;            /* completed records left for a later update */
};

/* Builds next (zeroed by the caller) for the completed records of snap,
 * taking each from prev (may be NULL; read only) when its name and identity
 * match, and reading the log.log of at most max_reads others under root;
 * the rest are counted in next->unread for a later update. Returns 0 or
 * -ENOMEM. */
int silence_cache_update(const char *root, const struct site_snapshot *snap,
			 const struct silence_cache *prev, size_t max_reads,
			 struct silence_cache *next);

/* The history the cache holds (h zeroed by the caller). */
void silence_cache_history(const struct silence_cache *c, struct silence_history *h);

void silence_cache_free(struct silence_cache *c);

/* report and check-config: one scan of root and every completed record's
 * log.log. Returns 0, or a negative errno when the site cannot be read
 * (root, or deployments/, unreadable: h then says nothing). */
int silence_read_site(const char *root, struct silence_history *h);

/* The same, given up after limit_ms (-ETIMEDOUT): on a share that does not
 * answer, check-config says so instead of hanging. */
int silence_read_site_within(const char *root, uint64_t limit_ms, struct silence_history *h);

#endif
