/* test_config.c - config.c: the value parsers, the file, the environment,
 * the command-line overrides, the error messages, check-config's output and
 * the sample file. Run from the repository root (fixtures and
 * conf/lockwarden.ini are read relative to it). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ini.h>

#include "config.h"

#define FIXTURES "test/fixtures/config/"
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
/* Kept in step with config.c: the longest line it accepts, '\n' excluded. */
#define LINE_BYTES_MAX 8190

static char *const no_env[] = { NULL };

/* A temporary folder per test, removed by the teardown. */
static char temp_dir[64];

static int make_temp_dir(void **state)
{
	snprintf(temp_dir, sizeof(temp_dir), "/tmp/lockwarden-test-config-XXXXXX");
	return mkdtemp(temp_dir) ? 0 : -1;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int remove_temp_dir(void **state)
{
	return nftw(temp_dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
}

/* Writes len bytes into temp_dir/name; returns the path (static buffer). */
static const char *write_temp(const char *name, const void *data, size_t len)
{
	static char path[PATH_MAX];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", temp_dir, name);
	f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
	return path;
}

static const char *write_temp_str(const char *name, const char *text)
{
	return write_temp(name, text, strlen(text));
}

/* What config_print or config_print_sample writes, as a string to free. */
static char *printed(const struct config *cfg)
{
	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);

	assert_non_null(out);
	if (cfg)
		config_print(cfg, out);
	else
		config_print_sample(out);
	assert_int_equal(fclose(out), 0);
	return text;
}

#define CMP_STRING(a, b) assert_string_equal(a, b)
#define CMP_PATH(a, b) assert_string_equal(a, b)
#define CMP_DURATION(a, b) assert_int_equal(a, b)
#define CMP_AUTO_DURATION(a, b) assert_int_equal(a, b)
#define CMP_BOOL(a, b) assert_int_equal(a, b)
#define CMP_LEVEL(a, b) assert_int_equal(a, b)

/* Every key's value equal, whatever the sources. */
static void assert_same_values(const struct config *a, const struct config *b)
{
#define CONFIG_KEY(section, key, type, def, min, max, doc) \
	CMP_##type(a->section##_##key, b->section##_##key);
#include "config.def"
}

static void assert_all_from(const struct config *c, enum config_source source)
{
#define CONFIG_KEY(section, key, type, def, min, max, doc) \
	assert_int_equal(c->section##_##key##_source, source);
#include "config.def"
}

static void assert_defaults(const struct config *c)
{
	assert_string_equal(c->site_root, "/home/site");
	assert_int_equal(c->policy_stuck_after, 45 * 60 * 1000);
	assert_int_equal(c->policy_auto_floor, 25 * 60 * 1000);
	assert_false(c->policy_allow_full_clear);
	assert_int_equal(c->policy_escalate_within, 60 * 60 * 1000);
	assert_false(c->policy_dry_run);
	assert_int_equal(c->scan_rescan_interval, 5000);
	assert_string_equal(c->hook_command, "");
	assert_int_equal(c->hook_timeout, 120 * 1000);
	assert_int_equal(c->hook_cooldown, 10 * 60 * 1000);
	assert_int_equal(c->log_level, LOG_LEVEL_INFO);
}

static void assert_zeroed(const struct config *c)
{
	static const struct config zero;

	assert_memory_equal(c, &zero, sizeof(zero));
}

/* ---- value parsers ---- */

static void test_parse_duration(void **state)
{
	static const struct {
		const char *text;
		int rc;
		uint64_t ms;
	} cases[] = {
		{ "90", 0, 90000 },
		{ "90s", 0, 90000 },
		{ "15m", 0, 900000 },
		{ "2h", 0, 7200000 },
		{ "250ms", 0, 250 },
		{ "1h30m", 0, 5400000 },
		{ "1d", 0, 86400000 },
		{ "1d2h3m4s5ms", 0, 86400000 + 7200000 + 180000 + 4000 + 5 },
		{ "0", 0, 0 },
		{ "0s", 0, 0 },
		{ "007s", 0, 7000 },
		{ " 15m ", 0, 900000 },
		{ "\t2h\n", 0, 7200000 },
		{ "18446744073709551615ms", 0, UINT64_MAX },
		{ "", -EINVAL, 0 },
		{ "   ", -EINVAL, 0 },
		{ "15 minutes", -EINVAL, 0 },
		{ "15 m", -EINVAL, 0 },
		{ "1.5s", -EINVAL, 0 },
		{ "-5s", -EINVAL, 0 },
		{ "+5s", -EINVAL, 0 },
		{ "15M", -EINVAL, 0 },
		{ "15S", -EINVAL, 0 },
		{ "1h 30m", -EINVAL, 0 },
		{ "30m1h", -EINVAL, 0 },
		{ "1m1m", -EINVAL, 0 },
		{ "1h30", -EINVAL, 0 },
		{ "s", -EINVAL, 0 },
		{ "ms", -EINVAL, 0 },
		{ "15x", -EINVAL, 0 },
		{ "15mss", -EINVAL, 0 },
		{ "15sec", -EINVAL, 0 },
		{ "5s!", -EINVAL, 0 },
		{ "0x10s", -EINVAL, 0 },
		{ "1e3", -EINVAL, 0 },
		{ "18446744073709551616ms", -ERANGE, 0 },
		{ "18446744073709552s", -ERANGE, 0 },
		{ "99999999999999999999999d", -ERANGE, 0 },
		{ "213503982335d", -ERANGE, 0 },
		/* each part fits, the sum does not */
		{ "213503982334d23h59m59s999ms", -ERANGE, 0 },
		/* a typo is reported as a typo even when the number is huge */
		{ "99999999999999999999x", -EINVAL, 0 },
	};
	int failed = 0;

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		uint64_t ms = 4242;  /* must stay untouched on failure */
		int rc = config_parse_duration(cases[i].text, &ms);
		uint64_t want = cases[i].rc ? 4242 : cases[i].ms;

		if (rc != cases[i].rc || ms != want) {
			print_error("config_parse_duration(\"%s\") = %d, %" PRIu64
				    "; want %d, %" PRIu64 "\n",
				    cases[i].text, rc, ms, cases[i].rc, want);
			failed++;
		}
	}
	assert_int_equal(failed, 0);
}

static void test_format_duration(void **state)
{
	static const struct {
		uint64_t ms;
		const char *text;
	} cases[] = {
		{ 0, "0s" },
		{ 1, "1ms" },
		{ 250, "250ms" },
		{ 1500, "1500ms" },
		{ 1000, "1s" },
		{ 90000, "1m30s" },
		{ 900000, "15m" },
		{ 5400000, "1h30m" },
		{ 3600000, "1h" },
		{ 86400000, "1d" },
		{ 7 * 86400000ULL, "7d" },
		{ 86400000 + 1000, "1d1s" },
		{ UINT64_MAX, "18446744073709551615ms" },
		{ UINT64_MAX / 1000 * 1000, "213503982334d14h25m51s" },
	};
	int failed = 0;

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char out[64];
		uint64_t back = 0;

		config_format_duration(cases[i].ms, out, sizeof(out));
		if (strcmp(out, cases[i].text) != 0) {
			print_error("config_format_duration(%" PRIu64 ") = \"%s\"; want \"%s\"\n",
				    cases[i].ms, out, cases[i].text);
			failed++;
		}
		/* what is printed must read back as the same value */
		if (config_parse_duration(out, &back) != 0 || back != cases[i].ms) {
			print_error("\"%s\" does not read back as %" PRIu64 "\n", out,
				    cases[i].ms);
			failed++;
		}
	}
	assert_int_equal(failed, 0);
}

static void test_format_duration_small_buffer(void **state)
{
	char out[5];

	memset(out, 'X', sizeof(out));
	config_format_duration(5400000 + 7000, out, sizeof(out));  /* "1h30m7s" */
	assert_true(memchr(out, '\0', sizeof(out)) != NULL);
	assert_true(strncmp(out, "1h30m7s", strlen(out)) == 0);

	memset(out, 'X', sizeof(out));
	config_format_duration(123456, out, 3);
	assert_string_equal(out, "12");

	/* out_size 0: nothing is written */
	memset(out, 'X', sizeof(out));
	config_format_duration(1000, out, 0);
	assert_int_equal(out[0], 'X');
}

static void test_parse_bool(void **state)
{
	static const struct {
		const char *text;
		int rc;
		bool value;
	} cases[] = {
		{ "true", 0, true }, { "TRUE", 0, true }, { "Yes", 0, true },
		{ "on", 0, true }, { "1", 0, true },
		{ "false", 0, false }, { "No", 0, false }, { "OFF", 0, false },
		{ "0", 0, false },
		{ "", -EINVAL, false }, { "maybe", -EINVAL, false }, { "2", -EINVAL, false },
		{ "truee", -EINVAL, false }, { "y", -EINVAL, false }, { "t", -EINVAL, false },
		{ "enabled", -EINVAL, false },
	};
	int failed = 0;

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		bool out = !cases[i].value;
		int rc = config_parse_bool(cases[i].text, &out);

		if (rc != cases[i].rc || (rc == 0 && out != cases[i].value)) {
			print_error("config_parse_bool(\"%s\") = %d, %d\n", cases[i].text, rc, out);
			failed++;
		}
	}
	assert_int_equal(failed, 0);
}

/* ---- which file ---- */

static void test_missing_default_file_means_defaults(void **state)
{
	struct config cfg;
	char err[CONFIG_ERROR_MAX];

	if (access(CONFIG_DEFAULT_PATH, F_OK) == 0) {
		print_message("%s exists on this machine; cannot test its absence\n",
			      CONFIG_DEFAULT_PATH);
		skip();
	}
	assert_int_equal(config_load(&cfg, NULL, no_env, NULL, err, sizeof(err)), 0);
	assert_string_equal(err, "");
	assert_null(cfg.file);
	assert_defaults(&cfg);
	assert_all_from(&cfg, CONFIG_FROM_DEFAULT);
	config_free(&cfg);
}

static void test_missing_explicit_file(void **state)
{
	struct config cfg;
	char err[CONFIG_ERROR_MAX];

	assert_int_equal(config_load(&cfg, FIXTURES "does-not-exist.ini", no_env, NULL,
				     err, sizeof(err)), -ENOENT);
	assert_string_equal(err, FIXTURES "does-not-exist.ini: cannot read: "
			    "No such file or directory");
	assert_zeroed(&cfg);
}

static void test_directory_as_file(void **state)
{
	struct config cfg;
	char err[CONFIG_ERROR_MAX];

	assert_int_equal(config_load(&cfg, FIXTURES, no_env, NULL, err, sizeof(err)),
			 -EISDIR);
	assert_string_equal(err, FIXTURES ": cannot read: Is a directory");
	assert_zeroed(&cfg);
}

static void test_unreadable_file(void **state)
{
	struct config cfg;
	char err[CONFIG_ERROR_MAX], want[CONFIG_ERROR_MAX];
	const char *path = write_temp_str("unreadable.ini", "[policy]\n");

	if (geteuid() == 0) {
		print_message("running as root, which reads any file; cannot test EACCES\n");
		skip();
	}
	assert_int_equal(chmod(path, 0), 0);
	assert_int_equal(config_load(&cfg, path, no_env, NULL, err, sizeof(err)), -EACCES);
	snprintf(want, sizeof(want), "%s: cannot read: Permission denied", path);
	assert_string_equal(err, want);
	assert_zeroed(&cfg);
}

/* ---- good files ---- */

static void test_valid_full_file(void **state)
{
	struct config cfg;
	char err[CONFIG_ERROR_MAX];

	assert_int_equal(config_load(&cfg, FIXTURES "valid-full.ini", no_env, NULL,
				     err, sizeof(err)), 0);
	assert_string_equal(cfg.file, FIXTURES "valid-full.ini");
	assert_string_equal(cfg.site_root, "/srv/site");  /* trailing '/' dropped */
	assert_int_equal(cfg.policy_stuck_after, 5400000);
	assert_int_equal(cfg.policy_quiet_period, 90000);
	assert_true(cfg.policy_dry_run);
	assert_int_equal(cfg.scan_rescan_interval, 250);
	assert_string_equal(cfg.hook_command,
			    "/usr/lib/lockwarden/hooks/restart-site --why \"stuck deploy\"");
	assert_int_equal(cfg.hook_timeout, 120000);
	assert_int_equal(cfg.hook_cooldown, 86400000);
	assert_int_equal(cfg.log_level, LOG_LEVEL_WARNING);
	assert_all_from(&cfg, CONFIG_FROM_FILE);
	assert_int_equal(cfg.site_root_line, 5);
	assert_int_equal(cfg.policy_stuck_after_line, 8);
	assert_int_equal(cfg.policy_quiet_period_line, 9);
	assert_int_equal(cfg.policy_dry_run_line, 10);
	assert_int_equal(cfg.scan_rescan_interval_line, 13);
	assert_int_equal(cfg.hook_command_line, 16);
	assert_int_equal(cfg.hook_timeout_line, 17);
	assert_int_equal(cfg.hook_cooldown_line, 18);
	assert_int_equal(cfg.hook_verify_within, 15 * 60000);
	assert_int_equal(cfg.hook_verify_within_line, 19);
	assert_int_equal(cfg.log_level_line, 22);
	assert_string_equal(cfg.archive_dir, "/srv/archive");
	assert_int_equal(cfg.archive_keep, 7 * 86400000ULL);
	assert_int_equal(cfg.archive_dir_line, 25);
	assert_int_equal(cfg.archive_keep_line, 26);
	assert_int_equal(cfg.site_claim_expiry, 90000);
	assert_string_equal(cfg.hook_scope, "instance");
	assert_int_equal(cfg.policy_auto_floor, 2 * 60000);
	assert_string_equal(cfg.log_format, "json");
	assert_string_equal(cfg.metrics_file, "/home/LogFiles/lockwarden/metrics-$INSTANCE.prom");
	assert_true(cfg.policy_allow_full_clear);
	assert_int_equal(cfg.policy_escalate_within, 45 * 60000);
	config_free(&cfg);
	assert_zeroed(&cfg);
	config_free(&cfg);  /* twice is harmless */
}

static void test_crlf_line_endings(void **state)
{
	struct config cfg;
	char err[CONFIG_ERROR_MAX];

	assert_int_equal(config_load(&cfg, FIXTURES "crlf-line-endings.ini", no_env, NULL,
				     err, sizeof(err)), 0);
	assert_int_equal(cfg.policy_stuck_after, 20 * 60 * 1000);
	assert_int_equal(cfg.policy_stuck_after_line, 3);
	assert_string_equal(cfg.hook_command, "echo done");
	assert_int_equal(cfg.hook_command_line, 6);
	config_free(&cfg);
}

static void test_hook_command_taken_verbatim(void **state)
{
	static const struct {
		const char *fixture;
		const char *command;
	} cases[] = {
		{ FIXTURES "hook-command-shell.ini",
		  "cd \"$HOME\" && echo 'a;b' ; echo \"$(date +%s)\" | tee -a /tmp/x"
		  " # shell comment" },
		{ FIXTURES "hook-command-semicolon.ini", "echo a ; b" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct config cfg;
		char err[CONFIG_ERROR_MAX];

		assert_int_equal(config_load(&cfg, cases[i].fixture, no_env, NULL,
					     err, sizeof(err)), 0);
		assert_string_equal(cfg.hook_command, cases[i].command);
		config_free(&cfg);
	}
}

/* The longest line the file may hold, and long lines before an error not
 * upsetting the line count (they reach the reader in several pieces). */
static void test_long_lines(void **state)
{
	static const size_t command_lens[] = { 1000, 5000, LINE_BYTES_MAX - 10 };
	struct config cfg;
	char err[CONFIG_ERROR_MAX], want[CONFIG_ERROR_MAX];

	for (size_t i = 0; i < ARRAY_SIZE(command_lens); i++) {
		size_t n = command_lens[i];
		size_t size = n + 64;
		char *text = malloc(size);
		char *command = malloc(n + 1);
		const char *path;

		assert_non_null(text);
		assert_non_null(command);
		/* "echo xxx…x" of exactly n bytes */
		memset(command, 'x', n);
		memcpy(command, "echo ", 5);
		command[n] = '\0';
		snprintf(text, size, "[hook]\ncommand = %s\n[policy]\nstuck_after = 20m\n",
			 command);
		path = write_temp_str("long.ini", text);
		assert_int_equal(config_load(&cfg, path, no_env, NULL, err, sizeof(err)), 0);
		assert_string_equal(cfg.hook_command, command);
		assert_int_equal(cfg.policy_stuck_after_line, 4);
		config_free(&cfg);

		snprintf(text, size, "[hook]\ncommand = %s\n[policy]\nstuck_after = soon\n",
			 command);
		path = write_temp_str("long.ini", text);
		assert_int_equal(config_load(&cfg, path, no_env, NULL, err, sizeof(err)),
				 -EINVAL);
		snprintf(want, sizeof(want), "%s:4: [policy] stuck_after = 'soon': "
			 "not a duration (use 90s, 15m or 2h, or auto)", path);
		assert_string_equal(err, want);
		free(text);
		free(command);
	}
}

static void test_too_long_line(void **state)
{
	/* One byte past the longest accepted line; and much longer. */
	static const size_t value_lens[] = { LINE_BYTES_MAX - 10 + 1, 20000 };
	struct config cfg;
	char err[CONFIG_ERROR_MAX], want[CONFIG_ERROR_MAX];

	for (size_t i = 0; i < ARRAY_SIZE(value_lens); i++) {
		size_t n = value_lens[i];
		char *text = malloc(n + 64);
		const char *path;

		assert_non_null(text);
		strcpy(text, "[hook]\ncommand = ");
		memset(text + strlen(text), 'x', n);
		strcpy(text + 17 + n, "\n[policy]\n");
		path = write_temp_str("too-long.ini", text);
		assert_int_equal(config_load(&cfg, path, no_env, NULL, err, sizeof(err)),
				 -EINVAL);
		snprintf(want, sizeof(want), "%s:2: line longer than %d bytes", path,
			 LINE_BYTES_MAX);
		assert_string_equal(err, want);
		assert_zeroed(&cfg);
		free(text);
	}
}

/* inih's knobs are library globals: config_load must set its own each time,
 * whatever someone else left in them. */
static void test_ini_knobs_set_on_every_load(void **state)
{
	struct config cfg;
	char err[CONFIG_ERROR_MAX];

	ini_allow_multiline = true;
	ini_allow_inline_comments = true;
	ini_max_line = 200;
	ini_stop_on_first_error = false;
	assert_int_equal(config_load(&cfg, FIXTURES "hook-command-semicolon.ini", no_env,
				     NULL, err, sizeof(err)), 0);
	assert_string_equal(cfg.hook_command, "echo a ; b");
	config_free(&cfg);

	ini_allow_multiline = true;
	assert_int_equal(config_load(&cfg, FIXTURES "continuation-line.ini", no_env,
				     NULL, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, ":4: syntax error"));
}

/* ---- bad files ---- */

static void test_file_errors(void **state)
{
	static const struct {
		const char *fixture;
		int rc;
		const char *message;  /* after "FIXTURES<fixture>:" */
	} cases[] = {
		{ "bad-duration.ini", -EINVAL,
		  "7: [policy] stuck_after = '15 minutes': not a duration (use 90s, 15m or 2h, or auto)" },
		{ "duration-out-of-range.ini", -EINVAL,
		  "2: [policy] stuck_after = '8d': must be between 1s and 7d, or auto" },
		{ "duration-overflow.ini", -EINVAL,
		  "2: [hook] timeout = '99999999999999999999s': too large, must be between 1s and 1d" },
		{ "bad-bool.ini", -EINVAL,
		  "2: [policy] dry_run = 'maybe': not a boolean (use true or false)" },
		{ "bad-level.ini", -EINVAL,
		  "2: [log] level = 'verbose': not a log level (use debug, info, warning or error)" },
		{ "bad-scope.ini", -EINVAL,
		  "2: [hook] scope = 'everywhere': not a scope (use site or instance)" },
		{ "bad-log-format.ini", -EINVAL,
		  "2: [log] format = 'xml': not a log format (use text or json)" },
		{ "relative-metrics-file.ini", -EINVAL,
		  "2: [metrics] file = 'metrics.prom': must be an absolute path" },
		{ "relative-path.ini", -EINVAL,
		  "2: [site] root = 'home/site': must be an absolute path" },
		{ "empty-path.ini", -EINVAL, "2: [site] root = '': must be an absolute path" },
		{ "unknown-key.ini", -EINVAL,
		  "3: [policy] stuk_after = '15m': unknown key in [policy]" },
		{ "unknown-section.ini", -EINVAL,
		  "5: [polcy] stuck_after = '15m': unknown section [polcy]" },
		{ "duplicate-key.ini", -EINVAL,
		  "6: [policy] stuck_after = '20m': given twice, first on line 2" },
		{ "key-before-section.ini", -EINVAL,
		  "2: [] stuck_after = '15m': key before any [section]" },
		{ "syntax-error.ini", -EINVAL, "4: syntax error: 'stuck_after 15m'" },
		{ "broken-section.ini", -EINVAL, "3: syntax error: '[policy'" },
		{ "continuation-line.ini", -EINVAL, "4: syntax error: '&& echo restarted'" },
		/* the first error wins */
		{ "two-errors.ini", -EINVAL,
		  "2: [policy] stuck_after = 'soon': not a duration (use 90s, 15m or 2h, or auto)" },
	};
	int failed = 0;

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct config cfg;
		char path[PATH_MAX], err[CONFIG_ERROR_MAX], want[CONFIG_ERROR_MAX];
		int rc;

		snprintf(path, sizeof(path), FIXTURES "%s", cases[i].fixture);
		snprintf(want, sizeof(want), "%s:%s", path, cases[i].message);
		rc = config_load(&cfg, path, no_env, NULL, err, sizeof(err));
		if (rc != cases[i].rc || strcmp(err, want) != 0) {
			print_error("%s: %d \"%s\"\n    want %d \"%s\"\n", cases[i].fixture,
				    rc, err, cases[i].rc, want);
			failed++;
		}
		assert_zeroed(&cfg);
	}
	assert_int_equal(failed, 0);
}

static void test_error_shows_bytes_safely(void **state)
{
	static const char with_control[] = "[policy]\nstuck_after = 1\x01m\\\n";
	static const char with_nul[] = "[policy]\nquiet_period = 1m\nstuck_after = 1\0m\n";
	struct config cfg;
	char err[CONFIG_ERROR_MAX], want[CONFIG_ERROR_MAX];
	char *text, *long_value;
	const char *path;

	path = write_temp_str("control.ini", with_control);
	assert_int_equal(config_load(&cfg, path, no_env, NULL, err, sizeof(err)), -EINVAL);
	snprintf(want, sizeof(want), "%s:2: [policy] stuck_after = '1\\x01m\\x5c': "
		 "not a duration (use 90s, 15m or 2h, or auto)", path);
	assert_string_equal(err, want);

	/* a NUL would cut the line short without a word */
	path = write_temp("nul.ini", with_nul, sizeof(with_nul) - 1);
	assert_int_equal(config_load(&cfg, path, no_env, NULL, err, sizeof(err)), -EINVAL);
	snprintf(want, sizeof(want), "%s:3: NUL byte in the line", path);
	assert_string_equal(err, want);

	/* a long bad value is shown cut, and the message is still whole */
	long_value = malloc(1001);
	text = malloc(1100);
	assert_non_null(long_value);
	assert_non_null(text);
	memset(long_value, '7', 1000);
	long_value[1000] = '\0';
	snprintf(text, 1100, "[policy]\nstuck_after = %sx\n", long_value);
	path = write_temp_str("long-value.ini", text);
	assert_int_equal(config_load(&cfg, path, no_env, NULL, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, ":2: [policy] stuck_after = '7777"));
	assert_non_null(strstr(err, "...': not a duration (use 90s, 15m or 2h, or auto)"));
	assert_true(strlen(err) < sizeof(err) - 1);
	free(long_value);
	free(text);
}

static void test_error_buffer_small_or_missing(void **state)
{
	struct config cfg;
	char err[16];

	memset(err, 'X', sizeof(err));
	assert_int_equal(config_load(&cfg, FIXTURES "bad-duration.ini", no_env, NULL,
				     err, sizeof(err)), -EINVAL);
	assert_int_equal(strlen(err), sizeof(err) - 1);
	assert_int_equal(strncmp(err, FIXTURES, sizeof(err) - 1), 0);

	assert_int_equal(config_load(&cfg, FIXTURES "bad-duration.ini", no_env, NULL,
				     NULL, 0), -EINVAL);
	assert_zeroed(&cfg);
	assert_int_equal(config_load(&cfg, FIXTURES "valid-full.ini", NULL, NULL, NULL, 0), 0);
	config_free(&cfg);
}

/* ---- environment and command line ---- */

/* stuck_after = auto (any case) from the file and the environment; a near
 * miss is an error naming the choices; auto_floor is a plain duration. */
static void test_stuck_after_auto(void **state)
{
	char *auto_env[] = { "LOCKWARDEN_POLICY_STUCK_AFTER=Auto", NULL };
	char *floor_env[] = { "LOCKWARDEN_POLICY_AUTO_FLOOR=auto", NULL };
	char *near_env[] = { "LOCKWARDEN_POLICY_STUCK_AFTER=automatic", NULL };
	struct config cfg;
	char err[CONFIG_ERROR_MAX];
	char *text;

	assert_int_equal(config_load(&cfg, NULL, auto_env, NULL, err, sizeof(err)), 0);
	assert_true(cfg.policy_stuck_after == CONFIG_DURATION_AUTO);
	text = printed(&cfg);
	assert_non_null(strstr(text, "LOCKWARDEN_POLICY_STUCK_AFTER\nstuck_after = auto\n"));
	free(text);
	config_free(&cfg);
	assert_int_equal(config_load(&cfg, NULL, near_env, NULL, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "environment LOCKWARDEN_POLICY_STUCK_AFTER='automatic': "
			    "not a duration (use 90s, 15m or 2h, or auto)");
	assert_int_equal(config_load(&cfg, NULL, floor_env, NULL, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "environment LOCKWARDEN_POLICY_AUTO_FLOOR='auto': "
			    "not a duration (use 90s, 15m or 2h)");
}

static void test_env_sets_every_key(void **state)
{
	char *env[] = {
		"PATH=/usr/bin",
		"LOCKWARDEN_SITE_ROOT=/env/site/",
		"LOCKWARDEN_POLICY_STUCK_AFTER=20m",
		"LOCKWARDEN_POLICY_QUIET_PERIOD=45s",
		"LOCKWARDEN_POLICY_DRY_RUN=on",
		"LOCKWARDEN_SCAN_RESCAN_INTERVAL=1s",
		"LOCKWARDEN_HOOK_COMMAND=  systemctl restart app ; echo $? # why  ",
		"LOCKWARDEN_HOOK_TIMEOUT=30s",
		"LOCKWARDEN_HOOK_COOLDOWN=1h",
		"LOCKWARDEN_HOOK_VERIFY_WITHIN=0",
		"LOCKWARDEN_LOG_LEVEL=debug",
		"LOCKWARDEN_ARCHIVE_DIR=/env/archive",
		"LOCKWARDEN_ARCHIVE_KEEP=2d",
		"LOCKWARDEN_SITE_CLAIM_EXPIRY=2m",
		"LOCKWARDEN_HOOK_SCOPE=site",
		"LOCKWARDEN_POLICY_AUTO_FLOOR=90s",
		"LOCKWARDEN_LOG_FORMAT=text",
		"LOCKWARDEN_METRICS_FILE=",
		"LOCKWARDEN_POLICY_ALLOW_FULL_CLEAR=no",
		"LOCKWARDEN_POLICY_ESCALATE_WITHIN=2h",
		NULL,
	};
	struct config cfg;
	char err[CONFIG_ERROR_MAX];

	/* the environment beats the file */
	assert_int_equal(config_load(&cfg, FIXTURES "valid-full.ini", env, NULL,
				     err, sizeof(err)), 0);
	assert_string_equal(cfg.site_root, "/env/site");
	assert_int_equal(cfg.policy_stuck_after, 20 * 60 * 1000);
	assert_int_equal(cfg.policy_quiet_period, 45000);
	assert_true(cfg.policy_dry_run);
	assert_int_equal(cfg.scan_rescan_interval, 1000);
	/* trimmed at both ends like a file value, nothing else touched */
	assert_string_equal(cfg.hook_command, "systemctl restart app ; echo $? # why");
	assert_int_equal(cfg.hook_timeout, 30000);
	assert_int_equal(cfg.hook_cooldown, 3600000);
	assert_int_equal(cfg.log_level, LOG_LEVEL_DEBUG);
	assert_string_equal(cfg.archive_dir, "/env/archive");
	assert_int_equal(cfg.archive_keep, 2 * 86400000ULL);
	assert_int_equal(cfg.site_claim_expiry, 120000);
	assert_string_equal(cfg.hook_scope, "site");
	assert_int_equal(cfg.policy_auto_floor, 90000);
	assert_string_equal(cfg.log_format, "text");
	assert_string_equal(cfg.metrics_file, "");
	assert_false(cfg.policy_allow_full_clear);
	assert_int_equal(cfg.policy_escalate_within, 2 * 3600000);
	assert_all_from(&cfg, CONFIG_FROM_ENV);
	assert_int_equal(cfg.policy_stuck_after_line, 0);
	config_free(&cfg);
}

static void test_env_not_ours_is_ignored(void **state)
{
	char *env[] = {
		"LOCKWARDEN_BIN=/usr/bin/lockwarden",  /* no such section */
		"LOCKWARDEN=1",
		"LOCKWARDEN_POLICY=x",                 /* a section, no key */
		"LOCKWARDEN_policy_STUCK_AFTER=bad",   /* not upper case */
		"lockwarden_policy_stuck_after=bad",
		"XLOCKWARDEN_POLICY_STUCK_AFTER=bad",
		"LOCKWARDEN_HOOK_COMMAND",             /* no '=' */
		NULL,
	};
	struct config cfg, defaults;
	char err[CONFIG_ERROR_MAX];

	assert_int_equal(config_load(&defaults, FIXTURES "crlf-line-endings.ini", no_env,
				     NULL, err, sizeof(err)), 0);
	assert_int_equal(config_load(&cfg, FIXTURES "crlf-line-endings.ini", env, NULL,
				     err, sizeof(err)), 0);
	assert_same_values(&cfg, &defaults);
	assert_int_equal(cfg.hook_command_source, CONFIG_FROM_FILE);
	assert_int_equal(cfg.site_root_source, CONFIG_FROM_DEFAULT);
	config_free(&cfg);
	config_free(&defaults);
}

static void test_env_first_definition_wins(void **state)
{
	char *env[] = {
		"LOCKWARDEN_POLICY_STUCK_AFTER=20m",
		"LOCKWARDEN_POLICY_STUCK_AFTER=30m",
		NULL,
	};
	struct config cfg;
	char err[CONFIG_ERROR_MAX];

	assert_int_equal(config_load(&cfg, FIXTURES "crlf-line-endings.ini", env, NULL,
				     err, sizeof(err)), 0);
	assert_int_equal(cfg.policy_stuck_after, 20 * 60 * 1000);
	config_free(&cfg);
}

static void test_env_errors(void **state)
{
	static const struct {
		const char *entry;
		int rc;
		const char *message;
	} cases[] = {
		{ "LOCKWARDEN_POLICY_STUCK_AFTER=x", -EINVAL,
		  "environment LOCKWARDEN_POLICY_STUCK_AFTER='x': not a duration (use 90s, 15m or 2h, or auto)" },
		{ "LOCKWARDEN_POLICY_STUCK_AFTER=", -EINVAL,
		  "environment LOCKWARDEN_POLICY_STUCK_AFTER='': not a duration (use 90s, 15m or 2h, or auto)" },
		{ "LOCKWARDEN_POLICY_STUK_AFTER=15m", -EINVAL,
		  "environment LOCKWARDEN_POLICY_STUK_AFTER='15m': unknown key in [policy]; "
		  "did you mean LOCKWARDEN_POLICY_STUCK_AFTER?" },
		{ "LOCKWARDEN_POLICY_QUIET_PERIOD_S=15m", -EINVAL,
		  "environment LOCKWARDEN_POLICY_QUIET_PERIOD_S='15m': unknown key in [policy]; "
		  "did you mean LOCKWARDEN_POLICY_QUIET_PERIOD?" },
		{ "LOCKWARDEN_POLICY_COFFEE=15m", -EINVAL,
		  "environment LOCKWARDEN_POLICY_COFFEE='15m': unknown key in [policy]" },
		{ "LOCKWARDEN_POLICY_=15m", -EINVAL,
		  "environment LOCKWARDEN_POLICY_='15m': unknown key in [policy]" },
		{ "LOCKWARDEN_HOOK_TIMEOUT=0s", -EINVAL,
		  "environment LOCKWARDEN_HOOK_TIMEOUT='0s': must be between 1s and 1d" },
		{ "LOCKWARDEN_POLICY_DRY_RUN=maybe", -EINVAL,
		  "environment LOCKWARDEN_POLICY_DRY_RUN='maybe': not a boolean (use true or false)" },
		{ "LOCKWARDEN_LOG_LEVEL=loud", -EINVAL,
		  "environment LOCKWARDEN_LOG_LEVEL='loud': not a log level "
		  "(use debug, info, warning or error)" },
		{ "LOCKWARDEN_SITE_ROOT=home/site", -EINVAL,
		  "environment LOCKWARDEN_SITE_ROOT='home/site': must be an absolute path" },
		/* the file could not say these back */
		{ "LOCKWARDEN_SITE_ROOT=/srv/a ;b", -EINVAL,
		  "environment LOCKWARDEN_SITE_ROOT='/srv/a ;b': "
		  "a path cannot contain ';' or '#' after a space" },
		{ "LOCKWARDEN_HOOK_COMMAND=echo a\necho b", -EINVAL,
		  "environment LOCKWARDEN_HOOK_COMMAND='echo a\\x0aecho b': "
		  "a value cannot span lines" },
	};
	int failed = 0;

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char *env[] = { (char *)cases[i].entry, NULL };
		struct config cfg;
		char err[CONFIG_ERROR_MAX];
		int rc = config_load(&cfg, FIXTURES "valid-full.ini", env, NULL, err, sizeof(err));

		if (rc != cases[i].rc || strcmp(err, cases[i].message) != 0) {
			print_error("%s: %d \"%s\"\n    want %d \"%s\"\n", cases[i].entry, rc,
				    err, cases[i].rc, cases[i].message);
			failed++;
		}
		assert_zeroed(&cfg);
	}
	assert_int_equal(failed, 0);
}

/* LOCKWARDEN_ names outside our sections: a warning naming the nearest
 * known variable; the names the entrypoint and hooks read are left alone. */
static void test_env_warnings(void **state)
{
	static const struct {
		const char *entry;
		const char *message; /* NULL: no warning */
	} cases[] = {
		{ "LOCKWARDEN_HOOKS_COMMAND=/x", "environment LOCKWARDEN_HOOKS_COMMAND is not a "
		  "setting of lockwarden and is ignored; did you mean LOCKWARDEN_HOOK_COMMAND?" },
		{ "LOCKWARDEN_STUCK_AFTER=20m", "environment LOCKWARDEN_STUCK_AFTER is not a "
		  "setting of lockwarden and is ignored; did you mean LOCKWARDEN_POLICY_STUCK_AFTER?" },
		{ "LOCKWARDEN_DRYRUN=true", "environment LOCKWARDEN_DRYRUN is not a setting of "
		  "lockwarden and is ignored; did you mean LOCKWARDEN_POLICY_DRY_RUN?" },
		{ "LOCKWARDEN_RESTART_SLOTS=Production", "environment LOCKWARDEN_RESTART_SLOTS is "
		  "not a setting of lockwarden and is ignored; did you mean LOCKWARDEN_RESTART_SLOT?" },
		{ "LOCKWARDEN_XYZZY=1", "environment LOCKWARDEN_XYZZY is not a setting of lockwarden "
		  "and is ignored (settings are LOCKWARDEN_<SECTION>_<KEY>: check-config lists them)" },
		{ "LOCKWARDEN_RESTART_SLOT=Production", NULL },
		{ "LOCKWARDEN_CONFIG=/etc/x.ini", NULL },
		{ "LOCKWARDEN_ENV_FILE=", NULL },
		{ "LOCKWARDEN_REMOVED=locks/deployment", NULL },
		/* our sections: config_load's business (an error there) */
		{ "LOCKWARDEN_POLICY_STUK_AFTER=15m", NULL },
		{ "LOCKWARDEN_SITE_ROOT=/srv/site", NULL },
		{ "LOCKWARDEN_HOOKS_COMMAND", NULL }, /* no '=': not a variable */
		{ "PATH=/bin", NULL },
	};
	int failed = 0;

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char *env[] = { (char *)cases[i].entry, NULL };
		char out[CONFIG_ENV_WARNINGS_MAX][CONFIG_ERROR_MAX];
		size_t n = config_env_warnings(env, out, CONFIG_ENV_WARNINGS_MAX);

		if (cases[i].message ? n != 1 || strcmp(out[0], cases[i].message) != 0 : n != 0) {
			print_error("%s: %zu \"%s\"\n    want \"%s\"\n", cases[i].entry, n,
				    n ? out[0] : "", cases[i].message ? cases[i].message : "(none)");
			failed++;
		}
	}
	assert_int_equal(failed, 0);

	/* More than fit: counted, the first ones said. */
	char *many[] = { "LOCKWARDEN_A1=1", "LOCKWARDEN_A2=1", "LOCKWARDEN_A3=1", NULL };
	char out[2][CONFIG_ERROR_MAX];
	assert_int_equal(config_env_warnings(many, out, 2), 3);
	assert_non_null(strstr(out[1], "LOCKWARDEN_A2"));
}

static void test_overrides_beat_env(void **state)
{
	char *env[] = {
		"LOCKWARDEN_SITE_ROOT=/env/site",
		"LOCKWARDEN_POLICY_DRY_RUN=false",
		"LOCKWARDEN_LOG_LEVEL=error",
		NULL,
	};
	const struct config_overrides over = {
		.site_root = "/cli/site/", .dry_run = true, .verbose = true,
	};
	const struct config_overrides not_given = { 0 };
	struct config cfg;
	char err[CONFIG_ERROR_MAX];

	assert_int_equal(config_load(&cfg, FIXTURES "valid-full.ini", env, &over,
				     err, sizeof(err)), 0);
	assert_string_equal(cfg.site_root, "/cli/site");
	assert_true(cfg.policy_dry_run);
	assert_int_equal(cfg.log_level, LOG_LEVEL_DEBUG);
	assert_int_equal(cfg.site_root_source, CONFIG_FROM_COMMAND_LINE);
	assert_int_equal(cfg.policy_dry_run_source, CONFIG_FROM_COMMAND_LINE);
	assert_int_equal(cfg.log_level_source, CONFIG_FROM_COMMAND_LINE);
	assert_int_equal(cfg.hook_command_source, CONFIG_FROM_FILE);
	config_free(&cfg);

	/* flags not given leave the environment's values alone */
	assert_int_equal(config_load(&cfg, FIXTURES "valid-full.ini", env, &not_given,
				     err, sizeof(err)), 0);
	assert_string_equal(cfg.site_root, "/env/site");
	assert_false(cfg.policy_dry_run);
	assert_int_equal(cfg.log_level, LOG_LEVEL_ERROR);
	assert_int_equal(cfg.policy_dry_run_source, CONFIG_FROM_ENV);
	config_free(&cfg);
}

static void test_site_root_forms(void **state)
{
	static char too_long[PATH_MAX + 1];
	static const struct {
		const char *given;
		int rc;
		const char *stored;
	} cases[] = {
		{ "/home/site", 0, "/home/site" },
		{ "/home/site/", 0, "/home/site" },
		{ "/home/site///", 0, "/home/site" },
		{ "/", 0, "/" },
		{ "///", 0, "/" },
		{ "/srv/site#1", 0, "/srv/site#1" },
		{ "/srv/my site", 0, "/srv/my site" },
		{ "", -EINVAL, NULL },
		{ "home/site", -EINVAL, NULL },
		{ "./site", -EINVAL, NULL },
		{ too_long, -ENAMETOOLONG, NULL },
	};
	int failed = 0;

	memset(too_long, 'a', PATH_MAX);
	too_long[0] = '/';
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		const struct config_overrides over = { .site_root = cases[i].given };
		struct config cfg;
		char err[CONFIG_ERROR_MAX];
		int rc = config_load(&cfg, FIXTURES "crlf-line-endings.ini", no_env, &over,
				     err, sizeof(err));

		if (rc != cases[i].rc ||
		    (rc == 0 && strcmp(cfg.site_root, cases[i].stored) != 0) ||
		    (rc != 0 && strncmp(err, "command line: [site] root = '", 29) != 0)) {
			print_error("site root \"%.40s\": %d \"%s\" \"%s\"\n", cases[i].given, rc,
				    rc ? "" : cfg.site_root, err);
			failed++;
		}
		config_free(&cfg);
	}
	assert_int_equal(failed, 0);
}

/* ---- check-config output and the sample ---- */

/* Writes what config_print says about cfg to a file, loads that file with
 * nothing else, and checks every value came back. */
static void assert_print_round_trip(const struct config *cfg, const char *name)
{
	struct config back;
	char err[CONFIG_ERROR_MAX];
	char *text = printed(cfg);
	const char *path = write_temp_str(name, text);
	int rc = config_load(&back, path, no_env, NULL, err, sizeof(err));

	if (rc != 0)
		print_error("%s\n--- printed:\n%s", err, text);
	assert_int_equal(rc, 0);
	assert_same_values(cfg, &back);
	assert_all_from(&back, CONFIG_FROM_FILE);
	config_free(&back);
	free(text);
}

static void test_print_round_trip(void **state)
{
	char *env[] = {
		"LOCKWARDEN_POLICY_QUIET_PERIOD=45s",
		"LOCKWARDEN_HOOK_COOLDOWN=1500ms",
		NULL,
	};
	const struct config_overrides over = { .verbose = true };
	struct config cfg;
	char err[CONFIG_ERROR_MAX];
	char *text;

	assert_int_equal(config_load(&cfg, FIXTURES "valid-full.ini", env, &over,
				     err, sizeof(err)), 0);
	text = printed(&cfg);
	/* each key says where its value came from */
	assert_non_null(strstr(text, "\n[policy]\n; stuck when a deployment claims to run and "
			       "the agent itself watched it unchanged this long; auto: learned from the "
			       "site's completed deployments\n; from " FIXTURES
			       "valid-full.ini:8\nstuck_after = 1h30m\n"));
	assert_non_null(strstr(text, "\n; from environment LOCKWARDEN_POLICY_QUIET_PERIOD\n"
			       "quiet_period = 45s\n"));
	assert_non_null(strstr(text, "\n; from environment LOCKWARDEN_HOOK_COOLDOWN\n"
			       "cooldown = 1500ms\n"));
	assert_non_null(strstr(text, "\n; debug, info, warning or error\n"
			       "; from the command line\nlevel = debug\n"));
	free(text);
	assert_print_round_trip(&cfg, "printed-full.ini");
	config_free(&cfg);
}

/* Valid but unwise: quiet_period set at all is told (it no longer has any
 * effect), with where it was set. So is a full clear allowed with an
 * escalate_within no longer than stuck_after. */
static void test_warnings(void **state)
{
	static const struct {
		const char *text;
		size_t warnings;
		const char *said;
	} rows[] = {
		{ "", 0, NULL },
		{ "[policy]\nquiet_period = 1s\n", 1,
		  "[policy] quiet_period = 1s (" },
		{ "[policy]\nquiet_period = 2m\n", 1,
		  "quiet_period no longer has any effect: nothing is removed before stuck_after has "
		  "been watched" },
		{ "[scan]\nrescan_interval = 3m\n", 0, NULL },
		{ "[policy]\nauto_floor = 10m\n", 1,
		  "[policy] auto_floor = 10m (" },
		{ "[policy]\nauto_floor = 10m\nstuck_after = auto\n", 0, NULL },
		{ "[policy]\nallow_full_clear = true\nescalate_within = 20m\n", 1,
		  "[policy] escalate_within = 20m (" },
		{ "[policy]\nallow_full_clear = false\nescalate_within = 20m\n", 0, NULL },
		{ "[policy]\nallow_full_clear = true\n", 0, NULL },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct config cfg;
		char err[CONFIG_ERROR_MAX];
		char said[CONFIG_WARNINGS_MAX][CONFIG_ERROR_MAX];

		assert_int_equal(config_load(&cfg, write_temp_str("warn.ini", rows[i].text), no_env,
					     NULL, err, sizeof(err)), 0);
		size_t n = config_warnings(&cfg, said, CONFIG_WARNINGS_MAX);
		if (n != rows[i].warnings)
			fail_msg("row %zu: %zu warnings", i, n);
		if (rows[i].said && !strstr(said[0], rows[i].said))
			fail_msg("row %zu: %s", i, said[0]);
		if (rows[i].said && i == 1 && !strstr(said[0], "warn.ini:2)"))
			fail_msg("row %zu: no file:line in %s", i, said[0]);
		assert_int_equal(config_warnings(&cfg, said, 0), 0);
		config_free(&cfg);
	}
}

static void test_print_defaults(void **state)
{
	struct config cfg;
	char err[CONFIG_ERROR_MAX];
	char *text;

	/* an empty file: every value is the default */
	assert_int_equal(config_load(&cfg, write_temp_str("empty.ini", ""), no_env, NULL,
				     err, sizeof(err)), 0);
	assert_defaults(&cfg);
	assert_all_from(&cfg, CONFIG_FROM_DEFAULT);
	text = printed(&cfg);
	/* defaults carry no "from" line */
	assert_null(strstr(text, "; from"));
	assert_non_null(strstr(text, "\n[hook]\n; run with /bin/sh -c after a cleanup; "
			       "empty: no hook\ncommand =\n"));
	assert_non_null(strstr(text, "\ntimeout = 2m\n"));
	free(text);
	assert_print_round_trip(&cfg, "printed-defaults.ini");
	config_free(&cfg);
}

/* Commands with everything a shell line may hold survive check-config. */
static void test_print_round_trip_commands(void **state)
{
	static const char *const commands[] = {
		"echo a ; b",
		"cd \"$HOME\" && ls | wc -l # count",
		"printf '%s\\n' $(id -u) ${USER:-root} `date`",
		"; starts like a comment",
		"# starts like a comment",
		"[not a section]",
		"a\tb = c: d",
		"trailing backslash \\",
		"echo ' spaced  '",
	};

	for (size_t i = 0; i < ARRAY_SIZE(commands); i++) {
		char entry[256];
		char *env[] = { entry, NULL };
		struct config cfg;
		char err[CONFIG_ERROR_MAX];

		snprintf(entry, sizeof(entry), "LOCKWARDEN_HOOK_COMMAND=%s", commands[i]);
		assert_int_equal(config_load(&cfg, FIXTURES "crlf-line-endings.ini", env, NULL,
					     err, sizeof(err)), 0);
		assert_string_equal(cfg.hook_command, commands[i]);
		assert_print_round_trip(&cfg, "printed-command.ini");
		config_free(&cfg);
	}
}

static void test_print_escapes_file_name(void **state)
{
	struct config cfg;
	char err[CONFIG_ERROR_MAX], path[PATH_MAX];
	char *text;

	/* a newline in the file name must not end the comment line */
	snprintf(path, sizeof(path), "%s/odd\nname.ini", temp_dir);
	write_temp_str("odd\nname.ini", "[policy]\nstuck_after = 20m\n");
	assert_int_equal(config_load(&cfg, path, no_env, NULL, err, sizeof(err)), 0);
	text = printed(&cfg);
	assert_non_null(strstr(text, "odd\\x0aname.ini:2\nstuck_after = 20m\n"));
	assert_null(strstr(text, "odd\nname"));
	free(text);
	assert_print_round_trip(&cfg, "printed-odd.ini");
	config_free(&cfg);
}

static void test_sample_is_conf_file(void **state)
{
	char *sample = printed(NULL);
	FILE *f = fopen("conf/lockwarden.ini", "rb");
	char *file;
	long len;

	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	len = ftell(f);
	assert_true(len > 0);
	rewind(f);
	file = calloc(1, (size_t)len + 1);
	assert_non_null(file);
	assert_int_equal(fread(file, 1, (size_t)len, f), (size_t)len);
	fclose(f);
	if (strcmp(sample, file) != 0)
		print_error("conf/lockwarden.ini differs from config_print_sample(); "
			    "regenerate it from the sample\n");
	assert_string_equal(sample, file);
	/* the header says what the brief promises */
	assert_non_null(strstr(sample, "LOCKWARDEN_<SECTION>_<KEY>"));
	assert_non_null(strstr(sample, "runs as root, with /bin/sh -c"));
	assert_non_null(strstr(sample, "\n# command = /usr/lib/lockwarden/hooks/restart-site\n"));
	/* every default commented out: an upgrade's new defaults apply */
	assert_non_null(strstr(sample, "\n# stuck_after = "));
	for (const char *line = sample; line; line = strchr(line, '\n')) {
		line += *line == '\n';
		if (*line && *line != ';' && *line != '#' && *line != '[' && *line != '\n')
			fail_msg("a setting is not commented out: %.40s", line);
	}
	free(file);
	free(sample);
}

static void test_sample_loads_as_defaults(void **state)
{
	struct config cfg;
	char err[CONFIG_ERROR_MAX];

	assert_int_equal(config_load(&cfg, "conf/lockwarden.ini", no_env, NULL,
				     err, sizeof(err)), 0);
	assert_defaults(&cfg);
	/* nothing pinned: every value is the built-in default */
	assert_all_from(&cfg, CONFIG_FROM_DEFAULT);
	assert_string_equal(cfg.file, "conf/lockwarden.ini");
	/* and nothing to warn about on a fresh install */
	char warnings[CONFIG_WARNINGS_MAX][CONFIG_ERROR_MAX];
	assert_int_equal(config_warnings(&cfg, warnings, CONFIG_WARNINGS_MAX), 0);
	config_free(&cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_duration),
		cmocka_unit_test(test_warnings),
		cmocka_unit_test(test_format_duration),
		cmocka_unit_test(test_format_duration_small_buffer),
		cmocka_unit_test(test_parse_bool),
		cmocka_unit_test(test_missing_default_file_means_defaults),
		cmocka_unit_test(test_missing_explicit_file),
		cmocka_unit_test(test_directory_as_file),
		cmocka_unit_test_setup_teardown(test_unreadable_file, make_temp_dir,
						remove_temp_dir),
		cmocka_unit_test(test_valid_full_file),
		cmocka_unit_test(test_crlf_line_endings),
		cmocka_unit_test(test_hook_command_taken_verbatim),
		cmocka_unit_test_setup_teardown(test_long_lines, make_temp_dir, remove_temp_dir),
		cmocka_unit_test_setup_teardown(test_too_long_line, make_temp_dir,
						remove_temp_dir),
		cmocka_unit_test(test_ini_knobs_set_on_every_load),
		cmocka_unit_test(test_file_errors),
		cmocka_unit_test_setup_teardown(test_error_shows_bytes_safely, make_temp_dir,
						remove_temp_dir),
		cmocka_unit_test(test_error_buffer_small_or_missing),
		cmocka_unit_test(test_env_sets_every_key),
		cmocka_unit_test(test_stuck_after_auto),
		cmocka_unit_test(test_env_not_ours_is_ignored),
		cmocka_unit_test(test_env_first_definition_wins),
		cmocka_unit_test(test_env_errors),
		cmocka_unit_test(test_env_warnings),
		cmocka_unit_test(test_overrides_beat_env),
		cmocka_unit_test(test_site_root_forms),
		cmocka_unit_test_setup_teardown(test_print_round_trip, make_temp_dir,
						remove_temp_dir),
		cmocka_unit_test_setup_teardown(test_print_defaults, make_temp_dir,
						remove_temp_dir),
		cmocka_unit_test_setup_teardown(test_print_round_trip_commands, make_temp_dir,
						remove_temp_dir),
		cmocka_unit_test_setup_teardown(test_print_escapes_file_name, make_temp_dir,
						remove_temp_dir),
		cmocka_unit_test(test_sample_is_conf_file),
		cmocka_unit_test(test_sample_loads_as_defaults),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
