/* hook.h - running the restart hook after a cleanup.
 *
 * The command runs as /bin/sh -c "<command>" in its own session and process
 * group (so the whole group can be signalled), with the agent's environment
 * plus the LOCKWARDEN_* variables the caller passes. Nothing taken from the
 * watched folders is ever put on the command line; the caller passes such
 * things only as environment values. stdout and stderr are read on the loop;
 * the last HOOK_TAIL_LINES lines are kept for the log. At the timeout the
 * group gets SIGTERM, and SIGKILL HOOK_KILL_GRACE_MS later.
 *
 * One hook at a time: hook_start returns -EBUSY while one runs.
 * Functions return 0 or a negative errno (libuv's).
 */
#ifndef LOCKWARDEN_HOOK_H
#define LOCKWARDEN_HOOK_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#define HOOK_TAIL_LINES 10
#define HOOK_LINE_MAX 256
#define HOOK_KILL_GRACE_MS 5000
#define HOOK_DEBUG_LINES_MAX 200     /* output lines logged as they come (-v) */

struct hook;
/* Called once per run, on the loop, after the process exited and its output
 * was drained. exit_status is its exit code (-1 when killed by a signal),
 * term_signal the signal that ended it (0 when none), timed_out whether the
 * timeout fired. */
typedef void (*hook_done_cb)(struct hook *h, int64_t exit_status, int term_signal,
			     bool timed_out);

struct hook {
	uv_loop_t *loop;
	uv_process_t process;
	uv_pipe_t out;               /* stdout and stderr, merged */
	uv_timer_t timer;            /* timeout, then kill grace, then drain */
	bool running;                /* started and done_cb not yet called */
	bool exited;
	bool out_open;
	bool timed_out;
	bool closing;
	int signal_sent;             /* 0, SIGTERM or SIGKILL: how far ending the group got */
	uint64_t kill_grace_ms;      /* timeout's SIGTERM-to-SIGKILL wait; hook_init sets
	                              * HOOK_KILL_GRACE_MS, tests shorten it */
	int pid;
	int64_t exit_status;
	int term_signal;
	uint64_t started_ms;
	hook_done_cb done;
	/* The output's last lines (a ring) and the line being read. */
	char tail[HOOK_TAIL_LINES][HOOK_LINE_MAX];
	unsigned tail_next, tail_count;
	char partial[HOOK_LINE_MAX];
	unsigned partial_len;
	unsigned long lines_total;
	int pending_closes;
	void (*close_cb)(struct hook *h);
};

int hook_init(struct hook *h, uv_loop_t *loop);

/* Starts /bin/sh -c command. extra_env: NULL-terminated "NAME=value"
 * strings added to (and overriding) the agent's environment. */
int hook_start(struct hook *h, const char *command, char *const *extra_env,
	       uint64_t timeout_ms, hook_done_cb done);

bool hook_running(const struct hook *h);

/* For shutdown: SIGTERM to the group now, SIGKILL after grace_ms; done_cb
 * still comes when it has exited. No-op when nothing runs. */
void hook_stop(struct hook *h, uint64_t grace_ms);

/* Closes the handles; close_cb (may be NULL) runs when all are closed.
 * Call only when no hook runs. */
void hook_close(struct hook *h, void (*close_cb)(struct hook *h));

/* The kept output lines, oldest first: i in [0, hook_tail_count). */
unsigned hook_tail_count(const struct hook *h);
const char *hook_tail_line(const struct hook *h, unsigned i);

#endif
