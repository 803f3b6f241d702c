/* test_hook.c - hook.c against a real loop and a real /bin/sh.
 *
 * Every test runs its own uv loop until the hook's done callback, under a
 * loop timer that fails the test when it fires first; the teardown closes
 * the hook and asserts that the loop closes cleanly. Files the hooks write
 * go to a fresh directory passed as $LOCKWARDEN_TEST_DIR, never spliced into
 * a command.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <dirent.h>
#include <setjmp.h>
#include <cmocka.h>

#include "hook.h"
#include "log.h"

#define container_of(ptr, type, member) \
	((type *)(void *)((char *)(ptr) - offsetof(type, member)))

/* Generous: sanitizer builds on a loaded machine are slow. */
#define DEADLINE_MS 20000

struct fixture {
	uv_loop_t loop;
	struct hook hook;
	uv_timer_t deadline;
	uv_timer_t poll;              /* for tests that act when the hook is ready */
	bool deadline_hit;
	bool hook_closed;
	int done_calls;
	int64_t exit_status;
	int term_signal;
	bool timed_out;
	uint64_t started_ms, done_after_ms;
	char dir[64];                 /* the hook's scratch directory */
	char dir_env[128];            /* "LOCKWARDEN_TEST_DIR=<dir>" */
	pid_t leftover;               /* a process a test left running on purpose */
};

static uint64_t now_ms(void)
{
	return uv_hrtime() / 1000000;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	const char *level = getenv("LOCKWARDEN_TEST_LOG");
	enum log_level lv = LOG_LEVEL_ERROR;

	if (!f)
		return -1;
	/* Quiet by default; LOCKWARDEN_TEST_LOG=debug shows what hook.c says. */
	if (level && log_level_parse(level, &lv) != 0)
		lv = LOG_LEVEL_ERROR;
	log_set_level(lv);
	if (uv_loop_init(&f->loop) != 0 || hook_init(&f->hook, &f->loop) != 0 ||
	    uv_timer_init(&f->loop, &f->deadline) != 0 || uv_timer_init(&f->loop, &f->poll) != 0)
		return -1;
	strcpy(f->dir, "/tmp/test_hook.XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->dir_env, sizeof(f->dir_env), "LOCKWARDEN_TEST_DIR=%s", f->dir);
	*state = f;
	return 0;
}

static int remove_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	return remove(path);
}

static void on_hook_closed(struct hook *h)
{
	container_of(h, struct fixture, hook)->hook_closed = true;
}

static void on_done(struct hook *h, int64_t exit_status, int term_signal, bool timed_out)
{
	struct fixture *f = container_of(h, struct fixture, hook);

	f->done_calls++;
	f->exit_status = exit_status;
	f->term_signal = term_signal;
	f->timed_out = timed_out;
	f->done_after_ms = now_ms() - f->started_ms;
}

static void on_deadline(uv_timer_t *t)
{
	struct fixture *f = container_of(t, struct fixture, deadline);

	f->deadline_hit = true;
	uv_stop(&f->loop);
}

/* Runs the loop until the done callback has run `calls` times in all,
 * failing at deadline_ms. */
static void run_until_calls(struct fixture *f, int calls, uint64_t deadline_ms)
{
	uv_timer_start(&f->deadline, on_deadline, deadline_ms, 0);
	while (f->done_calls < calls && !f->deadline_hit)
		uv_run(&f->loop, UV_RUN_ONCE);
	uv_timer_stop(&f->deadline);
	assert_false(f->deadline_hit);
	assert_int_equal(f->done_calls, calls);
}

/* Runs the loop until the next done callback, failing at deadline_ms. */
static void run_until_done(struct fixture *f, uint64_t deadline_ms)
{
	run_until_calls(f, f->done_calls + 1, deadline_ms);
	assert_false(hook_running(&f->hook));
}

static int group_members_alive(pid_t pgid);

static int teardown(void **state)
{
	struct fixture *f = *state;

	if (hook_running(&f->hook)) {
		/* A test failed mid-run: end the group and give the run a
		 * chance to finish; hook_close copes if it does not. */
		if (f->hook.pid > 1)
			kill(-f->hook.pid, SIGKILL);
		f->deadline_hit = false;
		uv_timer_start(&f->deadline, on_deadline, 5000, 0);
		while (hook_running(&f->hook) && !f->deadline_hit)
			uv_run(&f->loop, UV_RUN_ONCE);
		uv_timer_stop(&f->deadline);
	}
	/* Whatever a failing test left in the last hook's group, and what a
	 * test left running on purpose. */
	if (f->hook.pid > 1 && group_members_alive(f->hook.pid) > 0)
		kill(-f->hook.pid, SIGKILL);
	if (f->leftover > 1)
		kill(f->leftover, SIGKILL);
	nftw(f->dir, remove_one, 8, FTW_DEPTH | FTW_PHYS);
	hook_close(&f->hook, on_hook_closed);
	uv_close((uv_handle_t *)&f->deadline, NULL);
	uv_close((uv_handle_t *)&f->poll, NULL);
	assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
	assert_true(f->hook_closed);
	assert_int_equal(uv_loop_close(&f->loop), 0);
	free(f);
	return 0;
}

/* Starts command with $LOCKWARDEN_TEST_DIR and the given extra entries. */
static int start(struct fixture *f, const char *command, uint64_t timeout_ms,
		 const char *extra1, const char *extra2)
{
	/* A NULL extra1 ends the list early, as it should. */
	char *env[] = { f->dir_env, (char *)extra1, (char *)extra2, NULL };

	f->started_ms = now_ms();
	return hook_start(&f->hook, command, env, timeout_ms, on_done);
}

static void path_in(const struct fixture *f, const char *name, char *out, size_t size)
{
	assert_true((size_t)snprintf(out, size, "%s/%s", f->dir, name) < size);
}

/* Reads a whole (small) file the hook wrote; "" when it does not exist. */
static void read_text(const struct fixture *f, const char *name, char *out, size_t size)
{
	char path[128];
	FILE *fp;
	size_t n = 0;

	path_in(f, name, path, sizeof(path));
	fp = fopen(path, "r");
	if (fp) {
		n = fread(out, 1, size - 1, fp);
		fclose(fp);
	}
	out[n] = '\0';
}

/* A process is gone when it no longer exists or is a zombie waiting for a
 * parent (init, here) to reap it. */
static bool process_gone(pid_t pid)
{
	char path[64], buf[256];
	FILE *fp;
	char *rp;
	bool gone = true;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fp = fopen(path, "r");
	if (!fp)
		return true;
	if (fgets(buf, sizeof(buf), fp) && (rp = strrchr(buf, ')')) && rp[1] == ' ')
		gone = rp[2] == 'Z' || rp[2] == 'X';
	fclose(fp);
	return gone;
}

/* Processes of group pgid that are not zombies. */
static int group_members_alive(pid_t pgid)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d))) {
		char path[300], buf[512], state;
		int ppid, pgrp;
		FILE *fp;
		char *rp;

		if (e->d_name[0] < '1' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
		fp = fopen(path, "r");
		if (!fp)
			continue; /* exited meanwhile */
		if (fgets(buf, sizeof(buf), fp) && (rp = strrchr(buf, ')')) &&
		    sscanf(rp + 1, " %c %d %d", &state, &ppid, &pgrp) == 3 &&
		    pgrp == pgid && state != 'Z' && state != 'X')
			n++;
		fclose(fp);
	}
	closedir(d);
	return n;
}

static bool group_gone(pid_t pgid)
{
	return group_members_alive(pgid) == 0;
}

static void on_poll_tick(uv_timer_t *t)
{
	/* Only wakes the loop so that wait_until looks again. */
}

/* After SIGKILL the run may end while the group is still on its way out:
 * runs the loop until gone(pid), failing after deadline_ms. */
static void wait_until(struct fixture *f, bool (*gone)(pid_t), pid_t pid, uint64_t deadline_ms)
{
	uv_timer_start(&f->deadline, on_deadline, deadline_ms, 0);
	uv_timer_start(&f->poll, on_poll_tick, 10, 10);
	while (!gone(pid) && !f->deadline_hit)
		uv_run(&f->loop, UV_RUN_ONCE);
	uv_timer_stop(&f->poll);
	uv_timer_stop(&f->deadline);
	assert_false(f->deadline_hit);
}

static int count_open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	assert_non_null(d);
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

static void assert_tail(const struct hook *h, const char *const *want, unsigned count)
{
	assert_int_equal(hook_tail_count(h), count);
	for (unsigned i = 0; i < count; i++)
		assert_string_equal(hook_tail_line(h, i), want[i]);
	assert_null(hook_tail_line(h, count));
}

/* ---- output ---- */

static const struct output_case {
	const char *name;
	const char *command;
	unsigned count;
	const char *lines[HOOK_TAIL_LINES];
} output_cases[] = {
	{ "no output", "true", 0, { NULL } },
	{ "two lines", "echo one; echo two", 2, { "one", "two" } },
	{ "stderr merged in order", "echo out; echo err >&2; echo out2", 3,
	  { "out", "err", "out2" } },
	{ "last line without newline", "echo first; printf 'no end'", 2,
	  { "first", "no end" } },
	{ "crlf line ends", "printf 'dos\\r\\nline\\r\\n'", 2, { "dos", "line" } },
	{ "control characters replaced, tab kept",
	  "printf 'a\\tb\\033[31mred\\001\\177\\n'", 1, { "a\tb?[31mred??" } },
	{ "nul byte replaced", "printf 'a\\000b\\n'", 1, { "a?b" } },
	{ "empty lines kept", "echo; echo x; echo", 3, { "", "x", "" } },
	{ "only the last ten lines, oldest first",
	  "i=1; while [ $i -le 15 ]; do echo \"line $i\"; i=$((i + 1)); done", 10,
	  { "line 6", "line 7", "line 8", "line 9", "line 10", "line 11", "line 12",
	    "line 13", "line 14", "line 15" } },
};

static void test_output_tail(void **state)
{
	struct fixture *f = *state;

	for (size_t c = 0; c < sizeof(output_cases) / sizeof(output_cases[0]); c++) {
		const struct output_case *oc = &output_cases[c];

		print_message("case: %s\n", oc->name);
		assert_int_equal(start(f, oc->command, 10000, NULL, NULL), 0);
		assert_true(hook_running(&f->hook));
		run_until_done(f, DEADLINE_MS);
		assert_int_equal(f->exit_status, 0);
		assert_int_equal(f->term_signal, 0);
		assert_false(f->timed_out);
		assert_tail(&f->hook, oc->lines, oc->count);
	}
}

static void test_long_line_truncated(void **state)
{
	struct fixture *f = *state;
	char want[HOOK_LINE_MAX];

	memset(want, 'x', HOOK_LINE_MAX - 1);
	want[HOOK_LINE_MAX - 1] = '\0';
	assert_int_equal(start(f, "i=0; while [ $i -lt 400 ]; do printf x; i=$((i + 1)); done;"
			      " echo; echo after", 10000, NULL, NULL), 0);
	run_until_done(f, DEADLINE_MS);
	assert_tail(&f->hook, (const char *const[]){ want, "after" }, 2);
}

/* ---- exit status ---- */

static void test_exit_status(void **state)
{
	static const struct {
		const char *command;
		int64_t exit_status;
		int term_signal;
	} cases[] = {
		{ "exit 0", 0, 0 },
		{ "echo failing; exit 3", 3, 0 },
		{ "exit 255", 255, 0 },
		{ "kill -USR1 $$", -1, SIGUSR1 },
		{ "exec /nonexistent/command", 127, 0 },
	};
	struct fixture *f = *state;

	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		print_message("case: %s\n", cases[c].command);
		assert_int_equal(start(f, cases[c].command, 10000, NULL, NULL), 0);
		run_until_done(f, DEADLINE_MS);
		assert_int_equal(f->exit_status, cases[c].exit_status);
		assert_int_equal(f->term_signal, cases[c].term_signal);
		assert_false(f->timed_out);
	}
}

/* ---- environment ---- */

static void test_env_value_arrives_verbatim(void **state)
{
	struct fixture *f = *state;
	char reason[512], entry[600], got[600], path[128];
	struct stat st;

	snprintf(reason, sizeof(reason),
		 "line one\nsays \"two\" and 'three'\n$(touch %s/pwned1) `touch %s/pwned2`"
		 " ; touch %s/pwned3 \\ $HOME %%s",
		 f->dir, f->dir, f->dir);
	snprintf(entry, sizeof(entry), "LOCKWARDEN_REASON=%s", reason);
	assert_int_equal(start(f, "printf '%s' \"$LOCKWARDEN_REASON\" > \"$LOCKWARDEN_TEST_DIR/reason\"",
			       10000, entry, NULL), 0);
	run_until_done(f, DEADLINE_MS);
	assert_int_equal(f->exit_status, 0);
	read_text(f, "reason", got, sizeof(got));
	assert_string_equal(got, reason);
	for (int i = 1; i <= 3; i++) {
		char name[16];

		snprintf(name, sizeof(name), "pwned%d", i);
		path_in(f, name, path, sizeof(path));
		assert_int_equal(stat(path, &st), -1);
	}
}

static void test_env_overrides_agent_variable(void **state)
{
	struct fixture *f = *state;
	const char *want[] = { "override=hook-value", "count=1", "kept=agent-kept" };

	assert_int_equal(setenv("LOCKWARDEN_TEST_VAR", "agent-value", 1), 0);
	assert_int_equal(setenv("LOCKWARDEN_TEST_KEEP", "agent-kept", 1), 0);
	/* Two entries of the same name: the later one wins. The count comes
	 * from the environment the kernel gave the shell: sh itself would
	 * hide a duplicate. */
	assert_int_equal(start(f, "echo \"override=$LOCKWARDEN_TEST_VAR\";"
			      " echo \"count=$(tr '\\0' '\\n' < /proc/$$/environ | grep -c '^LOCKWARDEN_TEST_VAR=')\";"
			      " echo \"kept=$LOCKWARDEN_TEST_KEEP\"",
			      10000, "LOCKWARDEN_TEST_VAR=first", "LOCKWARDEN_TEST_VAR=hook-value"), 0);
	run_until_done(f, DEADLINE_MS);
	unsetenv("LOCKWARDEN_TEST_VAR");
	unsetenv("LOCKWARDEN_TEST_KEEP");
	assert_int_equal(f->exit_status, 0);
	assert_tail(&f->hook, want, 3);
}

static void test_env_entry_without_name_rejected(void **state)
{
	static const char *const bad[] = { "NOEQUALS", "=value" };
	struct fixture *f = *state;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(start(f, "true", 10000, bad[i], NULL), -EINVAL);
		assert_false(hook_running(&f->hook));
	}
	assert_int_equal(f->done_calls, 0);
}

/* ---- ending the group ---- */

/* A pid a hook wrote to a file in its scratch directory; 0 when none. */
static pid_t read_pid(const struct fixture *f, const char *name)
{
	char text[32];

	read_text(f, name, text, sizeof(text));
	return (pid_t)atoi(text);
}

static void test_timeout_kills_whole_group(void **state)
{
	struct fixture *f = *state;
	pid_t grandchild;

	/* The subshell's sleep is the hook's grandchild; both sleeps hold the
	 * output pipe. The pid file is written before anything can time out. */
	assert_int_equal(start(f, "( sleep 1000 & echo $! > \"$LOCKWARDEN_TEST_DIR/pid.tmp\";"
			      " mv \"$LOCKWARDEN_TEST_DIR/pid.tmp\" \"$LOCKWARDEN_TEST_DIR/pid\"; wait ) &"
			      " sleep 1000", 300, NULL, NULL), 0);
	run_until_done(f, DEADLINE_MS);
	assert_true(f->timed_out);
	assert_int_equal(f->exit_status, -1);
	assert_int_equal(f->term_signal, SIGTERM);
	assert_true(f->done_after_ms >= 300);
	grandchild = read_pid(f, "pid");
	assert_true(grandchild > 1);
	assert_true(process_gone(grandchild));
	/* The whole group, not just the pids we know. */
	assert_int_equal(group_members_alive(f->hook.pid), 0);
}

static void test_sigterm_ignored_then_sigkill(void **state)
{
	struct fixture *f = *state;

	f->hook.kill_grace_ms = 200;
	/* sleep inherits the ignored SIGTERM, so only SIGKILL ends anything. */
	assert_int_equal(start(f, "trap '' TERM; sleep 1000", 300, NULL, NULL), 0);
	run_until_done(f, DEADLINE_MS);
	assert_true(f->timed_out);
	assert_int_equal(f->exit_status, -1);
	assert_int_equal(f->term_signal, SIGKILL);
	assert_true(f->done_after_ms >= 500);
	wait_until(f, group_gone, f->hook.pid, 5000);
}

/* A child that ignores SIGTERM and closed its output outlives the shell,
 * which dies at SIGTERM: it still gets SIGKILL after the grace. */
static void test_sigterm_ignoring_child_outliving_shell_killed(void **state)
{
	struct fixture *f = *state;
	pid_t child;

	f->hook.kill_grace_ms = 300;
	/* The child writes its pid once its trap is set (it then execs sleep,
	 * which keeps the ignored SIGTERM), long before the timeout. */
	assert_int_equal(start(f, "sh -c 'trap \"\" TERM; echo $$ > \"$LOCKWARDEN_TEST_DIR/pid\";"
			      " exec sleep 1000' >/dev/null 2>&1 & sleep 1000",
			      1000, NULL, NULL), 0);
	run_until_done(f, DEADLINE_MS);
	assert_true(f->timed_out);
	assert_int_equal(f->term_signal, SIGTERM);
	assert_true(f->done_after_ms >= 1300);
	child = read_pid(f, "pid");
	assert_true(child > 1);
	wait_until(f, process_gone, child, 5000);
	wait_until(f, group_gone, f->hook.pid, 5000);
}

static void on_poll_stop_when_ready(uv_timer_t *t)
{
	struct fixture *f = container_of(t, struct fixture, poll);

	/* "ready" on the output means the traps are set: stop now. */
	if (hook_tail_count(&f->hook) > 0) {
		uv_timer_stop(t);
		hook_stop(&f->hook, (uint64_t)(uintptr_t)t->data);
	}
}

static void test_stop_during_run(void **state)
{
	static const struct {
		const char *command;
		uint64_t grace_ms;
		int term_signal;
	} cases[] = {
		{ "echo ready; sleep 1000", 10000, SIGTERM },
		{ "trap '' TERM; echo ready; sleep 1000", 100, SIGKILL },
	};
	struct fixture *f = *state;

	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		print_message("case: %s\n", cases[c].command);
		assert_int_equal(start(f, cases[c].command, 60000, NULL, NULL), 0);
		f->poll.data = (void *)(uintptr_t)cases[c].grace_ms;
		uv_timer_start(&f->poll, on_poll_stop_when_ready, 5, 5);
		run_until_done(f, DEADLINE_MS);
		uv_timer_stop(&f->poll);
		assert_false(f->timed_out);
		assert_int_equal(f->exit_status, -1);
		assert_int_equal(f->term_signal, cases[c].term_signal);
		assert_true(f->done_after_ms < 10000);
		wait_until(f, group_gone, f->hook.pid, 5000);
	}
}

static void test_stop_when_idle_is_noop(void **state)
{
	struct fixture *f = *state;

	hook_stop(&f->hook, 0);
	assert_false(hook_running(&f->hook));
	assert_int_equal(uv_run(&f->loop, UV_RUN_NOWAIT), 0);
	assert_int_equal(f->done_calls, 0);
}

/* ---- output that does not end or does not stop ---- */

static void test_flood_bounded(void **state)
{
	static const struct {
		const char *command;
		const char *last;
	} cases[] = {
		/* 10 MB of short lines, then a 1 MB line without newline. */
		{ "yes 'flood line' | head -c 10485760; echo;"
		  " head -c 1048576 /dev/zero | tr '\\0' y; echo; echo last", "last" },
		/* 10 MB without any newline. */
		{ "head -c 10485760 /dev/zero | tr '\\0' z", NULL },
	};
	struct fixture *f = *state;

	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		print_message("case %zu\n", c);
		assert_int_equal(start(f, cases[c].command, 60000, NULL, NULL), 0);
		run_until_done(f, DEADLINE_MS);
		assert_int_equal(f->exit_status, 0);
		for (unsigned i = 0; i < hook_tail_count(&f->hook); i++)
			assert_true(strlen(hook_tail_line(&f->hook, i)) <= HOOK_LINE_MAX - 1);
		if (cases[c].last) {
			const char *ys = hook_tail_line(&f->hook, HOOK_TAIL_LINES - 2);

			assert_int_equal(hook_tail_count(&f->hook), HOOK_TAIL_LINES);
			assert_string_equal(hook_tail_line(&f->hook, 0), "flood line");
			assert_string_equal(hook_tail_line(&f->hook, HOOK_TAIL_LINES - 1), "last");
			assert_int_equal(strlen(ys), HOOK_LINE_MAX - 1);
			assert_int_equal(strspn(ys, "y"), HOOK_LINE_MAX - 1);
			assert_true(f->hook.lines_total > 10485760 / 11);
		} else {
			assert_int_equal(hook_tail_count(&f->hook), 1);
			assert_int_equal(strspn(hook_tail_line(&f->hook, 0), "z"), HOOK_LINE_MAX - 1);
		}
	}
}

static void test_background_child_holding_output(void **state)
{
	struct fixture *f = *state;
	const char *line;

	/* The hook exits at once; its background sleep keeps the pipe open. */
	assert_int_equal(start(f, "sleep 1000 & echo \"bg=$!\"", 60000, NULL, NULL), 0);
	run_until_done(f, DEADLINE_MS);
	assert_int_equal(f->exit_status, 0);
	assert_false(f->timed_out);
	/* About the drain bound (200 ms), far below any timeout. */
	assert_true(f->done_after_ms < 3000);
	assert_int_equal(hook_tail_count(&f->hook), 1);
	line = hook_tail_line(&f->hook, 0);
	assert_int_equal(strncmp(line, "bg=", 3), 0);
	f->leftover = (pid_t)atoi(line + 3);
	assert_true(f->leftover > 1);
	/* Documented choice: what a hook leaves behind is not killed. */
	assert_false(process_gone(f->leftover));
}

/* ---- starting ---- */

static void test_start_while_running_busy(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(start(f, "echo ready; sleep 1000", 60000, NULL, NULL), 0);
	assert_int_equal(start(f, "echo second", 60000, NULL, NULL), -EBUSY);
	assert_true(hook_running(&f->hook));
	f->poll.data = (void *)(uintptr_t)100;
	uv_timer_start(&f->poll, on_poll_stop_when_ready, 5, 5);
	run_until_done(f, DEADLINE_MS);
	uv_timer_stop(&f->poll);
	assert_int_equal(f->term_signal, SIGTERM);
	/* The first hook's output, not the refused one's. */
	assert_tail(&f->hook, (const char *const[]){ "ready" }, 1);
}

static void on_done_start_next(struct hook *h, int64_t exit_status, int term_signal,
			       bool timed_out)
{
	struct fixture *f = container_of(h, struct fixture, hook);

	on_done(h, exit_status, term_signal, timed_out);
	if (f->done_calls == 1)
		assert_int_equal(hook_start(h, "echo second", NULL, 10000, on_done), 0);
}

static void test_done_may_start_next_run(void **state)
{
	struct fixture *f = *state;

	f->started_ms = now_ms();
	assert_int_equal(hook_start(&f->hook, "echo first", NULL, 10000, on_done_start_next), 0);
	run_until_calls(f, 1, DEADLINE_MS);
	assert_true(hook_running(&f->hook)); /* the run started from done_cb */
	run_until_done(f, DEADLINE_MS);
	assert_tail(&f->hook, (const char *const[]){ "second" }, 1);
}

/* Runs hook_start with the open-files limit set so that only the fds
 * "spare" above the lowest free one can be opened: 0 makes the output pipe
 * fail, 2 lets it be made but makes uv_spawn fail on its own pipe. */
static int start_with_fd_limit(struct fixture *f, int spare)
{
	struct rlimit saved, low;
	int probe[2], err;

	assert_int_equal(getrlimit(RLIMIT_NOFILE, &saved), 0);
	/* pipe() takes the two lowest free fds, as uv_pipe will. */
	assert_int_equal(pipe(probe), 0);
	close(probe[0]);
	close(probe[1]);
	low = saved;
	low.rlim_cur = (rlim_t)(spare == 0 ? probe[0] : (probe[0] > probe[1] ? probe[0] : probe[1]) + 1);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	err = start(f, "echo never", 10000, NULL, NULL);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &saved), 0);
	return err;
}

static void test_start_failure_leaves_nothing_open(void **state)
{
	struct fixture *f = *state;
	int fds_before;

	/* The first spawn makes libuv open its SIGCHLD pipes, which stay:
	 * count fds only after one. */
	assert_int_equal(start(f, "true", 10000, NULL, NULL), 0);
	run_until_done(f, DEADLINE_MS);
	fds_before = count_open_fds();
	for (int spare = 0; spare <= 2; spare += 2) {
		print_message("case: %d spare fds\n", spare);
		assert_int_equal(start_with_fd_limit(f, spare), -EMFILE);
		assert_false(hook_running(&f->hook));
		assert_int_equal(count_open_fds(), fds_before);
		/* A failed uv_spawn leaves a handle to close: until the loop
		 * has closed it, the next start is refused; then a hook runs
		 * normally. */
		if (spare > 0)
			assert_int_equal(start(f, "echo ok", 10000, NULL, NULL), -EBUSY);
		assert_int_equal(uv_run(&f->loop, UV_RUN_NOWAIT), 0);
		assert_int_equal(start(f, "echo ok", 10000, NULL, NULL), 0);
		run_until_done(f, DEADLINE_MS);
		assert_tail(&f->hook, (const char *const[]){ "ok" }, 1);
		assert_int_equal(count_open_fds(), fds_before);
	}
	assert_int_equal(f->done_calls, 3);
}

static void test_close_without_run(void **state)
{
	struct fixture *f = *state;

	/* The teardown's hook_close and uv_loop_close are the test. */
	assert_false(hook_running(&f->hook));
	assert_int_equal(hook_tail_count(&f->hook), 0);
	assert_null(hook_tail_line(&f->hook, 0));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_output_tail, setup, teardown),
		cmocka_unit_test_setup_teardown(test_long_line_truncated, setup, teardown),
		cmocka_unit_test_setup_teardown(test_exit_status, setup, teardown),
		cmocka_unit_test_setup_teardown(test_env_value_arrives_verbatim, setup, teardown),
		cmocka_unit_test_setup_teardown(test_env_overrides_agent_variable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_env_entry_without_name_rejected, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timeout_kills_whole_group, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sigterm_ignored_then_sigkill, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sigterm_ignoring_child_outliving_shell_killed,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_stop_during_run, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stop_when_idle_is_noop, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flood_bounded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_background_child_holding_output, setup, teardown),
		cmocka_unit_test_setup_teardown(test_start_while_running_busy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_done_may_start_next_run, setup, teardown),
		cmocka_unit_test_setup_teardown(test_start_failure_leaves_nothing_open, setup, teardown),
		cmocka_unit_test_setup_teardown(test_close_without_run, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
