/* test_shareclock.c - the probe of the share's clock on real folders: when
 * it runs, what it leaves (nothing), what it refuses. The clocks of `now`
 * are fake; the probe's own readings are this host's, as are the kernel's
 * file times here, so a measured offset is about 0. */
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

#include "shareclock.h"

#define MIN_MS (60 * 1000ULL)

struct fixture {
	char dir[PATH_MAX];      /* a temporary folder: the site's filesystem */
	char archive[PATH_MAX];  /* <dir>/LogFiles/lockwarden, not made yet */
	dev_t dev;
};

static int setup(void **state)
{
	static struct fixture f;
	struct stat st;
	snprintf(f.dir, sizeof(f.dir), "/tmp/lw-shareclock-XXXXXX");
	if (!mkdtemp(f.dir) || stat(f.dir, &st) < 0)
		return -1;
	snprintf(f.archive, sizeof(f.archive), "%s/LogFiles/lockwarden", f.dir);
	f.dev = st.st_dev;
	*state = &f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[PATH_MAX + 16];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	return system(cmd) == 0 ? 0 : -1;
}

static size_t entries(const char *dir)
{
	char cmd[PATH_MAX + 32];
	snprintf(cmd, sizeof(cmd), "ls -A '%s' | wc -l", dir);
	FILE *p = popen(cmd, "r");
	unsigned long n = 0;
	assert_non_null(p);
	assert_int_equal(fscanf(p, "%lu", &n), 1);
	pclose(p);
	return n;
}

static struct clock_now at(uint64_t mono_ms, int64_t wall_skew_ms)
{
	struct clock_now now = { .mono_ms = mono_ms };
	now.wall_ns = clock_add_ns((int64_t)mono_ms * CLOCK_NS_PER_MS, wall_skew_ms * CLOCK_NS_PER_MS);
	return now;
}

/* The first probe makes the folder, measures, and leaves nothing behind. */
static void test_first_probe_measures_and_leaves_nothing(void **state)
{
	struct fixture *f = *state;
	struct shareclock sc = { 0 };
	struct clock_now now = at(1000 * MIN_MS, 0);

	shareclock_update(&sc, f->archive, "inst0", f->dev, true, &now);
	assert_int_equal(sc.err, 0);
	assert_true(sc.known);
	assert_true(sc.offset_ns < 2000 * CLOCK_NS_PER_MS && sc.offset_ns > -2000 * CLOCK_NS_PER_MS);
	assert_int_equal(entries(f->archive), 0);
}

/* Not again before SHARECLOCK_EVERY_MS, unless this host's clock jumped. */
static void test_probes_when_due_or_after_a_jump(void **state)
{
	struct fixture *f = *state;
	struct shareclock sc = { 0 };
	struct clock_now now = at(1000 * MIN_MS, 0);

	shareclock_update(&sc, f->archive, "inst0", f->dev, true, &now);
	uint64_t first = sc.probed_ms;
	now = at(1004 * MIN_MS, 0);
	shareclock_update(&sc, f->archive, "inst0", f->dev, true, &now);
	assert_true(sc.probed_ms == first);
	now = at(1005 * MIN_MS, 0);
	shareclock_update(&sc, f->archive, "inst0", f->dev, true, &now);
	assert_true(sc.probed_ms == 1005 * MIN_MS);
	/* A minute later by the monotonic clock, and the wall clock jumped. */
	now = at(1006 * MIN_MS, 2 * 60 * MIN_MS);
	shareclock_update(&sc, f->archive, "inst0", f->dev, true, &now);
	assert_true(sc.probed_ms == 1006 * MIN_MS);
	assert_int_equal(sc.err, 0);
}

/* Another filesystem than the site's: nothing measured, nothing made. */
static void test_another_filesystem_is_not_probed(void **state)
{
	struct fixture *f = *state;
	struct shareclock sc = { 0 };
	struct clock_now now = at(1000 * MIN_MS, 0);
	char missing[PATH_MAX + 16];

	snprintf(missing, sizeof(missing), "%s/elsewhere", f->dir);
	shareclock_update(&sc, missing, "inst0", f->dev + 1, true, &now);
	assert_int_equal(sc.err, -EXDEV);
	assert_false(sc.known);
	assert_int_equal(access(missing, F_OK), -1);
}

/* A leftover of ours (a crash between create and remove), or anything
 * anyone put under the name, is never opened: removed, and the probe made
 * anew. A folder under the name cannot be removed: the probe fails, and a
 * measure already made stands. */
static void test_whatever_holds_the_name_is_never_opened(void **state)
{
	struct fixture *f = *state;
	struct shareclock sc = { 0 };
	struct clock_now now = at(1000 * MIN_MS, 0);
	char name[PATH_MAX + 64], target[PATH_MAX + 16];

	shareclock_update(&sc, f->archive, "inst0", f->dev, true, &now);
	snprintf(name, sizeof(name), "%s/" CLOCK_PROBE_PREFIX "inst1", f->archive);
	snprintf(target, sizeof(target), "%s/target", f->dir);
	int fd = open(target, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(symlink(target, name), 0);
	struct shareclock other = { 0 };
	shareclock_update(&other, f->archive, "inst1", f->dev, true, &now);
	if (other.err != 0)
		fail_msg("%s: %s", other.what, strerror(-other.err));
	assert_int_equal(entries(f->archive), 0);
	struct stat st;
	assert_int_equal(stat(target, &st), 0);
	assert_int_equal(st.st_size, 0);

	assert_int_equal(mkdir(name, 0700), 0);
	sc.probed_ms = 0;
	now = at(1010 * MIN_MS, 0);
	shareclock_update(&sc, f->archive, "inst1", f->dev, true, &now);
	assert_int_equal(sc.err, -EEXIST);
	assert_true(sc.known);
	assert_int_equal(rmdir(name), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_first_probe_measures_and_leaves_nothing, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_probes_when_due_or_after_a_jump, setup, teardown),
		cmocka_unit_test_setup_teardown(test_another_filesystem_is_not_probed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_whatever_holds_the_name_is_never_opened, setup,
						teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
