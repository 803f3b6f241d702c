/* cleanup.c - a cleanup as one verified transaction (see cleanup.h). */
#include "cleanup.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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

struct cleanup_job *cleanup_prepare(const struct site_snapshot *snap,
				    const struct policy_decision *d, bool sweep,
				    const struct cleanup_settings *s, int *err)
{
	struct cleanup_job *job;
	size_t n = 0;

	*err = 0;
	for (size_t i = 0; i < d->n_removals; i++)
		if ((snap->entries[d->removals[i]].kind == KUDU_NAME_TRASH) == sweep)
			n++;
	if (n == 0)
		return NULL;
	job = calloc(1, sizeof(*job));
	if (!job)
		goto oom;
	job->sweep = sweep;
	job->targets = calloc(n, sizeof(*job->targets));
	job->results = calloc(n, sizeof(*job->results));
	job->what = calloc(n, sizeof(*job->what));
	if (!job->targets || !job->results || !job->what)
		goto oom;
	if (!sweep && evidence_from_snapshot(snap, &job->evidence) < 0)
		goto oom;
	snprintf(job->archive_dir, sizeof(job->archive_dir), "%s", s->archive_dir);
	snprintf(job->instance, sizeof(job->instance), "%s", s->instance);
	snprintf(job->incident, sizeof(job->incident), "%s", s->incident ? s->incident : "");
	job->claim_fd = s->claim_fd;
	job->claim_err = s->claim_err;
	job->on_removed = s->on_removed;
	job->fenced = s->fenced;
	job->ctx = s->ctx;
	snprintf(job->root, sizeof(job->root), "%s", s->site_root);
	job->started_ns = clock_wall_ns();
	job->root_dev = snap->root.dev;
	job->root_ino = snap->root.ino;
	snprintf(job->reason, sizeof(job->reason), "%s", d->reason);
	snprintf(job->deployment_id, sizeof(job->deployment_id), "%s", d->deployment_id);
	job->step = d->step;
	const char *names[64];
	size_t n_names = 0;
	for (size_t i = 0; i < d->n_removals; i++) {
		const struct site_entry *e = &snap->entries[d->removals[i]];
		if ((e->kind == KUDU_NAME_TRASH) != sweep)
			continue;
		struct reap_target *t = &job->targets[job->n];
		reap_target_from_entry(t, e);
		if (e->kind == KUDU_NAME_LOCK_FOLDER && e->info_err == 0) {
			job->has_lock = true;
			job->lock = e->info;
		}
		t->trash_only = !sweep && e->st.type == S_IFDIR && !s->finish_folders;
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

__attribute__((format(printf, 3, 4)))
static void refuse(struct reap_result *r, int err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->detail, sizeof(r->detail), fmt, ap);
	va_end(ap);
	r->err = err;
}

/* Archives every target; true when at least one was. A target that changed
 * while it was copied abandons the whole plan. */
static bool archive_all(struct cleanup_job *job, struct archive_session *session,
			struct archive_item *items)
{
	bool any = false;
	for (size_t i = 0; i < job->n; i++) {
		items[i].target = &job->targets[i];
		items[i].what = job->what[i];
		archive_copy_target(session, job->root, job->root_dev, job->root_ino, &items[i]);
		if (items[i].archive_err == -ESTALE && !job->abandoned[0]) {
			char name[NAME_MAX * 4 + 1];
			log_escape(job->targets[i].name, name, sizeof(name));
			snprintf(job->abandoned, sizeof(job->abandoned),
				 "%s/%s changed while it was archived", job->targets[i].area, name);
		}
		any = any || items[i].archive_err == 0;
	}
	return any;
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

/* Removes the archived targets in order, checking the evidence before each. */
static void remove_all(struct cleanup_job *job, struct archive_item *items, atomic_bool *cancel)
{
	for (size_t i = 0; i < job->n; i++) {
		struct reap_result *res = &job->results[i];
		const struct reap_target *t = &job->targets[i];
		if (job->abandoned[0]) {
			refuse(res, -ESTALE, "kept: the cleanup was abandoned (%s)", job->abandoned);
			continue;
		}
		if (items[i].archive_err) {
			refuse(res, items[i].archive_err, "not archived, so not removed: %s",
			       items[i].archive_err == -ESTALE ? "changed since it was judged"
							       : strerror(-items[i].archive_err));
			continue;
		}
		if (lost_claim(job)) {
			refuse(res, -ESTALE, "kept: the cleanup was abandoned (%s)", job->abandoned);
			continue;
		}
		char why[200];
		int r = evidence_check(job->root, &job->evidence, why, sizeof(why));
		if (r < 0) {
			snprintf(job->abandoned, sizeof(job->abandoned), "%s",
				 r == -ESTALE ? why : strerror(-r));
			refuse(res, -ESTALE, "kept: the cleanup was abandoned (%s)", job->abandoned);
			continue;
		}
		reap_run(job->root, job->root_dev, job->root_ino, t, 1, cancel, res);
		items[i].result = res;
		if (res->err == 0 && job->on_removed) {
			char path[NAME_MAX + 32];
			snprintf(path, sizeof(path), "%s/%s", t->area, t->name);
			job->on_removed(job->ctx, path);
		}
		if (res->err == 0) {
			evidence_forget(&job->evidence,
					strcmp(t->area, "locks") == 0 ? SITE_AREA_LOCKS
								      : SITE_AREA_DEPLOYMENTS,
					t->name);
		} else if (res->err == -ESTALE) {
			char name[NAME_MAX * 4 + 1];
			log_escape(t->name, name, sizeof(name));
			snprintf(job->abandoned, sizeof(job->abandoned), "%s/%s changed", t->area, name);
		}
	}
}

void cleanup_run(struct cleanup_job *job, atomic_bool *cancel)
{
	struct archive_session session;
	struct archive_item *items;

	if (job->sweep) {
		/* Trash was archived before it was renamed. */
		reap_run(job->root, job->root_dev, job->root_ino, job->targets, job->n, cancel,
			 job->results);
		return;
	}
	items = calloc(job->n, sizeof(*items));
	if (!items) {
		snprintf(job->archive_error, sizeof(job->archive_error), "out of memory");
		goto refuse_all;
	}
	if (job->claim_err) {
		snprintf(job->archive_error, sizeof(job->archive_error),
			 "cannot claim the incident beside %s: %s", job->archive_dir,
			 strerror(-job->claim_err));
		goto refuse_all;
	}
	if (lost_claim(job)) {
		remove_all(job, items, cancel); /* refuses each, with its reason */
		free(items);
		return;
	}
	if (archive_begin(job->archive_dir, job->instance, job->started_ns, &session,
			  job->archive_error, sizeof(job->archive_error)) < 0)
		goto refuse_all;
	snprintf(job->archive_path, sizeof(job->archive_path), "%s", session.path);
	bool any_archived = archive_all(job, &session, items);
	struct archive_note note = {
		.time_ns = job->started_ns, .instance = job->instance, .incident = job->incident,
		.site_root = job->root,
		.reason = job->reason, .deployment_id = job->deployment_id,
		.step = policy_step_name(job->step), .done = false,
		.items = items, .n_items = job->n,
	};
	int r = any_archived && !job->abandoned[0] ? archive_write_note(&session, &note) : 0;
	if (r < 0)
		snprintf(job->archive_error, sizeof(job->archive_error),
			 "cannot write the note in %s: %s", session.path, strerror(-r));
	if (r < 0 || !any_archived || job->abandoned[0]) {
		/* Nothing will be removed: leave no session behind, or every
		 * retry would add one. */
		archive_discard(&session);
		job->archive_path[0] = '\0';
		if (r < 0)
			goto refuse_all;
		remove_all(job, items, cancel); /* refuses each, with its reason */
		free(items);
		return;
	}
	remove_all(job, items, cancel);
	bool any_removed = false;
	for (size_t i = 0; i < job->n; i++)
		any_removed = any_removed || job->results[i].err == 0;
	if (!any_removed) {
		archive_discard(&session);
		job->archive_path[0] = '\0';
		free(items);
		return;
	}
	note.done = true;
	note.complete = true;
	for (size_t i = 0; i < job->n; i++)
		note.complete = note.complete && job->results[i].err == 0;
	r = archive_write_note(&session, &note);
	if (r < 0)
		snprintf(job->archive_error, sizeof(job->archive_error),
			 "cannot complete the note in %s: %s", session.path, strerror(-r));
	archive_end(&session);
	free(items);
	return;

refuse_all:
	for (size_t i = 0; i < job->n; i++)
		refuse(&job->results[i], -EIO, "%s", "not removed: nothing could be archived");
	free(items);
}

void cleanup_log(const struct cleanup_job *job, uint64_t last_failure,
		 struct cleanup_outcome *out)
{
	const char *failed_names[64];
	int failed_errs[64];
	size_t n_failed = 0;

	*out = (struct cleanup_outcome){ .abandoned = job->abandoned[0] != '\0' };
	if (job->archive_error[0])
		log_event(last_failure ? LOG_LEVEL_DEBUG : LOG_LEVEL_ERROR, "archive",
			  LOG_FIELDS(LOG_STR("error", job->archive_error)), "archive: %s",
			  job->archive_error);
	for (size_t i = 0; i < job->n; i++) {
		const struct reap_target *t = &job->targets[i];
		const struct reap_result *r = &job->results[i];
		char name[NAME_MAX * 4 + 1], entry[NAME_MAX + 32];
		if (r->err != 0) {
			out->any_failed = true;
			if (n_failed < 64) {
				failed_names[n_failed] = t->name;
				failed_errs[n_failed++] = r->err;
			}
			continue;
		}
		out->any_removed = true;
		out->lock_removed = out->lock_removed ||
				    (strcmp(t->area, "locks") == 0 && strcmp(t->name, "deployment") == 0);
		log_escape(t->name, name, sizeof(name));
		snprintf(entry, sizeof(entry), "%s/%s", t->area, t->name);
		if (job->sweep) {
			log_event(LOG_LEVEL_INFO, "swept",
				  LOG_FIELDS(LOG_STR("entry", entry), LOG_INT("files", r->files_removed)),
				  "finished removing %s/%s (%lu %s)", t->area, name, r->files_removed,
				  r->files_removed == 1 ? "entry" : "entries");
			continue;
		}
		out->n_removed++;
		if (r->detail[0])
			log_event(LOG_LEVEL_INFO, "removed",
				  LOG_FIELDS(LOG_STR("entry", entry), LOG_STR("how", "moved_aside"),
					     LOG_STR("detail", r->detail),
					     LOG_STR("incident", job->incident)),
				  "removed %s/%s (%s)", t->area, name, r->detail);
		else
			log_event(LOG_LEVEL_INFO, "removed",
				  LOG_FIELDS(LOG_STR("entry", entry), LOG_STR("how", "deleted"),
					     LOG_INT("files", r->files_removed),
					     LOG_STR("incident", job->incident)),
				  "removed %s/%s (%lu %s)", t->area, name, r->files_removed,
				  r->files_removed == 1 ? "entry" : "entries");
	}
	out->failure_plan = out->any_failed ? cleanup_plan_hash(failed_names, n_failed, failed_errs)
					    : 0;
	if (out->abandoned)
		log_event(LOG_LEVEL_WARNING, "abandoned", LOG_FIELDS(LOG_STR("why", job->abandoned)),
			  "cleanup abandoned: the deployment showed a sign of life (%s); "
			  "everything not yet removed is kept, and the tree is judged again",
			  job->abandoned);
	for (size_t i = 0; i < job->n; i++) {
		const struct reap_target *t = &job->targets[i];
		const struct reap_result *r = &job->results[i];
		char name[NAME_MAX * 4 + 1], entry[NAME_MAX + 32];
		if (r->err == 0)
			continue;
		bool kept = r->err == -ESTALE;
		out->n_kept += kept && !job->sweep;
		log_escape(t->name, name, sizeof(name));
		snprintf(entry, sizeof(entry), "%s/%s", t->area, t->name);
		const char *why = r->detail[0] ? r->detail : strerror(-r->err);
		/* The same failure on every retry is said once; the retries go on
		 * at the rescan pace. */
		log_event(out->failure_plan == last_failure ? LOG_LEVEL_DEBUG : LOG_LEVEL_WARNING,
			  kept ? "kept" : "remove_failed",
			  LOG_FIELDS(LOG_STR("entry", entry), LOG_STR("why", why)),
			  "%s %s/%s: %s%s%s", kept ? "kept" : "could not remove",
			  t->area, name, why, kept ? "" : "; retried on the next scan",
			  kept ? " (changed since it was judged)" : "");
	}
	if (out->any_removed && job->archive_path[0])
		log_event(LOG_LEVEL_INFO, "archive", LOG_FIELDS(LOG_STR("path", job->archive_path)),
			  "archive: what was removed is recorded in %s", job->archive_path);
}
