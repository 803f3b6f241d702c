/* claim.h - one incident, one owner, across every instance on the share,
 * built on the share's one atomic operation: exclusive create.
 *
 * Every scaled-out instance mounts the same /home and runs its own agent on
 * the same files. The share (SMB, reached through cifs or FUSE) offers
 * exclusive create, read, write, unlink and a rename that replaces; no
 * RENAME_EXCHANGE or RENAME_NOREPLACE, no reliable ftruncate, no ctime, no
 * inode number that survives a rename. The exclusive create relied on is
 * mkdir's: O_CREAT|O_EXCL of a file is not exclusive through every client
 * (smbnetfs turns it into a create that truncates: two hosts both "make"
 * one name), while a folder's create fails with EEXIST on every one (SMB's
 * FILE_CREATE disposition). The protocol uses that create, read, write and
 * unlink, and nothing else.
 *
 * Names, in the archive folder (outside the site tree: Kudu never sees
 * them, the scan never lists them), each a folder holding one file that
 * only the folder's maker creates and writes:
 *   .lockwarden-claim-<n>/claim the incident's ownership, a sequence: the
 *                              owner is the maker of the highest n. A new
 *                              incident or a takeover exclusively creates
 *                              the next name, so of two agents making the
 *                              same name exactly one wins, and nobody ever
 *                              writes or removes another's live claim.
 *   .lockwarden-hook-<incident>/mark the hook mark: exclusively created
 *                              before the site-scope hook is spawned, so
 *                              however an owner stalls, one incident's hook
 *                              starts at most once; "ended" is written into
 *                              it when the hook is over.
 * A name that is a regular file (made by an earlier version, or forged) is
 * read the same way and believed no more; it is never written.
 *
 * The steps (test/model/claim_model.py explores them, named the same):
 *   claim.create  mkdir of name top+1 (the top seen by claim.look), then
 *                 its file (O_EXCL: only the folder's maker makes it);
 *   claim.verify  list the names: one above ours means our look was stale
 *                 (a name pruned and made again): ours is removed, -EAGAIN;
 *   claim.inherit the highest name below ours is read: a held claim hands
 *                 over its incident, its "began" and its removals; a
 *                 released one or none: a new incident. A name gone while
 *                 read was pruned by an owner above: the list is read again;
 *   claim.write   our content (json), padded with spaces to the longest
 *                 written so far (no ftruncate);
 *   claim.prune   every name below ours is removed, lowest first: they carry
 *                 no authority (the owner is the top), and ours holds what
 *                 they said;
 *   claim.check   ours still holds our last text, and name n+1 does not
 *                 exist: run before every step an owner takes;
 *   claim.intent  "began" written before a cleanup removes anything (then
 *                 claim.check): a taker always knows a restart may be due;
 *   hook.mark / hook.started / hook.spawn / hook.end  the hook mark;
 *   claim.release "released" written into ours; the name stays, so the
 *                 sequence never goes back (the next incident's owner
 *                 prunes it).
 *
 * Blocking I/O on small files, on the claim's own thread (incident.c).
 * Functions return 0 or a negative errno.
 */
#ifndef LOCKWARDEN_CLAIM_H
#define LOCKWARDEN_CLAIM_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CLAIM_NAME ".lockwarden-claim"      /* the names' prefix, before "-<n>" */
#define CLAIM_MARK_NAME ".lockwarden-hook-"
#define CLAIM_FILE_MAX 8192                 /* anything larger is not ours */
#define CLAIM_REMOVED_MAX 4096
#define CLAIM_ID_MAX 64

struct claim {
	uint64_t n;                  /* its name's number */
	char instance[32];           /* the maker */
	char incident[CLAIM_ID_MAX]; /* shared by every instance for this incident */
	uint64_t fingerprint;        /* a hash of the first cleanup's targets */
	bool released;               /* the incident is over */
	bool began;                  /* a cleanup began: the restart may be due */
	uint64_t seq;                /* bumped by every write */
	int64_t expires_ns;          /* by the maker's clock: shown, never relied on */
	unsigned n_removed;
	char removed[CLAIM_REMOVED_MAX]; /* "locks/deployment\ndeployments/temp-..." */
};

/* The top of the sequence, as one look saw it. */
struct claim_view {
	/* 0 a claim in c; -ENOENT no claim name at all; -ELOOP a symlink;
	 * -ENXIO not a regular file; -EFBIG too large; -EINVAL not our
	 * format (or still empty: made, not yet written); another negative
	 * errno when it could not be read. */
	int err;
	uint64_t top;                /* its number (0: none) */
	struct claim c;
	uint64_t hash;               /* of its number and content */
	int64_t mtime_ns;            /* by the share's clock: shown only */
};

static inline bool claim_view_hostile(const struct claim_view *v)
{
	return v->err == -ELOOP || v->err == -ENXIO || v->err == -EFBIG;
}

/* The claim this agent made: its name's number, its handle and its text. */
struct claim_held {
	int fd;                      /* -1: none */
	uint64_t n;
	char text[CLAIM_FILE_MAX];
	size_t len;                  /* of text, padding included */
};

/* The hook mark, read. */
struct claim_mark {
	int err;                     /* 0 read; -ENOENT none; -EINVAL empty or not ours */
	char instance[32];
	bool ended;
	int exit_status;
};

/* Pure: the claim as JSON (returns its length, or -ENOSPC), and back
 * (fixed fields through json.c; anything else: -EINVAL). */
int claim_format(const struct claim *c, char *buf, size_t size);
int claim_parse(const char *buf, size_t len, struct claim *c);
/* An incident id or instance a name may carry: [A-Za-z0-9._-], 1-63. */
bool claim_id_ok(const char *s);
void claim_add_removed(struct claim *c, const char *path);
const char *claim_describe(const struct claim_view *v);

/* "<archive_dir>/.lockwarden-claim": the names' prefix (cleanup.c). */
void claim_path_for(const char *archive_dir, char *out, size_t size);

/* A listing of the folder found no claim name, with the folder's own
 * stat as it was just before: while that stat stays the same, no name was
 * made since, and the folder (100,000 names if someone put them there) is
 * not listed again. Making a name changes the folder's time, size or link
 * count on every file system and share; the caller drops what it knows
 * when its own create meets a name (EEXIST) and at least hourly. */
struct claim_absent {
	bool known;
	uint64_t dev, ino, size, nlink;
	int64_t mtime_ns, ctime_ns;
};

/* claim.look: the top of the sequence in the folder dir_fd. hint is the
 * top seen last (0: none): from there the next names are probed, so an
 * idle look lists nothing; without it, or with it gone, the folder's names
 * are listed (names only: nothing is opened but the top), unless absent
 * (may be NULL) says no name was made since the last listing found none.
 * absent is updated. */
void claim_look(int dir_fd, uint64_t hint, struct claim_absent *absent, struct claim_view *v);

/* claim.create .. claim.check for a new incident or a takeover: c holds
 * what a new incident says (incident, instance, fingerprint, began); on
 * success it holds what was inherited too, *inherited says whether a held
 * claim was taken over, and h is ours. -EEXIST: another agent made the name
 * first; -EAGAIN: our look was stale. */
int claim_take(int dir_fd, uint64_t top_seen, struct claim *c, struct claim_held *h,
	       bool *inherited);
/* claim.write then claim.check (a renewal, claim.intent, a removal noted).
 * -ESTALE: the claim is not ours any more. */
int claim_write(int dir_fd, struct claim_held *h, struct claim *c);
/* claim.check. */
int claim_check(int dir_fd, const struct claim_held *h);
/* claim.release: "released" written when the claim is still ours; the
 * handle is closed either way. */
int claim_release(int dir_fd, struct claim_held *h, struct claim *c);
/* Closes the handle, leaving the name (stopping with the hook not run: it
 * is waited out and taken over). */
void claim_leave(struct claim_held *h);

/* For cleanup.c, before each removal: 0 when the claim whose handle is fd
 * is still the owner's (claim.check), -ESTALE otherwise. path is
 * claim_path_for()'s. */
int claim_still_ours(const char *path, int fd);

/* hook.mark + hook.started: 0 and *fd_out (for hook.end), or -EEXIST when
 * the incident's hook was marked before (by anyone). */
int claim_mark_hook(int dir_fd, const char *incident, const char *instance, int *fd_out);
/* hook.end: "ended" and the exit status written into the mark; closes fd. */
int claim_mark_end(int fd, const char *incident, const char *instance, int exit_status);
void claim_read_mark(int dir_fd, const char *incident, struct claim_mark *m);
/* Removes hook marks whose incident's time (the id begins with it) is
 * older than keep_ms before now_ns: an incident that old is over on every
 * instance. Returns how many went. */
unsigned claim_prune_marks(int dir_fd, uint64_t keep_ms, int64_t now_ns);

#endif
