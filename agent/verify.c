/* verify.c - did the site restart end the stuck lock? (see verify.h) */
#include "verify.h"

#include <string.h>
#include <sys/stat.h>

void verify_arm(struct verify_restart *v, const struct kudu_info_lock *removed,
		uint64_t now_ms, uint64_t within_ms)
{
	memset(v, 0, sizeof(*v));
	/* A lock with no expiry cannot be told from a new one: nothing to
	 * compare, nothing to watch. */
	if (within_ms == 0 || removed->expiry_ns == KUDU_TIME_NONE)
		return;
	v->armed = true;
	v->since_ms = now_ms;
	v->within_ms = within_ms;
	v->removed = *removed;
}

static bool same_lock(const struct kudu_info_lock *a, const struct kudu_info_lock *b)
{
	return a->expiry_ns == b->expiry_ns && strcmp(a->op, b->op) == 0 &&
	       strcmp(a->worker, b->worker) == 0;
}

const struct site_entry *verify_same_lock(const struct site_snapshot *snap,
					  const struct kudu_info_lock *removed)
{
	if (removed->expiry_ns == KUDU_TIME_NONE)
		return NULL;
	for (size_t i = 0; i < snap->n_entries; i++) {
		const struct site_entry *e = &snap->entries[i];
		if (e->kind == KUDU_NAME_LOCK_FOLDER && e->st.type == S_IFDIR && e->info_err == 0 &&
		    same_lock(&e->info, removed))
			return e;
	}
	return NULL;
}

enum verify_outcome verify_check(struct verify_restart *v, const struct site_snapshot *snap,
				 uint64_t now_ms)
{
	if (!v->armed)
		return VERIFY_IDLE;
	/* A scan that began before the hook exited read the tree from before
	 * the restart ended, on the same monotonic clock: it proves neither
	 * that the lock came back nor that the window passed. Without this,
	 * the elapsed time below would wrap to a huge number and end the
	 * watch at once. */
	if (now_ms < v->since_ms)
		return VERIFY_WATCHING;
	if (verify_same_lock(snap, &v->removed)) {
		v->armed = false;
		return VERIFY_LOCK_BACK;
	}
	if (now_ms - v->since_ms >= v->within_ms) {
		v->armed = false;
		return VERIFY_DONE;
	}
	return VERIFY_WATCHING;
}
