/* test_metrics.c - the metrics file's text (metrics_format), what counts as
 * a change worth writing at once, $INSTANCE in the path, and the atomic
 * write. The e2e suite reads the real file back with prometheus_client's
 * parser (test/e2e/test_metrics.py). */
#include <errno.h>
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

#include "metrics.h"

static const struct metrics sample = {
	.incidents = 2, .removed = 9, .kept = 1, .abandoned = 3,
	.hook_ok = 1, .hook_failed = 1, .hook_timeout = 0,
	.start_ns = 1795934535605000000LL, .last_scan_ns = 1795934538653999999LL,
	.stuck = true, .share_up = false,
	.claimed_quiet_ms = 1500250, .last_cleanup_ns = 1795934537000000000LL,
	.last_hook_ns = 1795934538000000000LL, .last_hook_ms = 12345, .last_hook_ok = false,
};

#define I "{instance_id=\"a1b2c3d4e5f6\"}"

static void test_format_has_every_sample(void **state)
{
	char out[8192];
	int n = metrics_format(&sample, "0.1.0", "a1b2c3d4e5f6", out, sizeof(out));
	assert_true(n > 0);
	assert_int_equal((size_t)n, strlen(out));
	static const char *const want[] = {
		"# TYPE lockwarden_build_info gauge\n",
		"\nlockwarden_build_info{instance_id=\"a1b2c3d4e5f6\",version=\"0.1.0\"} 1\n",
		"\nlockwarden_start_time_seconds" I " 1795934535.605\n",
		"# TYPE lockwarden_incidents_total counter\n",
		"\nlockwarden_incidents_total" I " 2\n",
		"\nlockwarden_removed_entries_total" I " 9\n",
		"\nlockwarden_kept_entries_total" I " 1\n",
		"\nlockwarden_cleanups_abandoned_total" I " 3\n",
		"# TYPE lockwarden_hook_runs_total counter\n",
		"\nlockwarden_hook_runs_total{instance_id=\"a1b2c3d4e5f6\",result=\"ok\"} 1\n",
		"\nlockwarden_hook_runs_total{instance_id=\"a1b2c3d4e5f6\",result=\"failed\"} 1\n",
		"\nlockwarden_hook_runs_total{instance_id=\"a1b2c3d4e5f6\",result=\"timeout\"} 0\n",
		/* milliseconds, truncated, never rounded up into the future */
		"\nlockwarden_last_scan_timestamp_seconds" I " 1795934538.653\n",
		"\nlockwarden_stuck" I " 1\n",
		"\nlockwarden_share_up" I " 0\n",
		"# TYPE lockwarden_claimed_quiet_seconds gauge\n",
		"\nlockwarden_claimed_quiet_seconds" I " 1500.250\n",
		"\nlockwarden_last_cleanup_timestamp_seconds" I " 1795934537.000\n",
		"\nlockwarden_last_hook_timestamp_seconds" I " 1795934538.000\n",
		"\nlockwarden_last_hook_duration_seconds" I " 12.345\n",
		"\nlockwarden_last_hook_success" I " 0\n",
	};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		if (!strstr(out, want[i]))
			fail_msg("missing %s in:\n%s", want[i], out);
	assert_int_equal(out[n - 1], '\n');
	/* Every sample names the instance: two instances' files never hold
	 * the same series. */
	for (const char *line = out; *line; line = strchr(line, '\n') + 1)
		if (line[0] != '#' && strncmp(strchr(line, '{'), "{instance_id=\"a1b2c3d4e5f6\"",
						 27) != 0)
			fail_msg("a sample without instance_id: %.60s", line);
}

static void test_format_before_the_first_scan(void **state)
{
	struct metrics m = { .share_up = true };
	char out[8192];
	assert_true(metrics_format(&m, "0.1.0", "x", out, sizeof(out)) > 0);
	assert_non_null(strstr(out, "\nlockwarden_last_scan_timestamp_seconds{instance_id=\"x\"} 0.000\n"));
	assert_non_null(strstr(out, "\nlockwarden_share_up{instance_id=\"x\"} 1\n"));
	assert_non_null(strstr(out, "\nlockwarden_claimed_quiet_seconds{instance_id=\"x\"} 0.000\n"));
	/* no hook has run: nothing to alert on */
	assert_null(strstr(out, "last_hook"));
}

static void test_label_values_are_escaped(void **state)
{
	char out[8192];
	assert_true(metrics_format(&sample, "1.0\"x\\y\nz", "i\"", out, sizeof(out)) > 0);
	assert_non_null(strstr(out, "{instance_id=\"i\\\"\",version=\"1.0\\\"x\\\\y\\nz\"} 1\n"));
	assert_non_null(strstr(out, "\nlockwarden_stuck{instance_id=\"i\\\"\"} 1\n"));
}

static void test_format_too_small(void **state)
{
	char out[64];
	assert_int_equal(metrics_format(&sample, "0.1.0", "i", out, sizeof(out)), -ENOSPC);
	assert_int_equal(metrics_format(&sample, "0.1.0", "i", out, 0), -ENOSPC);
}

static void test_changed(void **state)
{
	struct metrics a = sample, b = sample;
	/* The last scan's time alone waits for the minute's write. */
	b.last_scan_ns += 5000000000LL;
	assert_false(metrics_changed(&a, &b));
	/* How long a deployment has been quiet moves on its own too ... */
	b.claimed_quiet_ms += 5000;
	assert_false(metrics_changed(&a, &b));
	/* ... but its start or end is a change. */
	b.claimed_quiet_ms = 0;
	assert_true(metrics_changed(&a, &b));
	const struct { size_t off; } fields[] = {
		{ offsetof(struct metrics, incidents) }, { offsetof(struct metrics, removed) },
		{ offsetof(struct metrics, kept) }, { offsetof(struct metrics, abandoned) },
		{ offsetof(struct metrics, hook_ok) },
		{ offsetof(struct metrics, hook_failed) }, { offsetof(struct metrics, hook_timeout) },
		{ offsetof(struct metrics, last_cleanup_ns) }, { offsetof(struct metrics, last_hook_ns) },
	};
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		b = sample;
		(*(uint64_t *)((char *)&b + fields[i].off))++;
		assert_true(metrics_changed(&a, &b));
	}
	b = sample;
	b.stuck = !b.stuck;
	assert_true(metrics_changed(&a, &b));
	b = sample;
	b.share_up = !b.share_up;
	assert_true(metrics_changed(&a, &b));
}

static void test_path(void **state)
{
	char out[64];
	assert_int_equal(metrics_path("/l/metrics-$INSTANCE.prom", "ab12", out, sizeof(out)), 0);
	assert_string_equal(out, "/l/metrics-ab12.prom");
	assert_int_equal(metrics_path("/l/$INSTANCE/$INSTANCE", "x", out, sizeof(out)), 0);
	assert_string_equal(out, "/l/x/x");
	assert_int_equal(metrics_path("/l/$INSTANC.prom", "x", out, sizeof(out)), 0);
	assert_string_equal(out, "/l/$INSTANC.prom");
	assert_int_equal(metrics_path("/l/metrics.prom", "x", out, 8), -ENAMETOOLONG);
}

static void test_write_file(void **state)
{
	char dir[] = "/tmp/test_metrics.XXXXXX", path[256], tmp[300], buf[64];
	assert_non_null(mkdtemp(dir));
	/* A folder one level down is made; both it and the file can be read
	 * by a collector whatever the umask (systemd's UMask=0077). */
	snprintf(path, sizeof(path), "%s/sub/m.prom", dir);
	mode_t old_umask = umask(077);
	assert_int_equal(metrics_write_file(path, "a 1\n", 4), 0);
	umask(old_umask);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0644);
	snprintf(tmp, sizeof(tmp), "%s/sub", dir);
	assert_int_equal(stat(tmp, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0755);
	assert_int_equal(metrics_write_file(path, "b 2\n", 4), 0);
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	assert_non_null(fgets(buf, sizeof(buf), f));
	fclose(f);
	assert_string_equal(buf, "b 2\n");
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	assert_int_equal(access(tmp, F_OK), -1);
	/* A link planted as the temporary file is not followed. */
	assert_int_equal(symlink("/tmp/test_metrics-elsewhere", tmp), 0);
	assert_int_equal(metrics_write_file(path, "c 3\n", 4), -ELOOP);
	assert_int_equal(access("/tmp/test_metrics-elsewhere", F_OK), -1);
	unlink(tmp);
	unlink(path);
	snprintf(path, sizeof(path), "%s/sub", dir);
	rmdir(path);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_format_has_every_sample),
		cmocka_unit_test(test_format_before_the_first_scan),
		cmocka_unit_test(test_label_values_are_escaped),
		cmocka_unit_test(test_format_too_small),
		cmocka_unit_test(test_changed),
		cmocka_unit_test(test_path),
		cmocka_unit_test(test_write_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
