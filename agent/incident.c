/* incident.c - this agent's part in the site-wide claim (see incident.h;
 * the protocol's steps are claim.h's, and test/model/claim_model.py's). */
#include "incident.h"
#include "container_of.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "archdir.h"
#include "clock.h"
#include "log.h"

/* How long a listing that found no claim name is believed while the
 * folder's stat stays the same (incident_look_prepare). */
#define ABSENT_TRUSTED_MS (60u * 60u * 1000u)

static uint64_t mono_ms(void)
{
	return uv_hrtime() / 1000000u;
}

int incident_open_archive(const char *dir, bool make)
{
	/* The one place the archive folder is opened for the claim: level by
	 * level, following nothing (archdir.h). */
	int fd = -1;
	int r = archdir_open(dir, make, &fd);
	return r < 0 ? r : fd;
}

/* ---- the claim's operations, on the claim's own thread --------------------- */

static const char *const op_what[] = {
	[INCIDENT_OP_CLAIM] = "claim",
	[INCIDENT_OP_TAKE_OVER] = "claim takeover",
	[INCIDENT_OP_RENEW] = "claim renewal",
	[INCIDENT_OP_HOOK_MARK] = "hook mark",
	[INCIDENT_OP_HOOK_END] = "hook mark",
	[INCIDENT_OP_RELEASE] = "claim release",
	[INCIDENT_OP_LEAVE] = "claim release",
};

/* A write of the held claim (renewal, claim.intent, a removal noted); the
 * lease counts from when it began, and only when it came back saying the
 * claim is still ours. Called with inc->lock held. */
static int write_locked(struct incident *inc, const char *dir)
{
	uint64_t began_ms = mono_ms();
	int dfd = incident_open_archive(dir, false);
	if (dfd < 0)
		return dfd;
	inc->mine.expires_ns = clock_add_ns(clock_wall_ns(),
					    (int64_t)inc->expiry_ms * CLOCK_NS_PER_MS);
	int r = claim_write(dfd, &inc->held, &inc->mine);
	close(dfd);
	if (r == 0)
		atomic_store(&inc->lease_ms, began_ms);
	return r;
}

static void hook_mark(struct incident *inc, struct incident_job *job)
{
	int dfd = incident_open_archive(job->dir, false);
	if (dfd < 0) {
		job->result = dfd;
		return;
	}
	/* Fenced: an owner that has not heard back from its share lately
	 * takes no step; the check right before is the same as a cleanup's. */
	uv_mutex_lock(&inc->lock);
	int r = incident_fenced(inc) ? -ETIMEDOUT : claim_check(dfd, &inc->held);
	uv_mutex_unlock(&inc->lock);
	if (r == 0) {
		r = claim_mark_hook(dfd, inc->mine.incident, inc->instance, &inc->mark_fd);
		if (r == -EEXIST) {
			claim_read_mark(dfd, inc->mine.incident, &job->mark);
			r = 1;
		}
	}
	close(dfd);
	job->result = r;
}

static void job_work(struct incident_job *job)
{
	struct incident *inc = job->inc;
	int dfd;

	switch (job->op) {
	case INCIDENT_OP_CLAIM:
	case INCIDENT_OP_TAKE_OVER:
		uv_mutex_lock(&inc->lock);
		if (inc->held.fd >= 0) {
			/* claim.intent: "began" before a cleanup removes anything */
			inc->mine.began = true;
			job->result = write_locked(inc, job->dir);
			uv_mutex_unlock(&inc->lock);
			break;
		}
		uv_mutex_unlock(&inc->lock);
		dfd = incident_open_archive(job->dir, true);
		if (dfd < 0) {
			job->result = dfd;
			break;
		}
		uint64_t began_ms = mono_ms();
		job->result = claim_take(dfd, job->top_seen, &job->c, &job->held, &job->inherited);
		if (job->result == 0)
			atomic_store(&inc->lease_ms, began_ms);
		close(dfd);
		break;
	case INCIDENT_OP_RENEW:
		uv_mutex_lock(&inc->lock);
		job->result = write_locked(inc, job->dir);
		uv_mutex_unlock(&inc->lock);
		break;
	case INCIDENT_OP_HOOK_MARK:
		hook_mark(inc, job);
		break;
	case INCIDENT_OP_HOOK_END:
		job->result = claim_mark_end(inc->mark_fd, inc->mine.incident, inc->instance,
					     inc->hook_exit);
		inc->mark_fd = -1;
		break;
	case INCIDENT_OP_RELEASE:
		uv_mutex_lock(&inc->lock);
		dfd = incident_open_archive(job->dir, false);
		if (dfd >= 0) {
			job->result = claim_release(dfd, &inc->held, &inc->mine);
			close(dfd);
		} else {
			claim_leave(&inc->held);
		}
		uv_mutex_unlock(&inc->lock);
		break;
	case INCIDENT_OP_LEAVE:
		uv_mutex_lock(&inc->lock);
		claim_leave(&inc->held);
		uv_mutex_unlock(&inc->lock);
		break;
	}
}

/* The claim's own thread: renewals never wait behind a scan or a removal
 * blocked on the share in libuv's pool. */
static void lane_main(void *arg)
{
	struct incident *inc = arg;
	uv_mutex_lock(&inc->lock);
	while (!inc->lane_quit) {
		struct incident_job *job = inc->lane_job;
		if (!job) {
			uv_cond_wait(&inc->lane_cond, &inc->lock);
			continue;
		}
		inc->lane_job = NULL;
		uv_mutex_unlock(&inc->lock);
		job_work(job);
		uv_mutex_lock(&inc->lock);
		inc->lane_done = job;
		if (!inc->closed)
			uv_async_send(&inc->lane_async);
	}
	uv_mutex_unlock(&inc->lock);
}

static void job_after(struct incident *inc, struct incident_job *job);

static void on_lane_done(uv_async_t *h)
{
	struct incident *inc = container_of(h, struct incident, lane_async);
	uv_mutex_lock(&inc->lock);
	struct incident_job *job = inc->lane_done;
	inc->lane_done = NULL;
	uv_mutex_unlock(&inc->lock);
	if (job)
		job_after(inc, job);
}

static int queue_job(struct incident *inc, enum incident_op op)
{
	if (inc->job) {
		inc->wanted |= 1u << op;
		return -EBUSY;
	}
	if (!inc->lane_started) {
		int r = uv_thread_create(&inc->lane, lane_main, inc);
		if (r < 0) {
			log_error("cannot start the claim's thread: %s", uv_strerror(r));
			return r;
		}
		inc->lane_started = true;
	}
	struct incident_job *job = calloc(1, sizeof(*job));
	if (!job) {
		log_error("out of memory starting a %s", op_what[op]);
		return -ENOMEM;
	}
	job->inc = inc;
	job->op = op;
	job->held.fd = -1;
	job->top_seen = inc->seen_known && inc->seen.top ? inc->seen.top : 0;
	job->c = inc->mine;
	inc->expiry_ms = inc->cfg->site_claim_expiry;
	snprintf(job->dir, sizeof(job->dir), "%s", inc->cfg->archive_dir);
	inc->wanted &= ~(1u << op);
	inc->job = job;
	uv_update_time(inc->loop);
	inc->job_started_ms = uv_now(inc->loop);
	uv_mutex_lock(&inc->lock);
	inc->lane_job = job;
	uv_cond_signal(&inc->lane_cond);
	uv_mutex_unlock(&inc->lock);
	if (inc->queued)
		inc->queued(inc);
	return 0;
}

bool incident_busy(const struct incident *inc)
{
	return inc->job != NULL;
}

uint64_t incident_busy_since_ms(const struct incident *inc)
{
	return inc->job ? inc->job_started_ms : UINT64_MAX;
}

const char *incident_busy_what(const struct incident *inc)
{
	return inc->job ? op_what[inc->job->op] : "claim";
}

static void on_renew_timer(uv_timer_t *t)
{
	struct incident *inc = container_of(t, struct incident, renew_timer);
	if (incident_held(inc) && !inc->stopping)
		queue_job(inc, INCIDENT_OP_RENEW); /* or after the one in flight */
}

static void start_renewing(struct incident *inc)
{
	/* Four renewals per expiry: fencing stops the owner at half of it. */
	uint64_t every = inc->cfg->site_claim_expiry / 4;
	uv_timer_start(&inc->renew_timer, on_renew_timer, every ? every : 1, every ? every : 1);
}

static void set_held(struct incident *inc, const struct claim_held *h)
{
	uv_mutex_lock(&inc->lock);
	if (h)
		inc->held = *h;
	else
		inc->held.fd = -1;
	inc->fd = inc->held.fd;
	uv_mutex_unlock(&inc->lock);
}

/* Remembers an incident seen in a claim (or held), to read its hook mark. */
static struct incident_watch *watch_incident(struct incident *inc, const char *id,
					     const char *owner)
{
	for (unsigned i = 0; i < INCIDENT_WATCHED; i++)
		if (strcmp(inc->watched[i].id, id) == 0) {
			snprintf(inc->watched[i].owner, sizeof(inc->watched[i].owner), "%s", owner);
			return &inc->watched[i];
		}
	struct incident_watch *w = &inc->watched[inc->watched_next];
	inc->watched_next = (inc->watched_next + 1) % INCIDENT_WATCHED;
	memset(w, 0, sizeof(*w));
	snprintf(w->id, sizeof(w->id), "%s", id);
	snprintf(w->owner, sizeof(w->owner), "%s", owner);
	return w;
}

static bool is_tied(const struct incident *inc, const char *id)
{
	for (unsigned i = 0; i < 16; i++)
		if (id[0] && strcmp(inc->tied[i], id) == 0)
			return true;
	return false;
}

static void tie(struct incident *inc, const char *id)
{
	if (!id[0] || is_tied(inc, id))
		return;
	snprintf(inc->tied[inc->tied_next], sizeof(inc->tied[0]), "%s", id);
	inc->tied_next = (inc->tied_next + 1) % 16;
}

/* A restart that may have been lost: said, counted, never silent. */
static void say_restart_lost(struct incident *inc, const char *incident, const char *instance,
			     const char *why)
{
	inc->restarts_lost++;
	log_event(LOG_LEVEL_WARNING, "restart_lost",
		  LOG_FIELDS(LOG_STR("incident", incident), LOG_STR("owner", instance),
			     LOG_STR("why", why)),
		  "incident %s: its restart may have been lost: %s", incident, why);
}

static void now_held(struct incident *inc, const struct claim_held *h)
{
	inc->expiry_ms = inc->cfg->site_claim_expiry;
	inc->renew_err = 0;
	inc->lost = false;
	set_held(inc, h);
	inc->hook_queued = inc->hook_marked = inc->hook_settled = inc->hook_ran = false;
	inc->seen_known = false;
	tie(inc, inc->mine.incident);
	watch_incident(inc, inc->mine.incident, inc->instance);
	start_renewing(inc);
}

static void lost_it(struct incident *inc, int r)
{
	log_warning("lost the claim on incident %s: %s", inc->mine.incident,
		    r == -ESTALE ? "another instance took it over" : strerror(-r));
	uv_timer_stop(&inc->renew_timer);
	inc->lost = true;
	uv_mutex_lock(&inc->lock);
	claim_leave(&inc->held);
	inc->fd = -1;
	uv_mutex_unlock(&inc->lock);
}

static int claim_done(struct incident *inc, struct incident_job *job)
{
	int r = job->result;
	if (incident_held(inc)) {
		if (r == 0)
			return 0;
		lost_it(inc, r);
		return 1;
	}
	if (r == -EEXIST || r == -EAGAIN) {
		inc->seen_known = false; /* the next scan shows whose it is */
		inc->absent.known = false;
		return 1;
	}
	if (r < 0)
		return r;
	inc->mine = job->c;
	now_held(inc, &job->held);
	if (inc->stopping) {
		inc->wanted |= 1u << INCIDENT_OP_RELEASE;
		return 1;
	}
	log_info("claimed incident %s (%s/%s-%llu)%s", inc->mine.incident, job->dir, CLAIM_NAME,
		 (unsigned long long)job->held.n, job->inherited ? ", taken over from a dead owner" : "");
	return 0;
}

static int take_over_done(struct incident *inc, struct incident_job *job)
{
	const struct claim_view *v = &inc->seen;
	uint64_t now = uv_now(inc->loop);
	int r = job->result;

	if (r < 0) {
		inc->seen_known = false;
		inc->absent.known = false;
		if (r != -EAGAIN && r != -EEXIST)
			log_warning("cannot take over the claim in %s: %s", job->dir, strerror(-r));
		return r;
	}
	inc->mine = job->c;
	now_held(inc, &job->held);
	inc->inherited_began = job->inherited && inc->mine.began;
	if (job->inherited)
		log_warning("took over incident %s from instance %s: its claim did not change for "
			    "%llu s by this agent's clock (%u removal%s done, cleanup %s); judging the "
			    "tree afresh", inc->mine.incident, v->err == 0 ? v->c.instance : "?",
			    (unsigned long long)((now - inc->seen_since_ms) / 1000), inc->mine.n_removed,
			    inc->mine.n_removed == 1 ? "" : "s", inc->mine.began ? "begun" : "not begun");
	else
		log_warning("replaced the claim %s-%llu (%s) after it did not change for %llu s; "
			    "judging the tree afresh", CLAIM_NAME, (unsigned long long)job->top_seen,
			    claim_describe(v), (unsigned long long)((now - inc->seen_since_ms) / 1000));
	/* The share's word alone starts no hook: a cleanup the claim says
	 * began is restarted only when this agent saw the incident claimed
	 * while it judged the site stuck, or saw the site stuck within the
	 * bound an incident may stay claimed. */
	uint64_t bound = inc->cfg->site_claim_expiry * INCIDENT_CLAIMED_MAX_EXPIRIES +
			 inc->cfg->hook_timeout;
	bool saw = is_tied(inc, inc->mine.incident) ||
		   (inc->stuck_seen_ms && now - inc->stuck_seen_ms <= bound);
	if (inc->inherited_began && !saw) {
		inc->inherited_began = false;
		say_restart_lost(inc, inc->mine.incident, v->err == 0 ? v->c.instance : "?",
				 "taken over after removals this agent never saw the site need; "
				 "no hook from it");
	}
	if (inc->stopping)
		inc->wanted |= 1u << INCIDENT_OP_LEAVE;
	return 0;
}

static void run_wanted(struct incident *inc)
{
	static const enum incident_op order[] = { INCIDENT_OP_HOOK_MARK, INCIDENT_OP_HOOK_END,
						  INCIDENT_OP_LEAVE, INCIDENT_OP_RELEASE,
						  INCIDENT_OP_RENEW };
	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]) && !inc->job; i++) {
		if (!(inc->wanted & (1u << order[i])))
			continue;
		inc->wanted &= ~(1u << order[i]);
		if (!incident_held(inc) && order[i] != INCIDENT_OP_HOOK_END) {
			if (order[i] == INCIDENT_OP_HOOK_MARK)
				inc->done(inc, INCIDENT_OP_HOOK_MARK, -ESTALE);
			continue;
		}
		queue_job(inc, order[i]);
	}
}

static void job_after(struct incident *inc, struct incident_job *job)
{
	int result = 0;

	inc->job = NULL;
	uv_update_time(inc->loop);
	switch (job->op) {
	case INCIDENT_OP_CLAIM:
		result = claim_done(inc, job);
		break;
	case INCIDENT_OP_TAKE_OVER:
		result = take_over_done(inc, job);
		break;
	case INCIDENT_OP_RENEW:
		if (job->result < 0 && job->result != inc->renew_err && job->result != -ESTALE)
			log_warning("claim renewal for incident %s: %s", inc->mine.incident,
				    strerror(-job->result));
		inc->renew_err = job->result;
		if (job->result == -ESTALE)
			lost_it(inc, job->result);
		break;
	case INCIDENT_OP_HOOK_MARK:
		result = job->result;
		if (result == 0) {
			inc->hook_marked = inc->hook_settled = true;
		} else if (result == 1) {
			inc->hook_settled = true;
			const struct claim_mark *m = &job->mark;
			if (!m->ended && strcmp(m->instance, inc->instance) != 0)
				say_restart_lost(inc, inc->mine.incident, m->err == 0 ? m->instance : "?",
						 "its hook was marked started by an instance that no "
						 "longer holds the incident, and no end was recorded");
			for (unsigned i = 0; i < INCIDENT_WATCHED; i++)
				if (strcmp(inc->watched[i].id, inc->mine.incident) == 0)
					inc->watched[i].done = true;
		}
		break;
	case INCIDENT_OP_HOOK_END:
		break;
	case INCIDENT_OP_RELEASE:
	case INCIDENT_OP_LEAVE:
		set_held(inc, NULL);
		break;
	}
	enum incident_op op = job->op;
	free(job);
	run_wanted(inc);
	inc->done(inc, op, result);
}

/* ---- on the loop ------------------------------------------------------------ */

int incident_init(struct incident *inc, uv_loop_t *loop, const struct config *cfg,
		  const char *instance, incident_done_cb done)
{
	memset(inc, 0, sizeof(*inc));
	inc->loop = loop;
	inc->cfg = cfg;
	inc->fd = -1;
	inc->held.fd = -1;
	inc->mark_fd = -1;
	inc->done = done;
	snprintf(inc->instance, sizeof(inc->instance), "%s", instance);
	int r = uv_mutex_init(&inc->lock);
	if (r == 0)
		r = uv_cond_init(&inc->lane_cond);
	if (r == 0)
		r = uv_timer_init(loop, &inc->renew_timer);
	if (r == 0)
		r = uv_async_init(loop, &inc->lane_async, on_lane_done);
	return r;
}

bool incident_held(const struct incident *inc)
{
	return inc->fd >= 0;
}

bool incident_fenced(void *ctx)
{
	struct incident *inc = ctx;
	uint64_t since = atomic_load(&inc->lease_ms);
	return inc->expiry_ms && mono_ms() - since >= inc->expiry_ms / 2;
}

void incident_look_prepare(const struct incident *inc, struct incident_look *look)
{
	memset(look, 0, sizeof(*look));
	look->hint = inc->seen_known ? inc->seen.top : 0;
	/* A claim name made since changes the folder's stat; the hour only
	 * bounds a share that would not show it. */
	if (inc->absent.known && mono_ms() - inc->absent_since_ms < ABSENT_TRUSTED_MS)
		look->absent = inc->absent;
	for (unsigned i = 0; i < INCIDENT_WATCHED; i++)
		if (inc->watched[i].id[0] && !inc->watched[i].done)
			snprintf(look->mark_of[look->n_marks++], CLAIM_ID_MAX, "%s", inc->watched[i].id);
}

void incident_look_run(const char *archive_dir, struct incident_look *look)
{
	int dfd = incident_open_archive(archive_dir, false);
	if (dfd < 0) {
		look->claim.err = dfd == -ENOENT ? -ENOENT : dfd;
		look->n_marks = 0;
		return;
	}
	claim_look(dfd, look->hint, &look->absent, &look->claim);
	for (unsigned i = 0; i < look->n_marks; i++)
		claim_read_mark(dfd, look->mark_of[i], &look->marks[i]);
	close(dfd);
}

/* hook mark without an end whose maker is not the live holder of its
 * incident: the restart may have been lost (the model's marker_lost). */
static void check_marks(struct incident *inc, const struct incident_look *look, uint64_t now)
{
	const struct claim_view *top = &inc->seen;
	bool top_live = now - inc->seen_since_ms < inc->cfg->site_claim_expiry;
	for (unsigned i = 0; i < look->n_marks; i++) {
		const struct claim_mark *m = &look->marks[i];
		struct incident_watch *w = NULL;
		for (unsigned k = 0; k < INCIDENT_WATCHED; k++)
			if (strcmp(inc->watched[k].id, look->mark_of[i]) == 0)
				w = &inc->watched[k];
		if (!w || w->done || m->err == -ENOENT || (m->err < 0 && m->err != -EINVAL))
			continue;
		if (m->ended) {
			w->done = true;
			continue;
		}
		if (incident_held(inc) && strcmp(inc->mine.incident, w->id) == 0)
			continue; /* ours: we end it, or we found it (HOOK_MARK) */
		/* Empty: made, not yet written; empty again a scan later, its
		 * maker stopped right after hook.mark, whoever holds it now. */
		if (m->err == -EINVAL && !w->empty_seen) {
			w->empty_seen = true;
			continue;
		}
		const char *maker = m->err == 0 ? m->instance : "?";
		bool holder_live = top->err == 0 && !top->c.released &&
				   strcmp(top->c.incident, w->id) == 0 &&
				   strcmp(top->c.instance, maker) == 0 && top_live;
		if (holder_live)
			continue;
		w->done = true;
		say_restart_lost(inc, w->id, maker,
				 "its hook was marked started, no end was recorded, and its maker no "
				 "longer holds the incident");
	}
}

void incident_observe(struct incident *inc, const struct incident_look *look, uint64_t now)
{
	const struct claim_view *v = &look->claim;

	/* A listing that found no name (the first, or the one the hour
	 * asked for) starts the hour again; one the look did not need keeps
	 * it. Without the second case the hour, once past, would never be
	 * renewed and every look after it would list the folder. */
	uint64_t mono = mono_ms();
	if (look->absent.known &&
	    (!inc->absent.known || mono - inc->absent_since_ms >= ABSENT_TRUSTED_MS))
		inc->absent_since_ms = mono;
	inc->absent = look->absent;
	bool same = inc->seen_known && inc->seen.err == v->err && inc->seen.hash == v->hash &&
		    inc->seen.top == v->top;

	if (!same) {
		/* A change, however small, restarts the wait: only the very
		 * same content, watched by our own clock, can expire. */
		inc->seen = *v;
		inc->seen_since_ms = now;
		inc->seen_known = true;
	}
	bool others = v->err != -ENOENT && !(v->err == 0 && v->c.released) &&
		      !(incident_held(inc) && v->err == 0 && v->c.n == inc->held.n);
	if (!others)
		inc->others_since_ms = 0;
	else if (!inc->others_since_ms)
		inc->others_since_ms = now;
	if (v->err == 0)
		watch_incident(inc, v->c.incident, v->c.instance);
	if (same && v->err < 0 && v->err != -ENOENT && inc->said_hostile != v->hash) {
		inc->said_hostile = v->hash;
		log_warning("claim %s-%llu is %s: not trusted; waited out for [site] claim_expiry, "
			    "then superseded", CLAIM_NAME, (unsigned long long)v->top,
			    claim_describe(v));
	}
	check_marks(inc, look, now);
}

void incident_saw_stuck(struct incident *inc)
{
	inc->stuck_seen = true;
	inc->stuck_seen_ms = uv_now(inc->loop);
	if (inc->seen_known && inc->seen.err == 0 && !inc->seen.c.released)
		tie(inc, inc->seen.c.incident);
}

void incident_saw_running(struct incident *inc)
{
	inc->stuck_seen = true;
}

static void new_claim(struct incident *inc, uint64_t fingerprint)
{
	char stamp[32];
	time_t t = (time_t)(clock_wall_ns() / CLOCK_NS_PER_S);
	struct tm tm;
	if (!gmtime_r(&t, &tm) || strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm) == 0)
		snprintf(stamp, sizeof(stamp), "00000000T000000Z");
	memset(&inc->mine, 0, sizeof(inc->mine));
	snprintf(inc->mine.instance, sizeof(inc->mine.instance), "%s", inc->instance);
	/* The pid and a count tell apart two incidents of one instance in the
	 * same second (a restarted agent, or two quick incidents). */
	snprintf(inc->mine.incident, sizeof(inc->mine.incident), "%s-%s-%ld.%u", stamp,
		 inc->instance, (long)getpid() % 100000, ++inc->claims_made);
	inc->mine.fingerprint = fingerprint;
	inc->hook_queued = inc->hook_marked = inc->hook_settled = inc->hook_ran = false;
	inc->inherited_began = false;
}

bool incident_take_over_expired(struct incident *inc, uint64_t now)
{
	const struct claim_view *v = &inc->seen;
	if (incident_held(inc) || inc->job || inc->stopping || !inc->seen_known ||
	    v->err == -ENOENT || (v->err == 0 && v->c.released))
		return false;
	uint64_t expiry = inc->cfg->site_claim_expiry;
	bool expired = now - inc->seen_since_ms >= expiry;
	/* A claim that keeps changing is never "unchanged": a forged one
	 * rewritten for ever would block every cleanup. Past the bound, the
	 * next name is made whatever it says. */
	uint64_t bound = expiry * INCIDENT_CLAIMED_MAX_EXPIRIES + inc->cfg->hook_timeout;
	bool too_long = inc->others_since_ms && now - inc->others_since_ms >= bound;
	if (!expired && !too_long)
		return false;
	if (too_long && !expired)
		log_warning("incident %s has been claimed by others for %llu s, over %llu s "
			    "(10 x claim_expiry + [hook] timeout), its claim still changing: "
			    "taking it over", v->err == 0 ? v->c.incident : "?",
			    (unsigned long long)((now - inc->others_since_ms) / 1000),
			    (unsigned long long)(bound / 1000));
	inc->others_since_ms = 0;
	new_claim(inc, v->err == 0 ? v->c.fingerprint : 0);
	return queue_job(inc, INCIDENT_OP_TAKE_OVER) == 0;
}

bool incident_unclaimed(const struct incident *inc)
{
	return inc->seen_known && (inc->seen.err == -ENOENT ||
				   (inc->seen.err == 0 && inc->seen.c.released));
}

enum incident_turn incident_claim(struct incident *inc, uint64_t fingerprint)
{
	if (inc->job || inc->stopping)
		return INCIDENT_BUSY;
	if (incident_held(inc))
		return queue_job(inc, INCIDENT_OP_CLAIM) == 0 ? INCIDENT_ASKED : INCIDENT_BUSY;
	if (inc->seen_known && !incident_unclaimed(inc)) {
		if (inc->seen.err == 0 && strcmp(inc->said_other, inc->seen.c.incident) != 0) {
			snprintf(inc->said_other, sizeof(inc->said_other), "%s", inc->seen.c.incident);
			log_info("incident %s is instance %s's; leaving it to it", inc->seen.c.incident,
				 inc->seen.c.instance);
		}
		return INCIDENT_OTHERS;
	}
	new_claim(inc, fingerprint);
	/* claim.write with "began": a cleanup follows at once (claim.intent). */
	inc->mine.began = true;
	return queue_job(inc, INCIDENT_OP_CLAIM) == 0 ? INCIDENT_ASKED : INCIDENT_BUSY;
}

void incident_removed(struct incident *inc, const char *path)
{
	uv_mutex_lock(&inc->lock);
	if (inc->held.fd >= 0) {
		claim_add_removed(&inc->mine, path);
		write_locked(inc, inc->cfg->archive_dir);
	}
	uv_mutex_unlock(&inc->lock);
}

bool incident_hook_due(const struct incident *inc)
{
	return incident_held(inc) && inc->inherited_began && !inc->hook_settled;
}

int incident_hook_starting(struct incident *inc)
{
	/* Lost between the cleanup's commit and its hook (stalled past the
	 * expiry while noting its removals): no hook.mark without the claim
	 * (the model's claim.check(lost) goes back to idle), or the taker and
	 * this agent both restart the site. */
	if (!incident_held(inc))
		return inc->lost ? -ESTALE : 0;
	/* Marked by us and not yet run (a start that failed): ours to retry.
	 * Run once, or marked by another: never again. */
	if (inc->hook_settled)
		return inc->hook_marked && !inc->hook_ran ? 0 : 1;
	int r = queue_job(inc, INCIDENT_OP_HOOK_MARK);
	return r == 0 || r == -EBUSY ? INCIDENT_HOOK_ASKED : r;
}

void incident_hook_ended(struct incident *inc, int exit_status)
{
	if (inc->mark_fd < 0 || !inc->hook_marked)
		return;
	inc->hook_ran = true;
	inc->hook_exit = exit_status;
	queue_job(inc, INCIDENT_OP_HOOK_END);
}

static void release(struct incident *inc, enum incident_op op)
{
	uv_timer_stop(&inc->renew_timer);
	queue_job(inc, op); /* or wanted, after the one in flight */
}

void incident_settle(struct incident *inc)
{
	if (!incident_held(inc) || (inc->wanted & (1u << INCIDENT_OP_RELEASE)) ||
	    (inc->job && inc->job->op == INCIDENT_OP_RELEASE))
		return;
	if (inc->mine.n_removed)
		log_info("incident %s cleared (%u removal%s); claim released", inc->mine.incident,
			 inc->mine.n_removed, inc->mine.n_removed == 1 ? "" : "s");
	inc->stuck_seen = false;
	release(inc, INCIDENT_OP_RELEASE);
}

static void on_closed(uv_handle_t *h)
{
}

bool incident_stop(struct incident *inc, bool hook_still_due)
{
	if (inc->closed)
		return false;
	if (!inc->stopping) {
		inc->stopping = true;
		inc->wanted &= ~(1u << INCIDENT_OP_RENEW);
		if (incident_held(inc) && hook_still_due) {
			log_warning("stopping with incident %s's hook not run: its claim is left to "
				    "expire, for another instance to finish it", inc->mine.incident);
			inc->wanted &= ~(1u << INCIDENT_OP_RELEASE);
			release(inc, INCIDENT_OP_LEAVE);
		} else if (incident_held(inc)) {
			incident_settle(inc);
		}
	}
	if (inc->job)
		return true; /* its done() calls back */
	uv_mutex_lock(&inc->lock);
	inc->closed = true;
	inc->lane_quit = true;
	uv_cond_signal(&inc->lane_cond);
	uv_mutex_unlock(&inc->lock);
	uv_close((uv_handle_t *)&inc->renew_timer, on_closed);
	uv_close((uv_handle_t *)&inc->lane_async, on_closed);
	return false;
}

void incident_free(struct incident *inc)
{
	/* Joined only when it has no job: one blocked on the share is left to
	 * the process's exit (agent.c's exit timer). */
	if (inc->lane_started && inc->closed && !inc->job)
		uv_thread_join(&inc->lane);
	if (inc->mark_fd >= 0)
		close(inc->mark_fd);
	uv_cond_destroy(&inc->lane_cond);
	uv_mutex_destroy(&inc->lock);
}
