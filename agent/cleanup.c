/* cleanup.c - a cleanup as one verified transaction (see cleanup.h). */
#include "cleanup.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "archive.h"
#include "claim.h"
#include "clock.h"
#include "hash.h"
#include "log.h"

uint64_t cleanup_plan_hash(const char *const *names, size_t n, const int *errs)
{
	uint64_t h = HASH_FNV1A_INIT;
	for (size_t i = 0; i < n; i++) {
		h = hash_fnv1a(h, names[i], strlen(names[i]));
		h = hash_fnv1a_u64(h, (uint64_t)(errs ? errs[i] : 0));
	}
	return h;
}

void cleanup_free(struct cleanup_job *job)
{
	if (!job)
		return;
	evidence_free(&job->evidence);
	free(job->targets);
	free(job->results);
	free(job->what);
	free(job);
}

static struct cleanup_job *job_new(size_t n, const struct site_snapshot *snap,
				   const struct cleanup_settings *s)
{
	struct cleanup_job *job = calloc(1, sizeof(*job));
	if (!job)
		return NULL;
	job->targets = calloc(n, sizeof(*job->targets));
	job->results = calloc(n, sizeof(*job->results));
	job->what = calloc(n, sizeof(*job->what));
	if (!job->targets || !job->results || !job->what) {
		cleanup_free(job);
		return NULL;
	}
	snprintf(job->archive_dir, sizeof(job->archive_dir), "%s", s->archive_dir);
	snprintf(job->instance, sizeof(job->instance), "%s", s->instance);
	snprintf(job->incident, sizeof(job->incident), "%s", s->incident ? s->incident : "");
	snprintf(job->root, sizeof(job->root), "%s", s->site_root);
	job->claim_fd = s->claim_fd;
	job->claim_err = s->claim_err;
	job->on_removed = s->on_removed;
	job->fenced = s->fenced;
	job->ctx = s->ctx;
	job->started_ns = clock_wall_ns();
	job->root_dev = snap->root.dev;
	job->root_ino = snap->root.ino;
	reap_new_token(job->token);
	return job;
}

struct cleanup_job *cleanup_prepare(const struct site_snapshot *snap,
				    const struct policy_decision *d,
				    const struct cleanup_settings *s, int *err)
{
	struct cleanup_job *job;
	size_t n = 0;

	*err = 0;
	/* Trash is never the policy's to remove: only the sweep's. */
	for (size_t i = 0; i < d->n_removals; i++)
		n += snap->entries[d->removals[i]].kind != KUDU_NAME_TRASH;
	if (n == 0)
		return NULL;
	job = job_new(n, snap, s);
	if (!job || evidence_from_snapshot(snap, &job->evidence) < 0)
		goto oom;
	snprintf(job->reason, sizeof(job->reason), "%s", d->reason);
	snprintf(job->deployment_id, sizeof(job->deployment_id), "%s", d->deployment_id);
	job->step = d->step;
	const char *names[64];
	size_t n_names = 0;
	for (size_t i = 0; i < d->n_removals; i++) {
		const struct site_entry *e = &snap->entries[d->removals[i]];
		if (e->kind == KUDU_NAME_TRASH)
			continue;
		struct reap_target *t = &job->targets[job->n];
		reap_target_from_entry(t, e);
		if (e->kind == KUDU_NAME_LOCK_FOLDER && e->info_err == 0) {
			job->has_lock = true;
			job->lock = e->info;
		}
		t->trash_only = e->st.type == S_IFDIR && !s->finish_folders;
		snprintf(job->what[job->n], sizeof(job->what[0]), "%s",
			 d->entries[d->removals[i]].reason);
		if (n_names < 64)
			names[n_names++] = t->name;
		job->n++;
	}
	job->plan = cleanup_plan_hash(names, n_names, NULL);
	return job;
oom:
	cleanup_free(job);
	*err = -ENOMEM;
	return NULL;
}

/* The newest note whose token is token and that committed, or NULL. */
static const struct incident_note *committed_note(const struct incident_notes *notes,
						  const char *token)
{
	for (size_t i = notes ? notes->n : 0; i-- > 0;)
		if (notes->v[i].done && strcmp(notes->v[i].token, token) == 0)
			return &notes->v[i];
	return NULL;
}

struct cleanup_job *cleanup_prepare_sweep(const struct site_snapshot *snap,
					  const struct incident_notes *notes,
					  const struct cleanup_settings *s, int *err)
{
	struct cleanup_job *job;
	char token[KUDU_TOKEN_MAX + 1];
	size_t n = 0;

	*err = 0;
	for (size_t i = 0; i < snap->n_entries; i++) {
		const struct site_entry *e = &snap->entries[i];
		n += e->kind == KUDU_NAME_TRASH && kudu_trash_token(e->name, token) &&
		     committed_note(notes, token) != NULL;
	}
	if (n == 0)
		return NULL;
	job = job_new(n, snap, s);
	if (!job) {
		*err = -ENOMEM;
		return NULL;
	}
	job->sweep = true;
	for (size_t i = 0; i < snap->n_entries && job->n < n; i++) {
		const struct site_entry *e = &snap->entries[i];
		const struct incident_note *note;
		if (e->kind != KUDU_NAME_TRASH || !kudu_trash_token(e->name, token) ||
		    !(note = committed_note(notes, token)))
			continue;
		reap_target_from_entry(&job->targets[job->n], e);
		snprintf(job->what[job->n], sizeof(job->what[0]), "%s", note->session);
		job->n++;
	}
	return job;
}

/* Archives every target. A target that changed while it was copied
 * abandons the cleanup; one that could not be copied stops it. */
static void archive_all(struct cleanup_job *job, struct archive_session *session,
			struct archive_item *items)
{
	for (size_t i = 0; i < job->n; i++) {
		char name[NAME_MAX * 4 + 1];
		items[i].target = &job->targets[i];
		items[i].what = job->what[i];
		items[i].result = &job->results[i];
		archive_copy_target(session, job->root, job->root_dev, job->root_ino, &items[i]);
		if (!items[i].archive_err || job->abandoned[0] || job->failed[0])
			continue;
		log_escape(job->targets[i].name, name, sizeof(name));
		if (items[i].archive_err == -ESTALE)
			snprintf(job->abandoned, sizeof(job->abandoned),
				 "%s/%s changed while it was archived", job->targets[i].area, name);
		else
			snprintf(job->failed, sizeof(job->failed),
				 "%s/%s could not be archived: %s", job->targets[i].area, name,
				 strerror(-items[i].archive_err));
	}
}

/* Another instance took the incident over (this agent stalled past the
 * claim's expiry), or the share holding the claim went away: whoever
 * holds the incident next judges the tree afresh, so this cleanup stops. */
static bool lost_claim(struct cleanup_job *job)
{
	char path[PATH_MAX];
	if (job->claim_fd < 0)
		return false;
	claim_path_for(job->archive_dir, path, sizeof(path));
	if (claim_still_ours(path, job->claim_fd) == 0 && !(job->fenced && job->fenced(job->ctx)))
		return false;
	if (!job->abandoned[0])
		snprintf(job->abandoned, sizeof(job->abandoned),
			 "the incident's claim is no longer this agent's: taken over, or the share is gone");
	return true;
}

/* On the worker, as each committed target goes: the claim says what went
 * before anything else happens. */
static void removed_one(void *ctx, size_t i)
{
	struct cleanup_job *job = ctx;
	char path[NAME_MAX + 32];
	if (!job->on_removed)
		return;
	snprintf(path, sizeof(path), "%s/%s", job->targets[i].area, job->targets[i].name);
	job->on_removed(job->ctx, path);
}

/* Steps 3 and 4: every target moved aside, the claim and the whole
 * evidence checked once more. Returns true when the cleanup may commit;
 * otherwise job->abandoned or job->failed says why. */
static bool move_and_check(struct cleanup_job *job, struct reap_txn *txn, atomic_bool *cancel)
{
	char why[200], name[NAME_MAX * 4 + 1];
	int err = lost_claim(job) ? -ESTALE : reap_move_all(txn);

	for (size_t i = 0; i < job->n; i++)
		if (job->results[i].state == REAP_MOVED)
			evidence_moved(&job->evidence,
				       strcmp(job->targets[i].area, "locks") == 0 ? SITE_AREA_LOCKS
										  : SITE_AREA_DEPLOYMENTS,
				       job->targets[i].name, job->results[i].trash);
	for (size_t i = 0; err < 0 && i < job->n; i++) {
		const struct reap_result *r = &job->results[i];
		if (r->err == 0)
			continue;
		log_escape(job->targets[i].name, name, sizeof(name));
		/* Changed, or gone, since it was judged: a sign of life. */
		if (r->err == -ESTALE || r->err == -ENOENT)
			snprintf(job->abandoned, sizeof(job->abandoned), "%s/%s: %s",
				 job->targets[i].area, name, r->detail);
		else if (r->err == -ECANCELED)
			snprintf(job->failed, sizeof(job->failed), "the agent is stopping");
		else
			snprintf(job->failed, sizeof(job->failed), "%s/%s: %s", job->targets[i].area,
				 name, r->detail);
		return false;
	}
	if (err < 0 || lost_claim(job))
		return false;
	err = evidence_check(job->root, &job->evidence, why, sizeof(why));
	if (err == -ESTALE)
		snprintf(job->abandoned, sizeof(job->abandoned), "%s", why);
	else if (err < 0)
		snprintf(job->failed, sizeof(job->failed), "the tree could not be read again: %s",
			 strerror(-err));
	else if (cancel && atomic_load(cancel))
		snprintf(job->failed, sizeof(job->failed), "the agent is stopping");
	return !job->abandoned[0] && !job->failed[0];
}

static void note_error(struct cleanup_job *job, const struct archive_session *session,
		       const char *what, int r)
{
	if (r < 0 && !job->archive_error[0])
		snprintf(job->archive_error, sizeof(job->archive_error), "cannot %s the note in %s: %s",
			 what, session->path, strerror(-r));
}

/* Every target the cleanup did not reach says why. */
static void refuse_all(struct cleanup_job *job, int err, const char *why)
{
	for (size_t i = 0; i < job->n; i++)
		if (job->results[i].state == REAP_UNTOUCHED && job->results[i].err == 0)
			reap_fail(&job->results[i], err, "%s", why);
}

/* The sweep: each trash name is removed only if the note of its session,
 * read again now, is committed and lists it (the scan's view of the notes
 * may be a scan old). */
static void sweep_run(struct cleanup_job *job, atomic_bool *cancel)
{
	int dfd = open(job->archive_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	size_t kept = 0;

	for (size_t i = 0; i < job->n; i++) {
		char path[NAME_MAX * 2 + 2], token[KUDU_TOKEN_MAX + 1];
		struct archive_note_read note = { .want_trash = path };
		snprintf(path, sizeof(path), "%s/%s", job->targets[i].area, job->targets[i].name);
		if (dfd >= 0 && archive_read_note(dfd, job->what[i], &note) == 0 &&
		    (note.state == ARCHIVE_COMMITTED || note.state == ARCHIVE_DONE) &&
		    note.lists_want && kudu_trash_token(job->targets[i].name, token) &&
		    strcmp(token, note.token) == 0) {
			if (kept != i)
				job->targets[kept] = job->targets[i];
			kept++;
		}
	}
	if (dfd >= 0)
		close(dfd);
	job->n = kept;
	reap_run(job->root, job->root_dev, job->root_ino, job->token, job->targets, job->n,
		 cancel, job->results);
}

void cleanup_run(struct cleanup_job *job, atomic_bool *cancel)
{
	struct archive_session session;
	struct archive_item *items;
	struct reap_txn txn;

	if (job->sweep) {
		sweep_run(job, cancel);
		return;
	}
	items = calloc(job->n, sizeof(*items));
	if (!items) {
		snprintf(job->archive_error, sizeof(job->archive_error), "out of memory");
		refuse_all(job, -ENOMEM, "not removed: out of memory");
		return;
	}
	if (job->claim_err) {
		snprintf(job->archive_error, sizeof(job->archive_error),
			 "cannot claim the incident beside %s: %s", job->archive_dir,
			 strerror(-job->claim_err));
		refuse_all(job, -EIO, "not removed: nothing could be archived");
		free(items);
		return;
	}
	if (lost_claim(job)) {
		refuse_all(job, -ESTALE, "kept: the cleanup was abandoned");
		free(items);
		return;
	}
	if (archive_begin(job->archive_dir, job->instance, job->started_ns, &session,
			  job->archive_error, sizeof(job->archive_error)) < 0) {
		refuse_all(job, -EIO, "not removed: nothing could be archived");
		free(items);
		return;
	}
	snprintf(job->archive_path, sizeof(job->archive_path), "%s", session.path);
	int r = reap_begin(&txn, job->root, job->root_dev, job->root_ino, job->token, job->targets,
			   job->n, cancel, job->results);
	if (r == 0)
		archive_all(job, &session, items);
	struct archive_note note = {
		.time_ns = job->started_ns, .instance = job->instance, .incident = job->incident,
		.site_root = job->root,
		.reason = job->reason, .deployment_id = job->deployment_id,
		.step = policy_step_name(job->step), .token = job->token, .state = ARCHIVE_MOVING,
		.items = items, .n_items = job->n,
	};
	if (r == 0 && !job->abandoned[0] && !job->failed[0]) {
		/* Step 2: the trash names are on record before the first move. */
		r = archive_write_note(&session, &note);
		note_error(job, &session, "write", r);
		if (r < 0)
			reap_end(&txn);
	} else if (r == 0) {
		reap_end(&txn);
	}
	if (r < 0 || job->abandoned[0] || job->failed[0]) {
		/* Nothing moved: leave no session behind, or every retry
		 * would add one. */
		refuse_all(job, job->abandoned[0] ? -ESTALE : -EIO,
			   job->abandoned[0] ? "kept: the cleanup was abandoned"
					     : "not removed: the cleanup could not be recorded");
		archive_discard(&session);
		job->archive_path[0] = '\0';
		free(items);
		return;
	}
	bool may_commit = move_and_check(job, &txn, cancel);
	if (may_commit) {
		/* The commit is on disk before anything is deleted: the sweep
		 * (after a crash too) deletes only trash a committed note lists. */
		note.state = ARCHIVE_COMMITTED;
		note.complete = true;
		r = archive_write_note(&session, &note);
		note_error(job, &session, "commit", r);
		if (r < 0) {
			may_commit = false;
			snprintf(job->failed, sizeof(job->failed), "the commit could not be recorded");
		}
	}
	if (may_commit) {
		job->committed = true;
		reap_commit(&txn, removed_one, job);
		note.state = ARCHIVE_DONE;
		for (size_t i = 0; i < job->n; i++)
			note.complete = note.complete && job->results[i].err == 0;
	} else {
		reap_rollback(&txn);
		note.state = ARCHIVE_ROLLED_BACK;
		note.complete = false;
	}
	reap_end(&txn);
	refuse_all(job, job->abandoned[0] ? -ESTALE : -EIO,
		   job->abandoned[0] ? "kept: the cleanup was abandoned" : "kept: the cleanup stopped");
	note_error(job, &session, "complete", archive_write_note(&session, &note));
	archive_end(&session);
	free(items);
}

/* One line per entry the rolled-back cleanup had moved aside. */
static void log_rollback(const struct cleanup_job *job, size_t i, struct cleanup_outcome *out)
{
	const struct reap_target *t = &job->targets[i];
	const struct reap_result *r = &job->results[i];
	char name[NAME_MAX * 4 + 1], other[NAME_MAX * 4 + 1], entry[NAME_MAX + 32],
		beside[NAME_MAX + 32];

	log_escape(t->name, name, sizeof(name));
	snprintf(entry, sizeof(entry), "%s/%s", t->area, t->name);
	switch (r->state) {
	case REAP_PUT_BACK:
		log_event(LOG_LEVEL_INFO, "put_back", LOG_FIELDS(LOG_STR("entry", entry)),
			  "put %s/%s back under its own name", t->area, name);
		break;
	case REAP_KEPT_BESIDE:
		out->n_kept++;
		log_escape(r->kept, other, sizeof(other));
		snprintf(beside, sizeof(beside), "%s/%s", t->area, r->kept);
		log_event(LOG_LEVEL_WARNING, "kept",
			  LOG_FIELDS(LOG_STR("entry", entry), LOG_STR("kept_as", beside)),
			  "%s/%s was made again while the cleanup had it moved aside: the new one "
			  "stays, and the one moved aside is kept beside it as %s/%s", t->area, name,
			  t->area, other);
		break;
	case REAP_LEFT_AS_TRASH:
		log_escape(r->trash, other, sizeof(other));
		log_event(LOG_LEVEL_WARNING, "kept",
			  LOG_FIELDS(LOG_STR("entry", entry), LOG_STR("kept_as", r->trash)),
			  "%s/%s could not be put back: it is left as %s/%s, which nothing removes",
			  t->area, name, t->area, other);
		break;
	default:
		break;
	}
}

void cleanup_log(const struct cleanup_job *job, uint64_t last_failure,
		 struct cleanup_outcome *out)
{
	const char *failed_names[64];
	int failed_errs[64];
	size_t n_failed = 0;

	*out = (struct cleanup_outcome){ .abandoned = job->abandoned[0] != '\0',
					 .committed = job->committed };
	if (job->archive_error[0])
		log_event(last_failure ? LOG_LEVEL_DEBUG : LOG_LEVEL_ERROR, "archive",
			  LOG_FIELDS(LOG_STR("error", job->archive_error)), "archive: %s",
			  job->archive_error);
	for (size_t i = 0; i < job->n; i++) {
		const struct reap_target *t = &job->targets[i];
		const struct reap_result *r = &job->results[i];
		char name[NAME_MAX * 4 + 1], entry[NAME_MAX + 32];
		if (!job->sweep && !job->committed) {
			log_rollback(job, i, out);
			continue;
		}
		log_escape(t->name, name, sizeof(name));
		snprintf(entry, sizeof(entry), "%s/%s", t->area, t->name);
		if (r->err != 0) {
			out->any_failed = true;
			if (n_failed < 64) {
				failed_names[n_failed] = t->name;
				failed_errs[n_failed++] = r->err;
			}
			/* Committed: it is no longer Kudu's, and its trash is
			 * finished by the sweep. */
			log_event(out->failure_plan == last_failure ? LOG_LEVEL_DEBUG : LOG_LEVEL_WARNING,
				  "remove_failed", LOG_FIELDS(LOG_STR("entry", entry),
							      LOG_STR("why", r->detail)),
				  "could not remove %s/%s: %s; retried %s", t->area, name, r->detail,
				  job->sweep ? "on the next scan" : "by the sweep of its trash");
			continue;
		}
		out->any_removed = true;
		if (job->sweep) {
			log_event(LOG_LEVEL_INFO, "swept",
				  LOG_FIELDS(LOG_STR("entry", entry), LOG_INT("files", r->files_removed)),
				  "finished removing %s/%s (%lu %s)", t->area, name, r->files_removed,
				  r->files_removed == 1 ? "entry" : "entries");
			continue;
		}
		out->lock_removed = out->lock_removed ||
				    (strcmp(t->area, "locks") == 0 && strcmp(t->name, "deployment") == 0);
		out->n_removed++;
		char how[sizeof(r->detail)];
		if (r->detail[0])
			snprintf(how, sizeof(how), "%s", r->detail);
		else
			snprintf(how, sizeof(how), "%lu %s", r->files_removed,
				 r->files_removed == 1 ? "entry" : "entries");
		log_event(LOG_LEVEL_INFO, "removed",
			  LOG_FIELDS(LOG_STR("entry", entry),
				     LOG_STR("how", r->detail[0] ? "moved_aside" : "deleted"),
				     LOG_STR("detail", r->detail), LOG_INT("files", r->files_removed),
				     LOG_STR("incident", job->incident)),
			  "removed %s/%s (%s)", t->area, name, how);
	}
	if (!job->sweep && !job->committed) {
		const char *why = job->abandoned[0] ? job->abandoned : job->failed;
		if (n_failed < 64) {
			failed_names[n_failed] = why;
			failed_errs[n_failed++] = out->abandoned ? -ESTALE : -EIO;
		}
		out->any_failed = !out->abandoned;
	}
	out->failure_plan = out->any_failed ? cleanup_plan_hash(failed_names, n_failed, failed_errs)
					    : 0;
	if (out->abandoned)
		log_event(LOG_LEVEL_WARNING, "abandoned",
			  LOG_FIELDS(LOG_STR("why", job->abandoned), LOG_STR("incident", job->incident)),
			  "cleanup abandoned: the deployment showed a sign of life (%s); nothing was "
			  "removed and no hook runs: everything moved aside was put back, and the "
			  "tree is judged afresh", job->abandoned);
	else if (!job->sweep && !job->committed)
		log_event(out->failure_plan == last_failure ? LOG_LEVEL_DEBUG : LOG_LEVEL_WARNING,
			  "remove_failed", LOG_FIELDS(LOG_STR("why", job->failed[0] ? job->failed
										  : "?")),
			  "cleanup stopped before its commit (%s); nothing was removed: everything "
			  "moved aside was put back; retried on the next scan",
			  job->failed[0] ? job->failed : job->archive_error);
	if (job->archive_path[0] && !job->sweep)
		log_event(LOG_LEVEL_INFO, "archive", LOG_FIELDS(LOG_STR("path", job->archive_path)),
			  "archive: %s recorded in %s",
			  job->committed ? "what was removed is" : "what was moved and put back is",
			  job->archive_path);
}
