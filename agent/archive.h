/* archive.h - a record of everything a cleanup removes.
 *
 * Before a cleanup removes anything, a session folder
 * <dir>/<UTC time>-<instance>-<n>/ receives a copy of each target's Kudu
 * files (a record's status.xml, log.log and manifest; the lock folder's
 * info.lock; the lock files and pending themselves), each one verified to be
 * the very file that was judged (inode, mtime, size), and a note.json saying
 * what is about to go, when, why and by which instance. After the removal
 * the note is rewritten, atomically, with the outcome; note.txt says the
 * same for people. A target whose files could not be archived is not
 * removed: a record of it is worth more than a quick cleanup.
 *
 * Blocking: runs on the cleanup's worker thread (prune and list on the
 * loop's thread pool or in report). Functions return 0 or a negative errno.
 */
#ifndef LOCKWARDEN_ARCHIVE_H
#define LOCKWARDEN_ARCHIVE_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "reap.h"

/* log.log can be large: its last ARCHIVE_FILE_MAX bytes are kept. */
#define ARCHIVE_FILE_MAX (8 * 1024 * 1024)
#define ARCHIVE_SESSION_PREFIX_LEN 16 /* "20261126T035159Z" */

struct archive_session {
	int dir_fd;                  /* the session folder */
	int parent_fd;               /* the archive folder */
	char name[96];               /* the session folder's name in it */
	char path[PATH_MAX];         /* for messages */
};

/* One target of a cleanup, as the note tells it. */
struct archive_item {
	const struct reap_target *target;
	const char *what;            /* the verdict's reason: holder, state */
	int archive_err;             /* 0 archived; else why not (then not removed) */
	unsigned files_archived;
	bool truncated;              /* a file larger than ARCHIVE_FILE_MAX: its tail kept */
	const struct reap_result *result; /* NULL before removal */
};

/* Where a cleanup's transaction stands, as its note says (reap.h). */
enum archive_state {
	ARCHIVE_MOVING,              /* before the targets are moved aside */
	ARCHIVE_COMMITTED,           /* the evidence held: what was moved is deleted */
	ARCHIVE_DONE,                /* committed, and the deletion ran */
	ARCHIVE_ROLLED_BACK,         /* abandoned: every moved entry put back or kept */
};
const char *archive_state_name(enum archive_state state);

struct archive_note {
	int64_t time_ns;
	const char *instance;
	const char *incident;        /* shared by every instance (claim.h) */
	const char *site_root;
	const char *reason;
	const char *deployment_id;
	/* The step of the manual procedure taken (policy_step_name): "lock",
	 * "clear" or "full-clear". Every instance reads it back to tell a
	 * recurrence (incident.h, incident_last_clear). */
	const char *step;
	/* The token of this cleanup's trash names (kudu.h): the sweep removes
	 * only trash whose token a note records as committed, and only the
	 * names it lists. */
	const char *token;
	enum archive_state state;
	bool complete;               /* committed, and every target was removed */
	const struct archive_item *items;
	size_t n_items;
};

/* A note.json as read back (json.c, never a text search). */
struct archive_note_read {
	char incident[64];
	char instance[32];
	char step[16];
	char token[KUDU_TOKEN_MAX + 1];
	bool has_state;
	enum archive_state state;    /* older notes: "removing" is MOVING, "done" DONE */
	bool complete;
	const char *want_trash;      /* in: "area/name" to look for in "trash" */
	bool lists_want;             /* out: the note's "trash" lists want_trash */
};

/* Reads <archive folder>/<session>/note.json (dir_fd: the archive folder),
 * at most 1 MiB. Returns 0, or -EINVAL when it is not a note. */
int archive_read_note(int dir_fd, const char *session, struct archive_note_read *out);

/* mkdir -p for an absolute path, each component created 0750. */
int archive_make_dirs(const char *dir);

/* Creates dir (mode 0750, parents too) and a new session folder in it.
 * err gets one line on failure. */
int archive_begin(const char *dir, const char *instance, int64_t now_ns,
		  struct archive_session *s, char *err, size_t err_size);

/* Copies target's files from the site into the session, relative to
 * descriptors opened without following links; the site root must still be
 * root_dev/root_ino. Fills item->archive_err/files_archived/truncated. */
int archive_copy_target(struct archive_session *s, const char *site_root, dev_t root_dev,
			ino_t root_ino, struct archive_item *item);

/* Writes note.json and note.txt (each via a temporary name and rename). */
int archive_write_note(struct archive_session *s, const struct archive_note *note);

void archive_end(struct archive_session *s);

/* A session folder's time, from its name ("20261126T035159Z-..."): the
 * writing instance's wall clock, to the second. False for other names. */
bool archive_session_time(const char *name, int64_t *ns);

/* Removes the session folder and what this session wrote into it (used
 * when a cleanup was refused before anything was removed, so that retries
 * do not pile up empty sessions), then ends it. */
void archive_discard(struct archive_session *s);

/* Removes sessions older than keep_ms (by the time in their name), with the
 * same safe removal as a cleanup. *pruned counts them. */
int archive_prune(const char *dir, uint64_t keep_ms, int64_t now_ns, unsigned *pruned);

/* The info.lock of the newest session that removed locks/deployment, and
 * that session's name: what a lock that came back is compared with. */
int archive_last_lock(const char *dir, struct kudu_info_lock *lock, char *session,
		      size_t session_size);

/* Prints the newest max sessions' notes: note.txt as text, or note.json
 * objects separated by commas (json). Returns how many were printed, or a
 * negative errno when dir cannot be read (-ENOENT: no cleanup yet). */
int archive_list(const char *dir, FILE *out, bool json, size_t max);

/* A short, file-name-safe instance id: WEBSITE_INSTANCE_ID's first 12
 * characters, else the host name, from the given values (either may be
 * NULL). */
void archive_instance_id(const char *website_instance_id, const char *hostname,
			 char *out, size_t out_size);

#endif
