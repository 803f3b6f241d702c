/* site.h - what one scan of the site tree saw.
 *
 * scan.c fills a site_snapshot (all the I/O); policy.c and report.c only read
 * it. Names are kept as the raw bytes found on disk: they are never trusted,
 * never put on a command line, and escaped (log_escape) before printing.
 */
#ifndef LOCKWARDEN_SITE_H
#define LOCKWARDEN_SITE_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "kudu.h"

/* The parts of lstat() that tell whether an entry changed or was replaced. */
struct site_stat {
	bool present;
	mode_t type;        /* S_IFMT bits: S_IFREG, S_IFDIR, S_IFLNK, ... */
	dev_t dev;
	ino_t ino;
	int64_t mtime_ns;   /* since the epoch, by the writer's clock (clock_ns_from) */
	/* The inode change time: set by the kernel on every write or rename, and
	 * unlike mtime it cannot be set back from user space, so a backdated
	 * mtime cannot hide activity. */
	int64_t ctime_ns;
	int64_t size;
};

enum site_area {
	SITE_AREA_LOCKS,        /* an entry of <root>/locks */
	SITE_AREA_DEPLOYMENTS,  /* an entry of <root>/deployments */
};

/* Parse results use: 0 parsed, -ENOENT file absent, -EINVAL not the expected
 * format, -ENODATA empty, -EFBIG too large to be Kudu's, other -errno: could
 * not be read. */
struct site_entry {
	enum site_area area;
	char name[NAME_MAX + 1];
	enum kudu_name kind;
	struct site_stat st;            /* lstat of the entry itself */

	/* KUDU_NAME_LOCK_FOLDER: its info.lock. */
	struct site_stat info_st;
	int info_err;
	struct kudu_info_lock info;

	/* The lock files (status.lock, deployments.lock, sshkey.lock, hooks.lock). */
	int lock_err;
	struct kudu_file_lock lock;

	/* KUDU_NAME_RECORD and KUDU_NAME_TEMP_RECORD. */
	struct site_stat status_st;     /* status.xml */
	struct site_stat log_st;        /* log.log */
	struct site_stat manifest_st;   /* manifest */
	int status_err;
	struct kudu_status status;
};

/* What scan.c carries from one scan to the next so that an idle rescan
 * re-reads only what can have changed (scan.h); index by enum site_area. */
struct site_scan_memo {
	bool full;                  /* this scan re-read everything */
	uint64_t full_ms;           /* monotonic time of the last full scan */
	uint64_t area_seen_ms[2];   /* when the area's current lstat was first seen */
	bool area_settled[2];       /* its listing was taken SCAN_SETTLE_MS after that */
	size_t area_foreign[2];     /* its foreign entries (n_foreign's share) */
	uint64_t area_foreign_sum[2];
	struct site_stat active;    /* deployments/active: bumped on every status.xml save */
	uint64_t active_seen_ms;
	bool active_settled;        /* finished records were checked SCAN_SETTLE_MS after */
};

struct site_snapshot {
	int64_t scanned_ns;             /* wall clock when the scan began */
	uint64_t scanned_mono_ms;       /* the monotonic clock at the same instant */

	int root_err;                   /* 0, or why the root could not be opened */
	struct site_stat root;
	bool root_is_mount;             /* the root of a mount (the share), by its
					 * device differing from its parent's */
	int locks_err;                  /* 0, -ENOENT when absent, or -errno */
	struct site_stat locks;
	int deployments_err;
	struct site_stat deployments;

	/* deployments/active: the active deployment id, "" when absent. */
	char active_id[KUDU_TEXT_MAX];

	struct site_entry *entries;     /* locks/ entries first, then deployments/ */
	size_t n_entries;
	size_t cap_entries;
	bool truncated;                 /* more entries than SITE_MAX_ENTRIES */

	/* Entries that are not Kudu's (any name can be created in the share
	 * by anyone with FTP or SSH access) are counted, not stored, so that
	 * memory is bounded by what Kudu can hold, not by junk: the first
	 * SITE_FOREIGN_KEPT are kept as entries (for report), and every one
	 * of them, kept or not, is folded into foreign_sum, an order-free sum
	 * of hashes of its name and lstat, so that one appearing, going or
	 * changing still counts as a change. */
	size_t n_foreign;
	uint64_t foreign_sum;

	struct site_scan_memo memo;
};

#define SITE_MAX_ENTRIES 100000
#define SITE_FOREIGN_KEPT 32

/* Whether an entry of this kind and type is Kudu's at all (else foreign:
 * counted, and kept only as a sample). */
bool site_is_foreign(enum kudu_name kind, mode_t type);
/* The hash foreign_sum adds up for one entry. */
uint64_t site_foreign_hash(enum site_area area, const char *name, const struct site_stat *st);

/* Appends a zeroed entry (parse fields set to -ENOENT); NULL when out of
 * memory or full. */
struct site_entry *site_add_entry(struct site_snapshot *snap);
/* Zeroes an entry, parse fields set to -ENOENT, as site_add_entry does. */
void site_entry_clear(struct site_entry *e);
void site_snapshot_free(struct site_snapshot *snap);

/* What changed between was (judged) and now, in words ("gone", "was
 * replaced", "was modified"...), or NULL when nothing that matters did: the
 * one comparison of every re-check (evidence, removal, the silence cache).
 * A folder's size is filesystem bookkeeping, not compared: its changes show
 * in its mtime. The ctime is compared too (it moves on every write and
 * cannot be set back, so a write that restores an mtime still shows),
 * except when renamed_by_us: a rename moves the renamed entry's ctime. */
const char *site_stat_change(const struct site_stat *was, const struct site_stat *now,
			     bool renamed_by_us);

/* The relative path of an entry, "locks/<name>" or "deployments/<name>". */
void site_entry_path(const struct site_entry *e, char *out, size_t out_size);

#endif
