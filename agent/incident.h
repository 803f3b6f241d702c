/* incident.h - this agent's part in the site-wide claim (claim.h): what it
 * saw of the claim by its own clock, the claim it holds, its renewal, the
 * hook mark, and when the incident is over.
 *
 * Life of an incident, on the owner:
 *   claim (claim.create .. claim.check, "began" written: claim.intent) ->
 *   cleanups, each removal noted in the claim, each step after claim.check ->
 *   site scope: hook.mark (exclusive create) before the spawn, hook.end
 *   after -> claim.release.
 * On the others: the top claim is watched; unchanged for [site]
 * claim_expiry by this agent's monotonic clock means its owner is gone, and
 * this agent makes the next name (a takeover), inherits the incident and
 * judges the tree afresh. Claimed by others for longer than
 * INCIDENT_CLAIMED_MAX (however its content changes: a forged claim can be
 * rewritten forever) is taken over the same way, with a warning.
 *
 * Fencing: an owner whose last renewal began claim_expiry / 2 ago or more
 * (it has not come back, or failed) takes no new step - no removal
 * (incident_fenced, checked by the cleanup), no hook mark - until a renewal
 * comes back and says the claim is still its own. A taker waits a whole
 * claim_expiry from its first look at the unchanged claim.
 *
 * A restart that may have been lost is never silent: a hook mark without
 * "ended" whose maker no longer holds the incident (another instance took
 * it over, or the claim was released, or it did not change for the
 * expiry), or a taken-over incident whose cleanup began but which this
 * agent never saw stuck, gives a warning, the json event "restart_lost", the
 * metric lockwarden_restarts_maybe_lost_total, on every instance that sees
 * it; `report` prints a line for each such mark.
 *
 * The decisions are made on the loop thread; the claim's I/O runs on the
 * claim's own thread (not libuv's pool, which scans and removals can fill
 * while the share hangs), one operation at a time, each answered through
 * done(). The loop never waits for the share.
 */
#ifndef LOCKWARDEN_INCIDENT_H
#define LOCKWARDEN_INCIDENT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "claim.h"
#include "config.h"
#include "site.h"

/* How long one incident may stay claimed by others before this agent takes
 * it over whatever the claim says: longer than any real incident (its
 * cleanups and a hook of [hook] timeout), so only a dead, stuck or forged
 * claim is ever taken this way. */
#define INCIDENT_CLAIMED_MAX_EXPIRIES 10

enum incident_turn {
	INCIDENT_ASKED,       /* the claim is being made or checked: done() answers */
	INCIDENT_OTHERS,      /* another instance holds it (or it is being waited out) */
	INCIDENT_BUSY,        /* another claim operation is in flight: ask again later */
};

/* The claim's operations, run on the claim's thread. */
enum incident_op {
	INCIDENT_OP_CLAIM,     /* make the claim, or note "began" in the held one */
	INCIDENT_OP_TAKE_OVER, /* make the next name over a claim seen expired */
	INCIDENT_OP_RENEW,     /* every claim_expiry / 4 */
	INCIDENT_OP_HOOK_MARK, /* hook.mark, before the spawn */
	INCIDENT_OP_HOOK_END,  /* hook.end, after the hook */
	INCIDENT_OP_RELEASE,   /* the incident is over: "released" */
	INCIDENT_OP_LEAVE,     /* stopping before the hook ran: left to expire */
};

/* What done() is told, by operation:
 *   CLAIM      0 the claim is ours; 1 it is another instance's; a negative
 *              errno when it could not be made (the cleanup says why);
 *   TAKE_OVER  0 taken over (judge the tree afresh), else a negative errno;
 *   HOOK_MARK  0 start the hook; 1 marked before (not started again); a
 *              negative errno when the claim is not ours or is fenced;
 *   the others 0. */
struct incident;
typedef void (*incident_done_cb)(struct incident *inc, enum incident_op op, int result);

struct incident_job {
	struct incident *inc;
	enum incident_op op;
	uint64_t top_seen;            /* CLAIM, TAKE_OVER: the top seen */
	char dir[PATH_MAX];           /* the archive folder */
	struct claim c;               /* CLAIM, TAKE_OVER: what a new incident says */
	struct claim_held held;       /* CLAIM, TAKE_OVER: the claim made */
	bool inherited;
	struct claim_mark mark;       /* HOOK_MARK: the mark found (-EEXIST) */
	int result;
};

/* What one scan looked at, beside the tree (the scan's worker): the top
 * claim and the hook marks of the incidents this agent watches. */
#define INCIDENT_WATCHED 16
struct incident_look {
	uint64_t hint;
	struct claim_absent absent;   /* in and out: the listing that found no name */
	struct claim_view claim;
	unsigned n_marks;
	char mark_of[INCIDENT_WATCHED][CLAIM_ID_MAX];
	struct claim_mark marks[INCIDENT_WATCHED];
};

/* An incident this agent saw in a claim, or held. */
struct incident_watch {
	char id[CLAIM_ID_MAX];
	char owner[32];
	bool done;                    /* its restart is settled (or said lost) */
	bool empty_seen;              /* its mark was seen empty once (made, not written) */
};

struct incident {
	uv_timer_t renew_timer;
	uv_async_t lane_async;        /* the claim's thread says a job is done */
	uv_thread_t lane;
	uv_cond_t lane_cond;
	bool lane_started, lane_quit;
	struct incident_job *lane_job, *lane_done;
	/* The lane's queue, held, mine and the writes of the claim: a cleanup
	 * notes its removals from its worker thread while the lane runs. The
	 * loop thread takes it only for the queue, never around I/O. */
	uv_mutex_t lock;
	uv_loop_t *loop;
	const struct config *cfg;     /* the owner's, current after a reload */
	char instance[32];

	/* The top claim as this agent last saw it, and since when (monotonic). */
	struct claim_view seen;
	uint64_t seen_since_ms;
	struct claim_absent absent;   /* no claim name since this folder stat (claim.h) */
	uint64_t absent_since_ms;     /* when that was first known: trusted an hour */
	bool seen_known;
	uint64_t others_since_ms;     /* claimed by others without a break since (0: not) */
	uint64_t said_hostile;
	char said_other[CLAIM_ID_MAX];
	struct incident_watch watched[INCIDENT_WATCHED];
	unsigned watched_next;
	bool stuck_seen;              /* running or stuck in a scan since the last incident learnt */
	uint64_t stuck_seen_ms;       /* monotonic: the last scan that found it stuck (0: never) */
	char learnt[16][CLAIM_ID_MAX]; /* incidents learnt from the archive (a ring) */
	unsigned learnt_next;
	char tied[16][CLAIM_ID_MAX];  /* incidents tied to what this agent saw */
	unsigned tied_next;
	uint64_t restarts_lost;       /* the metric */

	/* The claim this agent holds (held.fd < 0: none; fd mirrors it). */
	struct claim_held held;
	int fd;
	struct claim mine;
	atomic_uint_fast64_t lease_ms; /* monotonic: when the last renewal that came back began */
	bool inherited_began;         /* taken over after a cleanup began */
	bool hook_queued;             /* a site hook is queued for it */
	bool hook_marked;             /* this agent made its hook mark */
	bool hook_settled;            /* its mark exists (ours or another's) */
	bool hook_ran;                /* ours ran to its end: one restart per incident */
	bool lost;                    /* the last claim held was taken over (claim.check
				       * said lost): its hook is the taker's to mark */
	int mark_fd;
	int hook_exit;
	unsigned claims_made;
	int renew_err;
	uint64_t expiry_ms;
	bool closed;

	struct incident_job *job;     /* in flight (one at a time) */
	uint64_t job_started_ms;
	unsigned wanted;              /* asked meanwhile (bits of 1 << enum incident_op) */
	bool stopping;
	incident_done_cb done;
	void (*queued)(struct incident *inc);
};

int incident_init(struct incident *inc, uv_loop_t *loop, const struct config *cfg,
		  const char *instance, incident_done_cb done);

/* The archive folder, opened (made first when make is true) without
 * following a link: the one place the claim's folder is opened. */
int incident_open_archive(const char *dir, bool make);

bool incident_busy(const struct incident *inc);
uint64_t incident_busy_since_ms(const struct incident *inc);
const char *incident_busy_what(const struct incident *inc);

/* Before a scan (loop): what its worker should look at. */
void incident_look_prepare(const struct incident *inc, struct incident_look *look);
/* On the scan's worker (blocking). */
void incident_look_run(const char *archive_dir, struct incident_look *look);
/* Folds one look into what was seen (loop). Says each restart that may
 * have been lost (once). */
void incident_observe(struct incident *inc, const struct incident_look *look, uint64_t now_ms);
/* The last decision found the site stuck: what is claimed now is tied to
 * something this agent saw. */
void incident_saw_stuck(struct incident *inc);
/* The last decision saw a deployment claim to run: an incident cleared
 * after it (a note) may be one this agent saw begin. */
void incident_saw_running(struct incident *inc);

/* The top claim seen has been unchanged for claim_expiry (or hostile and
 * waited out, or claimed by others too long): take it over. Returns true
 * when a takeover was started (done() answers). */
bool incident_take_over_expired(struct incident *inc, uint64_t now_ms);

enum incident_turn incident_claim(struct incident *inc, uint64_t fingerprint);
/* The last look found no incident held (no claim, or the top released). */
bool incident_unclaimed(const struct incident *inc);
bool incident_held(const struct incident *inc);
/* Fencing (any thread; ctx is the incident): true while the held claim's
 * last renewal is overdue: no new step. */
bool incident_fenced(void *ctx);
/* A cleanup of this incident removed path (any thread). */
void incident_removed(struct incident *inc, const char *path);
/* The site-scope hook is due for the held incident (taken over after a
 * cleanup began, tied, and not marked). */
bool incident_hook_due(const struct incident *inc);

/* Right before the site-scope hook starts: 0 to start it, 1 when its mark
 * exists (not repeated), -ESTALE when the claim was lost meanwhile (the
 * taker inherited "began": the restart is its to mark, or to say lost), or
 * INCIDENT_HOOK_ASKED: the mark is being made, and done() answers with
 * INCIDENT_OP_HOOK_MARK. */
#define INCIDENT_HOOK_ASKED 2
int incident_hook_starting(struct incident *inc);
/* The hook started under our mark is over. */
void incident_hook_ended(struct incident *inc, int exit_status);

void incident_settle(struct incident *inc);
bool incident_stop(struct incident *inc, bool hook_still_due);
void incident_free(struct incident *inc);

/* ---- what the archive tells every instance --------------------------------- */

/* A session of the archive, as its note tells it. */
struct incident_note {
	char session[96];
	char incident[64];        /* "" in notes of older versions */
	char instance[32];
	bool done;                /* committed: what it moved aside is no longer Kudu's */
	bool final;               /* done or rolled back: the note will not change */
	char step[16];            /* policy_step_name's word, "" in older notes */
	bool complete;            /* done, and everything it named was removed */
	bool tied;                /* its incident is one this agent saw (incident_tie_notes) */
	char token[17];           /* its trash names' token, "" in older notes */
	/* When its note.json is looked at again (incident_read_notes): */
	struct site_stat note_st; /* its lstat when it was read (present false: none) */
	bool ours;                /* it read as a note of ours */
	uint64_t checked_ms;      /* monotonic time of the last look */
	uint64_t recheck_ms;      /* how long the next look may wait */
};

struct incident_notes {
	struct incident_note *v;  /* sorted by session name */
	size_t n;
	bool read;                /* the archive could be listed */
	/* The archive folder when it was listed: an unchanged folder is not
	 * listed again (as scan.h does for locks/ and deployments/). */
	struct site_stat dir_st;
	uint64_t dir_seen_ms;     /* when that lstat was first seen */
	bool dir_settled;         /* listed SCAN_SETTLE_MS after it was */
	uint64_t listed_ms;       /* the last time all was read again (every
				   * INCIDENT_NOTES_FULL_EVERY_MS) */
};

/* The newest sessions by name: a real archive holds those of [archive]
 * keep (30 days), a few per incident. Every scan goes through each one kept,
 * so the bound is also the work a flood of session-shaped folders causes. */
#define INCIDENT_NOTES_MAX 256

/* On the scan's worker (blocking): lists the archive's sessions (the newest
 * INCIDENT_NOTES_MAX by name) and reads the note of each one prev did not
 * already show final. prev is only read. Memory and calls are bounded
 * whatever the archive folder holds: the listing keeps at most
 * 2 x INCIDENT_NOTES_MAX names while it reads; the folder is listed again
 * only when its lstat changed (or has not settled); a final note is never
 * read again, another one only when its lstat changed, and a session
 * whose note is absent or not ours is looked at less and less often while
 * nothing changes (up to INCIDENT_NOTES_RECHECK_MAX_MS). Every
 * INCIDENT_NOTES_FULL_EVERY_MS everything is listed and read again (a
 * safety net, as scan.h's; rarer, as a listing of the archive folder costs
 * what anyone put there). */
#define INCIDENT_NOTES_RECHECK_MAX_MS (5 * 60 * 1000ULL)
#define INCIDENT_NOTES_FULL_EVERY_MS (60 * 60 * 1000ULL)
void incident_read_notes(const char *dir, const struct incident_notes *prev,
			 struct incident_notes *out);
void incident_notes_free(struct incident_notes *n);

/* Marks the notes whose incident this agent saw (held, took over, or
 * learnt after seeing the site stuck) or that this instance wrote (the
 * ladder outlives the agent's restart); report, which sees nothing over
 * time, trusts them all (inc NULL). Only tied notes count for the ladder. */
void incident_tie_notes(const struct incident *inc, struct incident_notes *notes);

/* The ladder's memory, from the share: the time (by its session's name)
 * of the newest cleanup that took the usual step or the last one and
 * removed everything it named, of an incident other than exclude (the one
 * being worked on: its own cleanups are not a recurrence). A removal of an
 * expired lock alone, an interrupted or partial cleanup and older notes
 * without a step do not count. Pure. Returns false when there is none. */
bool incident_last_clear(const struct incident_notes *notes, const char *exclude,
			 int64_t *when_ns);
/* The hook's step word for an incident, from its newest note ("clear"
 * when no note says full-clear). */
const char *incident_hook_step(const struct incident_notes *notes, const char *incident);

/* On the loop: the incidents that fresh shows cleared and prev did not,
 * each once (an incident cleared in two sessions, after a takeover, counts
 * once). The first list this agent reads only sets what is known: an
 * incident cleared before it started needs nothing from it. Calls found()
 * for each. */
void incident_learn(struct incident *inc, const struct incident_notes *prev,
		    const struct incident_notes *fresh, bool first,
		    void (*found)(struct incident *inc, const struct incident_note *note));

#endif
