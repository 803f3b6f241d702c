/* test_kudu.c - the parsers and name rules of kudu.c, driven by tables and by
 * the fixtures in test/fixtures/kudu/.
 *
 * Every input is handed to the parsers in a heap buffer of exactly its length
 * (no terminating NUL), so that under ASan (make SAN=1) a read past len is a
 * crash, not a silent pass.
 *
 * Fixtures are looked up in $LOCKWARDEN_FIXTURES/kudu, then
 * $LOCKWARDEN_FIXTURES, then test/fixtures/kudu and ../test/fixtures/kudu
 * relative to the current directory (make unit runs from the repo root).
 */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <cmocka.h>

#include "kudu.h"

#define SEC 1000000000LL
#define NONE KUDU_TIME_NONE

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ---- Helpers -------------------------------------------------------------- */

#define EXPECT_INT(actual, expected, i, input) do { \
	long long a_ = (long long)(actual), e_ = (long long)(expected); \
	if (a_ != e_) \
		fail_msg("case %zu [%s]: %s is %lld, expected %lld", (size_t)(i), \
			 (input), #actual, a_, e_); \
} while (0)

#define EXPECT_STR(actual, expected, i, input) do { \
	if (strcmp((actual), (expected)) != 0) \
		fail_msg("case %zu [%s]: %s is \"%s\", expected \"%s\"", (size_t)(i), \
			 (input), #actual, (actual), (expected)); \
} while (0)

/* A copy of s[0..n) with nothing after it. */
static char *dup_exact(const char *s, size_t n)
{
	char *b = malloc(n ? n : 1);

	assert_non_null(b);
	if (n)
		memcpy(b, s, n);
	return b;
}

static int time_exact(const char *s, size_t n, int64_t *ns)
{
	char *b = dup_exact(s, n);
	int r = isotime_parse(b, n, ns);

	free(b);
	return r;
}

static int info_exact(const char *s, size_t n, struct kudu_info_lock *out)
{
	char *b = dup_exact(s, n);
	int r = kudu_parse_info_lock(b, n, out);

	free(b);
	return r;
}

static int file_lock_exact(const char *s, size_t n, struct kudu_file_lock *out)
{
	char *b = dup_exact(s, n);
	int r = kudu_parse_file_lock(b, n, out);

	free(b);
	return r;
}

static int status_exact(const char *s, size_t n, struct kudu_status *out)
{
	char *b = dup_exact(s, n);
	int r = kudu_parse_status_xml(b, n, out);

	free(b);
	return r;
}

struct fixture {
	char *data;     /* exactly len bytes, not terminated */
	size_t len;
	char path[512];
};

static bool try_load(const char *path, struct fixture *f)
{
	struct stat st;
	FILE *fp = fopen(path, "rb");

	if (!fp)
		return false;
	assert_int_equal(fstat(fileno(fp), &st), 0);
	f->len = (size_t)st.st_size;
	f->data = malloc(f->len ? f->len : 1);
	assert_non_null(f->data);
	if (f->len)
		assert_int_equal(fread(f->data, 1, f->len, fp), f->len);
	assert_int_equal(fclose(fp), 0);
	snprintf(f->path, sizeof(f->path), "%s", path);
	return true;
}

static void load_fixture(const char *name, struct fixture *f)
{
	const char *env = getenv("LOCKWARDEN_FIXTURES");
	char path[512];

	if (env && *env) {
		snprintf(path, sizeof(path), "%s/kudu/%s", env, name);
		if (try_load(path, f))
			return;
		snprintf(path, sizeof(path), "%s/%s", env, name);
		if (try_load(path, f))
			return;
	}
	snprintf(path, sizeof(path), "test/fixtures/kudu/%s", name);
	if (try_load(path, f))
		return;
	snprintf(path, sizeof(path), "../test/fixtures/kudu/%s", name);
	if (try_load(path, f))
		return;
	fail_msg("fixture %s not found: run from the repository root or set LOCKWARDEN_FIXTURES",
		 name);
}

static void free_fixture(struct fixture *f)
{
	free(f->data);
	f->data = NULL;
}

static bool terminated(const char *s, size_t size)
{
	return memchr(s, '\0', size) != NULL;
}

/* ---- isotime_parse ------------------------------------------------------ */

static const struct time_case {
	const char *in;
	int rc;
	int64_t ns;
} time_cases[] = {
	{ "1970-01-01T00:00:00Z", 0, 0 },
	{ "1969-12-31T23:59:59Z", 0, -1 * SEC },
	{ "2021-09-10T01:26:58.0314218Z", 0, 1631237218 * SEC + 31421800 },
	{ "2021-09-10T01:51:58.0314218Z", 0, 1631238718 * SEC + 31421800 },
	{ "2021-09-10t01:26:58.0314218z", 0, 1631237218 * SEC + 31421800 },
	/* No zone is UTC; a space may stand for the 'T'. */
	{ "2021-09-10T01:26:58", 0, 1631237218 * SEC },
	{ "2021-09-10 01:26:58Z", 0, 1631237218 * SEC },
	/* Offsets are converted to UTC. */
	{ "2021-09-10T03:26:58+02:00", 0, 1631237218 * SEC },
	{ "2021-09-09T20:26:58-05:00", 0, 1631237218 * SEC },
	{ "2021-09-10T01:56:58.5+00:30", 0, 1631237218 * SEC + 500000000 },
	{ "2021-09-10T01:26:58-00:00", 0, 1631237218 * SEC },
	{ "2021-09-10T00:00:00+23:59", 0, (1631232000 - 86340) * SEC },
	/* Fractions of 1 to 9 digits; beyond that, below a nanosecond. */
	{ "2021-09-10T01:26:58.5Z", 0, 1631237218 * SEC + 500000000 },
	{ "2021-09-10T01:26:58.123456789Z", 0, 1631237218 * SEC + 123456789 },
	{ "2021-09-10T01:26:58.123456789999Z", 0, 1631237218 * SEC + 123456789 },
	{ "2021-09-10T01:26:58.000000001Z", 0, 1631237218 * SEC + 1 },
	/* Leap years. */
	{ "2024-02-29T00:00:00Z", 0, 1709164800 * SEC },
	{ "2000-02-29T12:00:00Z", 0, 951825600 * SEC },
	{ "2023-02-29T00:00:00Z", -EINVAL, 0 },
	{ "1900-02-29T00:00:00Z", -EINVAL, 0 },
	{ "2100-02-29T00:00:00Z", -EINVAL, 0 },
	/* A leap second is the next minute's first second, as in POSIX. */
	{ "2016-12-31T23:59:60Z", 0, 1483228800 * SEC },
	{ "2016-12-31T23:59:61Z", -EINVAL, 0 },
	/* Bad dates and times. */
	{ "2021-13-01T00:00:00Z", -EINVAL, 0 },
	{ "2021-00-10T00:00:00Z", -EINVAL, 0 },
	{ "2021-04-31T00:00:00Z", -EINVAL, 0 },
	{ "2021-01-00T00:00:00Z", -EINVAL, 0 },
	{ "2021-01-32T00:00:00Z", -EINVAL, 0 },
	{ "2021-01-01T24:00:00Z", -EINVAL, 0 },
	{ "2021-01-01T23:60:00Z", -EINVAL, 0 },
	{ "0000-01-01T00:00:00Z", -EINVAL, 0 },
	{ "2021-9-10T01:26:58Z", -EINVAL, 0 },
	{ "2021-09-10T1:26:58Z", -EINVAL, 0 },
	{ "2021-09-10T01:26Z", -EINVAL, 0 },
	{ "2021-09-10", -EINVAL, 0 },
	{ "2021/09/10T01:26:58Z", -EINVAL, 0 },
	{ "2021-09-10X01:26:58Z", -EINVAL, 0 },
	{ "2021-09-10T01:26:58.Z", -EINVAL, 0 },
	{ "2021-09-10T01:26:58.", -EINVAL, 0 },
	{ "2021-09-10T01:26:58ZZ", -EINVAL, 0 },
	{ "2021-09-10T01:26:58Z ", -EINVAL, 0 },
	{ " 2021-09-10T01:26:58Z", -EINVAL, 0 },
	{ "2021-09-10T01:26:58+2:00", -EINVAL, 0 },
	{ "2021-09-10T01:26:58+0200", -EINVAL, 0 },
	{ "2021-09-10T01:26:58+02", -EINVAL, 0 },
	{ "2021-09-10T01:26:58+02:60", -EINVAL, 0 },
	{ "2021-09-10T01:26:58+24:00", -EINVAL, 0 },
	{ "2021-09-10T01:26:58+02:00Z", -EINVAL, 0 },
	{ "+2021-09-10T01:26:58Z", -EINVAL, 0 },
	{ "-2021-09-10T01:26:58Z", -EINVAL, 0 },
	{ "2021-09-10T01:26:58.1e3Z", -EINVAL, 0 },
	{ "", -EINVAL, 0 },
	{ "garbage", -EINVAL, 0 },
	{ "yesterday at noon, roughly", -EINVAL, 0 },
	{ "\xEF\xBB\xBF" "2021-09-10T01:26:58Z", -EINVAL, 0 },
	/* Valid, but outside what int64 nanoseconds hold. KUDU_TIME_NONE itself
	 * (INT64_MIN ns, 1677-09-21T00:12:43.145224192Z) is never returned. */
	{ "0001-01-01T00:00:00Z", -ERANGE, 0 },
	{ "9999-12-31T23:59:59.9999999Z", -ERANGE, 0 },
	{ "1677-09-21T00:12:43.145224192Z", -ERANGE, 0 },
	{ "1677-09-21T00:12:43.145224193Z", 0, INT64_MIN + 1 },
	{ "2262-04-11T23:47:16.854775807Z", 0, INT64_MAX },
	{ "2262-04-11T23:47:16.854775808Z", -ERANGE, 0 },
};

static void test_time_table(void **state)
{
	for (size_t i = 0; i < ARRAY_LEN(time_cases); i++) {
		const struct time_case *c = &time_cases[i];
		int64_t ns = 42;
		int r = time_exact(c->in, strlen(c->in), &ns);

		EXPECT_INT(r, c->rc, i, c->in);
		EXPECT_INT(ns, c->rc == 0 ? c->ns : 42, i, c->in);
	}
}

/* Only len bytes count: a terminated string is not needed, and bytes after
 * len (even a NUL inside len) are not ignored. */
static void test_time_length(void **state)
{
	int64_t ns = 0;

	assert_int_equal(time_exact("2021-09-10T01:26:58Zjunk", 20, &ns), 0);
	assert_int_equal(ns, 1631237218 * SEC);
	assert_int_equal(time_exact("2021-09-10T01:26:58.0314218Z", 19, &ns), 0);
	assert_int_equal(ns, 1631237218 * SEC);
	assert_int_equal(time_exact("2021-09-10T01:26:58Z\0", 21, &ns), -EINVAL);
	assert_int_equal(time_exact("2021-09-10T01:26:5", 18, &ns), -EINVAL);
	assert_int_equal(isotime_parse(NULL, 0, &ns), -EINVAL);
	for (size_t n = 0; n < 19; n++)
		assert_int_equal(time_exact("2021-09-10T01:26:58Z", n, &ns), -EINVAL);
}

/* The calendar arithmetic, checked day by day against the C library's
 * gmtime_r over every day nanoseconds can hold, and every month's first
 * invalid day. */
static void test_time_every_day(void **state)
{
	const int64_t first_day = -106000; /* 1679 */
	const int64_t last_day = 106000;   /* 2260 */

	for (int64_t d = first_day; d <= last_day; d++) {
		time_t secs = (time_t)(d * 86400 + 3723);
		time_t next_secs = secs + 86400;
		struct tm tm, next;
		char text[40];
		int64_t ns = 0;
		int n;

		assert_non_null(gmtime_r(&secs, &tm));
		assert_non_null(gmtime_r(&next_secs, &next));
		n = snprintf(text, sizeof(text), "%04d-%02d-%02dT%02d:%02d:%02dZ",
			     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
			     tm.tm_hour, tm.tm_min, tm.tm_sec);
		assert_int_equal(time_exact(text, (size_t)n, &ns), 0);
		if (ns != (int64_t)secs * SEC)
			fail_msg("%s gives %lld s, expected %lld s", text, (long long)(ns / SEC),
				 (long long)secs);
		if (next.tm_mon != tm.tm_mon) {
			/* tm is the last day of its month: the day after it is not. */
			n = snprintf(text, sizeof(text), "%04d-%02d-%02dT00:00:00Z",
				     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday + 1);
			if (time_exact(text, (size_t)n, &ns) != -EINVAL)
				fail_msg("%s was accepted", text);
		}
	}
}

/* ---- info.lock ------------------------------------------------------------ */

static const struct info_fixture_case {
	const char *file;
	int rc;
	int64_t expiry_ns;
	bool has_pid;
	long long pid;
	bool has_tid;
	long long tid;
	const char *op;
	const char *worker;
} info_fixture_cases[] = {
	{ "info-lock-valid.json", 0, 1631238718 * SEC + 31421800, true, 83, true, 45,
	  "Performing continuous deployment",
	  "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90" },
	{ "info-lock-expiry-null.json", 0, NONE, true, 83, true, 45, "Performing deployment",
	  "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90" },
	{ "info-lock-expiry-empty.json", 0, NONE, true, 120, true, 7, "Handling git receive pack",
	  "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0" },
	{ "info-lock-garbage.json", -EINVAL, NONE, false, 0, false, 0, "", "" },
	/* Indented, members in another order, unknown members of every type,
	 * escapes, heldByTID as a string (wrong type: absent), and an
	 * offset on lockExpiry. */
	{ "info-lock-fields-reordered.json", 0, 1631238718 * SEC + 31421800, true, 4242, false, 0,
	  "Deleting deployment \xC3\xA9t\xC3\xA9 \"quoted\" \\ / tab\there", "e5f60718293a4b5c" },
	/* A file lock is a JSON object too, just with none of these members. */
	{ "status-lock-indented.json", 0, NONE, false, 0, false, 0, "", "" },
	{ "status-lock-empty.json", -ENODATA, NONE, false, 0, false, 0, "", "" },
};

static void check_info(const struct kudu_info_lock *got, int rc, int expect_rc, int64_t expiry,
		       bool has_pid, long long pid, bool has_tid, long long tid,
		       const char *op, const char *worker, size_t i, const char *what)
{
	EXPECT_INT(rc, expect_rc, i, what);
	assert_true(terminated(got->op, sizeof(got->op)));
	assert_true(terminated(got->worker, sizeof(got->worker)));
	/* A refused file leaves nothing behind. */
	if (expect_rc != 0) {
		EXPECT_INT(got->expiry_ns, NONE, i, what);
		EXPECT_INT(got->has_pid, false, i, what);
		EXPECT_INT(got->has_tid, false, i, what);
		EXPECT_STR(got->op, "", i, what);
		EXPECT_STR(got->worker, "", i, what);
		return;
	}
	EXPECT_INT(got->expiry_ns, expiry, i, what);
	EXPECT_INT(got->has_pid, has_pid, i, what);
	if (has_pid)
		EXPECT_INT(got->pid, pid, i, what);
	EXPECT_INT(got->has_tid, has_tid, i, what);
	if (has_tid)
		EXPECT_INT(got->tid, tid, i, what);
	EXPECT_STR(got->op, op, i, what);
	EXPECT_STR(got->worker, worker, i, what);
}

static void test_info_lock_fixtures(void **state)
{
	for (size_t i = 0; i < ARRAY_LEN(info_fixture_cases); i++) {
		const struct info_fixture_case *c = &info_fixture_cases[i];
		struct kudu_info_lock got;
		struct fixture f;
		int r;

		load_fixture(c->file, &f);
		memset(&got, 0x5A, sizeof(got));
		r = kudu_parse_info_lock(f.data, f.len, &got);
		check_info(&got, r, c->rc, c->expiry_ns, c->has_pid, c->pid, c->has_tid, c->tid,
			   c->op, c->worker, i, c->file);
		free_fixture(&f);
	}
}

#define LONG_TIME "2021-09-10T01:51:58.0314218000000000000000000000000000000000000000Z"
#define HUNDRED_X "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" \
		  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"

static const struct info_inline_case {
	const char *json;
	size_t len;             /* 0: strlen(json) */
	int rc;
	int64_t expiry_ns;
	bool has_pid;
	long long pid;
	bool has_tid;
	long long tid;
	const char *op;
	const char *worker;
} info_inline_cases[] = {
	{ "{}", 0, 0, NONE, false, 0, false, 0, "", "" },
	{ " \r\n\t{ }\n\n", 0, 0, NONE, false, 0, false, 0, "", "" },
	{ "\xEF\xBB\xBF{\"heldByOp\":\"x\"}\r\n", 0, 0, NONE, false, 0, false, 0, "x", "" },
	{ "{\"heldByPID\":83}", 0, 0, NONE, true, 83, false, 0, "", "" },
	/* lockExpiry: null and "" are "not held"; anything else that is not a
	 * time refuses the file. */
	{ "{\"lockExpiry\":null}", 0, 0, NONE, false, 0, false, 0, "", "" },
	{ "{\"lockExpiry\":\"\"}", 0, 0, NONE, false, 0, false, 0, "", "" },
	{ "{\"lockExpiry\":\"tomorrow\",\"heldByPID\":1}", 0, -EINVAL, NONE, false, 0, false, 0, "", "" },
	{ "{\"lockExpiry\":\"  \"}", 0, -EINVAL, NONE, false, 0, false, 0, "", "" },
	{ "{\"lockExpiry\":\"2021-09-10T01:51:58Z \"}", 0, -EINVAL, NONE, false, 0, false, 0, "", "" },
	{ "{\"lockExpiry\":\"2021-02-30T01:51:58Z\"}", 0, -EINVAL, NONE, false, 0, false, 0, "", "" },
	{ "{\"lockExpiry\":\"0001-01-01T00:00:00Z\"}", 0, -EINVAL, NONE, false, 0, false, 0, "", "" },
	{ "{\"lockExpiry\":\"" LONG_TIME "\"}", 0, -EINVAL, NONE, false, 0, false, 0, "", "" },
	{ "{\"lockExpiry\":1631238718}", 0, -EINVAL, NONE, false, 0, false, 0, "", "" },
	{ "{\"lockExpiry\":true}", 0, -EINVAL, NONE, false, 0, false, 0, "", "" },
	{ "{\"lockExpiry\":{}}", 0, -EINVAL, NONE, false, 0, false, 0, "", "" },
	{ "{\"lockExpiry\":\"2021-09-10T01:51:58\\u005a\"}", 0, 0, 1631238718 * SEC,
	  false, 0, false, 0, "", "" },
	/* Member names match without regard to case, as Json.NET does. */
	{ "{\"LOCKEXPIRY\":\"2021-09-10T01:51:58Z\",\"HeldByPid\":1}", 0, 0, 1631238718 * SEC,
	  true, 1, false, 0, "", "" },
	{ "{\"lockExpiryX\":\"garbage\",\"heldByPID\":1}", 0, 0, NONE, true, 1, false, 0, "", "" },
	/* Numbers: only integers a long long holds count. */
	{ "{\"heldByPID\":83.5,\"heldByTID\":99999999999999999999}", 0, 0, NONE,
	  false, 0, false, 0, "", "" },
	{ "{\"heldByPID\":-1,\"heldByTID\":9223372036854775807}", 0, 0, NONE,
	  true, -1, true, LLONG_MAX, "", "" },
	{ "{\"heldByPID\":-9223372036854775808,\"heldByTID\":-9223372036854775809}", 0, 0, NONE,
	  true, LLONG_MIN, false, 0, "", "" },
	{ "{\"heldByPID\":1e2,\"heldByTID\":0}", 0, 0, NONE, false, 0, true, 0, "", "" },
	{ "{\"heldByPID\":083}", 0, -EINVAL, NONE, false, 0, false, 0, "", "" },
	{ "{\"heldByPID\":+83}", 0, -EINVAL, NONE, false, 0, false, 0, "", "" },
	{ "{\"heldByPID\":-}", 0, -EINVAL, NONE, false, 0, false, 0, "", "" },
	{ "{\"heldByPID\":1.}", 0, -EINVAL, NONE, false, 0, false, 0, "", "" },
	{ "{\"heldByPID\":1e}", 0, -EINVAL, NONE, false, 0, false, 0, "", "" },
	/* Wrong types are absent; the last of two duplicates wins. */
	{ "{\"heldByOp\":123,\"heldByWorker\":[\"w\"],\"heldByPID\":\"83\"}", 0, 0, NONE,
	  false, 0, false, 0, "", "" },
	{ "{\"heldByOp\":\"first\",\"heldByOp\":\"second\"}", 0, 0, NONE,
	  false, 0, false, 0, "second", "" },
	{ "{\"" HUNDRED_X "\":{\"a\":[1,{\"b\":null}]},\"heldByOp\":\"ok\"}", 0, 0, NONE,
	  false, 0, false, 0, "ok", "" },
	/* String escapes. */
	{ "{\"heldByOp\":\"a\\u0000b\"}", 0, 0, NONE, false, 0, false, 0, "a\xEF\xBF\xBD" "b", "" },
	{ "{\"heldByOp\":\"\\ud83d\\ude00\"}", 0, 0, NONE, false, 0, false, 0, "\xF0\x9F\x98\x80", "" },
	{ "{\"heldByOp\":\"\\ud83dx\"}", 0, 0, NONE, false, 0, false, 0, "\xEF\xBF\xBDx", "" },
	{ "{\"heldByOp\":\"\\ud83d\\u0041\"}", 0, 0, NONE, false, 0, false, 0, "\xEF\xBF\xBD" "A", "" },
	{ "{\"heldByOp\":\"\\ude00\"}", 0, 0, NONE, false, 0, false, 0, "\xEF\xBF\xBD", "" },
	{ "{\"heldByOp\":\"\\u00e9\\u20AC\\b\\f\\n\\r\\t\"}", 0, 0, NONE, false, 0, false, 0,
	  "\xC3\xA9\xE2\x82\xAC\b\f\n\r\t", "" },
	{ "{\"heldByOp\":\"\\x\"}", 0, -EINVAL, NONE, false, 0, false, 0, "", "" },
	{ "{\"heldByOp\":\"\\u12G4\"}", 0, -EINVAL, NONE, false, 0, false, 0, "", "" },
	{ "{\"heldByOp\":\"\\u12\"}", 0, -EINVAL, NONE, false, 0, false, 0, "", "" },
	{ "{\"heldByOp\":\"\\ud83d\\u12\"}", 0, -EINVAL, NONE, false, 0, false, 0, "", "" },
	{ "{\"heldByOp\":\"a\tb\"}", 0, -EINVAL, NONE, false, 0, false, 0, "", "" },
	{ "{\"heldByOp\":\"a\nb\"}", 0, -EINVAL, NONE, false, 0, false, 0, "", "" },
	/* Not a JSON object, or not only one. */
	{ "", 0, -ENODATA, NONE, false, 0, false, 0, "", "" },
	{ " \n\t\r\n", 0, -ENODATA, NONE, false, 0, false, 0, "", "" },
	{ "\xEF\xBB\xBF", 0, -ENODATA, NONE, false, 0, false, 0, "", "" },
	{ "\xEF\xBB", 0, -EINVAL, NONE, false, 0, false, 0, "", "" },
	{ "[\"x\"]", 0, -EINVAL, NONE, false, 0, false, 0, "", "" },
	{ "\"x\"", 0, -EINVAL, NONE, false, 0, false, 0, "", "" },
	{ "null", 0, -EINVAL, NONE, false, 0, false, 0, "", "" },
	{ "{\"heldByOp\":\"x\",}", 0, -EINVAL, NONE, false, 0, false, 0, "", "" },
	{ "{,\"heldByOp\":\"x\"}", 0, -EINVAL, NONE, false, 0, false, 0, "", "" },
	{ "{\"heldByOp\":\"x\"} {}", 0, -EINVAL, NONE, false, 0, false, 0, "", "" },
	{ "{\"heldByOp\":\"x\"}x", 0, -EINVAL, NONE, false, 0, false, 0, "", "" },
	{ "{}\0", 3, -EINVAL, NONE, false, 0, false, 0, "", "" },
	{ "{\"heldByOp\" \"x\"}", 0, -EINVAL, NONE, false, 0, false, 0, "", "" },
	{ "{heldByOp:\"x\"}", 0, -EINVAL, NONE, false, 0, false, 0, "", "" },
	{ "{'heldByOp':'x'}", 0, -EINVAL, NONE, false, 0, false, 0, "", "" },
	{ "{\"a\":nul}", 0, -EINVAL, NONE, false, 0, false, 0, "", "" },
	{ "{\"a\":tru}", 0, -EINVAL, NONE, false, 0, false, 0, "", "" },
	{ "{\"a\":[1,]}", 0, -EINVAL, NONE, false, 0, false, 0, "", "" },
	{ "{\"a\":[1 2]}", 0, -EINVAL, NONE, false, 0, false, 0, "", "" },
	{ "{\"a\":NaN}", 0, -EINVAL, NONE, false, 0, false, 0, "", "" },
	{ "{\"a\":\"x\"", 0, -EINVAL, NONE, false, 0, false, 0, "", "" },
	/* Only len bytes count. */
	{ "{\"heldByPID\":83}garbage", 16, 0, NONE, true, 83, false, 0, "", "" },
	{ "{\"heldByPID\":83}", 15, -EINVAL, NONE, false, 0, false, 0, "", "" },
};

static void test_info_lock_inline(void **state)
{
	for (size_t i = 0; i < ARRAY_LEN(info_inline_cases); i++) {
		const struct info_inline_case *c = &info_inline_cases[i];
		size_t len = c->len ? c->len : strlen(c->json);
		struct kudu_info_lock got;
		int r;

		memset(&got, 0x5A, sizeof(got));
		r = info_exact(c->json, len, &got);
		check_info(&got, r, c->rc, c->expiry_ns, c->has_pid, c->pid, c->has_tid, c->tid,
			   c->op, c->worker, i, c->json);
	}
	assert_int_equal(kudu_parse_info_lock(NULL, 0, &(struct kudu_info_lock){ 0 }), -ENODATA);
	assert_int_equal(kudu_parse_info_lock(NULL, 5, &(struct kudu_info_lock){ 0 }), -EINVAL);
}

/* Nesting is capped, so a hostile file cannot exhaust the stack. */
static void test_json_depth(void **state)
{
	const size_t deep = 100000;
	size_t cap = deep * 2 + 64;
	char *doc = malloc(cap);
	struct kudu_info_lock got;
	size_t n;

	assert_non_null(doc);
	n = (size_t)snprintf(doc, cap, "{\"x\":");
	memset(doc + n, '[', deep);
	n += deep;
	memset(doc + n, ']', deep);
	n += deep;
	n += (size_t)snprintf(doc + n, cap - n, ",\"heldByPID\":1}");
	assert_int_equal(info_exact(doc, n, &got), -EINVAL);

	n = (size_t)snprintf(doc, cap, "{\"x\":[[[[{\"y\":[[{\"z\":[[[[1]]]]}]]}]]]],\"heldByPID\":1}");
	assert_int_equal(info_exact(doc, n, &got), 0);
	assert_true(got.has_pid);
	free(doc);
}

/* Long strings are cut to the buffer, never in the middle of a character. */
static void test_json_truncation(void **state)
{
	static const struct {
		size_t fill;            /* 'a's before the tail */
		const char *tail;       /* as written in the JSON */
		size_t expect_len;
		const char *expect_end; /* the last bytes kept */
	} cases[] = {
		{ 200, "", 127, "aaa" },
		{ 125, "\\u00e9", 127, "a\xC3\xA9" },   /* fits exactly */
		{ 126, "\\u00e9", 126, "aaa" },         /* would leave no room for the NUL */
		{ 125, "\xC3\xA9", 127, "a\xC3\xA9" },
		{ 126, "\xC3\xA9", 126, "aaa" },        /* raw bytes: the cut lead byte is dropped */
		{ 125, "\xF0\x9F\x98\x80", 125, "aaa" },
		{ 124, "\xF0\x9F\x98\x80", 124, "aaa" },
		{ 123, "\xF0\x9F\x98\x80", 127, "a\xF0\x9F\x98\x80" },
		{ 124, "\\ud83d\\ude00zzz", 124, "aaa" },
	};

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		char doc[512];
		struct kudu_info_lock got;
		size_t n, elen = strlen(cases[i].expect_end);

		n = (size_t)snprintf(doc, sizeof(doc), "{\"heldByWorker\":\"%.*s%s\",\"heldByPID\":7}",
				     (int)cases[i].fill,
				     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
				     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
				     cases[i].tail);
		assert_true(n < sizeof(doc));
		assert_int_equal(info_exact(doc, n, &got), 0);
		EXPECT_INT(strlen(got.worker), cases[i].expect_len, i, doc);
		assert_true(memcmp(got.worker + strlen(got.worker) - elen, cases[i].expect_end,
				   elen) == 0);
		/* The members after the long one are still read. */
		assert_true(got.has_pid);
		assert_int_equal(got.pid, 7);
	}
}

/* Where each valid fixture's object ends; every shorter prefix is refused. */
static size_t json_object_end(const struct fixture *f)
{
	size_t end = f->len;

	while (end > 0 && f->data[end - 1] != '}')
		end--;
	assert_true(end > 0);
	return end;
}

static int parse_info_any(const char *buf, size_t len)
{
	struct kudu_info_lock out;
	int r = kudu_parse_info_lock(buf, len, &out);

	assert_true(terminated(out.op, sizeof(out.op)));
	assert_true(terminated(out.worker, sizeof(out.worker)));
	return r;
}

static int parse_file_lock_any(const char *buf, size_t len)
{
	struct kudu_file_lock out;
	int r = kudu_parse_file_lock(buf, len, &out);

	assert_true(terminated(out.operation, sizeof(out.operation)));
	assert_true(terminated(out.instance, sizeof(out.instance)));
	return r;
}

static void check_json_prefixes(const char *file, int (*parse)(const char *, size_t))
{
	struct fixture f;
	size_t end, first = 0;

	load_fixture(file, &f);
	end = json_object_end(&f);
	while (first < f.len && (f.data[first] == ' ' || f.data[first] == '\n'))
		first++;
	for (size_t n = 0; n <= f.len; n++) {
		char *b = dup_exact(f.data, n);
		int r = parse(b, n);
		int expect = n <= first ? -ENODATA : n < end ? -EINVAL : 0;

		free(b);
		if (r != expect)
			fail_msg("%s cut to %zu of %zu bytes: %d, expected %d", file, n, f.len, r,
				 expect);
	}
	free_fixture(&f);
}

static void test_json_every_prefix(void **state)
{
	check_json_prefixes("info-lock-valid.json", parse_info_any);
	check_json_prefixes("info-lock-expiry-null.json", parse_info_any);
	check_json_prefixes("info-lock-fields-reordered.json", parse_info_any);
	check_json_prefixes("status-lock-indented.json", parse_file_lock_any);
	check_json_prefixes("info-lock-valid.json", parse_file_lock_any);
}

/* Any single byte replaced by one of the bytes that matter to a parser:
 * whatever the answer, no crash, no read past the end, terminated strings. */
static const char mutations[] = { '\0', '"', '\\', '{', '}', '[', ',', ':', '<', '>', '&',
				   '/', ';', '#', '\n', (char)0x80, (char)0xC3, (char)0xFF };

static void mutate_fixture(const char *file, int (*parse)(const char *, size_t))
{
	struct fixture f;

	load_fixture(file, &f);
	for (size_t pos = 0; pos < f.len; pos++) {
		for (size_t m = 0; m < sizeof(mutations); m++) {
			char *b = dup_exact(f.data, f.len);
			int r;

			b[pos] = mutations[m];
			r = parse(b, f.len);
			free(b);
			if (r != 0 && r != -EINVAL && r != -ENODATA)
				fail_msg("%s with byte %zu set to 0x%02x: %d", file, pos,
					 (unsigned char)mutations[m], r);
		}
	}
	free_fixture(&f);
}

static void test_json_mutations(void **state)
{
	mutate_fixture("info-lock-valid.json", parse_info_any);
	mutate_fixture("info-lock-fields-reordered.json", parse_info_any);
	mutate_fixture("status-lock-indented.json", parse_file_lock_any);
}

/* ---- status.lock and the other file locks ----------------------------------- */

static void test_file_lock_fixtures(void **state)
{
	struct kudu_file_lock got;
	struct fixture f;

	load_fixture("status-lock-indented.json", &f);
	assert_int_equal(kudu_parse_file_lock(f.data, f.len, &got), 0);
	assert_string_equal(got.operation, "Performing deployment");
	assert_int_equal(got.acquired_ns, 1699977725 * SEC + 123456700);
	assert_string_equal(got.instance, "a1b2c3");
	free_fixture(&f);

	/* A lock file that was opened but never written. */
	load_fixture("status-lock-empty.json", &f);
	assert_int_equal(f.len, 0);
	memset(&got, 0x5A, sizeof(got));
	assert_int_equal(kudu_parse_file_lock(f.data, f.len, &got), -ENODATA);
	assert_string_equal(got.operation, "");
	assert_int_equal(got.acquired_ns, NONE);
	free_fixture(&f);

	load_fixture("info-lock-garbage.json", &f);
	assert_int_equal(kudu_parse_file_lock(f.data, f.len, &got), -EINVAL);
	free_fixture(&f);
}

static const struct file_lock_case {
	const char *json;
	int rc;
	const char *operation;
	int64_t acquired_ns;
	const char *instance;
} file_lock_cases[] = {
	{ "  \n\t\r\n", -ENODATA, "", NONE, "" },
	{ "\xEF\xBB\xBF\n", -ENODATA, "", NONE, "" },
	{ "{}", 0, "", NONE, "" },
	{ "{\"OperationName\":\"x\",\"AcquiredDateTime\":\"yesterday\"}", 0, "x", NONE, "" },
	{ "{\"AcquiredDateTime\":12,\"InstanceId\":\"RD0003FF1A2B3C\"}", 0, "", NONE, "RD0003FF1A2B3C" },
	{ "{\"AcquiredDateTime\":\"\"}", 0, "", NONE, "" },
	{ "{\"AcquiredDateTime\":\"" LONG_TIME "\"}", 0, "", NONE, "" },
	{ "{\"AcquiredDateTime\":\"2021-09-10T01:26:58.0314218+00:00\"}", 0, "",
	  1631237218 * SEC + 31421800, "" },
	{ "{\"StackTrace\":null,\"OperationName\":[\"not\",\"a\",\"string\"]}", 0, "", NONE, "" },
	{ "{\"operationname\":\"lower\",\"INSTANCEID\":\"upper\"}", 0, "lower", NONE, "upper" },
	{ "[]", -EINVAL, "", NONE, "" },
	{ "{\"OperationName\":\"x\"", -EINVAL, "", NONE, "" },
};

static void test_file_lock_inline(void **state)
{
	for (size_t i = 0; i < ARRAY_LEN(file_lock_cases); i++) {
		const struct file_lock_case *c = &file_lock_cases[i];
		struct kudu_file_lock got;
		int r;

		memset(&got, 0x5A, sizeof(got));
		r = file_lock_exact(c->json, strlen(c->json), &got);
		EXPECT_INT(r, c->rc, i, c->json);
		EXPECT_STR(got.operation, c->operation, i, c->json);
		EXPECT_INT(got.acquired_ns, c->acquired_ns, i, c->json);
		EXPECT_STR(got.instance, c->instance, i, c->json);
	}
}

/* ---- status.xml ----------------------------------------------------------- */

static const struct status_fixture_case {
	const char *file;
	int rc;
	const char *id;
	enum kudu_state state;
	const char *status_text;
	const char *author;
	const char *deployer;
	const char *message;
	bool has_complete;
	bool complete;
	bool is_temp;
	int64_t received_ns;
	int64_t start_ns;
	int64_t end_ns;
	bool finished;
} status_fixture_cases[] = {
	{ "status-building.xml", 0, "5f3c1b2a9d8e4f6a7b8c9d0e1f2a3b4c", KUDU_STATE_BUILDING, "",
	  "N/A", "Push-Deployer", "Created via a push deployment", true, false, false,
	  1699977725 * SEC + 123456700, 1699977727 * SEC + 100, NONE, false },
	{ "status-success.xml", 0, "0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d", KUDU_STATE_SUCCESS, "",
	  "Jane Doe <jane@example.com>", "GitHub",
	  "Merge pull request #42 from contoso/fix-build & tests", true, true, false,
	  1699977725 * SEC + 123456700, 1699977727 * SEC + 100, 1699977880 * SEC + 987654300, true },
	{ "status-failed-temp.xml", 0, "temp-1a2b3c4d", KUDU_STATE_FAILED, "Deployment Lock Failure",
	  "N/A", "ZipDeploy", "Created via a push deployment", true, true, true,
	  1699977725 * SEC + 123456700, 1699977725 * SEC + 123456700, 1699977731 * SEC, true },
	{ "status-bom.xml", 0, "temp-9f8e7d6c", KUDU_STATE_PENDING, "Receiving changes.",
	  "N/A", "OneDeploy", "OneDeploy", true, false, true,
	  1699977725 * SEC + 123456700, 1699977725 * SEC + 123456700, NONE, false },
	{ "status-self-closing.xml", 0, "7e6d5c4b3a2918273645546372819aab", KUDU_STATE_DEPLOYING, "",
	  "", "", "", false, false, false, 1699977725 * SEC + 123456700, NONE, NONE, false },
	{ "status-windows-extra-fields.xml", 0, "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00",
	  KUDU_STATE_SUCCESS, "", "Build Agent", "VSTS", "Line one ABC", true, true, false,
	  1699977725 * SEC + 123456700, 1699977727 * SEC + 100, 1699977880 * SEC + 987654300, true },
	{ "status-numeric-state.xml", 0, "9a8b7c6d5e4f30211203f4e5d6c7b8a9", KUDU_STATE_FAILED,
	  "Deployment failed", "N/A", "Push-Deployer", "Created via a push deployment",
	  true, true, false,
	  1699977725 * SEC + 123456700, 1699977727 * SEC + 100, 1699977880 * SEC + 987654300, true },
	{ "status-truncated.xml", -EINVAL, "", KUDU_STATE_UNKNOWN, "", "", "", "", false, false, false,
	  NONE, NONE, NONE, false },
	{ "status-wrong-root.xml", -EINVAL, "", KUDU_STATE_UNKNOWN, "", "", "", "", false, false, false,
	  NONE, NONE, NONE, false },
	{ "info-lock-valid.json", -EINVAL, "", KUDU_STATE_UNKNOWN, "", "", "", "", false, false, false,
	  NONE, NONE, NONE, false },
	{ "status-lock-empty.json", -EINVAL, "", KUDU_STATE_UNKNOWN, "", "", "", "", false, false, false,
	  NONE, NONE, NONE, false },
};

static void test_status_fixtures(void **state)
{
	for (size_t i = 0; i < ARRAY_LEN(status_fixture_cases); i++) {
		const struct status_fixture_case *c = &status_fixture_cases[i];
		struct kudu_status got;
		struct fixture f;
		int r;

		load_fixture(c->file, &f);
		memset(&got, 0x5A, sizeof(got));
		r = kudu_parse_status_xml(f.data, f.len, &got);
		EXPECT_INT(r, c->rc, i, c->file);
		EXPECT_STR(got.id, c->id, i, c->file);
		EXPECT_INT(got.state, c->state, i, c->file);
		EXPECT_STR(got.status_text, c->status_text, i, c->file);
		EXPECT_STR(got.author, c->author, i, c->file);
		EXPECT_STR(got.deployer, c->deployer, i, c->file);
		EXPECT_STR(got.message, c->message, i, c->file);
		EXPECT_INT(got.has_complete, c->has_complete, i, c->file);
		EXPECT_INT(got.complete, c->complete, i, c->file);
		EXPECT_INT(got.is_temp, c->is_temp, i, c->file);
		EXPECT_INT(got.received_ns, c->received_ns, i, c->file);
		EXPECT_INT(got.start_ns, c->start_ns, i, c->file);
		EXPECT_INT(got.end_ns, c->end_ns, i, c->file);
		EXPECT_INT(kudu_status_finished(&got), c->finished, i, c->file);
		free_fixture(&f);
	}
}

#define DOC(body) "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<deployment>" body "</deployment>\n"

static const struct status_inline_case {
	const char *xml;
	int rc;
	enum kudu_state state;
	int has_complete;       /* -1: not checked */
	bool complete;
	const char *message;    /* NULL: not checked */
} status_inline_cases[] = {
	/* <status>: a name in any case, or its number. */
	{ DOC("<status>pending</status>"), 0, KUDU_STATE_PENDING, -1, false, NULL },
	{ DOC("<status>BUILDING</status>"), 0, KUDU_STATE_BUILDING, -1, false, NULL },
	{ DOC("<status>Deploying</status>"), 0, KUDU_STATE_DEPLOYING, -1, false, NULL },
	{ DOC("<status>failed</status>"), 0, KUDU_STATE_FAILED, -1, false, NULL },
	{ DOC("<status>SUCCESS</status>"), 0, KUDU_STATE_SUCCESS, -1, false, NULL },
	{ DOC("<status>\n  Success\n</status>"), 0, KUDU_STATE_SUCCESS, -1, false, NULL },
	{ DOC("<status>Succ&#101;ss</status>"), 0, KUDU_STATE_SUCCESS, -1, false, NULL },
	{ DOC("<status>0</status>"), 0, KUDU_STATE_PENDING, -1, false, NULL },
	{ DOC("<status>1</status>"), 0, KUDU_STATE_BUILDING, -1, false, NULL },
	{ DOC("<status>2</status>"), 0, KUDU_STATE_DEPLOYING, -1, false, NULL },
	{ DOC("<status>3</status>"), 0, KUDU_STATE_FAILED, -1, false, NULL },
	{ DOC("<status>4</status>"), 0, KUDU_STATE_SUCCESS, -1, false, NULL },
	{ DOC("<status>5</status>"), 0, KUDU_STATE_UNKNOWN, -1, false, NULL },
	{ DOC("<status>-1</status>"), 0, KUDU_STATE_UNKNOWN, -1, false, NULL },
	{ DOC("<status>04</status>"), 0, KUDU_STATE_UNKNOWN, -1, false, NULL },
	{ DOC("<status>Queued</status>"), 0, KUDU_STATE_UNKNOWN, -1, false, NULL },
	{ DOC("<status>SuccessSuccessSuccessSuccessSuccessSuccessSuccessSuccessSuccessSuccess</status>"),
	  0, KUDU_STATE_UNKNOWN, -1, false, NULL },
	{ DOC("<status></status>"), 0, KUDU_STATE_UNKNOWN, -1, false, NULL },
	{ DOC("<status/>"), 0, KUDU_STATE_UNKNOWN, -1, false, NULL },
	/* The last of two duplicates wins. */
	{ DOC("<status>Success</status><status>Pending</status>"), 0, KUDU_STATE_PENDING, -1, false, NULL },
	/* <complete>: True/False in any case, or 1/0; anything else is absent. */
	{ DOC("<complete>TRUE</complete>"), 0, KUDU_STATE_UNKNOWN, 1, true, NULL },
	{ DOC("<complete>true</complete>"), 0, KUDU_STATE_UNKNOWN, 1, true, NULL },
	{ DOC("<complete>false</complete>"), 0, KUDU_STATE_UNKNOWN, 1, false, NULL },
	{ DOC("<complete>1</complete>"), 0, KUDU_STATE_UNKNOWN, 1, true, NULL },
	{ DOC("<complete>0</complete>"), 0, KUDU_STATE_UNKNOWN, 1, false, NULL },
	{ DOC("<complete> True </complete>"), 0, KUDU_STATE_UNKNOWN, 1, true, NULL },
	{ DOC("<complete><![CDATA[True]]></complete>"), 0, KUDU_STATE_UNKNOWN, 1, true, NULL },
	{ DOC("<complete>yes</complete>"), 0, KUDU_STATE_UNKNOWN, 0, false, NULL },
	{ DOC("<complete>Truee</complete>"), 0, KUDU_STATE_UNKNOWN, 0, false, NULL },
	{ DOC("<complete></complete>"), 0, KUDU_STATE_UNKNOWN, 0, false, NULL },
	{ DOC(""), 0, KUDU_STATE_UNKNOWN, 0, false, "" },
	/* <message>: the first line, entities and references decoded. */
	{ DOC("<message>a\r\nb</message>"), 0, KUDU_STATE_UNKNOWN, -1, false, "a" },
	{ DOC("<message>first   \nsecond</message>"), 0, KUDU_STATE_UNKNOWN, -1, false, "first" },
	{ DOC("<message>\n   lead</message>"), 0, KUDU_STATE_UNKNOWN, -1, false, "lead" },
	{ DOC("<message>&#10;second</message>"), 0, KUDU_STATE_UNKNOWN, -1, false, "second" },
	{ DOC("<message>x&#xA;y</message>"), 0, KUDU_STATE_UNKNOWN, -1, false, "x" },
	{ DOC("<message>&lt;&gt;&amp;&quot;&apos;&#x41;&#66;&#xe9;&#x1F600;</message>"), 0,
	  KUDU_STATE_UNKNOWN, -1, false, "<>&\"'AB\xC3\xA9\xF0\x9F\x98\x80" },
	{ DOC("<message>x<!-- a comment -->y</message>"), 0, KUDU_STATE_UNKNOWN, -1, false, "xy" },
	{ DOC("<message><![CDATA[<b>&amp;</b>]]></message>"), 0, KUDU_STATE_UNKNOWN, -1, false,
	  "<b>&amp;</b>" },
	{ DOC("<message>a<b>inner</b>c</message>"), 0, KUDU_STATE_UNKNOWN, -1, false, "ac" },
	{ DOC("<message>a<?pi x?>b</message>"), 0, KUDU_STATE_UNKNOWN, -1, false, "ab" },
	{ DOC("<message a=\"1\" b='2'>m</message >"), 0, KUDU_STATE_UNKNOWN, -1, false, "m" },
	{ DOC("<Message>not ours</Message>"), 0, KUDU_STATE_UNKNOWN, -1, false, "" },
	/* Malformed references, tags and documents. */
	{ DOC("<message>&nbsp;</message>"), -EINVAL, KUDU_STATE_UNKNOWN, 0, false, "" },
	{ DOC("<message>&#0;</message>"), -EINVAL, KUDU_STATE_UNKNOWN, 0, false, "" },
	{ DOC("<message>&#x110000;</message>"), -EINVAL, KUDU_STATE_UNKNOWN, 0, false, "" },
	{ DOC("<message>&#xD800;</message>"), -EINVAL, KUDU_STATE_UNKNOWN, 0, false, "" },
	{ DOC("<message>&#xFFFE;</message>"), -EINVAL, KUDU_STATE_UNKNOWN, 0, false, "" },
	{ DOC("<message>&#;</message>"), -EINVAL, KUDU_STATE_UNKNOWN, 0, false, "" },
	{ DOC("<message>&#x;</message>"), -EINVAL, KUDU_STATE_UNKNOWN, 0, false, "" },
	{ DOC("<message>&#X41;</message>"), -EINVAL, KUDU_STATE_UNKNOWN, 0, false, "" },
	{ DOC("<message>&#12a;</message>"), -EINVAL, KUDU_STATE_UNKNOWN, 0, false, "" },
	{ DOC("<message>&#99999999999999999999;</message>"), -EINVAL, KUDU_STATE_UNKNOWN, 0, false, "" },
	{ DOC("<message>&amp</message>"), -EINVAL, KUDU_STATE_UNKNOWN, 0, false, "" },
	{ DOC("<message>&;</message>"), -EINVAL, KUDU_STATE_UNKNOWN, 0, false, "" },
	{ DOC("<id>x</ID>"), -EINVAL, KUDU_STATE_UNKNOWN, 0, false, "" },
	{ DOC("<id>x</idx>"), -EINVAL, KUDU_STATE_UNKNOWN, 0, false, "" },
	{ DOC("<id>x</id"), -EINVAL, KUDU_STATE_UNKNOWN, 0, false, "" },
	{ DOC("<id>x"), -EINVAL, KUDU_STATE_UNKNOWN, 0, false, "" },
	{ DOC("<id a=1>x</id>"), -EINVAL, KUDU_STATE_UNKNOWN, 0, false, "" },
	{ DOC("<id a=\"<\">x</id>"), -EINVAL, KUDU_STATE_UNKNOWN, 0, false, "" },
	{ DOC("<id a>x</id>"), -EINVAL, KUDU_STATE_UNKNOWN, 0, false, "" },
	{ DOC("<1id>x</1id>"), -EINVAL, KUDU_STATE_UNKNOWN, 0, false, "" },
	{ DOC("<!-- unterminated"), -EINVAL, KUDU_STATE_UNKNOWN, 0, false, "" },
	{ DOC("<![CDATA[ unterminated"), -EINVAL, KUDU_STATE_UNKNOWN, 0, false, "" },
	{ DOC("<!ELEMENT x ANY>"), -EINVAL, KUDU_STATE_UNKNOWN, 0, false, "" },
	{ DOC("< id>x</id>"), -EINVAL, KUDU_STATE_UNKNOWN, 0, false, "" },
	{ "<!DOCTYPE deployment [<!ENTITY a \"b\">]><deployment/>", -EINVAL, KUDU_STATE_UNKNOWN, 0,
	  false, "" },
	{ "<deployment></deployment>trailing", -EINVAL, KUDU_STATE_UNKNOWN, 0, false, "" },
	{ "<deployment></deployment><deployment></deployment>", -EINVAL, KUDU_STATE_UNKNOWN, 0,
	  false, "" },
	{ "<Deployment></Deployment>", -EINVAL, KUDU_STATE_UNKNOWN, 0, false, "" },
	{ "<deploymentx></deploymentx>", -EINVAL, KUDU_STATE_UNKNOWN, 0, false, "" },
	{ "<deployment>", -EINVAL, KUDU_STATE_UNKNOWN, 0, false, "" },
	{ "<deployment", -EINVAL, KUDU_STATE_UNKNOWN, 0, false, "" },
	{ "<?xml version=\"1.0\"?>", -EINVAL, KUDU_STATE_UNKNOWN, 0, false, "" },
	{ "<?xml version=\"1.0\"", -EINVAL, KUDU_STATE_UNKNOWN, 0, false, "" },
	{ "\xEF\xBB\xBF", -EINVAL, KUDU_STATE_UNKNOWN, 0, false, "" },
	{ "", -EINVAL, KUDU_STATE_UNKNOWN, 0, false, "" },
	{ "deployment", -EINVAL, KUDU_STATE_UNKNOWN, 0, false, "" },
	{ "{\"status\":\"Success\"}", -EINVAL, KUDU_STATE_UNKNOWN, 0, false, "" },
	/* Accepted shapes of the document itself. */
	{ "<deployment/>", 0, KUDU_STATE_UNKNOWN, 0, false, "" },
	{ "<deployment />\n<!-- after -->\n<?pi after?>\n", 0, KUDU_STATE_UNKNOWN, 0, false, "" },
	{ "  \n<!-- before --><deployment a='1' b=\"2>\"><status>Failed</status></deployment>", 0,
	  KUDU_STATE_FAILED, 0, false, "" },
	{ "<deployment\n><status>Failed</status ></deployment >", 0, KUDU_STATE_FAILED, 0, false, "" },
	{ "\xEF\xBB\xBF<deployment><status>4</status><complete>True</complete></deployment>", 0,
	  KUDU_STATE_SUCCESS, 1, true, "" },
};

static void test_status_inline(void **state)
{
	for (size_t i = 0; i < ARRAY_LEN(status_inline_cases); i++) {
		const struct status_inline_case *c = &status_inline_cases[i];
		struct kudu_status got;
		int r;

		memset(&got, 0x5A, sizeof(got));
		r = status_exact(c->xml, strlen(c->xml), &got);
		EXPECT_INT(r, c->rc, i, c->xml);
		EXPECT_INT(got.state, c->state, i, c->xml);
		if (c->has_complete >= 0) {
			EXPECT_INT(got.has_complete, c->has_complete, i, c->xml);
			EXPECT_INT(got.complete, c->complete, i, c->xml);
		}
		if (c->message)
			EXPECT_STR(got.message, c->message, i, c->xml);
		if (r != 0) {
			/* A refused document leaves nothing behind. */
			EXPECT_STR(got.id, "", i, c->xml);
			EXPECT_INT(got.received_ns, NONE, i, c->xml);
		}
	}
	assert_int_equal(kudu_parse_status_xml(NULL, 0, &(struct kudu_status){ 0 }), -EINVAL);
}

static const struct status_time_case {
	const char *xml;
	int64_t received_ns;
	int64_t start_ns;
	int64_t end_ns;
} status_time_cases[] = {
	{ DOC("<receivedTime>garbage</receivedTime><startTime></startTime><endTime />"),
	  NONE, NONE, NONE },
	{ DOC("<receivedTime>\n 2023-11-14T16:02:05Z \n</receivedTime>"
	      "<startTime>2023-11-14T18:02:07+02:00</startTime>"
	      "<endTime>2023-11-14T16:04:40.9876543</endTime>"),
	  1699977725 * SEC, 1699977727 * SEC, 1699977880 * SEC + 987654300 },
	{ DOC("<receivedTime>2023-02-29T16:02:05Z</receivedTime>"
	      "<startTime>0001-01-01T00:00:00</startTime>"
	      "<endTime>" LONG_TIME "</endTime>"),
	  NONE, NONE, NONE },
	{ DOC("<lastSuccessEndTime>2023-11-14T16:02:05Z</lastSuccessEndTime>"), NONE, NONE, NONE },
};

static void test_status_times(void **state)
{
	for (size_t i = 0; i < ARRAY_LEN(status_time_cases); i++) {
		const struct status_time_case *c = &status_time_cases[i];
		struct kudu_status got;

		EXPECT_INT(status_exact(c->xml, strlen(c->xml), &got), 0, i, c->xml);
		EXPECT_INT(got.received_ns, c->received_ns, i, c->xml);
		EXPECT_INT(got.start_ns, c->start_ns, i, c->xml);
		EXPECT_INT(got.end_ns, c->end_ns, i, c->xml);
	}
}

static void test_status_long_text(void **state)
{
	char doc[1024];
	struct kudu_status got;
	char expect[KUDU_TEXT_MAX];
	int n;

	/* 126 'a' then a 2-byte character: cut before it, never inside it. */
	memset(expect, 'a', 126);
	expect[126] = '\0';
	n = snprintf(doc, sizeof(doc), "<deployment><author>%s\xC3\xA9%s</author>"
		     "<message>%s&#xe9;</message><id>short</id></deployment>",
		     expect, expect, expect);
	assert_true(n > 0 && (size_t)n < sizeof(doc));
	assert_int_equal(status_exact(doc, (size_t)n, &got), 0);
	assert_string_equal(got.author, expect);
	assert_string_equal(got.message, expect);
	assert_string_equal(got.id, "short");
}

static void test_xml_depth(void **state)
{
	const size_t deep = 20000;
	size_t cap = deep * 8 + 128;
	char *doc = malloc(cap);
	struct kudu_status got;
	size_t n;

	assert_non_null(doc);
	n = (size_t)snprintf(doc, cap, "<deployment>");
	for (size_t i = 0; i < deep; i++)
		n += (size_t)snprintf(doc + n, cap - n, "<a>");
	for (size_t i = 0; i < deep; i++)
		n += (size_t)snprintf(doc + n, cap - n, "</a>");
	n += (size_t)snprintf(doc + n, cap - n, "</deployment>");
	assert_int_equal(status_exact(doc, n, &got), -EINVAL);

	n = (size_t)snprintf(doc, cap, "<deployment><x><y><z><w/></z></y></x>"
			     "<status>Building</status></deployment>");
	assert_int_equal(status_exact(doc, n, &got), 0);
	assert_int_equal(got.state, KUDU_STATE_BUILDING);
	free(doc);
}

static int parse_status_any(const char *buf, size_t len)
{
	struct kudu_status out;
	int r = kudu_parse_status_xml(buf, len, &out);

	assert_true(terminated(out.id, sizeof(out.id)));
	assert_true(terminated(out.status_text, sizeof(out.status_text)));
	assert_true(terminated(out.author, sizeof(out.author)));
	assert_true(terminated(out.deployer, sizeof(out.deployer)));
	assert_true(terminated(out.message, sizeof(out.message)));
	return r;
}

/* Every prefix that stops before the root's end tag is refused. */
static void test_status_every_prefix(void **state)
{
	static const char *const files[] = {
		"status-building.xml", "status-success.xml", "status-failed-temp.xml",
		"status-bom.xml", "status-self-closing.xml", "status-windows-extra-fields.xml",
		"status-numeric-state.xml",
	};
	static const char end_tag[] = "</deployment>";

	for (size_t i = 0; i < ARRAY_LEN(files); i++) {
		struct fixture f;
		size_t root_end = 0;

		load_fixture(files[i], &f);
		for (size_t p = 0; p + strlen(end_tag) <= f.len; p++)
			if (memcmp(f.data + p, end_tag, strlen(end_tag)) == 0)
				root_end = p + strlen(end_tag);
		assert_true(root_end > 0);
		for (size_t n = 0; n <= f.len; n++) {
			char *b = dup_exact(f.data, n);
			int r = parse_status_any(b, n);
			int expect = n < root_end ? -EINVAL : 0;

			free(b);
			if (r != expect)
				fail_msg("%s cut to %zu of %zu bytes: %d, expected %d", files[i],
					 n, f.len, r, expect);
		}
		free_fixture(&f);
	}
}

static void test_status_mutations(void **state)
{
	mutate_fixture("status-windows-extra-fields.xml", parse_status_any);
	mutate_fixture("status-success.xml", parse_status_any);
	mutate_fixture("status-bom.xml", parse_status_any);
}

static const struct finished_case {
	enum kudu_state state;
	bool has_complete;
	bool complete;
	bool finished;
} finished_cases[] = {
	{ KUDU_STATE_PENDING, false, false, false },
	{ KUDU_STATE_PENDING, true, false, false },
	{ KUDU_STATE_BUILDING, true, false, false },
	{ KUDU_STATE_DEPLOYING, false, false, false },
	{ KUDU_STATE_DEPLOYING, true, true, true },
	{ KUDU_STATE_FAILED, false, false, true },
	{ KUDU_STATE_FAILED, true, false, true },
	{ KUDU_STATE_SUCCESS, false, false, true },
	{ KUDU_STATE_UNKNOWN, false, false, false },
	{ KUDU_STATE_UNKNOWN, true, false, false },
	{ KUDU_STATE_UNKNOWN, true, true, true },
	/* complete without has_complete was never read: it does not count. */
	{ KUDU_STATE_UNKNOWN, false, true, false },
};

static void test_status_finished(void **state)
{
	for (size_t i = 0; i < ARRAY_LEN(finished_cases); i++) {
		struct kudu_status st;

		memset(&st, 0, sizeof(st));
		st.state = finished_cases[i].state;
		st.has_complete = finished_cases[i].has_complete;
		st.complete = finished_cases[i].complete;
		EXPECT_INT(kudu_status_finished(&st), finished_cases[i].finished, i,
			   kudu_state_name(st.state));
	}
}

static void test_state_name(void **state)
{
	static const struct {
		enum kudu_state state;
		const char *name;
	} cases[] = {
		{ KUDU_STATE_PENDING, "Pending" },
		{ KUDU_STATE_BUILDING, "Building" },
		{ KUDU_STATE_DEPLOYING, "Deploying" },
		{ KUDU_STATE_FAILED, "Failed" },
		{ KUDU_STATE_SUCCESS, "Success" },
		{ KUDU_STATE_UNKNOWN, "Unknown" },
		{ (enum kudu_state)42, "Unknown" },
	};

	for (size_t i = 0; i < ARRAY_LEN(cases); i++)
		EXPECT_STR(kudu_state_name(cases[i].state), cases[i].name, i, cases[i].name);
}

/* ---- Names ------------------------------------------------------------------ */

#define HEX32 "0123456789abcdef0123456789abcdef"
#define HEX40 HEX32 "01234567"
#define HEX64 HEX32 HEX32

static const struct name_case {
	const char *name;
	enum kudu_name kind;
} lock_names[] = {
	{ "deployment", KUDU_NAME_LOCK_FOLDER },
	{ "status.lock", KUDU_NAME_STATUS_LOCK },
	{ "deployments.lock", KUDU_NAME_DEPLOYMENTS_LOCK },
	{ "sshkey.lock", KUDU_NAME_SSHKEY_LOCK },
	{ "hooks.lock", KUDU_NAME_HOOKS_LOCK },
	{ ".lockwarden-trash-deployment", KUDU_NAME_TRASH },
	{ ".lockwarden-trash-status.lock.1", KUDU_NAME_TRASH },
	{ ".lockwarden-trash-", KUDU_NAME_TRASH },
	{ ".lockwarden-trash", KUDU_NAME_UNKNOWN },
	{ "lockwarden-trash-deployment", KUDU_NAME_UNKNOWN },
	{ "Deployment", KUDU_NAME_UNKNOWN },
	{ "Status.lock", KUDU_NAME_UNKNOWN },
	{ "status.lock.bak", KUDU_NAME_UNKNOWN },
	{ "status.lock ", KUDU_NAME_UNKNOWN },
	{ "info.lock", KUDU_NAME_UNKNOWN },
	{ "deployment/", KUDU_NAME_UNKNOWN },
	{ "deployments", KUDU_NAME_UNKNOWN },
	{ "pending", KUDU_NAME_UNKNOWN },
	{ "", KUDU_NAME_UNKNOWN },
}, deployment_names[] = {
	{ "pending", KUDU_NAME_PENDING },
	{ "active", KUDU_NAME_ACTIVE },
	{ "tools", KUDU_NAME_TOOLS },
	{ "settings.xml", KUDU_NAME_SETTINGS },
	{ "temp-1a2b3c4d", KUDU_NAME_TEMP_RECORD },
	{ "temp-1A2B3C4D", KUDU_NAME_TEMP_RECORD },
	{ "temp-00000000", KUDU_NAME_TEMP_RECORD },
	{ "temp-xyz", KUDU_NAME_UNKNOWN },
	{ "temp-1a2b3c4d5", KUDU_NAME_UNKNOWN },
	{ "temp-1a2b3c4", KUDU_NAME_UNKNOWN },
	{ "temp-1a2b3c4g", KUDU_NAME_UNKNOWN },
	{ "temp-1A2B3C4D/", KUDU_NAME_UNKNOWN },
	{ "temp-1a2b3c4d ", KUDU_NAME_UNKNOWN },
	{ "Temp-1a2b3c4d", KUDU_NAME_UNKNOWN },
	{ "temp_1a2b3c4d", KUDU_NAME_UNKNOWN },
	{ "temp-", KUDU_NAME_UNKNOWN },
	{ HEX32, KUDU_NAME_RECORD },
	{ "0123456789ABCDEF0123456789ABCDEF", KUDU_NAME_RECORD },
	{ HEX40, KUDU_NAME_RECORD },
	{ HEX64, KUDU_NAME_RECORD },
	{ "0123456789abcdef0123456789abcde", KUDU_NAME_UNKNOWN },     /* 31 */
	{ HEX32 "0", KUDU_NAME_UNKNOWN },                              /* 33 */
	{ "0123456789abcdef0123456789abcdef0123456", KUDU_NAME_UNKNOWN }, /* 39 */
	{ HEX40 "0", KUDU_NAME_UNKNOWN },                              /* 41 */
	{ HEX64 "0", KUDU_NAME_UNKNOWN },                              /* 65 */
	{ "0123456789abcdef0123456789abcdeg", KUDU_NAME_UNKNOWN },
	{ "7d8e4c1a-3b2f-4e5d-9a1b-0c2d3e4f5a6b", KUDU_NAME_UNKNOWN },
	{ ".lockwarden-trash-temp-1a2b3c4d", KUDU_NAME_TRASH },
	{ ".lockwarden-trash-pending", KUDU_NAME_TRASH },
	{ "deployment", KUDU_NAME_UNKNOWN },
	{ "status.lock", KUDU_NAME_UNKNOWN },
	{ "Pending", KUDU_NAME_UNKNOWN },
	{ "active ", KUDU_NAME_UNKNOWN },
	{ "settings.xml.tmp", KUDU_NAME_UNKNOWN },
	{ "log.log", KUDU_NAME_UNKNOWN },
	{ "my-release", KUDU_NAME_UNKNOWN },
	{ "", KUDU_NAME_UNKNOWN },
};

static void test_classify(void **state)
{
	for (size_t i = 0; i < ARRAY_LEN(lock_names); i++)
		EXPECT_INT(kudu_classify_lock(lock_names[i].name), lock_names[i].kind, i,
			   lock_names[i].name);
	for (size_t i = 0; i < ARRAY_LEN(deployment_names); i++)
		EXPECT_INT(kudu_classify_deployment(deployment_names[i].name),
			   deployment_names[i].kind, i, deployment_names[i].name);
	assert_int_equal(kudu_classify_lock(NULL), KUDU_NAME_UNKNOWN);
	assert_int_equal(kudu_classify_deployment(NULL), KUDU_NAME_UNKNOWN);
}

static void test_name_describe(void **state)
{
	static const struct {
		enum kudu_name kind;
		const char *text;
	} cases[] = {
		{ KUDU_NAME_UNKNOWN, "unknown" },
		{ KUDU_NAME_LOCK_FOLDER, "lock folder" },
		{ KUDU_NAME_STATUS_LOCK, "status lock file" },
		{ KUDU_NAME_DEPLOYMENTS_LOCK, "deployments lock file" },
		{ KUDU_NAME_SSHKEY_LOCK, "ssh key lock file" },
		{ KUDU_NAME_HOOKS_LOCK, "hooks lock file" },
		{ KUDU_NAME_PENDING, "pending marker" },
		{ KUDU_NAME_ACTIVE, "active id" },
		{ KUDU_NAME_TOOLS, "tools folder" },
		{ KUDU_NAME_SETTINGS, "settings file" },
		{ KUDU_NAME_TEMP_RECORD, "temp record" },
		{ KUDU_NAME_RECORD, "deployment record" },
		{ KUDU_NAME_TRASH, "lockwarden trash" },
		{ (enum kudu_name)99, "unknown" },
	};

	for (size_t i = 0; i < ARRAY_LEN(cases); i++)
		EXPECT_STR(kudu_name_describe(cases[i].kind), cases[i].text, i, cases[i].text);
}

/* isotime_format: whole UTC seconds, the placeholder for "no time", and
 * a round trip through isotime_parse. */
static void test_format_time(void **state)
{
	static const struct {
		int64_t ns;
		const char *text;
	} rows[] = {
		{ 0, "1970-01-01T00:00:00Z" },
		{ 1631237218031421800LL, "2021-09-10T01:26:58Z" },
		{ -1, "1969-12-31T23:59:59Z" },
		{ KUDU_TIME_NONE, "none" },
	};
	char out[40];
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		assert_string_equal(isotime_format(rows[i].ns, "none", out, sizeof(out)), rows[i].text);
	int64_t back;
	assert_int_equal(isotime_parse(out, 0, &back), -EINVAL);
	isotime_format(1631237218000000000LL, "none", out, sizeof(out));
	assert_int_equal(isotime_parse(out, strlen(out), &back), 0);
	assert_true(back == 1631237218000000000LL);
	/* Too small a buffer gives the placeholder, cut, never garbage. */
	char tiny[5];
	isotime_format(0, "-", tiny, sizeof(tiny));
	assert_string_equal(tiny, "-");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_time_table),
		cmocka_unit_test(test_time_length),
		cmocka_unit_test(test_time_every_day),
		cmocka_unit_test(test_info_lock_fixtures),
		cmocka_unit_test(test_info_lock_inline),
		cmocka_unit_test(test_json_depth),
		cmocka_unit_test(test_json_truncation),
		cmocka_unit_test(test_json_every_prefix),
		cmocka_unit_test(test_json_mutations),
		cmocka_unit_test(test_file_lock_fixtures),
		cmocka_unit_test(test_file_lock_inline),
		cmocka_unit_test(test_status_fixtures),
		cmocka_unit_test(test_status_inline),
		cmocka_unit_test(test_status_times),
		cmocka_unit_test(test_status_long_text),
		cmocka_unit_test(test_xml_depth),
		cmocka_unit_test(test_status_every_prefix),
		cmocka_unit_test(test_status_mutations),
		cmocka_unit_test(test_status_finished),
		cmocka_unit_test(test_state_name),
		cmocka_unit_test(test_classify),
		cmocka_unit_test(test_name_describe),
		cmocka_unit_test(test_format_time),
	};

	return cmocka_run_group_tests_name("kudu", tests, NULL, NULL);
}
