/* incident.h - this agent's part in the site-wide claim (claim.h): what it
 * saw of the claim by its own clock, the claim it holds, its renewal, and
 * when the incident is over.
 *
 * Life of an incident, on the owner:
 *   acquire (O_EXCL) -> cleanups, each removal added to the claim ->
 *   site scope: the hook, the claim saying "started" before the spawn ->
 *   released. Every instance learns that an incident was cleared from the
 *   archive's notes (note.json names the incident), which outlive the
 *   claim: instance-scope hooks and the site's cooldown come from there.
 * On the others: the claim's content is watched; unchanged for
 * [site] claim_expiry by this agent's monotonic clock means its owner is
 * gone, and the claim is replaced (claim_replace) by this agent, which then
 * judges the tree afresh and finishes what the incident still needs.
 *
 * The decisions are made on the loop thread; the claim's I/O (a few bytes
 * on the share, but a share that stops answering blocks every call on it)
 * runs on libuv's worker threads, one operation at a time, each answered
 * through done(). The loop never waits for the share.
 */
#ifndef LOCKWARDEN_INCIDENT_H
#define LOCKWARDEN_INCIDENT_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "claim.h"
#include "config.h"

enum incident_turn {
	INCIDENT_ASKED,       /* the claim is being made or checked: done() answers */
	INCIDENT_OTHERS,      /* another instance holds it (or it is being waited out) */
	INCIDENT_BUSY,        /* another claim operation is in flight: ask again later */
};

/* The claim's operations, run off the loop. */
enum incident_op {
	INCIDENT_OP_CLAIM,     /* make the claim, or check the held one is still ours */
	INCIDENT_OP_TAKE_OVER, /* replace a claim seen expired */
	INCIDENT_OP_RENEW,     /* every claim_expiry / 4 */
	INCIDENT_OP_HOOK_MARK, /* "hook started", written before the spawn */
	INCIDENT_OP_RELEASE,   /* the incident is over: the claim goes */
	INCIDENT_OP_LEAVE,     /* stopping before the hook ran: left to expire */
};

/* What done() is told, by operation:
 *   CLAIM      0 the claim is ours; 1 it is another instance's; a negative
 *              errno when it could not be made (the cleanup says why);
 *   TAKE_OVER  0 taken over (judge the tree afresh), else a negative errno;
 *   HOOK_MARK  0 start the hook; a negative errno when the claim is no
 *              longer ours;
 *   the others 0. */
struct incident;
typedef void (*incident_done_cb)(struct incident *inc, enum incident_op op, int result);

struct incident_job {
	uv_work_t req;
	struct incident *inc;
	enum incident_op op;
	uint64_t expiry_ms;           /* claim_expiry when it was queued */
	struct claim_view seen;       /* TAKE_OVER: what was seen expire */
	char path[PATH_MAX];
	int fd;                       /* the claim made (CLAIM, TAKE_OVER) */
	int result;
};

struct incident {
	uv_timer_t renew_timer;
	/* mine, fd and the writes of the claim: a cleanup records its removals
	 * from its worker thread while a claim operation runs on another. The
	 * loop thread never takes it (a writer may be blocked on the share). */
	uv_mutex_t lock;
	uv_loop_t *loop;
	const struct config *cfg;     /* the owner's, current after a reload */
	char instance[32];
	char path[PATH_MAX];          /* where the held claim is */

	/* The claim as this agent last saw it, and since when (monotonic). */
	struct claim_view seen;
	uint64_t seen_since_ms;
	bool seen_known;
	uint64_t said_hostile;        /* the hostile claim already reported */
	char said_other[64];          /* the other instance's incident already logged */
	char hook_seen[64];           /* the incident whose site hook start was seen */
	char learnt[16][64];          /* incidents learnt from the archive (a ring) */
	unsigned learnt_next;

	/* The claim this agent holds. */
	int fd;                       /* -1 when none */
	struct claim mine;
	bool hook_queued;             /* a site hook is queued for it */
	bool hook_marked;             /* this agent said "started" in the claim */
	unsigned claims_made;         /* for the incident ids */
	int renew_err;                /* the last renewal's failure, said once */
	uint64_t expiry_ms;           /* claim_expiry, for renewals off the loop */
	bool closed;

	/* The claim operation in flight (one at a time), and those asked for
	 * meanwhile, run in turn after it (bits of 1 << enum incident_op). */
	struct incident_job *job;
	uint64_t job_started_ms;      /* monotonic, when it was queued */
	unsigned wanted;
	bool stopping;                /* incident_stop: nothing new but the release */
	incident_done_cb done;
	/* Called when an operation was queued (NULL: nobody asks), so that
	 * the owner can time it. */
	void (*queued)(struct incident *inc);
};

int incident_init(struct incident *inc, uv_loop_t *loop, const struct config *cfg,
		  const char *instance, incident_done_cb done);

/* A claim operation is in flight; since when (monotonic ms), and what it is
 * in words ("claim renewal"), for the hang warning. */
bool incident_busy(const struct incident *inc);
uint64_t incident_busy_since_ms(const struct incident *inc);
const char *incident_busy_what(const struct incident *inc);

/* Folds one look at the claim into what was seen. Returns true when it
 * shows a site-scope hook started by another instance for an incident not
 * seen before (the site's cooldown starts now, for this agent). */
bool incident_observe(struct incident *inc, const struct claim_view *v, uint64_t now_ms);

/* The claim seen has been unchanged for claim_expiry (or is hostile and
 * has been waited out): replace it. Returns true when a takeover was
 * started (done() answers). */
bool incident_take_over_expired(struct incident *inc, uint64_t now_ms);

/* Before a cleanup: checks the held claim, or makes it (INCIDENT_ASKED:
 * done() answers with INCIDENT_OP_CLAIM); INCIDENT_OTHERS when the last
 * scan saw another instance's. A new claim's incident id is in mine at
 * once. */
enum incident_turn incident_claim(struct incident *inc, uint64_t fingerprint);

bool incident_held(const struct incident *inc);

/* A cleanup of this incident removed path (any thread). */
void incident_removed(struct incident *inc, const char *path);

/* Right before the site-scope hook starts: 0 to start it, 1 when it was
 * already started for this incident (by a dead owner: not repeated), or
 * INCIDENT_HOOK_ASKED: "started" is being written into the claim, and
 * done() answers with INCIDENT_OP_HOOK_MARK. */
#define INCIDENT_HOOK_ASKED 2
int incident_hook_starting(struct incident *inc);

/* Nothing left to remove and no hook due: the incident is over, the
 * claim goes (off the loop). */
void incident_settle(struct incident *inc);

/* At shutdown: releases the claim unless the incident still needs its
 * site-scope hook (then another instance takes over after the expiry).
 * Returns true while a claim operation is still in flight: done() comes,
 * and the caller calls again. Once it returns false the handles are
 * closing. */
bool incident_stop(struct incident *inc, bool hook_still_due);
/* After the loop ended. */
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
	char token[17];           /* its trash names' token, "" in older notes */
};

struct incident_notes {
	struct incident_note *v;  /* sorted by session name */
	size_t n;
	bool read;                /* the archive could be listed */
};

#define INCIDENT_NOTES_MAX 1024

/* On the scan's worker (blocking): lists the archive's sessions (the newest
 * INCIDENT_NOTES_MAX by name) and reads the note of each one prev did not
 * already show done. prev is only read. */
void incident_read_notes(const char *dir, const struct incident_notes *prev,
			 struct incident_notes *out);
void incident_notes_free(struct incident_notes *n);

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
