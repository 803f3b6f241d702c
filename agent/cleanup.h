/* cleanup.h - a cleanup as one verified transaction.
 *
 * The steps, on a worker thread (blocking):
 *  1. archive every target, each verified to be the very file judged;
 *  2. write the note saying what is about to go;
 *  3. before each target: check the whole evidence the decision rested on
 *     (evidence.h) - any sign of life abandons everything not yet removed,
 *     and the tree is judged again from the next scan;
 *  4. remove the target (reap.h: verified, renamed aside, compared again,
 *     put back if it changed); a target that changed abandons the rest too;
 *  5. complete the note with the outcome.
 * The policy orders the targets so that locks/deployment goes last: while it
 * exists Kudu answers 409 to every deploy, so nothing new can start while
 * the rest is removed.
 *
 * A sweep of lockwarden's own trash is the same job without archive or
 * evidence (the trash was judged before it was renamed).
 */
#ifndef LOCKWARDEN_CLEANUP_H
#define LOCKWARDEN_CLEANUP_H

#include <limits.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "evidence.h"
#include "policy.h"
#include "reap.h"

struct cleanup_settings {
	const char *site_root;
	const char *archive_dir;
	const char *instance;
	bool finish_folders;      /* empty folders now instead of leaving them as trash */
	/* The incident's claim (claim.h), checked before the archive and
	 * before every removal: a claim taken over stops the cleanup. */
	int claim_fd;             /* -1: none held */
	int claim_err;            /* the claim could not be made: nothing is done */
	const char *incident;
	/* Called on the worker thread right after each removal, so that the
	 * claim says what went before anything else happens. */
	void (*on_removed)(void *ctx, const char *path);
	/* Fencing: true while the claim's renewal is overdue (incident.h):
	 * no removal is started then. */
	bool (*fenced)(void *ctx);
	void *ctx;
};

struct cleanup_job {
	uv_work_t req;            /* the owner's; req.data is free for it */
	bool sweep;               /* our own trash: no archive, no evidence, no hook */
	char root[PATH_MAX];
	dev_t root_dev;
	ino_t root_ino;
	struct evidence evidence;
	size_t n;
	struct reap_target *targets;
	struct reap_result *results;
	char (*what)[192];        /* each target's verdict reason, for the note */
	char reason[320];
	char deployment_id[KUDU_TEXT_MAX];
	enum policy_step step;    /* the note's step and the hook's LOCKWARDEN_STEP */
	char archive_dir[PATH_MAX];
	char instance[32];
	char incident[64];
	int claim_fd;
	int claim_err;
	void (*on_removed)(void *ctx, const char *path);
	bool (*fenced)(void *ctx);
	void *ctx;
	int64_t started_ns;
	uint64_t plan;            /* a hash of the targets' names */
	bool has_lock;            /* a target is the lock folder, with this info.lock */
	struct kudu_info_lock lock;

	/* Outcome. */
	char archive_error[256];  /* why nothing could be archived, "" when fine */
	char archive_path[PATH_MAX]; /* the session folder, "" when none */
	char abandoned[256];      /* the sign of life that stopped it, "" when none */
};

/* The job for the decision's removals of one kind (sweep or not), or NULL
 * with *err 0 when there are none, or -ENOMEM. */
struct cleanup_job *cleanup_prepare(const struct site_snapshot *snap,
				    const struct policy_decision *d, bool sweep,
				    const struct cleanup_settings *s, int *err);
void cleanup_free(struct cleanup_job *job);

/* Runs the job (blocking). cancel, set from another thread, stops at the
 * next target. */
void cleanup_run(struct cleanup_job *job, atomic_bool *cancel);

struct cleanup_outcome {
	bool any_removed;
	bool any_failed;
	bool abandoned;
	uint64_t failure_plan;    /* a hash of what failed, to say a repeated failure once */
	bool lock_removed;        /* the lock folder was among what went */
	unsigned n_removed;       /* Kudu entries removed (not trash swept) */
	unsigned n_kept;          /* entries kept: one changed, or the cleanup was abandoned */
};

/* Logs what the job did. A failure identical to last_failure (the previous
 * job's failure_plan) is logged at debug level only. */
void cleanup_log(const struct cleanup_job *job, uint64_t last_failure,
		 struct cleanup_outcome *out);

/* FNV-1a over names (and errors, when errs is not NULL). */
uint64_t cleanup_plan_hash(const char *const *names, size_t n, const int *errs);

#endif
