/* incident.c - this agent's part in the site-wide claim (see incident.h). */
#include "incident.h"
#include "container_of.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "isotime.h"
#include "kudu.h"
#include "log.h"

static void renew_locked(struct incident *inc, uint64_t expiry_ms)
{
	if (inc->fd < 0)
		return;
	inc->mine.seq++;
	inc->mine.expires_ns = clock_add_ns(clock_wall_ns(), (int64_t)expiry_ms * CLOCK_NS_PER_MS);
	int r = claim_still_ours(inc->path, inc->fd);
	if (r == 0)
		r = claim_rewrite(inc->fd, &inc->mine);
	/* Said once: renewals go on every claim_expiry / 4, and a share that
	 * is gone or a claim taken over stays so. The cleanup finds out on its
	 * own before its next removal (claim_still_ours). */
	if (r < 0 && r != inc->renew_err)
		log_warning("claim %s for incident %s: %s", inc->path,
			    inc->mine.incident,
			    r == -ESTALE ? "taken over by another instance" : strerror(-r));
	inc->renew_err = r;
}

/* ---- the claim's operations, off the loop --------------------------------- */

static const char *const op_what[] = {
	[INCIDENT_OP_CLAIM] = "claim",
	[INCIDENT_OP_TAKE_OVER] = "claim takeover",
	[INCIDENT_OP_RENEW] = "claim renewal",
	[INCIDENT_OP_HOOK_MARK] = "claim update",
	[INCIDENT_OP_RELEASE] = "claim release",
	[INCIDENT_OP_LEAVE] = "claim release",
};

static void set_fd(struct incident *inc, int fd)
{
	uv_mutex_lock(&inc->lock);
	inc->fd = fd;
	uv_mutex_unlock(&inc->lock);
}

/* Written into the claim right before the spawn: an owner that dies after
 * this never has its hook repeated by the instance that takes over. */
static int mark_hook_started(struct incident *inc)
{
	int r = claim_still_ours(inc->path, inc->fd);
	if (r < 0)
		return r;
	uv_mutex_lock(&inc->lock);
	inc->mine.hook_started = true;
	inc->mine.seq++;
	r = claim_rewrite(inc->fd, &inc->mine);
	if (r < 0)
		inc->mine.hook_started = false;
	uv_mutex_unlock(&inc->lock);
	return r;
}

/* On a worker thread. The loop thread changes nothing of what this reads
 * while the job is in flight: only one runs at a time, and fd, mine and
 * path change on the loop only between jobs. */
static void job_work(uv_work_t *req)
{
	struct incident_job *job = container_of(req, struct incident_job, req);
	struct incident *inc = job->inc;

	switch (job->op) {
	case INCIDENT_OP_CLAIM:
		if (inc->fd >= 0) {
			job->result = claim_still_ours(inc->path, inc->fd);
			if (job->result < 0)
				close(inc->fd); /* lost: set to -1 by the loop */
		} else {
			job->result = claim_create(job->path, &inc->mine, &job->fd);
		}
		break;
	case INCIDENT_OP_TAKE_OVER:
		job->result = claim_replace(job->path, &job->seen, inc->instance, &inc->mine,
					    &job->fd);
		break;
	case INCIDENT_OP_RENEW:
		uv_mutex_lock(&inc->lock);
		renew_locked(inc, job->expiry_ms);
		uv_mutex_unlock(&inc->lock);
		break;
	case INCIDENT_OP_HOOK_MARK:
		job->result = mark_hook_started(inc);
		break;
	case INCIDENT_OP_RELEASE:
		claim_release(inc->path, inc->fd);
		break;
	case INCIDENT_OP_LEAVE:
		close(inc->fd);
		break;
	}
}

static void job_after(uv_work_t *req, int status);

static int queue_job(struct incident *inc, enum incident_op op, const struct claim_view *seen)
{
	if (inc->job) {
		inc->wanted |= 1u << op;
		return -EBUSY;
	}
	struct incident_job *job = calloc(1, sizeof(*job));
	if (!job) {
		log_error("out of memory starting a %s", op_what[op]);
		return -ENOMEM;
	}
	job->inc = inc;
	job->op = op;
	job->fd = -1;
	job->expiry_ms = inc->cfg->site_claim_expiry;
	inc->expiry_ms = job->expiry_ms;
	if (seen)
		job->seen = *seen;
	claim_path_for(inc->cfg->archive_dir, job->path, sizeof(job->path));
	int r = uv_queue_work(inc->loop, &job->req, job_work, job_after);
	if (r < 0) {
		log_error("cannot start a %s: %s", op_what[op], uv_strerror(r));
		free(job);
		return r;
	}
	inc->wanted &= ~(1u << op);
	inc->job = job;
	uv_update_time(inc->loop);
	inc->job_started_ms = uv_now(inc->loop);
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
	/* A renewal still blocked on the share is not queued again behind
	 * itself: four per expiry leave room for a late one. */
	if (!inc->job && inc->fd >= 0 && !inc->stopping)
		queue_job(inc, INCIDENT_OP_RENEW, NULL);
}

static void start_renewing(struct incident *inc)
{
	/* Four renewals per expiry: a late one or two never lose the claim. */
	uint64_t every = inc->cfg->site_claim_expiry / 4;
	uv_timer_start(&inc->renew_timer, on_renew_timer, every ? every : 1, every ? every : 1);
}

static void now_held(struct incident *inc, int fd)
{
	claim_path_for(inc->cfg->archive_dir, inc->path, sizeof(inc->path));
	inc->expiry_ms = inc->cfg->site_claim_expiry;
	inc->renew_err = 0;
	set_fd(inc, fd);
	start_renewing(inc);
}

static int claim_done(struct incident *inc, struct incident_job *job)
{
	int r = job->result;
	if (inc->fd >= 0) {
		if (r == 0)
			return 0;
		log_warning("lost the claim on incident %s: %s", inc->mine.incident,
			    r == -ESTALE ? "another instance took it over" : strerror(-r));
		uv_timer_stop(&inc->renew_timer);
		set_fd(inc, -1);
		return 1;
	}
	if (r == -EEXIST) {
		inc->seen_known = false; /* the next scan shows whose it is */
		return 1;
	}
	if (r < 0)
		return r;
	if (inc->stopping) {
		/* Made while the agent began to stop: nothing will use it. */
		set_fd(inc, job->fd);
		inc->wanted |= 1u << INCIDENT_OP_RELEASE;
		return 1;
	}
	now_held(inc, job->fd);
	log_info("claimed incident %s (%s)", inc->mine.incident, inc->path);
	return 0;
}

static int take_over_done(struct incident *inc, struct incident_job *job)
{
	const struct claim_view *v = &job->seen;
	uint64_t now = uv_now(inc->loop);
	int r = job->result;

	inc->seen_known = false;
	if (r < 0) {
		if (r != -EAGAIN && r != -ENOENT && r != -EEXIST)
			log_warning("cannot replace the expired claim %s: %s", job->path, strerror(-r));
		return r;
	}
	now_held(inc, job->fd);
	inc->hook_queued = false;
	if (v->err == 0)
		log_warning("took over incident %s from instance %s: its claim did not change for "
			    "%llu s by this agent's clock (%u removal%s done, hook %s); judging the "
			    "tree afresh", inc->mine.incident, v->c.instance,
			    (unsigned long long)((now - inc->seen_since_ms) / 1000), v->c.n_removed,
			    v->c.n_removed == 1 ? "" : "s", v->c.hook_started ? "started" : "not started");
	else
		log_warning("replaced %s (%s) after it did not change for %llu s; judging the tree "
			    "afresh", job->path, claim_describe(v),
			    (unsigned long long)((now - inc->seen_since_ms) / 1000));
	/* Taken over while stopping: what the incident still needs (its hook,
	 * perhaps) is left, with the claim, for another instance. */
	if (inc->stopping)
		inc->wanted |= 1u << INCIDENT_OP_LEAVE;
	return 0;
}

/* The next operation asked for while one was in flight. */
static void run_wanted(struct incident *inc)
{
	static const enum incident_op order[] = { INCIDENT_OP_HOOK_MARK, INCIDENT_OP_LEAVE,
						  INCIDENT_OP_RELEASE, INCIDENT_OP_RENEW };
	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]) && !inc->job; i++) {
		if (!(inc->wanted & (1u << order[i])))
			continue;
		inc->wanted &= ~(1u << order[i]);
		if (inc->fd < 0) {
			/* Nothing held any more (lost meanwhile). */
			if (order[i] == INCIDENT_OP_HOOK_MARK)
				inc->done(inc, INCIDENT_OP_HOOK_MARK, -ESTALE);
			continue;
		}
		if (order[i] == INCIDENT_OP_RELEASE || order[i] == INCIDENT_OP_LEAVE)
			uv_timer_stop(&inc->renew_timer);
		queue_job(inc, order[i], NULL);
	}
}

static void job_after(uv_work_t *req, int status)
{
	struct incident_job *job = container_of(req, struct incident_job, req);
	struct incident *inc = job->inc;
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
	case INCIDENT_OP_HOOK_MARK:
		result = job->result;
		if (result == 0) {
			inc->hook_marked = true;
			snprintf(inc->hook_seen, sizeof(inc->hook_seen), "%s", inc->mine.incident);
		}
		break;
	case INCIDENT_OP_RELEASE:
	case INCIDENT_OP_LEAVE:
		set_fd(inc, -1);
		break;
	case INCIDENT_OP_RENEW:
		break;
	}
	(void)status; /* never cancelled */
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
	inc->done = done;
	snprintf(inc->instance, sizeof(inc->instance), "%s", instance);
	int r = uv_mutex_init(&inc->lock);
	if (r == 0)
		r = uv_timer_init(loop, &inc->renew_timer);
	return r;
}

bool incident_held(const struct incident *inc)
{
	return inc->fd >= 0;
}

bool incident_observe(struct incident *inc, const struct claim_view *v, uint64_t now)
{
	bool same = inc->seen_known && inc->seen.err == v->err && inc->seen.hash == v->hash;

	if (!same) {
		/* A change, however small, restarts the wait: only the very
		 * same content, watched by our own clock, can expire. */
		inc->seen = *v;
		inc->seen_since_ms = now;
		inc->seen_known = true;
	}
	/* A torn read (the owner renewing while we read) does not parse
	 * either; only the same bad content on two looks is reported. */
	if (same && claim_view_hostile(v) && inc->said_hostile != v->hash) {
		inc->said_hostile = v->hash;
		char path[PATH_MAX];
		claim_path_for(inc->cfg->archive_dir, path, sizeof(path));
		log_warning("claim %s is %s: not trusted; waited out for [site] claim_expiry, "
			    "then replaced", path, claim_describe(v));
	}
	if (v->err == 0 && v->c.hook_started && strcmp(v->c.incident, inc->hook_seen) != 0) {
		snprintf(inc->hook_seen, sizeof(inc->hook_seen), "%s", v->c.incident);
		return !incident_held(inc);
	}
	return false;
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
	inc->mine.expires_ns = clock_add_ns(clock_wall_ns(),
					    (int64_t)inc->cfg->site_claim_expiry * CLOCK_NS_PER_MS);
	inc->hook_queued = false;
	inc->hook_marked = false;
}

bool incident_take_over_expired(struct incident *inc, uint64_t now)
{
	const struct claim_view *v = &inc->seen;
	if (incident_held(inc) || inc->job || inc->stopping || !inc->seen_known ||
	    v->err == -ENOENT || v->err == -ESTALE)
		return false;
	if (now - inc->seen_since_ms < inc->cfg->site_claim_expiry)
		return false;
	/* The owner stopped renewing (or the file was never a claim): the
	 * incident is ours now. What it had done goes on with us; whatever it
	 * had judged does not - the tree is judged again from the next scan. */
	new_claim(inc, v->err == 0 ? v->c.fingerprint : 0);
	if (v->err == 0) {
		snprintf(inc->mine.incident, sizeof(inc->mine.incident), "%s", v->c.incident);
		memcpy(inc->mine.removed, v->c.removed, sizeof(inc->mine.removed));
		inc->mine.n_removed = v->c.n_removed;
		inc->mine.hook_started = v->c.hook_started;
	}
	return queue_job(inc, INCIDENT_OP_TAKE_OVER, v) == 0;
}

enum incident_turn incident_claim(struct incident *inc, uint64_t fingerprint)
{
	if (inc->job || inc->stopping)
		return INCIDENT_BUSY;
	if (incident_held(inc))
		return queue_job(inc, INCIDENT_OP_CLAIM, NULL) == 0 ? INCIDENT_ASKED : INCIDENT_BUSY;
	if (inc->seen_known && inc->seen.err != -ENOENT) {
		if (inc->seen.err == 0 && strcmp(inc->said_other, inc->seen.c.incident) != 0) {
			snprintf(inc->said_other, sizeof(inc->said_other), "%s", inc->seen.c.incident);
			log_info("incident %s is instance %s's; leaving it to it", inc->seen.c.incident,
				 inc->seen.c.instance);
		}
		return INCIDENT_OTHERS;
	}
	new_claim(inc, fingerprint);
	return queue_job(inc, INCIDENT_OP_CLAIM, NULL) == 0 ? INCIDENT_ASKED : INCIDENT_BUSY;
}

void incident_removed(struct incident *inc, const char *path)
{
	uv_mutex_lock(&inc->lock);
	if (incident_held(inc)) {
		claim_add_removed(&inc->mine, path);
		renew_locked(inc, inc->expiry_ms);
	}
	uv_mutex_unlock(&inc->lock);
}

int incident_hook_starting(struct incident *inc)
{
	if (!incident_held(inc))
		return 0;
	/* Started by a dead owner: never again. Marked by us before a start
	 * that failed (out of descriptors): the retry is still ours to make. */
	if (inc->mine.hook_started)
		return inc->hook_marked ? 0 : 1;
	int r = queue_job(inc, INCIDENT_OP_HOOK_MARK, NULL);
	return r == 0 || r == -EBUSY ? INCIDENT_HOOK_ASKED : r;
}

static void release(struct incident *inc, enum incident_op op)
{
	uv_timer_stop(&inc->renew_timer);
	queue_job(inc, op, NULL); /* or wanted, after the one in flight */
}

void incident_settle(struct incident *inc)
{
	if (!incident_held(inc) || (inc->wanted & (1u << INCIDENT_OP_RELEASE)) ||
	    (inc->job && inc->job->op == INCIDENT_OP_RELEASE))
		return;
	if (inc->mine.n_removed)
		log_info("incident %s cleared (%u removal%s); claim released", inc->mine.incident,
			 inc->mine.n_removed, inc->mine.n_removed == 1 ? "" : "s");
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
		/* A renewal not yet begun is not needed any more. */
		inc->wanted &= ~(1u << INCIDENT_OP_RENEW);
		if (incident_held(inc) && hook_still_due) {
			/* Left for another instance: it takes over after the
			 * expiry and runs the hook this agent could not. */
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
	inc->closed = true;
	uv_close((uv_handle_t *)&inc->renew_timer, on_closed);
	return false;
}

void incident_free(struct incident *inc)
{
	uv_mutex_destroy(&inc->lock);
}
