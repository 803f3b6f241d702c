/* incident.c - this agent's part in the site-wide claim (see incident.h). */
#include "incident.h"
#include "container_of.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "archive.h"
#include "clock.h"
#include "isotime.h"
#include "kudu.h"
#include "log.h"

static void renew_locked(struct incident *inc);

static void renew(struct incident *inc)
{
	uv_mutex_lock(&inc->lock);
	renew_locked(inc);
	uv_mutex_unlock(&inc->lock);
}

static void renew_locked(struct incident *inc)
{
	if (inc->fd < 0)
		return;
	inc->mine.seq++;
	inc->mine.expires_ns = clock_add_ns(clock_wall_ns(),
					    (int64_t)inc->cfg->site_claim_expiry * CLOCK_NS_PER_MS);
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

static void on_renew_timer(uv_timer_t *t)
{
	renew(container_of(t, struct incident, renew_timer));
}

static void start_renewing(struct incident *inc)
{
	/* Four renewals per expiry: a late one or two never lose the claim. */
	uint64_t every = inc->cfg->site_claim_expiry / 4;
	uv_timer_start(&inc->renew_timer, on_renew_timer, every ? every : 1, every ? every : 1);
}

int incident_init(struct incident *inc, uv_loop_t *loop, const struct config *cfg,
		  const char *instance)
{
	memset(inc, 0, sizeof(*inc));
	inc->loop = loop;
	inc->cfg = cfg;
	inc->fd = -1;
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

static void now_held(struct incident *inc, int fd)
{
	inc->fd = fd;
	inc->renew_err = 0;
	claim_path_for(inc->cfg->archive_dir, inc->path, sizeof(inc->path));
	start_renewing(inc);
}

bool incident_take_over_expired(struct incident *inc, uint64_t now)
{
	const struct claim_view *v = &inc->seen;
	if (incident_held(inc) || !inc->seen_known || v->err == -ENOENT || v->err == -ESTALE)
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
	int fd = -1;
	char path[PATH_MAX];
	claim_path_for(inc->cfg->archive_dir, path, sizeof(path));
	int r = claim_replace(path, v, inc->instance, &inc->mine, &fd);
	if (r < 0) {
		if (r != -EAGAIN && r != -ENOENT && r != -EEXIST)
			log_warning("cannot replace the expired claim %s: %s", path, strerror(-r));
		inc->seen_known = false;
		return false;
	}
	now_held(inc, fd);
	inc->hook_queued = false;
	if (v->err == 0)
		log_warning("took over incident %s from instance %s: its claim did not change for "
			    "%llu s by this agent's clock (%u removal%s done, hook %s); judging the "
			    "tree afresh", inc->mine.incident, v->c.instance,
			    (unsigned long long)((now - inc->seen_since_ms) / 1000), v->c.n_removed,
			    v->c.n_removed == 1 ? "" : "s", v->c.hook_started ? "started" : "not started");
	else
		log_warning("replaced %s (%s) after it did not change for %llu s; judging the tree "
			    "afresh", path, claim_describe(v),
			    (unsigned long long)((now - inc->seen_since_ms) / 1000));
	inc->seen_known = false;
	return true;
}

enum incident_turn incident_claim(struct incident *inc, uint64_t fingerprint, int *err)
{
	*err = 0;
	if (incident_held(inc)) {
		int r = claim_still_ours(inc->path, inc->fd);
		if (r == 0)
			return INCIDENT_OURS;
		log_warning("lost the claim on incident %s: %s", inc->mine.incident,
			    r == -ESTALE ? "another instance took it over" : strerror(-r));
		uv_timer_stop(&inc->renew_timer);
		close(inc->fd);
		inc->fd = -1;
		return INCIDENT_OTHERS;
	}
	if (inc->seen_known && inc->seen.err != -ENOENT) {
		if (inc->seen.err == 0 && strcmp(inc->said_other, inc->seen.c.incident) != 0) {
			snprintf(inc->said_other, sizeof(inc->said_other), "%s", inc->seen.c.incident);
			log_info("incident %s is instance %s's; leaving it to it", inc->seen.c.incident,
				 inc->seen.c.instance);
		}
		return INCIDENT_OTHERS;
	}
	new_claim(inc, fingerprint);
	int fd = -1;
	char path[PATH_MAX];
	claim_path_for(inc->cfg->archive_dir, path, sizeof(path));
	int r = claim_create(path, &inc->mine, &fd);
	if (r == -EEXIST) {
		inc->seen_known = false; /* the next scan shows whose it is */
		return INCIDENT_OTHERS;
	}
	if (r < 0) {
		*err = r;
		return INCIDENT_NO_CLAIM;
	}
	now_held(inc, fd);
	log_info("claimed incident %s (%s)", inc->mine.incident, inc->path);
	return INCIDENT_OURS;
}

void incident_removed(struct incident *inc, const char *path)
{
	uv_mutex_lock(&inc->lock);
	if (incident_held(inc)) {
		claim_add_removed(&inc->mine, path);
		renew_locked(inc);
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
	int r = claim_still_ours(inc->path, inc->fd);
	if (r < 0)
		return r;
	uv_mutex_lock(&inc->lock);
	/* Said on the share before the spawn: an owner that dies after this
	 * line never has its hook repeated by the instance that takes over. */
	inc->mine.hook_started = true;
	inc->mine.seq++;
	r = claim_rewrite(inc->fd, &inc->mine);
	if (r < 0)
		inc->mine.hook_started = false;
	uv_mutex_unlock(&inc->lock);
	if (r < 0)
		return r;
	inc->hook_marked = true;
	snprintf(inc->hook_seen, sizeof(inc->hook_seen), "%s", inc->mine.incident);
	return 0;
}

static void release(struct incident *inc)
{
	uv_timer_stop(&inc->renew_timer);
	claim_release(inc->path, inc->fd);
	inc->fd = -1;
}

void incident_settle(struct incident *inc)
{
	if (!incident_held(inc))
		return;
	if (inc->mine.n_removed)
		log_info("incident %s cleared (%u removal%s); claim released", inc->mine.incident,
			 inc->mine.n_removed, inc->mine.n_removed == 1 ? "" : "s");
	release(inc);
}

static void on_closed(uv_handle_t *h)
{
}

void incident_close(struct incident *inc, bool hook_still_due)
{
	if (inc->closed)
		return;
	inc->closed = true;
	if (incident_held(inc)) {
		if (hook_still_due) {
			/* Left for another instance: it takes over after the
			 * expiry and runs the hook this agent could not. */
			log_warning("stopping with incident %s's hook not run: its claim is left to "
				    "expire, for another instance to finish it", inc->mine.incident);
			close(inc->fd);
			inc->fd = -1;
		} else {
			release(inc);
		}
	}
	uv_close((uv_handle_t *)&inc->renew_timer, on_closed);
}

void incident_free(struct incident *inc)
{
	uv_mutex_destroy(&inc->lock);
}

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

/* The JSON string value after "key": in buf, copied when it is a plain
 * token (the note writes ids as such). */
static void note_string(const char *buf, const char *key, char *out, size_t size)
{
	char pat[32];
	snprintf(pat, sizeof(pat), "\"%s\": \"", key);
	out[0] = '\0';
	const char *p = strstr(buf, pat);
	if (!p)
		return;
	p += strlen(pat);
	size_t n = strcspn(p, "\"\\\n");
	if (p[n] == '"' && n < size) {
		memcpy(out, p, n);
		out[n] = '\0';
	}
}

static void read_note(int dir_fd, struct incident_note *note)
{
	char buf[2048];
	int sfd = openat(dir_fd, note->session, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (sfd < 0)
		return;
	int fd = openat(sfd, "note.json", O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	close(sfd);
	if (fd < 0)
		return;
	struct stat st;
	ssize_t got = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ? pread(fd, buf, sizeof(buf) - 1, 0)
								  : -1;
	close(fd);
	if (got <= 0)
		return;
	buf[got] = '\0';
	/* Only the head is read: state, instance and incident come first. */
	note->done = strstr(buf, "\"state\": \"done\"") != NULL;
	note_string(buf, "incident", note->incident, sizeof(note->incident));
	note_string(buf, "instance", note->instance, sizeof(note->instance));
	note_string(buf, "step", note->step, sizeof(note->step));
	note->complete = note->done && strstr(buf, "\"complete\": true") != NULL;
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
		if (!note->complete || !took_a_step)
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
		found(inc, note);
	}
}
