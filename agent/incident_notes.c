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
#include "json.h"
#include "text.h"

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

struct note_ctx {
	struct incident_note *note;
	char state[16];
	bool complete;
};

/* The note's fixed fields, through json.c: a string that does not fit is
 * not believed (left empty), anything else is skipped. */
static int note_member(struct json *j, unsigned depth, const char *key, void *arg)
{
	struct note_ctx *p = arg;
	struct incident_note *note = p->note;
	char *out = NULL;
	size_t size = 0;

	if (strcmp(key, "state") == 0)
		out = p->state, size = sizeof(p->state);
	else if (strcmp(key, "incident") == 0)
		out = note->incident, size = sizeof(note->incident);
	else if (strcmp(key, "instance") == 0)
		out = note->instance, size = sizeof(note->instance);
	else if (strcmp(key, "step") == 0)
		out = note->step, size = sizeof(note->step);
	else if (strcmp(key, "complete") == 0) {
		p->complete = json_literal(j, "true") == 0;
		return p->complete ? 0 : json_skip_value(j, depth);
	}
	if (!out)
		return json_skip_value(j, depth);
	if (json_peek(j) != JSON_STRING)
		return json_skip_value(j, depth);
	struct text t;
	text_init(&t, out, size);
	int r = json_string(j, &t);
	if (r == 0 && t.truncated)
		out[0] = '\0';
	return r;
}

static void read_note(int dir_fd, struct incident_note *note)
{
	char buf[65536];
	int sfd = openat(dir_fd, note->session, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (sfd < 0)
		return;
	int fd = openat(sfd, "note.json", O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	close(sfd);
	if (fd < 0)
		return;
	struct stat st;
	ssize_t got = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
				      st.st_size < (off_t)sizeof(buf)
			      ? pread(fd, buf, sizeof(buf), 0)
			      : -1;
	close(fd);
	if (got <= 0 || (size_t)got >= sizeof(buf))
		return;
	struct note_ctx p = { .note = note };
	if (json_document(buf, (size_t)got, note_member, &p) < 0 ||
	    !claim_id_ok(note->incident) || !claim_id_ok(note->instance)) {
		/* Not a note of ours, or a half-written one: nothing is believed. */
		memset(note->incident, 0, sizeof(note->incident));
		memset(note->instance, 0, sizeof(note->instance));
		note->step[0] = '\0';
		return;
	}
	note->done = strcmp(p.state, "done") == 0;
	note->complete = note->done && p.complete;
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
		if (old && old->done)
			out->v[i] = *old; /* a done note does not change: not read again */
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
		note->tied = !inc;
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
		 * stuck, or when this agent saw the site stuck since the last
		 * incident it learnt (one sight, one incident: a flood of
		 * forged notes runs no hook, resets no cooldown). */
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
