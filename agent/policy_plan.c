/* policy_plan.c - step 2 of a decision: a verdict and a reason for each
 * entry, and what a cleanup removes, in the manual procedure's order. Pure;
 * see policy.h. */
#include "policy_plan.h"
#include "policy_history.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "fmt.h"
#include "log.h"

/* ---- words ----------------------------------------------------------------- */

const char *policy_verdict_name(enum policy_verdict v)
{
	switch (v) {
	case POLICY_LIVE: return "live";
	case POLICY_STUCK: return "stuck";
	case POLICY_LEFTOVER: return "leftover";
	case POLICY_KEPT: return "kept";
	case POLICY_FOREIGN: return "not Kudu's";
	case POLICY_CLEARED: return "cleared";
	}
	return "?";
}

const char *policy_step_name(enum policy_step s)
{
	switch (s) {
	case POLICY_STEP_NONE: return "none";
	case POLICY_STEP_CLEAR: return "clear";
	case POLICY_STEP_FULL_CLEAR: return "full-clear";
	}
	return "?";
}

const char *policy_step_hook_name(enum policy_step s)
{
	return s == POLICY_STEP_FULL_CLEAR ? "full-clear" : "clear";
}

/* ---- step 2: plan (a verdict for each entry, the removals in order) -------- */

void policy_record_label(const struct site_entry *e, char *out, size_t size)
{
	log_escape(e->status_err == 0 && e->status.id[0] ? e->status.id : e->name, out, size);
}

static void judge_lock_folder(const struct policy_assessment *a, const struct site_entry *e,
			      struct policy_entry *out)
{
	char op[KUDU_TEXT_MAX * 4], worker[KUDU_TEXT_MAX * 4], when[40];

	if (e->st.type != S_IFDIR) {
		out->verdict = POLICY_FOREIGN;
		snprintf(out->reason, sizeof(out->reason),
			 "a %s where Kudu keeps its lock folder: never followed or removed",
			 fmt_type_name(e->st.type));
		return;
	}
	log_escape(e->info.op, op, sizeof(op));
	log_escape(e->info.worker, worker, sizeof(worker));
	isotime_format(e->info.expiry_ns, "none", when, sizeof(when));
	/* An expired lockExpiry is said, never acted on: Kudu frees such a
	 * lock by its own rule, and the deployment holding it may still run. */
	out->remove = a->stuck;
	out->verdict = a->stuck ? POLICY_STUCK : POLICY_LIVE;
	if (e->info_err != 0) {
		snprintf(out->reason, sizeof(out->reason), "lock folder with %s info.lock (%s)%s",
			 e->info_err == -ENOENT ? "no" : "an unreadable",
			 e->info_err == -ENOENT ? "Kudu may be writing it" : strerror(-e->info_err),
			 a->stuck ? "; removed last with the stuck deployment" : "");
		return;
	}
	snprintf(out->reason, sizeof(out->reason), "held by '%s' on %s, lockExpiry %s%s%s", op,
		 worker[0] ? worker : "?", when,
		 a->lock_expired ? " (passed: Kudu treats it as free)" : "",
		 a->stuck ? "; removed last with the stuck deployment" : " (not stuck)");
}

static void judge_lock_file(const struct policy_assessment *a, const struct site_entry *e,
			    struct policy_entry *out)
{
	char op[KUDU_TEXT_MAX * 4], when[40];

	if (e->st.type != S_IFREG) {
		out->verdict = POLICY_FOREIGN;
		snprintf(out->reason, sizeof(out->reason),
			 "a %s with a lock file's name: never followed or removed",
			 fmt_type_name(e->st.type));
		return;
	}
	if (e->kind == KUDU_NAME_SSHKEY_LOCK || e->kind == KUDU_NAME_HOOKS_LOCK) {
		out->verdict = POLICY_KEPT;
		snprintf(out->reason, sizeof(out->reason),
			 "guards SSH key or web hook operations: never removed");
		return;
	}
	if (e->lock_err == 0) {
		log_escape(e->lock.operation, op, sizeof(op));
		isotime_format(e->lock.acquired_ns, "none", when, sizeof(when));
	} else {
		snprintf(op, sizeof(op), "?");
		snprintf(when, sizeof(when), "?");
	}
	if (a->stuck) {
		out->verdict = POLICY_STUCK;
		out->remove = true;
		snprintf(out->reason, sizeof(out->reason),
			 "last held by '%s' at %s; removed with the stuck deployment", op, when);
	} else if (a->claims) {
		out->verdict = POLICY_LIVE;
		snprintf(out->reason, sizeof(out->reason),
			 "a deployment is running; last held by '%s' at %s", op, when);
	} else {
		out->verdict = POLICY_LEFTOVER;
		snprintf(out->reason, sizeof(out->reason),
			 "left by '%s' at %s: Kudu never deletes it on Linux, harmless", op, when);
	}
}

static void judge_unfinished_record(const struct policy_assessment *a, size_t index,
				    const struct site_entry *e, struct policy_entry *out)
{
	bool temp = e->kind == KUDU_NAME_TEMP_RECORD;
	const char *state = e->status_err == 0 ? kudu_state_name(e->status.state)
					       : "status.xml unreadable";

	if (a->stuck && temp) {
		out->verdict = POLICY_STUCK;
		out->remove = true;
		snprintf(out->reason, sizeof(out->reason),
			 "temp record not finished (%s); removed with the stuck deployment", state);
	} else if (a->stuck && index == a->newest) {
		out->verdict = POLICY_STUCK;
		snprintf(out->reason, sizeof(out->reason),
			 "%s, no change watched: the stuck deployment's record%s", state,
			 temp ? "" : ", kept (Kudu marks it Failed once the lock is free)");
	} else if (a->claims && index == a->newest) {
		out->verdict = POLICY_LIVE;
		snprintf(out->reason, sizeof(out->reason), "%s, newest file time %s old", state,
			 a->age);
	} else {
		out->verdict = POLICY_LEFTOVER;
		snprintf(out->reason, sizeof(out->reason),
			 "%s record of an earlier deployment, never finished; %s", state,
			 temp ? "removed only with a stuck deployment" : "kept");
	}
}

/* The full clear (the procedure's last step) takes every record: history,
 * the active one, the unfinished ones. The archive keeps each one's Kudu
 * files first. */
static void clear_record(const struct site_entry *e, struct policy_entry *out)
{
	bool finished = policy_record_finished(e);
	const char *state = e->status_err == 0 ? kudu_state_name(e->status.state)
					       : "status.xml unreadable";

	out->verdict = finished || e->kind != KUDU_NAME_TEMP_RECORD ? POLICY_CLEARED : POLICY_STUCK;
	out->remove = true;
	snprintf(out->reason, sizeof(out->reason), "%s%s record: removed by the full clear%s", state,
		 finished ? "" : " (not finished)",
		 finished ? ", its deployment history with it" : "");
}

static void judge_record(const struct policy_assessment *a, size_t index, const struct site_entry *e,
			 struct policy_entry *out)
{
	if (e->st.type != S_IFDIR) {
		out->verdict = POLICY_FOREIGN;
		snprintf(out->reason, sizeof(out->reason),
			 "a %s with a deployment record's name: never followed or removed",
			 fmt_type_name(e->st.type));
		return;
	}
	if (a->full_clear) {
		clear_record(e, out);
		return;
	}
	if (a->snap->active_id[0] && strcmp(e->name, a->snap->active_id) == 0) {
		out->verdict = POLICY_KEPT;
		snprintf(out->reason, sizeof(out->reason), "the active deployment: never removed");
		return;
	}
	if (policy_record_finished(e)) {
		out->verdict = POLICY_KEPT;
		snprintf(out->reason, sizeof(out->reason), "%s: deployment history, never removed",
			 kudu_state_name(e->status.state));
		return;
	}
	judge_unfinished_record(a, index, e, out);
}

static void judge_pending(const struct policy_assessment *a, struct policy_entry *out)
{
	if (a->stuck) {
		out->verdict = POLICY_STUCK;
		out->remove = true;
		snprintf(out->reason, sizeof(out->reason),
			 "a deploy queued behind the stuck one; removed with it");
	} else if (a->claims) {
		out->verdict = POLICY_LIVE;
		snprintf(out->reason, sizeof(out->reason),
			 "a deploy is queued behind the running one");
	} else {
		out->verdict = POLICY_LEFTOVER;
		snprintf(out->reason, sizeof(out->reason),
			 "marks a deploy that arrived while the lock was held; Kudu never deletes it, harmless");
	}
}

/* Returns false for an entry of a kind whose shape is not Kudu's. */
static bool judge_entry_of_kind(const struct policy_assessment *a, size_t index,
				const struct site_entry *e, struct policy_entry *out)
{
	char id[KUDU_TEXT_MAX * 4];

	switch (e->kind) {
	case KUDU_NAME_LOCK_FOLDER:
		judge_lock_folder(a, e, out);
		return true;
	case KUDU_NAME_STATUS_LOCK:
	case KUDU_NAME_DEPLOYMENTS_LOCK:
	case KUDU_NAME_SSHKEY_LOCK:
	case KUDU_NAME_HOOKS_LOCK:
		judge_lock_file(a, e, out);
		return true;
	case KUDU_NAME_PENDING:
		if (e->st.type != S_IFREG)
			return false;
		judge_pending(a, out);
		return true;
	case KUDU_NAME_ACTIVE:
		if (e->st.type != S_IFREG)
			return false;
		log_escape(a->snap->active_id, id, sizeof(id));
		out->verdict = a->full_clear ? POLICY_CLEARED : POLICY_KEPT;
		out->remove = a->full_clear;
		snprintf(out->reason, sizeof(out->reason), "names the active deployment '%s': %s", id,
			 a->full_clear ? "removed by the full clear" : "never removed");
		return true;
	case KUDU_NAME_TOOLS:
	case KUDU_NAME_SETTINGS:
		/* The user's deployment script and settings, not deployment
		 * state: the full clear keeps them too. */
		out->verdict = POLICY_KEPT;
		snprintf(out->reason, sizeof(out->reason), "Kudu's %s: never removed%s",
			 kudu_name_describe(e->kind), a->full_clear ? ", not even by the full clear" : "");
		return true;
	case KUDU_NAME_RECORD:
	case KUDU_NAME_TEMP_RECORD:
		judge_record(a, index, e, out);
		return true;
	case KUDU_NAME_TRASH:
		/* The name proves nothing: only the agent's sweep removes trash,
		 * when a committed note of the archive lists it (cleanup.h). */
		out->verdict = POLICY_FOREIGN;
		snprintf(out->reason, sizeof(out->reason),
			 "not Kudu's (a %s named like lockwarden's trash): removed only by the "
			 "sweep of a committed cleanup whose archive note lists it",
			 fmt_type_name(e->st.type));
		return true;
	case KUDU_NAME_UNKNOWN:
		break;
	}
	return false;
}

static void judge_entry(const struct policy_assessment *a, size_t index, struct policy_entry *out)
{
	const struct site_entry *e = &a->snap->entries[index];

	if (judge_entry_of_kind(a, index, e, out))
		return;
	out->verdict = POLICY_FOREIGN;
	snprintf(out->reason, sizeof(out->reason), "not Kudu's (%s): never removed%s",
		 fmt_type_name(e->st.type), a->full_clear ? ", not even by the full clear" : "");
}

/* The lock folder goes last of Kudu's leftovers: while it exists Kudu
 * answers 409 to every deploy, so nothing new can start while the lock
 * files, the queued marker and the temp records go, and a cleanup abandoned
 * half-way (a sign of life) leaves the lock, never a lockless half-state.
 * The full clear's active (before the records it names) and records come
 * before the lock folder too. */
#define REMOVAL_RANK_LAST 7
static int removal_rank(const struct site_entry *e)
{
	switch (e->kind) {
	case KUDU_NAME_STATUS_LOCK: return 0;
	case KUDU_NAME_DEPLOYMENTS_LOCK: return 1;
	case KUDU_NAME_PENDING: return 2;
	case KUDU_NAME_ACTIVE: return 3;
	case KUDU_NAME_TEMP_RECORD: return 4;
	case KUDU_NAME_RECORD: return 5;
	case KUDU_NAME_LOCK_FOLDER: return 6;
	default: return REMOVAL_RANK_LAST;
	}
}

static enum policy_step plan_step(const struct policy_assessment *a,
				  const struct policy_decision *out)
{
	if (out->n_removals == 0)
		return POLICY_STEP_NONE;
	return a->full_clear ? POLICY_STEP_FULL_CLEAR : POLICY_STEP_CLEAR;
}

/* The deployment the hook is told about: the record that claims to run,
 * else the unfinished record the cleanup removes (the newest by activity),
 * so that a lock folder holding no record's name still names one. */
static void plan_deployment_id(const struct policy_assessment *a, struct policy_decision *out)
{
	const struct site_snapshot *snap = a->snap;
	size_t pick = a->newest_running ? a->newest : NO_INDEX;

	for (size_t i = 0; !a->newest_running && i < out->n_removals; i++) {
		const struct site_entry *e = &snap->entries[out->removals[i]];
		if (!policy_is_record(e) || policy_record_finished(e))
			continue;
		if (pick == NO_INDEX ||
		    policy_record_activity_ns(e) > policy_record_activity_ns(&snap->entries[pick]))
			pick = out->removals[i];
	}
	if (pick == NO_INDEX)
		return;
	const struct site_entry *e = &snap->entries[pick];
	snprintf(out->deployment_id, sizeof(out->deployment_id), "%s",
		 e->status_err == 0 && e->status.id[0] ? e->status.id : e->name);
}

void policy_plan(const struct policy_assessment *a, struct policy_decision *out)
{
	const struct site_snapshot *snap = a->snap;

	for (size_t i = 0; i < snap->n_entries; i++)
		judge_entry(a, i, &out->entries[i]);
	if (a->blocked) {
		for (size_t i = 0; i < snap->n_entries; i++)
			out->entries[i].remove = false;
	} else {
		for (int rank = 0; rank <= REMOVAL_RANK_LAST; rank++)
			for (size_t i = 0; i < snap->n_entries; i++)
				if (out->entries[i].remove && removal_rank(&snap->entries[i]) == rank)
					out->removals[out->n_removals++] = i;
	}
	/* Only a stuck deployment, which only an observing agent can find,
	 * is acted on (report never changes anything). */
	out->act = a->stuck && out->n_removals > 0;
	out->step = plan_step(a, out);
	plan_deployment_id(a, out);
}

