/* test_archive.c - the archive folder reached without following links
 * (archdir.c), pruning by the time in a session's name whatever year it
 * says (archive.c), and the bounded walk of a record (recordwalk.c), on
 * real trees under /tmp. Run under the sanitizer build too (make SAN=1
 * unit): a signed overflow there ends the test.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "archdir.h"
#include "archive.h"
#include "clock.h"
#include "recordwalk.h"

#define DAY_MS (24 * 3600 * 1000ULL)

static char base[64];

static int setup(void **state)
{
	snprintf(base, sizeof(base), "/tmp/archive-test-XXXXXX");
	return mkdtemp(base) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
	return system(cmd) == 0 ? 0 : -1;
}

static void path_of(char *out, size_t size, const char *rel)
{
	snprintf(out, size, "%s/%s", base, rel);
}

static void make_dir(const char *rel)
{
	char p[PATH_MAX];
	path_of(p, sizeof(p), rel);
	assert_int_equal(mkdir(p, 0755), 0);
}

static void make_file(const char *rel, const char *content)
{
	char p[PATH_MAX];
	path_of(p, sizeof(p), rel);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fputs(content, f);
	assert_int_equal(fclose(f), 0);
}

static bool exists(const char *rel)
{
	char p[PATH_MAX];
	struct stat st;
	path_of(p, sizeof(p), rel);
	return lstat(p, &st) == 0;
}

static void session(const char *name)
{
	char rel[256];
	snprintf(rel, sizeof(rel), "archive/%s", name);
	make_dir(rel);
	snprintf(rel, sizeof(rel), "archive/%s/note.txt", name);
	make_file(rel, "a cleanup\n");
}

/* Session folders named with the years 1700, 1000, 0001 and 9999. Before,
 * now - t overflowed for a year before about 1734 (1700 is still a time in
 * range, 1677 and later): the sanitizer build stopped, the normal one never
 * pruned it. A name whose time is out of range altogether (1000, 0001) is
 * not a session: left, as a time in the future is. */
static void test_prune_any_year(void **state)
{
	char dir[PATH_MAX], stamp[32], rel[128];
	unsigned pruned = 99;
	time_t now = time(NULL);
	struct tm tm;

	make_dir("archive");
	session("17000101T000000Z-old-1");
	session("10000101T000000Z-older-1");
	session("00010101T000000Z-oldest-1");
	session("99991231T235959Z-future-1");
	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ-now-1", &tm);
	session(stamp);
	path_of(dir, sizeof(dir), "archive");
	assert_int_equal(archive_prune(dir, 30 * DAY_MS, clock_wall_ns(), &pruned), 0);
	assert_int_equal(pruned, 1);
	assert_false(exists("archive/17000101T000000Z-old-1"));
	assert_true(exists("archive/10000101T000000Z-older-1/note.txt"));
	assert_true(exists("archive/00010101T000000Z-oldest-1/note.txt"));
	assert_true(exists("archive/99991231T235959Z-future-1/note.txt"));
	snprintf(rel, sizeof(rel), "archive/%s/note.txt", stamp);
	assert_true(exists(rel));
	/* The extremes of now itself. */
	assert_int_equal(archive_prune(dir, 30 * DAY_MS, INT64_MIN, &pruned), 0);
	assert_int_equal(archive_prune(dir, 30 * DAY_MS, INT64_MAX, &pruned), 0);
}

/* The archive folder, or a folder on its path, replaced by a symlink: the
 * archive refuses it, writes and removes nothing through it. */
static void test_symlink_on_the_path_is_refused(void **state)
{
	char dir[PATH_MAX], target[PATH_MAX], link[PATH_MAX], p[PATH_MAX], err[256];
	struct archive_session s;
	unsigned pruned;
	int fd;

	make_dir("target");
	make_dir("target/archive");
	make_file("target/archive/x", "keep\n");
	path_of(target, sizeof(target), "target");
	path_of(link, sizeof(link), "logs");
	assert_int_equal(symlink(target, link), 0);
	path_of(dir, sizeof(dir), "logs/archive");
	assert_int_equal(archdir_open(dir, false, &fd), -ELOOP);
	assert_int_equal(archdir_open(dir, true, &fd), -ELOOP);
	assert_int_equal(fd, -1);
	assert_int_equal(archive_begin(dir, "i", clock_wall_ns(), &s, err, sizeof(err)), -ELOOP);
	assert_non_null(strstr(err, "symlink"));
	assert_int_equal(archive_prune(dir, 30 * DAY_MS, clock_wall_ns(), &pruned), -ELOOP);
	assert_int_equal(archive_make_dirs(dir), -ELOOP);
	/* The last level itself a symlink. */
	path_of(dir, sizeof(dir), "archive-link");
	path_of(target, sizeof(target), "target/archive");
	assert_int_equal(symlink(target, dir), 0);
	assert_int_equal(archdir_open(dir, true, &fd), -ELOOP);
	assert_true(exists("target/archive/x"));
	path_of(p, sizeof(p), "target/archive");
	assert_int_equal(rmdir(p), -1); /* still holds x, and nothing else was made */
	/* A file on the path, and "..". */
	make_file("file", "");
	path_of(dir, sizeof(dir), "file/archive");
	assert_int_equal(archdir_open(dir, true, &fd), -ENOTDIR);
	path_of(dir, sizeof(dir), "target/../archive");
	assert_int_equal(archdir_open(dir, true, &fd), -EINVAL);
	/* A real path is made, level by level. */
	path_of(dir, sizeof(dir), "real/a/b");
	assert_int_equal(archdir_open(dir, true, &fd), 0);
	assert_true(fd >= 0);
	assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	close(fd);
	assert_true(exists("real/a/b"));
}

/* The walk: every entry counted, a write deep inside seen, a symlink not
 * followed, and past a bound it cannot tell. */
static void test_walk(void **state)
{
	char p[PATH_MAX], outside[PATH_MAX];
	struct site_tree_sum a, b;

	make_dir("rec");
	make_file("rec/status.xml", "<deployment/>");
	make_dir("rec/artifact");
	make_file("rec/artifact/build.zip", "PK");
	make_dir("outside");
	make_file("outside/big", "0123456789");
	path_of(outside, sizeof(outside), "outside");
	path_of(p, sizeof(p), "rec/link");
	assert_int_equal(symlink(outside, p), 0);
	path_of(p, sizeof(p), "rec");
	int fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(recordwalk(fd, NULL, &a), 0);
	assert_false(a.cannot_tell);
	assert_int_equal(a.entries, 4);
	assert_null(recordwalk_difference(&a, &a));
	/* One byte appended deep inside. */
	path_of(p, sizeof(p), "rec/artifact/build.zip");
	FILE *f = fopen(p, "a");
	fputc('x', f);
	fclose(f);
	assert_int_equal(recordwalk(fd, NULL, &b), 0);
	assert_non_null(recordwalk_difference(&a, &b));
	/* Too deep. */
	char rel[PATH_MAX] = "rec";
	for (int i = 0; i <= SITE_TREE_MAX_DEPTH; i++) {
		strcat(rel, "/d");
		make_dir(rel);
	}
	assert_int_equal(recordwalk(fd, NULL, &b), 0);
	assert_true(b.cannot_tell);
	assert_int_equal(b.err, -ELOOP);
	close(fd);
	/* Too many. */
	make_dir("many");
	for (int i = 0; i <= SITE_TREE_MAX_ENTRIES; i++) {
		snprintf(rel, sizeof(rel), "%s/many/%d", base, i);
		int nfd = open(rel, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
		assert_true(nfd >= 0);
		close(nfd);
	}
	path_of(p, sizeof(p), "many");
	fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_int_equal(recordwalk(fd, NULL, &b), 0);
	assert_true(b.cannot_tell);
	assert_int_equal(b.err, -E2BIG);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_prune_any_year, setup, teardown),
		cmocka_unit_test_setup_teardown(test_symlink_on_the_path_is_refused, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_walk, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
