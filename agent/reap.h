/* reap.h - removing the leftovers a cleanup names, and nothing else, in a
 * transaction that can be undone until it commits.
 *
 * Blocking code, run off the event loop (uv_queue_work). Every step works
 * relative to directory file descriptors opened with O_NOFOLLOW, so a symlink
 * anywhere is removed as a link and its target is never touched; nothing on
 * another device (a mount point) is entered or removed; and each target is
 * re-checked against what was judged (type, inode, mtime, ctime, size, and
 * for a folder the files inside that were judged), with fresh attributes
 * (rmtree_stat_fresh), just before it moves.
 *
 * The transaction, in the caller's order (locks/deployment last):
 *  1. reap_move_all: each target, verified, is renamed to its trash name
 *     ".lockwarden-trash-<token>-<name>" beside it (out of Kudu's sight in
 *     one step), then compared again through a descriptor on what now
 *     carries the trash name. The first that fails stops the moves (it is
 *     put back itself).
 *  2. the caller checks the whole evidence once more (evidence.h);
 *  3. reap_commit deletes what was moved (files now; folders emptied now, or
 *     left as trash for the background sweep when trash_only), or
 *     reap_rollback puts every moved entry back under its own name, in
 *     reverse order.
 *
 * What a put-back cannot do on the share. cifs and FUSE (bindfs) answer
 * EINVAL to RENAME_NOREPLACE and RENAME_EXCHANGE, so a rename cannot refuse
 * to replace. A file is put back with linkat(trash -> name), which fails
 * with EEXIST when Kudu made the name meanwhile (atomic on every filesystem
 * that has links), then the trash name is unlinked. Where links are refused
 * (EPERM, EOPNOTSUPP, ENOSYS: an SMB share without hard links) it falls
 * back to "is the name free? then rename": a file Kudu creates in the
 * window between the two calls (one round trip to the server, about
 * 0.1-1 ms on a LAN share, a few microseconds locally) is replaced by ours.
 * A folder is put back by rename, which never replaces a non-empty folder
 * (ENOTEMPTY/EEXIST) nor a file (ENOTDIR), only an empty folder, which
 * loses nothing. Where Kudu made the name again, Kudu's entry stays and ours
 * is kept beside it as ".lockwarden-kept-<token>-<name>", which nothing
 * removes.
 *
 * Functions return 0 or a negative errno.
 */
#ifndef LOCKWARDEN_REAP_H
#define LOCKWARDEN_REAP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "rmtree.h"
#include "site.h"

/* The one trash prefix is kudu.h's; this name stays for its current users. */
#define REAP_TRASH_PREFIX KUDU_TRASH_PREFIX
#define REAP_MAX_INNER 3
#define REAP_TOKEN_SIZE (KUDU_TOKEN_MAX + 1)

struct reap_target {
	const char *area;            /* "locks" or "deployments" (a plain name below root) */
	char name[NAME_MAX + 1];     /* the entry's name in that folder */
	struct site_stat judged;     /* its lstat when it was judged */
	/* Files inside a folder target that were judged too (info.lock;
	 * status.xml, log.log, manifest): each must still match, or be absent
	 * if it was absent. */
	size_t n_inner;
	char inner_name[REAP_MAX_INNER][16];
	struct site_stat inner[REAP_MAX_INNER];
	/* A folder target: once committed, its trash folder is left for the
	 * background sweep, so a large record never holds up the next cleanup. */
	bool trash_only;
};

enum reap_state {
	REAP_UNTOUCHED,              /* under its own name, as it was */
	REAP_MOVED,                  /* under its trash name, not committed */
	REAP_REMOVED,                /* committed: gone, or trash left to the sweep */
	REAP_PUT_BACK,               /* rolled back under its own name */
	REAP_KEPT_BESIDE,            /* rolled back; its name was taken again: under kept */
	REAP_LEFT_AS_TRASH,          /* rolled back but could not be renamed: under trash */
};

struct reap_result {
	int err;                     /* 0; -ESTALE changed since judged; -errno */
	char detail[256];            /* why, for the log: "inode changed", "mount point inside: left" */
	unsigned long files_removed;
	enum reap_state state;
	char trash[NAME_MAX + 1];    /* its trash name */
	char kept[NAME_MAX + 1];     /* REAP_KEPT_BESIDE: the name it is kept under */
	struct site_stat moved;      /* what was verified under the trash name */
};

/* One transaction over targets[0..n), results[i] for targets[i]. */
struct reap_txn {
	int root_fd;
	struct rmtree_mount mount;
	char token[REAP_TOKEN_SIZE];
	atomic_bool *cancel;
	const struct reap_target *targets;
	struct reap_result *results;
	size_t n;
	int *area_fd;                /* each target's area, opened when it moves */
};

/* A fresh random token (16 hex digits) for trash names. */
void reap_new_token(char token[REAP_TOKEN_SIZE]);

/* Sets r->err and r->detail (printf); returns err. */
__attribute__((format(printf, 3, 4)))
int reap_fail(struct reap_result *r, int err, const char *fmt, ...);

/* Opens root, which must still be root_dev/root_ino, and sets each
 * result's trash name. On failure every result says why. */
int reap_begin(struct reap_txn *x, const char *root, dev_t root_dev, ino_t root_ino,
	       const char *token, const struct reap_target *targets, size_t n,
	       atomic_bool *cancel, struct reap_result *results);
/* Moves every target aside in order; stops at the first failure (a cancel
 * included), which it returns. */
int reap_move_all(struct reap_txn *x);
/* Deletes what was moved; on_removed (may be NULL) is told each index as it
 * goes. Returns 0 or the first failure (what failed stays as trash, which
 * the sweep finishes: the commit is recorded). */
int reap_commit(struct reap_txn *x, void (*on_removed)(void *ctx, size_t i), void *ctx);
/* Puts every moved entry back, last moved first. */
void reap_rollback(struct reap_txn *x);
void reap_end(struct reap_txn *x);

/* Each target on its own, moved aside and committed at once (pruning the
 * archive, sweeping committed trash: a target that already has a trash
 * name is not renamed again; the caller has checked it is ours). Returns 0 when every target
 * was removed, else the first failure. */
int reap_run(const char *root, dev_t root_dev, ino_t root_ino, const char *token,
	     const struct reap_target *targets, size_t n, atomic_bool *cancel,
	     struct reap_result *results);

/* Fills a target from a snapshot entry (the inner files are the ones the
 * scan judged). */
void reap_target_from_entry(struct reap_target *t, const struct site_entry *e);

#endif
