/* test_silence.c - the longest silence of completed deployments, and
 * stuck_after = auto (silence.c), as tables of log texts and synthetic
 * histories; and the once-only reading of their log.log (silence_read.c) on
 * a temporary site tree. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "clock.h"
#include "config.h"
#include "policy.h"
#include "scan.h"
#include "silence.h"
#include "silence_read.h"

#define S 1000ULL
#define M (60 * S)
#define FLOOR (5 * M)
#define CAP (25 * M)

/* ---- one log.log ---------------------------------------------------------- */

struct log_case {
	const char *name;
	const char *text;
	bool usable;
	size_t timed, skipped;
	uint64_t gap_ms, span_ms;
};

static const struct log_case log_cases[] = {
	{ "empty", "", false, 0, 0, 0, 0 },
	{ "one line", "2021-09-10T01:26:58.0314218Z,Updating submodules.,d1c4e5f6,0\n",
	  false, 1, 0, 0, 0 },
	/* Kudu's own shape: a top-level entry, children indented with tabs. */
	{ "kudu shape",
	  "2021-09-10T01:26:58.0314218Z,Updating submodules.,d1c4e5f6-0000-4000-8000-000000000001,0\n"
	  "\t2021-09-10T01:27:01.1000000Z,Preparing deployment for commit id 'abc'&comma; go.,,0\n"
	  "\t\t2021-09-10T01:29:11.0000000Z,Running oryx build...,,0\n"
	  "2021-09-10T01:29:12.0000000Z,Deployment successful.,d1c4e5f6-0000-4000-8000-000000000002,0\n",
	  true, 4, 0, 130 * S, 134 * S },
	/* The 2024 production shape (projectkudu/kudu#3512). */
	{ "production shape",
	  "2024-07-31T09:51:24.281Z,app.azurewebsites.net,,,1a2b,NODE,Linux,InProgress,Message,"
	  "Writing artifact to /tmp/zipdeploy/1a2b.zip\r\n"
	  "2024-07-31T09:51:54.281Z,app.azurewebsites.net,,,1a2b,NODE,Linux,InProgress,Message,"
	  "Extracting\r\n"
	  "2024-07-31T09:52:00.000Z,app.azurewebsites.net,,,1a2b,NODE,Linux,Success,Message,Done\r\n",
	  true, 3, 0, 30 * S, 36 * S },
	/* Anything else is skipped, never an error; and a sub-second gap
	 * counts as a whole second (rounded up, never shorter). */
	{ "unparseable lines skipped",
	  "\xef\xbb\xbf" "2021-09-10T01:00:00Z,start,,0\n"
	  "not a time,at all,,0\n"
	  "\n"
	  "Exception: System.IO.IOException\n"
	  "   at Kudu.Core.Deployment\n"
	  "2021-09-10T01:00:00.5Z,half a second later,,0\n",
	  true, 2, 3, 1 * S, 1 * S },
	{ "nothing parseable", "garbage\n\x01\x02\xff\n,,,\n", false, 0, 3, 0, 0 },
	/* Times that go back are not a silence: each line is compared with
	 * the latest time before it. */
	{ "time goes back",
	  "2021-09-10T01:00:00Z,a,,0\n2021-09-10T01:05:00Z,b,,0\n"
	  "2021-09-10T01:01:00Z,c,,0\n2021-09-10T01:06:00Z,d,,0\n",
	  true, 4, 0, 5 * M, 6 * M },
	/* A file read only in part ends mid-line: a time with no comma
	 * after it is not taken. */
	{ "cut mid-line",
	  "2021-09-10T01:00:00Z,a,,0\n2021-09-10T01:00:10Z,b,,0\n2021-09-10T09:00:0",
	  true, 2, 1, 10 * S, 10 * S },
	/* One very long silence: an hour between two lines. */
	{ "one very long silence",
	  "2021-09-10T01:00:00Z,a,,0\n2021-09-10T01:00:05Z,b,,0\n"
	  "2021-09-10T02:00:05Z,c,,0\n2021-09-10T02:00:06Z,d,,0\n",
	  true, 4, 0, 3600 * S, 3606 * S },
	/* Times as far apart as an int64_t of nanoseconds allows: saturated. */
	{ "extreme times",
	  "1678-01-01T00:00:00Z,a,,0\n2262-01-01T00:00:00Z,b,,0\n",
	  true, 2, 0, 9223372037000ULL, 9223372037000ULL },
};

static void test_parse_log_table(void **state)
{
	for (size_t i = 0; i < sizeof(log_cases) / sizeof(log_cases[0]); i++) {
		const struct log_case *c = &log_cases[i];
		struct silence_log log;

		silence_parse_log(c->text, strlen(c->text), &log);
		if (log.usable != c->usable || log.timed_lines != c->timed ||
		    log.skipped_lines != c->skipped || log.longest_gap_ms != c->gap_ms ||
		    log.span_ms != c->span_ms)
			fail_msg("%s: usable %d timed %zu skipped %zu gap %llu span %llu", c->name,
				 log.usable, log.timed_lines, log.skipped_lines,
				 (unsigned long long)log.longest_gap_ms, (unsigned long long)log.span_ms);
	}
}

static void test_parse_log_needs_no_terminator(void **state)
{
	static const char text[] = "2021-09-10T01:00:00Z,a,,0\n2021-09-10T01:00:07Z,b,,0\nXXXX";
	struct silence_log log;

	/* Only the first two lines, without their NUL or what follows. */
	silence_parse_log(text, strlen(text) - 5, &log);
	assert_true(log.usable);
	assert_int_equal(log.longest_gap_ms, 7 * S);
}

/* ---- histories and stuck_after = auto ------------------------------------ */

struct record {
	const char *id;
	const char *log;   /* NULL: not read yet */
};

struct auto_case {
	const char *name;
	struct record records[4];
	uint64_t floor_ms;
	enum silence_basis basis;
	uint64_t stuck_after_ms;
	const char *why;   /* a part of silence_auto_explain's text */
};

#define LINES2(gap) "2021-09-10T01:00:00Z,a,,0\n2021-09-10T01:" gap "Z,b,,0\n"

static const struct auto_case auto_cases[] = {
	{ "no history", { { NULL, NULL } }, FLOOR, SILENCE_NO_HISTORY, CAP,
	  "25m (the default: no usable history, 0 completed deployments" },
	{ "only unparseable logs", { { "aaaa", "garbage\n" }, { "bbbb", "" } }, FLOOR,
	  SILENCE_NO_HISTORY, CAP, "2 completed deployments but none" },
	{ "one record", { { "aaaa", LINES2("02:10") } }, FLOOR, SILENCE_FROM_HISTORY, 390 * S,
	  "6m30s (3 × longest silence 2m10s in aaaa, floor 5m, cap 25m)" },
	{ "unparseable beside usable",
	  { { "aaaa", "garbage\n" }, { "bbbb", LINES2("02:10") }, { "cccc", LINES2("00:30") } },
	  FLOOR, SILENCE_FROM_HISTORY, 390 * S, "in bbbb" },
	{ "short silences: the floor", { { "aaaa", LINES2("00:40") } }, FLOOR, SILENCE_AT_FLOOR,
	  FLOOR, "5m (the floor: 3 × longest silence 40s in aaaa is 2m;" },
	{ "a low floor", { { "aaaa", LINES2("00:40") } }, 1 * S, SILENCE_FROM_HISTORY, 120 * S,
	  "2m (3 × longest silence 40s in aaaa, floor 1s, cap 25m)" },
	{ "one very long silence: the cap",
	  { { "aaaa", LINES2("00:40") }, { "bbbb", LINES2("00:00") "2021-09-10T02:00:00Z,c,,0\n" } },
	  FLOOR, SILENCE_AT_CAP, CAP, "25m (the cap: 3 × longest silence 1h in bbbb is 3h;" },
	{ "floor above cap: the cap", { { "aaaa", LINES2("00:40") } }, 30 * M, SILENCE_AT_CAP, CAP,
	  "the cap" },
	{ "part unread: the default",
	  { { "aaaa", LINES2("00:40") }, { "bbbb", NULL } }, FLOOR, SILENCE_UNREAD, CAP,
	  "25m (the default until the history is read: 1 of 2 completed deployments read)" },
};

static void build_history(const struct record *records, size_t n, struct silence_history *h)
{
	memset(h, 0, sizeof(*h));
	for (size_t i = 0; i < n && records[i].id; i++) {
		struct silence_log log;

		if (!records[i].log) {
			silence_history_add(h, records[i].id, NULL);
			continue;
		}
		silence_parse_log(records[i].log, strlen(records[i].log), &log);
		silence_history_add(h, records[i].id, &log);
	}
}

static void test_auto_table(void **state)
{
	for (size_t i = 0; i < sizeof(auto_cases) / sizeof(auto_cases[0]); i++) {
		const struct auto_case *c = &auto_cases[i];
		struct silence_history h;
		struct silence_auto au;
		char why[400];

		build_history(c->records, 4, &h);
		silence_auto_compute(&h, c->floor_ms, CAP, &au);
		silence_auto_explain(&h, &au, c->floor_ms, CAP, why, sizeof(why));
		if (au.basis != c->basis || au.stuck_after_ms != c->stuck_after_ms ||
		    !strstr(why, c->why))
			fail_msg("%s: basis %d, %llu ms, \"%s\"", c->name, au.basis,
				 (unsigned long long)au.stuck_after_ms, why);
		/* Never bolder than the floor, never slower than the cap. */
		assert_true(au.stuck_after_ms <= CAP);
		assert_true(au.stuck_after_ms >= (c->floor_ms < CAP ? c->floor_ms : CAP));
	}
}

/* The default that auto falls back to is the one config.def declares. */
static void test_cap_is_the_default(void **state)
{
	struct config cfg;
	char err[CONFIG_ERROR_MAX];
	char *const env[] = { NULL };

	assert_int_equal(config_load(&cfg, NULL, env, NULL, err, sizeof(err)), 0);
	if (cfg.policy_stuck_after_source == CONFIG_FROM_DEFAULT)
		assert_int_equal(cfg.policy_stuck_after, CONFIG_STUCK_AFTER_DEFAULT_MS);
	assert_int_equal(cfg.policy_auto_floor, 25 * M);
	config_free(&cfg);
}

static void test_longest_deployment(void **state)
{
	static const struct record records[] = {
		{ "short", LINES2("00:40") },
		{ "long", "2021-09-10T01:00:00Z,a,,0\n2021-09-10T01:00:30Z,b,,0\n"
			  "2021-09-10T01:01:00Z,c,,0\n2021-09-10T01:12:00Z,d,,0\n" },
		{ NULL, NULL },
	};
	struct silence_history h;

	build_history(records, 3, &h);
	assert_int_equal(h.completed, 2);
	assert_int_equal(h.usable, 2);
	assert_int_equal(h.longest_gap_ms, 11 * M);
	assert_string_equal(h.longest_gap_id, "long");
	assert_int_equal(h.longest_run_ms, 12 * M);
	assert_string_equal(h.longest_run_id, "long");
}

/* ---- auto's value through the policy, with a fake clock ------------------- */

#define NS(ms) ((int64_t)(ms) * 1000000LL)
#define NOW_WALL NS(1800000000000LL)

static struct site_stat aged(mode_t type, uint64_t age_ms, ino_t ino)
{
	struct site_stat st = { .present = true, .type = type, .dev = 1, .ino = ino,
				.mtime_ns = NOW_WALL - NS(age_ms), .ctime_ns = NOW_WALL - NS(age_ms),
				.size = 10 };
	return st;
}

/* A live deployment (the lock folder, an unfinished temp record) last
 * active age_ms ago and watched unchanged all that time, judged with
 * stuck_after_ms at NOW_WALL. */
static bool stuck_at(uint64_t age_ms, uint64_t stuck_after_ms)
{
	struct site_snapshot snap = { .scanned_ns = NOW_WALL };
	struct policy_params params = { .stuck_after_ms = stuck_after_ms };
	struct policy_history watched = { .started = true };
	struct policy_decision d;
	struct site_entry *e;

	snap.root = aged(S_IFDIR, 100 * M, 2);
	snap.locks = aged(S_IFDIR, age_ms, 3);
	snap.deployments = aged(S_IFDIR, age_ms, 4);
	e = site_add_entry(&snap);
	assert_non_null(e);
	e->area = SITE_AREA_LOCKS;
	snprintf(e->name, sizeof(e->name), "deployment");
	e->kind = KUDU_NAME_LOCK_FOLDER;
	e->st = aged(S_IFDIR, age_ms, 5);
	e->info_st = aged(S_IFREG, age_ms, 6);
	e->info_err = 0;
	e->info.expiry_ns = NOW_WALL + NS(20 * M);
	e = site_add_entry(&snap);
	assert_non_null(e);
	e->area = SITE_AREA_DEPLOYMENTS;
	snprintf(e->name, sizeof(e->name), "temp-1a2b3c4d");
	e->kind = KUDU_NAME_TEMP_RECORD;
	e->st = aged(S_IFDIR, age_ms, 7);
	e->status_st = aged(S_IFREG, age_ms, 8);
	e->log_st = aged(S_IFREG, age_ms, 9);
	e->status_err = 0;
	e->status.state = KUDU_STATE_BUILDING;
	e->status.is_temp = true;
	assert_int_equal(policy_decide(&snap, &watched, &params, NOW_WALL, age_ms, &d), 0);
	assert_true(d.claims_running);
	bool stuck = d.stuck;
	policy_decision_free(&d);
	site_snapshot_free(&snap);
	return stuck;
}

/* A history whose longest silence is 40 s makes auto 2m (floor 1s): a live
 * deployment silent up to that is left alone, past it it is stuck; with no
 * history auto is the default, 25m. */
static void test_auto_through_the_policy(void **state)
{
	static const struct record forty[] = {
		{ "aaaa", LINES2("00:40") }, { "bbbb", LINES2("00:10") }, { NULL, NULL },
	};
	static const struct {
		bool history;
		uint64_t silent_ms;
		bool stuck;
	} rows[] = {
		{ true, 30 * S, false },     /* below the history's longest silence */
		{ true, 40 * S, false },     /* as long as it */
		{ true, 119 * S, false },
		{ true, 121 * S, true },     /* past 3 x 40 s */
		{ false, 121 * S, false },   /* no history: 25m */
		{ false, 24 * M, false },
		{ false, 26 * M, true },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct silence_history h;
		struct silence_auto au;

		build_history(forty, rows[i].history ? 3 : 0, &h);
		silence_auto_compute(&h, 1 * S, CAP, &au);
		if (stuck_at(rows[i].silent_ms, au.stuck_after_ms) != rows[i].stuck)
			fail_msg("row %zu: silent %llu ms, stuck_after %llu ms: stuck should be %d", i,
				 (unsigned long long)rows[i].silent_ms,
				 (unsigned long long)au.stuck_after_ms, rows[i].stuck);
	}
}

/* ---- report's line and check-config's warning ------------------------------ */

static void test_report_line(void **state)
{
	struct silence_history h;
	char line[512];
	static const struct record ten[] = {
		{ "aaaa", LINES2("02:10") }, { "bbbb", LINES2("00:20") }, { NULL, NULL },
	};

	build_history(NULL, 0, &h);
	silence_report_line(&h, "15m", 15 * M, line, sizeof(line));
	assert_non_null(strstr(line, "no completed deployments"));

	build_history(ten, 3, &h);
	silence_report_line(&h, "15m", 15 * M, line, sizeof(line));
	/* 900 / 130 = 6.92: one decimal, rounded down. */
	assert_string_equal(line, "2 completed deployments; longest silence 2m10s in aaaa; "
			    "stuck_after 15m is 6.9× that; longest deployment 2m10s in aaaa");
}

static void test_warning(void **state)
{
	struct silence_history h;
	char msg[512];
	static const struct record one[] = { { "aaaa", LINES2("02:10") }, { NULL, NULL } };

	build_history(NULL, 0, &h);
	assert_false(silence_warning(&h, 1 * S, msg, sizeof(msg)));   /* no history: no warning */
	build_history(one, 2, &h);
	assert_false(silence_warning(&h, 260 * S, msg, sizeof(msg))); /* exactly 2 x */
	assert_true(silence_warning(&h, 259 * S, msg, sizeof(msg)));
	assert_non_null(strstr(msg, "stuck_after = 4m19s is below 2 × the longest silence"));
	assert_non_null(strstr(msg, "2m10s in aaaa"));
}

/* ---- reading each log.log once --------------------------------------------- */

static char site[PATH_MAX];

static void write_file(const char *rel, const char *text)
{
	char path[PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", site, rel);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

static void make_record(const char *id, const char *status, const char *log)
{
	char rel[PATH_MAX], xml[512];

	snprintf(rel, sizeof(rel), "%s/deployments/%s", site, id);
	assert_int_equal(mkdir(rel, 0755), 0);
	snprintf(xml, sizeof(xml), "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<deployment>"
		 "<id>%s</id><status>%s</status><complete>%s</complete></deployment>", id, status,
		 strcmp(status, "Building") ? "True" : "False");
	snprintf(rel, sizeof(rel), "deployments/%s/status.xml", id);
	write_file(rel, xml);
	if (log) {
		snprintf(rel, sizeof(rel), "deployments/%s/log.log", id);
		write_file(rel, log);
	}
}

static int make_site(void **state)
{
	char path[PATH_MAX];

	snprintf(site, sizeof(site), "/tmp/lw-silence-XXXXXX");
	assert_non_null(mkdtemp(site));
	snprintf(path, sizeof(path), "%s/deployments", site);
	assert_int_equal(mkdir(path, 0755), 0);
	return 0;
}

static int remove_site(void **state)
{
	char cmd[PATH_MAX + 16];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", site);
	return system(cmd) == 0 ? 0 : -1;
}

static void scan(struct site_snapshot *snap)
{
	struct clock_now now;

	memset(snap, 0, sizeof(*snap));
	clock_read(&now);
	assert_int_equal(scan_site(site, &now, NULL, true, snap), 0);
}

static void test_cache_reads_once(void **state)
{
	char rel[PATH_MAX];
	struct site_snapshot snap;
	struct silence_cache first = { 0 }, second = { 0 }, third = { 0 };
	struct silence_history h = { 0 };

	make_record("0123456789abcdef0123456789abcdef", "Success", LINES2("02:10"));
	make_record("1123456789abcdef0123456789abcdef", "Failed", "garbage\n");
	make_record("2123456789abcdef0123456789abcdef", "Success", NULL);
	make_record("temp-0000aaaa", "Building", LINES2("09:00"));  /* running: not history */
	scan(&snap);
	assert_int_equal(silence_cache_update(site, &snap, NULL, SIZE_MAX, &first), 0);
	assert_int_equal(first.n, 3);
	assert_int_equal(first.unread, 0);
	silence_cache_history(&first, &h);
	assert_int_equal(h.completed, 3);
	assert_int_equal(h.usable, 1);
	assert_int_equal(h.longest_gap_ms, 130 * S);

	/* The same records again: nothing is opened, so a log.log gone
	 * since does not change what is known. */
	snprintf(rel, sizeof(rel), "%s/deployments/0123456789abcdef0123456789abcdef/log.log", site);
	assert_int_equal(unlink(rel), 0);
	assert_int_equal(silence_cache_update(site, &snap, &first, SIZE_MAX, &second), 0);
	memset(&h, 0, sizeof(h));
	silence_cache_history(&second, &h);
	assert_int_equal(h.usable, 1);
	assert_int_equal(h.longest_gap_ms, 130 * S);

	/* A record whose status.xml changed (redeployed) is read again. */
	site_snapshot_free(&snap);
	scan(&snap);
	snap.entries[0].status_st.mtime_ns++;
	assert_int_equal(silence_cache_update(site, &snap, &second, SIZE_MAX, &third), 0);
	memset(&h, 0, sizeof(h));
	silence_cache_history(&third, &h);
	assert_int_equal(h.usable, 0);
	assert_int_equal(third.entries[0].err, -ENOENT);

	silence_cache_free(&first);
	silence_cache_free(&second);
	silence_cache_free(&third);
	site_snapshot_free(&snap);
}

static void test_cache_reads_are_bounded(void **state)
{
	struct site_snapshot snap;
	struct silence_cache first = { 0 }, second = { 0 };
	struct silence_history h = { 0 };
	struct silence_auto au;

	make_record("0123456789abcdef0123456789abcdef", "Success", LINES2("00:40"));
	make_record("1123456789abcdef0123456789abcdef", "Success", LINES2("02:10"));
	make_record("2123456789abcdef0123456789abcdef", "Success", LINES2("01:00"));
	scan(&snap);
	assert_int_equal(silence_cache_update(site, &snap, NULL, 2, &first), 0);
	assert_int_equal(first.n, 2);
	assert_int_equal(first.unread, 1);
	silence_cache_history(&first, &h);
	silence_auto_compute(&h, FLOOR, CAP, &au);
	assert_int_equal(au.basis, SILENCE_UNREAD);
	assert_int_equal(au.stuck_after_ms, CAP);

	assert_int_equal(silence_cache_update(site, &snap, &first, 2, &second), 0);
	assert_int_equal(second.n, 3);
	assert_int_equal(second.unread, 0);
	memset(&h, 0, sizeof(h));
	silence_cache_history(&second, &h);
	silence_auto_compute(&h, FLOOR, CAP, &au);
	assert_int_equal(au.basis, SILENCE_FROM_HISTORY);
	assert_int_equal(au.stuck_after_ms, 390 * S);

	silence_cache_free(&first);
	silence_cache_free(&second);
	site_snapshot_free(&snap);
}

static void test_read_site(void **state)
{
	struct silence_history h = { 0 };
	char missing[PATH_MAX + 16];

	make_record("0123456789abcdef0123456789abcdef", "Success", LINES2("02:10"));
	assert_int_equal(silence_read_site(site, &h), 0);
	assert_int_equal(h.completed, 1);
	assert_int_equal(h.longest_gap_ms, 130 * S);
	snprintf(missing, sizeof(missing), "%s/nothing-here", site);
	memset(&h, 0, sizeof(h));
	assert_int_equal(silence_read_site(missing, &h), -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_log_table),
		cmocka_unit_test(test_parse_log_needs_no_terminator),
		cmocka_unit_test(test_auto_table),
		cmocka_unit_test(test_cap_is_the_default),
		cmocka_unit_test(test_longest_deployment),
		cmocka_unit_test(test_auto_through_the_policy),
		cmocka_unit_test(test_report_line),
		cmocka_unit_test(test_warning),
		cmocka_unit_test_setup_teardown(test_cache_reads_once, make_site, remove_site),
		cmocka_unit_test_setup_teardown(test_cache_reads_are_bounded, make_site, remove_site),
		cmocka_unit_test_setup_teardown(test_read_site, make_site, remove_site),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
