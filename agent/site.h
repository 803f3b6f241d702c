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

/* A bounded walk of everything inside a record folder (recordwalk.h): Kudu
 * writes more than status.xml and log.log there (an Oryx build writes
 * artifact/<time>.zip), and a write anywhere inside is a sign of life.
 * Taken by every scan of an unfinished record, again by the evidence check
 * before each removal. Past a bound, or when an entry cannot be read, the
 * walk cannot tell (err says why): such a record is never judged stuck. */
#define SITE_TREE_MAX_ENTRIES 10000   /* entries below the record folder */
#define SITE_TREE_MAX_ENTRIES_TEXT "10000"
#define SITE_TREE_MAX_DEPTH 16        /* folder levels below it */
#define SITE_TREE_MAX_DEPTH_TEXT "16"
struct site_tree_sum {
	bool walked;                /* taken: the record is not finished */
	bool cannot_tell;           /* a bound exceeded or an entry unreadable */
	int err;                    /* why: -E2BIG, -ELOOP (too deep), -ESTALE (a
				     * folder replaced while opened), or the
				     * read's -errno */
	uint32_t entries;           /* every entry below the folder */
	int64_t size;               /* the sizes of those that are not folders */
	int64_t newest_mtime_ns;    /* INT64_MIN when empty */
	int64_t newest_ctime_ns;
	uint64_t sum;               /* order-free sum of a hash of each entry's
				     * folder, name and lstat */
};

/* Why a walk cannot tell, in words ("more than 10000 entries"). */
const char *site_tree_why(const struct site_tree_sum *t);

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
	struct site_tree_sum tree;          /* everything inside, while unfinished */
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
	/* More of Kudu's entries than SITE_MAX_ENTRIES (folders with a record's
	 * name are many by nature, and anyone who can write /home can make
	 * more): the area that went over is not kept at all (no partial view
	 * to judge from), its entries are only counted in n_over_cap, and the
	 * verdict is "cannot tell" (policy.h): never stuck, nothing removed. */
	bool over_cap;
	enum site_area over_cap_area;
	size_t n_over_cap;              /* Kudu's entries of that area, listed */

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

/* What two snapshots (the last one and the one being taken) may hold:
 * about 1.8 KiB an entry, so 3.6 MiB at the cap. Kudu purges its old
 * records itself (KUDU.md), so a real site holds far fewer. */
#define SITE_MAX_ENTRIES 1000
#define SITE_MAX_ENTRIES_TEXT "1000"
#define SITE_FOREIGN_KEPT 32

/* Whether an entry of this kind and type is Kudu's at all (else foreign:
 * counted, and kept only as a sample). */
bool site_is_foreign(enum kudu_name kind, mode_t type);
/* The hash foreign_sum adds up for one entry. */
uint64_t site_foreign_hash(enum site_area area, const char *name, const struct site_stat *st);

/* Appends a zeroed entry (parse fields set to -ENOENT); NULL when out of
 * memory or full (then over_cap is set). */
struct site_entry *site_add_entry(struct site_snapshot *snap);
/* Gives back the room of the entries past n_entries (the snapshot is held
 * until the next scan is done). */
void site_shrink(struct site_snapshot *snap);
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
