/* claim.h - one incident, one owner, across every instance on the share.
 *
 * Every scaled-out instance mounts the same /home and runs its own agent on
 * the same files. Before an agent archives, removes or runs a site-scope
 * hook it holds the claim: CLAIM_NAME in the archive folder
 * (/home/LogFiles/lockwarden/.lockwarden-claim: on the share, in
 * lockwarden's own folder, which the service may write; outside the site
 * tree, so Kudu never looks at it and the scan never lists it - it can be
 * neither taken for Kudu's nor count as deployment activity, and a session
 * name it never has). It is created with
 * O_CREAT|O_EXCL, which is atomic on SMB/CIFS and FUSE: of several agents
 * deciding at the same moment, exactly one gets it.
 *
 * Its text says who owns it (the instance id), which incident it is (an id
 * every instance sees, and a fingerprint of the targets), what the owner has
 * removed so far, whether the site-scope hook was started, a renewal count
 * and an expiry. The owner rewrites it (renews) while it works. Nobody
 * trusts another host's clock: another agent takes it over only after it
 * has itself watched the very same content stay unchanged for the claim
 * expiry, by its own monotonic clock. A claim that is not a small regular
 * file of this format (a symlink, a FIFO, a huge or garbage file) is never
 * followed or believed: it is waited out the same way, then replaced.
 *
 * Blocking I/O on small files. Functions return 0 or a negative errno.
 */
#ifndef LOCKWARDEN_CLAIM_H
#define LOCKWARDEN_CLAIM_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define CLAIM_NAME ".lockwarden-claim"
#define CLAIM_FILE_MAX 8192          /* anything larger is not ours */
#define CLAIM_REMOVED_MAX 4096

struct claim {
	char instance[32];           /* the owner */
	char incident[64];           /* shared by every instance for this incident */
	uint64_t fingerprint;        /* a hash of the first cleanup's targets */
	bool hook_started;           /* the site-scope hook was started for it */
	uint64_t seq;                /* bumped by every renewal */
	int64_t expires_ns;          /* by the owner's clock: shown, never relied on */
	unsigned n_removed;
	char removed[CLAIM_REMOVED_MAX]; /* "locks/deployment\ndeployments/temp-..." */
};

/* What the claim's name holds right now. */
struct claim_view {
	/* 0 a claim of ours in c; -ENOENT none; -ELOOP a symlink; -ENXIO not a
	 * regular file; -EFBIG too large; -EINVAL not our format; another
	 * negative errno when it could not be read. */
	int err;
	struct claim c;
	uint64_t hash;               /* of the content, or of lstat when unread */
	dev_t dev;
	ino_t ino;
	int64_t mtime_ns;            /* by the share's clock: when it was last written */
};

static inline bool claim_view_hostile(const struct claim_view *v)
{
	return v->err == -ELOOP || v->err == -ENXIO || v->err == -EFBIG || v->err == -EINVAL;
}

/* Pure: the claim as text (returns its length, or -ENOSPC), and back. */
int claim_format(const struct claim *c, char *buf, size_t size);
int claim_parse(const char *buf, size_t len, struct claim *c);
/* Adds path to c->removed (once). */
void claim_add_removed(struct claim *c, const char *path);
/* A short description of a view's err, for messages. */
const char *claim_describe(const struct claim_view *v);

/* The claim's path for an archive folder: "<archive_dir>/.lockwarden-claim". */
void claim_path_for(const char *archive_dir, char *out, size_t size);

/* Looks at the claim at path without following a link and without opening
 * anything but a regular file (O_NOFOLLOW|O_NONBLOCK, size-capped). */
void claim_look(const char *path, struct claim_view *v);

/* Creates the claim at path (its folder made first, like the archive's). *fd_out stays
 * open for renewals. -EEXIST when someone holds one. */
int claim_create(const char *path, const struct claim *c, int *fd_out);

/* Rewrites the held claim in place. */
int claim_rewrite(int fd, const struct claim *c);

/* 0 when path is still the file fd holds, -ESTALE otherwise. */
int claim_still_ours(const char *path, int fd);

/* Removes the held claim if it is still ours; closes fd either way. */
void claim_release(const char *path, int fd);

/* Replaces what was seen (an expired or hostile claim) with c: the old one
 * is renamed aside, compared with what was seen, and only then removed; if
 * it changed meanwhile it is put back and -EAGAIN returned. -ENOENT when it
 * is already gone (another agent took over first). */
int claim_replace(const char *path, const struct claim_view *seen, const char *instance,
		  const struct claim *c, int *fd_out);

#endif
