/* fuzz_policy.c - libFuzzer target for the stuck/live decision.
 *
 * The input is read as a recipe for hostile snapshots: entry counts, names,
 * kinds and types that disagree, parse errors, and times anywhere in
 * int64_t (near INT64_MIN and INT64_MAX above all, where a difference
 * overflows). policy_observe and policy_decide then run over several scans
 * with fake clocks that jump both ways. Under UBSan any overflow aborts;
 * the decision must also hold its own invariants: removals point at
 * entries marked for removal, nothing is planned on a blocked tree, a
 * report (no history) never acts, and a timer is never 0. The ladder too:
 * the full clear only when allowed and recurred, never of tools/,
 * settings.xml or what is not Kudu's, and never on a previous cleanup
 * stamped later than the wall clock.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "policy.h"
#include "site.h"

struct recipe {
	const uint8_t *p;
	size_t n;
};

static uint8_t take_u8(struct recipe *r)
{
	if (r->n == 0)
		return 0;
	r->n--;
	return *r->p++;
}

static uint64_t take_u64(struct recipe *r)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | take_u8(r);
	return v;
}

/* A time: mostly near the interesting edges, sometimes any 64 bits. */
static int64_t take_time(struct recipe *r, int64_t now)
{
	static const int64_t edges[] = {
		INT64_MIN, INT64_MIN + 1, INT64_MIN + 1000000000LL, INT64_MAX, INT64_MAX - 1,
		0, -1, -8520336000LL * 1000000000LL /* 1700 */,
	};
	uint8_t how = take_u8(r);
	int64_t small = (int64_t)(int8_t)take_u8(r) * 60000000000LL; /* +-127 min */

	switch (how % 4) {
	case 0:
		return edges[(how / 4) % (sizeof(edges) / sizeof(edges[0]))];
	case 1:
		return (int64_t)take_u64(r);
	default:
		/* now +- minutes, saturated by hand: now itself can be an edge. */
		if ((small > 0 && now > INT64_MAX - small) || (small < 0 && now < INT64_MIN - small))
			return small > 0 ? INT64_MAX : INT64_MIN + 1;
		return now + small;
	}
}

static int take_err(struct recipe *r)
{
	static const int errs[] = { 0, 0, 0, -ENOENT, -EINVAL, -ENODATA, -EFBIG, -EIO };
	return errs[take_u8(r) % (sizeof(errs) / sizeof(errs[0]))];
}

static struct site_stat take_stat(struct recipe *r, int64_t now)
{
	static const mode_t types[] = { S_IFREG, S_IFDIR, S_IFLNK, S_IFIFO, S_IFSOCK, S_IFCHR, 0 };
	struct site_stat st = { 0 };
	uint8_t b = take_u8(r);

	st.present = b & 1;
	st.type = types[(b >> 1) % (sizeof(types) / sizeof(types[0]))];
	st.dev = 1;
	st.ino = take_u8(r);
	st.mtime_ns = take_time(r, now);
	st.ctime_ns = take_time(r, now);
	st.size = (int64_t)take_u8(r);
	return st;
}

static void take_text(struct recipe *r, char *out, size_t size)
{
	size_t n = take_u8(r) % 24;
	if (n >= size)
		n = size - 1;
	for (size_t i = 0; i < n; i++)
		out[i] = (char)take_u8(r);
	out[n] = '\0';
}

static void take_entry(struct recipe *r, struct site_entry *e, int64_t now)
{
	uint8_t b = take_u8(r);

	e->area = b & 1 ? SITE_AREA_DEPLOYMENTS : SITE_AREA_LOCKS;
	e->kind = (enum kudu_name)((b >> 1) % (KUDU_NAME_TRASH + 1));
	take_text(r, e->name, sizeof(e->name));
	e->st = take_stat(r, now);
	e->info_st = take_stat(r, now);
	e->info_err = take_err(r);
	e->info.expiry_ns = take_time(r, now);
	take_text(r, e->info.op, sizeof(e->info.op));
	e->lock_err = take_err(r);
	e->lock.acquired_ns = take_time(r, now);
	e->status_st = take_stat(r, now);
	e->log_st = take_stat(r, now);
	e->status_err = take_err(r);
	b = take_u8(r);
	e->status.state = (enum kudu_state)((int)(b % 6) - 1);
	e->status.has_complete = b & 0x40;
	e->status.complete = b & 0x80;
	e->status.received_ns = take_time(r, now);
	e->status.start_ns = take_time(r, now);
	take_text(r, e->status.id, sizeof(e->status.id));
}

static void check_ladder(const struct site_snapshot *snap, const struct policy_decision *d,
			 const struct policy_params *params, int64_t wall)
{
	if (d->recurred && (!params->previous_clear_known || params->previous_clear_ns > wall))
		abort();
	if (d->step == POLICY_STEP_FULL_CLEAR && (!params->allow_full_clear || !d->recurred))
		abort();
	for (size_t i = 0; i < d->n_removals; i++) {
		enum kudu_name kind = snap->entries[d->removals[i]].kind;
		if (kind == KUDU_NAME_TOOLS || kind == KUDU_NAME_SETTINGS ||
		    kind == KUDU_NAME_SSHKEY_LOCK || kind == KUDU_NAME_HOOKS_LOCK ||
		    kind == KUDU_NAME_UNKNOWN || kind == KUDU_NAME_TRASH ||
		    d->entries[d->removals[i]].verdict == POLICY_FOREIGN)
			abort();
		if (d->step != POLICY_STEP_FULL_CLEAR &&
		    (kind == KUDU_NAME_ACTIVE || d->entries[d->removals[i]].verdict == POLICY_CLEARED))
			abort();
	}
}

static void check(const struct site_snapshot *snap, const struct policy_decision *d,
		  bool has_history)
{
	if (d->n_entries != snap->n_entries || d->n_removals > d->n_entries)
		abort();
	for (size_t i = 0; i < d->n_removals; i++)
		if (d->removals[i] >= d->n_entries || !d->entries[d->removals[i]].remove)
			abort();
	if (d->blocked && (d->n_removals || d->act))
		abort();
	/* The one rule: nothing watched is never stuck, and only stuck acts. */
	if (!has_history && (d->act || d->stuck))
		abort();
	if (d->act && !d->stuck)
		abort();
	if (d->act && d->n_removals == 0)
		abort();
	if (d->next_check_ms == 0)
		abort();
	if (!memchr(d->reason, '\0', sizeof(d->reason)))
		abort();
	for (size_t i = 0; i < d->n_entries; i++)
		if (!memchr(d->entries[i].reason, '\0', sizeof(d->entries[i].reason)))
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint64_t durations_ms[] = { 0, 1, 1000, 25 * 60 * 1000, UINT64_MAX / 2,
						 UINT64_MAX };
	struct recipe r = { data, size };
	struct site_snapshot snap = { 0 };
	struct policy_history history = { 0 };
	struct policy_params params = { 0 };
	uint8_t b = take_u8(&r);

	params.stuck_after_ms = durations_ms[b % 6];

	int64_t wall = take_time(&r, 1800000000LL * 1000000000LL);
	uint64_t mono = take_u64(&r);
	snap.scanned_ns = wall;
	b = take_u8(&r);
	snap.root_err = b & 1 ? -EIO : 0;
	snap.locks_err = b & 2 ? -ENOENT : b & 4 ? -EACCES : 0;
	snap.deployments_err = b & 8 ? -ENOENT : 0;
	snap.over_cap = b & 16;
	snap.root = take_stat(&r, wall);
	snap.locks = take_stat(&r, wall);
	snap.deployments = take_stat(&r, wall);
	take_text(&r, snap.active_id, sizeof(snap.active_id));

	size_t entries = take_u8(&r) % 40;
	for (size_t i = 0; i < entries && r.n; i++) {
		struct site_entry *e = site_add_entry(&snap);
		if (!e)
			break;
		take_entry(&r, e, wall);
		/* Sometimes the active record. */
		if (take_u8(&r) == 0x41)
			snprintf(snap.active_id, sizeof(snap.active_id), "%s", e->name);
	}

	b = take_u8(&r);
	params.allow_full_clear = b & 1;
	params.previous_clear_known = b & 2;
	params.escalate_within_ms = durations_ms[(b >> 2) % 6];
	params.previous_clear_ns = take_time(&r, wall);

	size_t rounds = take_u8(&r) % 8 + 1;
	for (size_t round = 0; round < rounds; round++) {
		struct policy_decision d;

		(void)policy_observe(&history, &snap, mono);
		if (policy_decide(&snap, &history, &params, wall, mono, &d) == 0) {
			check(&snap, &d, true);
			check_ladder(&snap, &d, &params, wall);
			/* Stuck only after stuck_after watched, whatever the times. */
			if (d.stuck && d.quiet_ms < params.stuck_after_ms)
				abort();
			policy_decision_free(&d);
		}
		if (policy_decide(&snap, NULL, &params, wall, mono, &d) == 0) {
			check(&snap, &d, false);
			check_ladder(&snap, &d, &params, wall);
			policy_decision_free(&d);
		}
		/* The clocks move, both ways and by anything; one entry changes. */
		mono = take_u8(&r) & 1 ? mono + take_u64(&r) : mono - take_u8(&r);
		wall = take_time(&r, wall);
		snap.scanned_ns = wall;
		if (snap.n_entries) {
			struct site_entry *e = &snap.entries[take_u8(&r) % snap.n_entries];
			e->st.mtime_ns = take_time(&r, wall);
			e->log_st.size += take_u8(&r);
			e->info.expiry_ns = take_time(&r, wall);
		}
	}
	site_snapshot_free(&snap);
	return 0;
}
