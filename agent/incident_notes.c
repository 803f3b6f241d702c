/* incident_notes.c - what the archive tells every instance: the sessions'
 * notes, read on the scan's worker, and the incidents they show cleared,
 * learnt on the loop (see incident.h). Apart from incident.c, which holds
 * the claim: the notes are plain reads of the archive, the claim a
 * protocol. */
#include "incident.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "archive.h"
#include "clock.h"
#include "scan.h"

/* ---- what the archive tells every instance --------------------------------- */

static bool is_session_name(const char *name)
{
	size_t len = strlen(name);
	return len > ARCHIVE_SESSION_PREFIX_LEN + 1 && len < sizeof(((struct incident_note *)0)->session) &&
	       name[8] == 'T' && name[15] == 'Z' && name[ARCHIVE_SESSION_PREFIX_LEN] == '-';
}

static int by_session(const void *a, const void *b)
{
	return strcmp(((const struct incident_note *)a)->session,
		      ((const struct incident_note *)b)->session);
}

static const struct incident_note *find_note(const struct incident_notes *list, const char *session)
{
	if (!list || !list->v)
		return NULL;
	struct incident_note key;
	snprintf(key.session, sizeof(key.session), "%s", session);
	return bsearch(&key, list->v, list->n, sizeof(key), by_session);
}

/* The note's head, read with the JSON scanner (archive.c). */
static void read_note(int dir_fd, struct incident_note *note)
{
	struct archive_note_read r = { .want_trash = NULL };

	if (archive_read_note(dir_fd, note->session, &r) < 0)
		return;
	note->done = r.state == ARCHIVE_COMMITTED || r.state == ARCHIVE_DONE;
	note->final = r.state == ARCHIVE_DONE || r.state == ARCHIVE_ROLLED_BACK;
	snprintf(note->incident, sizeof(note->incident), "%s", r.incident);
	snprintf(note->instance, sizeof(note->instance), "%s", r.instance);
	snprintf(note->step, sizeof(note->step), "%s", r.step);
	snprintf(note->token, sizeof(note->token), "%s", r.token);
	note->complete = note->done && r.complete;
	note->ours = true;
	if (!claim_id_ok(note->incident) || !claim_id_ok(note->instance)) {
		/* Ids that could not be ours (a name, a path, too long): the
		 * note ties to no incident. */
		note->incident[0] = note->instance[0] = '\0';
		note->done = note->complete = note->ours = false;
	}
}

static void stat_at(int dir_fd, const char *path, struct site_stat *out)
{
	struct stat st;

	memset(out, 0, sizeof(*out));
	if (fstatat(dir_fd, path, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return;
	out->present = true;
	out->type = st.st_mode & S_IFMT;
	out->dev = st.st_dev;
	out->ino = st.st_ino;
	out->mtime_ns = clock_ns_from(st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
	out->ctime_ns = clock_ns_from(st.st_ctim.tv_sec, st.st_ctim.tv_nsec);
	out->size = (int64_t)st.st_size;
}

static bool same_stat(const struct site_stat *a, const struct site_stat *b)
{
	if (!a->present || !b->present)
		return a->present == b->present;
	return a->type == b->type && a->dev == b->dev && a->ino == b->ino &&
	       a->mtime_ns == b->mtime_ns && a->ctime_ns == b->ctime_ns && a->size == b->size;
}

/* One session's note: taken from old (the previous list's, may be NULL)
 * when nothing can have changed, else read again. A final note never
 * changes. A note is rewritten through a new name and a rename
 * (archive_write_note), so its lstat changes with every rewrite: an
 * unchanged one is not read again. One that is absent or not ours (a
 * folder being made, or anything anyone put there) is looked at again
 * after 2 s, then 8, 32, 128 s and every 5 minutes while it stays the same:
 * a forged flood costs one call each per 5 minutes, not one per scan. */
static void look_at_note(int dir_fd, const struct incident_note *old, bool full, uint64_t now_ms,
			 struct incident_note *note)
{
	char path[sizeof(note->session) + 16];
	struct site_stat st;

	if (old && old->final) {
		*note = *old;
		return;
	}
	if (old && !full && !old->ours && now_ms - old->checked_ms < old->recheck_ms) {
		*note = *old;
		return;
	}
	snprintf(path, sizeof(path), "%s/note.json", note->session);
	stat_at(dir_fd, path, &st);
	if (old && !full && same_stat(&st, &old->note_st)) {
		*note = *old;
		note->checked_ms = now_ms;
		if (!note->ours) {
			uint64_t wait = old->recheck_ms ? 4 * old->recheck_ms : 2000;
			note->recheck_ms = wait > INCIDENT_NOTES_RECHECK_MAX_MS
				? INCIDENT_NOTES_RECHECK_MAX_MS : wait;
		}
		return;
	}
	read_note(dir_fd, note);
	note->note_st = st;
	note->checked_ms = now_ms;
	note->recheck_ms = 0;
}

/* Names sort by the session's time: the newest last. */
typedef char session_name[sizeof(((struct incident_note *)0)->session)];

static int by_name(const void *a, const void *b)
{
	return strcmp(*(const session_name *)a, *(const session_name *)b);
}

/* The newest INCIDENT_NOTES_MAX session names of the folder into out->v
 * (sorted), with bounded memory whatever the folder holds: names gather in
 * a buffer twice that size; when it is full, the older half goes, and a
 * later name older than every one kept is skipped. Returns 0 or -errno. */
static int list_sessions(int dfd, struct incident_notes *out)
{
	const size_t max = INCIDENT_NOTES_MAX, cap = 2 * INCIDENT_NOTES_MAX;
	session_name *names = malloc(cap * sizeof(*names));
	int list_fd = fcntl(dfd, F_DUPFD_CLOEXEC, 0);
	DIR *d = list_fd >= 0 ? fdopendir(list_fd) : NULL;
	int err = 0;

	if (!names || !d) {
		err = !names ? -ENOMEM : -errno;
		if (list_fd >= 0 && !d)
			close(list_fd);
		if (d)
			closedir(d);
		free(names);
		return err;
	}
	/* The folder may have been read before through this description. */
	rewinddir(d);
	size_t n = 0;
	bool floor = false;
	struct dirent *de;
	for (errno = 0; (de = readdir(d)) != NULL; errno = 0) {
		if (!is_session_name(de->d_name))
			continue;
		if (floor && strcmp(de->d_name, names[0]) < 0)
			continue;
		if (n == cap) {
			qsort(names, n, sizeof(names[0]), by_name);
			memmove(names, names + (n - max), max * sizeof(names[0]));
			n = max;
			floor = true;
			if (strcmp(de->d_name, names[0]) < 0)
				continue;
		}
		snprintf(names[n++], sizeof(names[0]), "%s", de->d_name);
	}
	if (errno != 0)
		err = -errno;
	closedir(d);
	qsort(names, n, sizeof(names[0]), by_name);
	size_t first = n > max ? n - max : 0;
	out->v = n - first ? calloc(n - first, sizeof(out->v[0])) : NULL;
	if (n - first && !out->v) {
		free(names);
		return -ENOMEM;
	}
	for (size_t i = first; i < n; i++)
		memcpy(out->v[out->n++].session, names[i], sizeof(names[0]));
	free(names);
	return err;
}

/* The previous listing, when the folder is the same and the listing was
 * taken once it had settled: a session made or removed changes the
 * folder's lstat. Returns 0 or -ENOMEM. */
static int keep_sessions(const struct incident_notes *prev, struct incident_notes *out)
{
	if (prev->n) {
		out->v = calloc(prev->n, sizeof(out->v[0]));
		if (!out->v)
			return -ENOMEM;
	}
	for (size_t i = 0; i < prev->n; i++)
		memcpy(out->v[i].session, prev->v[i].session, sizeof(out->v[i].session));
	out->n = prev->n;
	return 0;
}

void incident_read_notes(const char *dir, const struct incident_notes *prev,
			 struct incident_notes *out)
{
	struct clock_now now;
	struct site_stat dir_st;

	memset(out, 0, sizeof(*out));
	clock_read(&now);
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return;
	stat_at(dfd, ".", &dir_st);
	if (prev && !prev->read)
		prev = NULL;
	bool full = !prev || now.mono_ms - prev->listed_ms >= INCIDENT_NOTES_FULL_EVERY_MS;
	bool same = prev && same_stat(&dir_st, &prev->dir_st);
	out->dir_st = dir_st;
	out->dir_seen_ms = same ? prev->dir_seen_ms : now.mono_ms;
	out->listed_ms = full ? now.mono_ms : prev->listed_ms;
	int r;
	bool kept = !full && same && prev->dir_settled;
	if (kept) {
		r = keep_sessions(prev, out);
		out->dir_settled = true;
	} else {
		r = list_sessions(dfd, out);
		out->dir_settled = now.mono_ms - out->dir_seen_ms >= SCAN_SETTLE_MS;
	}
	if (r < 0) {
		incident_notes_free(out);
		close(dfd);
		return;
	}
	/* A kept listing is prev's, name for name: no search. */
	for (size_t i = 0; i < out->n; i++)
		look_at_note(dfd, kept ? &prev->v[i] : find_note(prev, out->v[i].session), full,
			     now.mono_ms, &out->v[i]);
	close(dfd);
	out->read = true;
}

void incident_notes_free(struct incident_notes *n)
{
	free(n->v);
	memset(n, 0, sizeof(*n));
}

bool incident_last_clear(const struct incident_notes *notes, const char *exclude,
			 int64_t *when_ns)
{
	/* Sorted by session name, which begins with its time: newest last. */
	for (size_t i = notes->n; i-- > 0;) {
		const struct incident_note *note = &notes->v[i];
		bool took_a_step = strcmp(note->step, "clear") == 0 ||
				   strcmp(note->step, "full-clear") == 0;
		if (!note->complete || !took_a_step || !note->tied)
			continue;
		if (exclude && exclude[0] && strcmp(note->incident, exclude) == 0)
			continue;
		if (archive_session_time(note->session, when_ns))
			return true;
	}
	return false;
}

const char *incident_hook_step(const struct incident_notes *notes, const char *incident)
{
	for (size_t i = notes->n; i-- > 0;)
		if (incident[0] && strcmp(notes->v[i].incident, incident) == 0)
			return strcmp(notes->v[i].step, "full-clear") == 0 ? "full-clear" : "clear";
	return "clear";
}

static bool learnt(struct incident *inc, const char *id)
{
	for (unsigned i = 0; i < 16; i++)
		if (strcmp(inc->learnt[i], id) == 0)
			return true;
	snprintf(inc->learnt[inc->learnt_next], sizeof(inc->learnt[0]), "%s", id);
	inc->learnt_next = (inc->learnt_next + 1) % 16;
	return false;
}

void incident_tie_notes(const struct incident *inc, struct incident_notes *notes)
{
	for (size_t i = 0; i < notes->n; i++) {
		struct incident_note *note = &notes->v[i];
		/* This instance's own notes too: the restart its hook causes
		 * restarts the agent, and the ladder must outlive that. */
		note->tied = !inc || (note->instance[0] && strcmp(note->instance, inc->instance) == 0);
		for (unsigned k = 0; inc && k < 16 && !note->tied; k++)
			note->tied = note->incident[0] && strcmp(inc->tied[k], note->incident) == 0;
	}
}

void incident_learn(struct incident *inc, const struct incident_notes *prev,
		    const struct incident_notes *fresh, bool first,
		    void (*found)(struct incident *inc, const struct incident_note *note))
{
	for (size_t i = 0; i < fresh->n; i++) {
		const struct incident_note *note = &fresh->v[i];
		if (!note->done || !note->incident[0])
			continue;
		const struct incident_note *old = find_note(prev, note->session);
		if (old && old->done)
			continue;
		if (learnt(inc, note->incident) || first)
			continue;
		/* The share's word alone starts nothing: a note counts when its
		 * incident is one this agent saw claimed while the site was
		 * stuck, or when this agent saw a deployment claim to run (or
		 * stuck) since the last incident it learnt (one sight, one
		 * incident: a flood of forged notes runs no hook, resets no
		 * cooldown). */
		bool tied = false;
		for (unsigned k = 0; k < 16 && !tied; k++)
			tied = strcmp(inc->tied[k], note->incident) == 0;
		if (!tied && !inc->stuck_seen)
			continue;
		if (!tied) {
			snprintf(inc->tied[inc->tied_next], sizeof(inc->tied[0]), "%s", note->incident);
			inc->tied_next = (inc->tied_next + 1) % 16;
		}
		inc->stuck_seen = false;
		found(inc, note);
	}
}
