/* incident_notes.c - what the archive tells every instance: the sessions'
 * notes, read on the scan's worker, and the incidents they show cleared,
 * learnt on the loop (see incident.h). Apart from incident.c, which holds
 * the claim: the notes are plain reads of the archive, the claim a
 * protocol. */
#include "incident.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "archive.h"

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
	if (!claim_id_ok(note->incident) || !claim_id_ok(note->instance)) {
		/* Ids that could not be ours (a name, a path, too long): the
		 * note ties to no incident. */
		note->incident[0] = note->instance[0] = '\0';
		note->done = note->complete = false;
	}
}

void incident_read_notes(const char *dir, const struct incident_notes *prev,
			 struct incident_notes *out)
{
	memset(out, 0, sizeof(*out));
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return;
	int list_fd = fcntl(dfd, F_DUPFD_CLOEXEC, 0);
	DIR *d = list_fd >= 0 ? fdopendir(list_fd) : NULL;
	if (!d) {
		if (list_fd >= 0)
			close(list_fd);
		close(dfd);
		return;
	}
	size_t cap = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (!is_session_name(de->d_name))
			continue;
		if (out->n == cap) {
			size_t ncap = cap ? cap * 2 : 64;
			struct incident_note *v = realloc(out->v, ncap * sizeof(*v));
			if (!v)
				break;
			out->v = v;
			cap = ncap;
		}
		memset(&out->v[out->n], 0, sizeof(out->v[0]));
		snprintf(out->v[out->n].session, sizeof(out->v[0].session), "%s", de->d_name);
		out->n++;
	}
	closedir(d);
	if (out->n)
		qsort(out->v, out->n, sizeof(out->v[0]), by_session);
	if (out->n > INCIDENT_NOTES_MAX) {
		/* The newest by name; the archive is pruned after [archive] keep. */
		memmove(out->v, out->v + (out->n - INCIDENT_NOTES_MAX),
			INCIDENT_NOTES_MAX * sizeof(out->v[0]));
		out->n = INCIDENT_NOTES_MAX;
	}
	for (size_t i = 0; i < out->n; i++) {
		const struct incident_note *old = find_note(prev, out->v[i].session);
		if (old && old->final)
			out->v[i] = *old; /* a final note does not change: not read again */
		else
			read_note(dfd, &out->v[i]);
	}
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
