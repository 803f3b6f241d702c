/* test_verify.c - did the site restart end the stuck lock? A table of
 * snapshots after the restart, with fake clocks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "site.h"
#include "verify.h"

#define S 1000ULL
#define EXPIRY 1800000000000000000LL

static struct kudu_info_lock lock_of(int64_t expiry_ns, const char *op, const char *worker)
{
	struct kudu_info_lock l = { .expiry_ns = expiry_ns };
	snprintf(l.op, sizeof(l.op), "%s", op);
	snprintf(l.worker, sizeof(l.worker), "%s", worker);
	return l;
}

static void add_lock(struct site_snapshot *snap, const struct kudu_info_lock *l, mode_t type,
		     int info_err)
{
	struct site_entry *e = site_add_entry(snap);
	assert_non_null(e);
	e->area = SITE_AREA_LOCKS;
	snprintf(e->name, sizeof(e->name), "deployment");
	e->kind = KUDU_NAME_LOCK_FOLDER;
	e->st = (struct site_stat){ .present = true, .type = type };
	e->info_err = info_err;
	e->info = *l;
}

static void test_outcomes(void **state)
{
	const struct kudu_info_lock removed = lock_of(EXPIRY, "Performing deployment", "abc123");
	const struct {
		const char *what;
		bool lock_present;
		struct kudu_info_lock seen;
		mode_t type;
		int info_err;
		uint64_t after_ms;
		enum verify_outcome expected;
	} rows[] = {
		{ "no lock, within the window", false, { 0 }, 0, 0, 5 * S, VERIFY_WATCHING },
		{ "no lock, window over", false, { 0 }, 0, 0, 600 * S, VERIFY_DONE },
		{ "the same lock back", true, removed, S_IFDIR, 0, 30 * S, VERIFY_LOCK_BACK },
		{ "a new lock (new expiry): a new deployment", true,
		  lock_of(EXPIRY + 60000000000LL, "Performing deployment", "abc123"), S_IFDIR, 0,
		  30 * S, VERIFY_WATCHING },
		{ "another holder", true, lock_of(EXPIRY, "Performing deployment", "other9"), S_IFDIR,
		  0, 30 * S, VERIFY_WATCHING },
		{ "an unreadable info.lock tells nothing", true, removed, S_IFDIR, -22, 30 * S,
		  VERIFY_WATCHING },
		{ "a symlink named deployment is not the lock", true, removed, S_IFLNK, 0, 30 * S,
		  VERIFY_WATCHING },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct verify_restart v;
		struct site_snapshot snap = { 0 };
		verify_arm(&v, &removed, 1000 * S, 600 * S);
		if (rows[i].lock_present)
			add_lock(&snap, &rows[i].seen, rows[i].type, rows[i].info_err);
		enum verify_outcome got = verify_check(&v, &snap, 1000 * S + rows[i].after_ms);
		if (got != rows[i].expected)
			fail_msg("%s: got %d, expected %d", rows[i].what, got, rows[i].expected);
		/* A final outcome disarms: the next scan says nothing more. */
		if (got == VERIFY_DONE || got == VERIFY_LOCK_BACK)
			assert_int_equal(verify_check(&v, &snap, 2000 * S), VERIFY_IDLE);
		site_snapshot_free(&snap);
	}
}

static void test_nothing_to_watch(void **state)
{
	struct verify_restart v;
	struct site_snapshot snap = { 0 };
	const struct kudu_info_lock no_expiry = lock_of(KUDU_TIME_NONE, "x", "y");
	const struct kudu_info_lock removed = lock_of(EXPIRY, "x", "y");

	verify_arm(&v, &no_expiry, 0, 600 * S);
	assert_int_equal(verify_check(&v, &snap, 1), VERIFY_IDLE);
	verify_arm(&v, &removed, 0, 0); /* verify_within = 0: off */
	assert_int_equal(verify_check(&v, &snap, 1), VERIFY_IDLE);
}

/* The scan in flight when the hook exits began before the watch was armed
 * (the agent arms at the hook's exit and judges each scan at its start): it
 * tells nothing, and must not end the watch at once by a wrapped subtraction. */
static void test_a_scan_begun_before_the_arm(void **state)
{
	const struct kudu_info_lock removed = lock_of(EXPIRY, "Performing deployment", "abc123");
	struct verify_restart v;
	struct site_snapshot snap = { 0 };

	verify_arm(&v, &removed, 1000 * S, 600 * S);
	assert_int_equal(verify_check(&v, &snap, 1000 * S - 40), VERIFY_WATCHING);
	add_lock(&snap, &removed, S_IFDIR, 0);
	assert_int_equal(verify_check(&v, &snap, 1000 * S - 5), VERIFY_WATCHING);
	/* The first scan begun after it judges as usual. */
	assert_int_equal(verify_check(&v, &snap, 1000 * S + 5), VERIFY_LOCK_BACK);
	site_snapshot_free(&snap);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_outcomes),
		cmocka_unit_test(test_nothing_to_watch),
		cmocka_unit_test(test_a_scan_begun_before_the_arm),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
