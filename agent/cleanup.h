/* cleanup.h - a cleanup as one transaction that can be undone until it
 * commits.
 *
 * The steps, on a worker thread (blocking):
 *  1. archive every target, each verified to be the very file judged (a
 *     target that cannot be archived stops the whole cleanup: nothing moves);
 *  2. write the note: state "moving", the token and every trash name;
 *  3. move every target aside in the policy's order, locks/deployment last
 *     (reap.h: verified, renamed, compared again through a descriptor); the
 *     claim is checked before;
 *  4. check the whole evidence once more (evidence.h), expecting exactly the
 *     names moved aside, under their trash names; and the claim again;
 *  5. COMMIT: the note says "committed" first (on disk), then what was moved
 *     is deleted (files now, folders emptied in the background unless
 *     finish_folders), and the note says "done"; or
 *     ROLL BACK: any sign of life, failure or cancel in 3-4 puts every moved
 *     entry back under its own name, last moved first (a name Kudu made
 *     again meanwhile keeps Kudu's entry; ours is kept beside it, reap.h),
 *     and the note says "rolled-back". Nothing is removed, no hook runs,
 *     and the tree is judged afresh.
 * While the lock folder exists Kudu answers 409 to every deploy, so nothing
 * new can start while the rest is moved; it moves last and, on a rollback,
 * comes back first.
 *
 * A sweep removes trash this agent can prove it made: a name whose token a
 * note of the archive records as committed ("committed" or "done") and
 * whose note lists it, read again on the worker just before. Any other name
 * with lockwarden's prefix is foreign: reported, never removed. A cleanup
 * interrupted before its commit (a crash between the moves and the commit)
 * leaves its trash under a token whose note says "moving": that trash is
 * never swept; report lists it as not Kudu's and the note names what each
 * trash name was, for a person to put back.
 */
#ifndef LOCKWARDEN_CLEANUP_H
#define LOCKWARDEN_CLEANUP_H

#include <limits.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "evidence.h"
#include "incident.h"
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
	bool sweep;               /* our own committed trash: no archive, no evidence, no hook */
	char root[PATH_MAX];
	dev_t root_dev;
	ino_t root_ino;
	struct evidence evidence;
	size_t n;
	struct reap_target *targets;
	struct reap_result *results;
	char (*what)[192];        /* each target's verdict reason, for the note; for a
				   * sweep, the session whose note lists it */
	char token[REAP_TOKEN_SIZE]; /* of this cleanup's trash names */
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
	char failed[256];         /* what else stopped it before the commit, "" when none */
	bool committed;
};

/* The job for the decision's removals, or NULL with *err 0 when there are
 * none, or -ENOMEM. */
struct cleanup_job *cleanup_prepare(const struct site_snapshot *snap,
				    const struct policy_decision *d,
				    const struct cleanup_settings *s, int *err);
/* The sweep of the snapshot's trash whose token notes records as committed,
 * or NULL (*err as above). */
struct cleanup_job *cleanup_prepare_sweep(const struct site_snapshot *snap,
					  const struct incident_notes *notes,
					  const struct cleanup_settings *s, int *err);
void cleanup_free(struct cleanup_job *job);

/* Runs the job (blocking). cancel, set from another thread, stops at the
 * next target. */
void cleanup_run(struct cleanup_job *job, atomic_bool *cancel);

struct cleanup_outcome {
	bool committed;           /* the transaction committed: the hook may run */
	bool any_removed;         /* committed, or (a sweep) trash removed */
	bool any_failed;
	bool abandoned;           /* a sign of life rolled it back */
	uint64_t failure_plan;    /* a hash of what failed, to say a repeated failure once */
	bool lock_removed;        /* the lock folder was among what went */
	unsigned n_removed;       /* Kudu entries removed (not trash swept) */
	unsigned n_kept;          /* entries kept beside a name Kudu made again */
};

/* Logs what the job did. A failure identical to last_failure (the previous
 * job's failure_plan) is logged at debug level only. */
void cleanup_log(const struct cleanup_job *job, uint64_t last_failure,
		 struct cleanup_outcome *out);

/* FNV-1a over names (and errors, when errs is not NULL). */
uint64_t cleanup_plan_hash(const char *const *names, size_t n, const int *errs);

#endif
