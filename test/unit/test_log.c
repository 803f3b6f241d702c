/* test_log.c - the log sink's formats: text stays as it was, json is one
 * object a line with every byte outside printable ASCII escaped, and under
 * JOURNAL_STREAM without a journal socket the "<N>" lines remain. stderr is
 * pointed at a temporary file and read back. */
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"

static char captured[8192];

/* Runs fn with stderr going to a fresh file; its text into captured. */
static void capture(void (*fn)(void))
{
	FILE *f = tmpfile();
	assert_non_null(f);
	fflush(stderr);
	int saved = dup(STDERR_FILENO);
	assert_true(saved >= 0);
	assert_true(dup2(fileno(f), STDERR_FILENO) >= 0);
	fn();
	fflush(stderr);
	assert_true(dup2(saved, STDERR_FILENO) >= 0);
	close(saved);
	rewind(f);
	size_t n = fread(captured, 1, sizeof(captured) - 1, f);
	captured[n] = '\0';
	fclose(f);
}

static void log_hostile(void)
{
	const char *list[] = { "locks/deployment", "deployments/temp-\xff\n\"x\"" };
	log_event(LOG_LEVEL_WARNING, "removed",
		  LOG_FIELDS(LOG_STR("entry", "deployments/caf\xc3\xa9\n{\"forged\":1}\\"),
			     LOG_INT("files", 12), LOG_BOOL("dry_run", true),
			     LOG_LIST("will_remove", list, 2)),
		  "line one\nline two \x01 %s", "end");
}

static void test_json_line(void **state)
{
	unsetenv("JOURNAL_STREAM");
	unsetenv("LOCKWARDEN_LOG_FORMAT");
	log_open();
	log_set_format(LOG_FORMAT_JSON);
	log_set_instance("inst-1");
	capture(log_hostile);
	log_set_format(LOG_FORMAT_TEXT);

	/* One line. */
	char *nl = strchr(captured, '\n');
	assert_non_null(nl);
	assert_int_equal(nl[1], '\0');
	assert_memory_equal(captured, "{\"time\":\"", 9);
	assert_int_equal(captured[9 + 24], '"'); /* 2026-11-29T06:50:00.123Z */
	assert_int_equal(captured[9 + 23], 'Z');
	assert_int_equal(captured[9 + 19], '.');
	static const char *const want[] = {
		",\"level\":\"warning\",\"event\":\"removed\",\"instance\":\"inst-1\",\"pid\":",
		",\"message\":\"line one line two \\u0001 end\"",
		",\"entry\":\"deployments/caf\\u00c3\\u00a9\\u000a{\\\"forged\\\":1}\\\\\"",
		",\"files\":12,\"dry_run\":true",
		",\"will_remove\":[\"locks/deployment\",\"deployments/temp-\\u00ff\\u000a\\\"x\\\"\"]}\n",
	};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		if (!strstr(captured, want[i]))
			fail_msg("missing %s in:\n%s", want[i], captured);
	for (const unsigned char *p = (const unsigned char *)captured; *p; p++)
		assert_true(*p >= 0x20 ? *p < 0x7f : *p == '\n');
}

static void log_plain(void)
{
	log_msg(LOG_LEVEL_ERROR, "plain %d", 1);
	log_info("info %d", 2);
	log_debug("not shown");
}

static void test_generic_events(void **state)
{
	unsetenv("JOURNAL_STREAM");
	log_open();
	log_set_format(LOG_FORMAT_JSON);
	capture(log_plain);
	log_set_format(LOG_FORMAT_TEXT);
	char *second = strchr(captured, '\n');
	assert_non_null(second);
	assert_non_null(strstr(captured, "\"level\":\"error\",\"event\":\"error\""));
	assert_non_null(strstr(second, "\"level\":\"info\",\"event\":\"log\""));
	assert_null(strstr(captured, "not shown"));
}

static void test_text_is_unchanged(void **state)
{
	unsetenv("JOURNAL_STREAM");
	log_open();
	capture(log_hostile);
	/* "2026-11-29T06:50:00.123Z lockwarden[PID] warning: line one ..." */
	assert_int_equal(captured[23], 'Z');
	assert_non_null(strstr(captured, " warning: line one line two \x01 end\n"));
	assert_null(strstr(captured, "entry"));
}

static void test_format_names(void **state)
{
	enum log_format f;
	assert_int_equal(log_format_parse("json", &f), 0);
	assert_int_equal(f, LOG_FORMAT_JSON);
	assert_int_equal(log_format_parse("text", &f), 0);
	assert_int_equal(f, LOG_FORMAT_TEXT);
	assert_true(log_format_parse("JSON ", &f) < 0);
	assert_string_equal(log_format_name(LOG_FORMAT_JSON), "json");
}

static void log_under_journal(void)
{
	char js[64];
	struct stat st;
	assert_int_equal(fstat(STDERR_FILENO, &st), 0);
	snprintf(js, sizeof(js), "%llu:%llu", (unsigned long long)st.st_dev,
		 (unsigned long long)st.st_ino);
	setenv("JOURNAL_STREAM", js, 1);
	log_open();
	log_set_format(LOG_FORMAT_JSON); /* the journal wins over the format */
	log_hostile();
	log_info("second");
	unsetenv("JOURNAL_STREAM");
	log_open();
	log_set_format(LOG_FORMAT_TEXT);
}

static void test_journal_stream_without_a_journal(void **state)
{
	if (access("/run/systemd/journal/socket", F_OK) == 0)
		skip(); /* a real journal takes the entries: nothing reaches stderr */
	capture(log_under_journal);
	assert_string_equal(captured, "<4>line one line two \x01 end\n<6>second\n");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_json_line),
		cmocka_unit_test(test_generic_events),
		cmocka_unit_test(test_text_is_unchanged),
		cmocka_unit_test(test_format_names),
		cmocka_unit_test(test_journal_stream_without_a_journal),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
