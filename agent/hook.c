/* hook.c - runs the restart hook: spawn, output tail, timeout, group kill.
 *
 * How a run goes, and the choices made:
 *
 * - stdout and stderr share one pipe that this file creates (uv_pipe) and
 *   hands to the child as fd 1 and fd 2 (UV_INHERIT_FD). libuv cannot merge
 *   them itself: UV_INHERIT_STREAM needs a stream that is already open, and a
 *   UV_CREATE_PIPE stream is only opened at the end of the same uv_spawn.
 *   One pipe keeps the order of interleaved stdout and stderr lines.
 *
 * - The hook gets its own session (UV_PROCESS_DETACHED runs setsid), so its
 *   pid is also its process group id and kill(-pid, sig) reaches everything
 *   it started that did not leave the group.
 *
 * - When the hook exits on its own, what it left behind is left alone: a
 *   restart hook may legitimately start a daemon. We wait at most
 *   HOOK_DRAIN_MS for the output pipe to reach end of file, then close our
 *   end. A process left behind that still writes to it then gets EPIPE (or
 *   SIGPIPE), so a hook that starts a daemon should redirect its output.
 *
 * - When we end the run (timeout or hook_stop), the whole group goes:
 *   SIGTERM, then SIGKILL after the grace. The grace runs to its end even if
 *   the shell itself died at SIGTERM, unless no live process is left in the
 *   group, so a child that ignores SIGTERM cannot outlive the run. After
 *   SIGKILL the run ends once the shell was reaped and the output closed;
 *   the rest of the group may still be on its way out then.
 *
 * - done_cb comes only once the process was reaped, the output is closed and
 *   both handles finished closing, so done_cb may start the next run.
 *
 * One uv_timer serves three purposes in turn (timeout, kill grace, drain);
 * each purpose has its own callback, so the callback says which one fired.
 */
#include "hook.h"
#include "container_of.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

#ifndef container_of
#endif

/* How long the output may stay open after the hook exited: long enough for
 * the last writes of a finished group to arrive, short enough that a daemon
 * holding the pipe does not hold up the agent. */
#define HOOK_DRAIN_MS 200

static void maybe_finish(struct hook *h);

static uint64_t now_ms(void)
{
	return uv_hrtime() / 1000000;
}

static unsigned long long run_ms(const struct hook *h)
{
	return (unsigned long long)(now_ms() - h->started_ms);
}

int hook_init(struct hook *h, uv_loop_t *loop)
{
	memset(h, 0, sizeof(*h));
	h->loop = loop;
	h->kill_grace_ms = HOOK_KILL_GRACE_MS;
	return uv_timer_init(loop, &h->timer);
}

/* ---- output: lines into the ring ---- */

/* Moves the line being read into the ring, made safe to log: control
 * characters other than tab become '?', so the hook's output cannot move
 * the terminal cursor or forge log lines. */
static void tail_push(struct hook *h)
{
	char *line = h->tail[h->tail_next];
	unsigned len = h->partial_len;

	/* A CRLF line end (scripts edited on Windows are common on App
	 * Service) is a line end, not a character to show. */
	if (len > 0 && h->partial[len - 1] == '\r')
		len--;
	for (unsigned i = 0; i < len; i++) {
		unsigned char c = (unsigned char)h->partial[i];

		line[i] = ((c < 0x20 && c != '\t') || c == 0x7f) ? '?' : (char)c;
	}
	line[len] = '\0';
	h->partial_len = 0;
	h->tail_next = (h->tail_next + 1) % HOOK_TAIL_LINES;
	if (h->tail_count < HOOK_TAIL_LINES)
		h->tail_count++;
	h->lines_total++;
	/* A hook that floods its output must not flood the log too: the
	 * first lines at debug level, the last ones kept for the end. */
	if (h->lines_total <= HOOK_DEBUG_LINES_MAX)
		log_debug("hook: %s", line);
	else if (h->lines_total == HOOK_DEBUG_LINES_MAX + 1)
		log_debug("hook: (more output; only its last %d lines are logged when it ends)",
			  HOOK_TAIL_LINES);
}

/* Splits what was read into lines. Bytes beyond HOOK_LINE_MAX-1 of a line
 * are dropped as they come, so a line without an end costs nothing. */
static void output_feed(struct hook *h, const char *data, size_t len)
{
	const char *end = data + len;

	while (data < end) {
		const char *nl = memchr(data, '\n', (size_t)(end - data));
		size_t chunk = (size_t)((nl ? nl : end) - data);
		size_t room = HOOK_LINE_MAX - 1 - h->partial_len;
		size_t take = chunk < room ? chunk : room;

		memcpy(h->partial + h->partial_len, data, take);
		h->partial_len += (unsigned)take;
		if (!nl)
			break;
		tail_push(h);
		data = nl + 1;
	}
}

static void on_out_closed(uv_handle_t *handle);

static void output_close(struct hook *h)
{
	if (!h->out_open)
		return;
	/* Output that ended without a newline is still a line. */
	if (h->partial_len > 0)
		tail_push(h);
	uv_read_stop((uv_stream_t *)&h->out);
	uv_close((uv_handle_t *)&h->out, on_out_closed);
	h->out_open = false;
	h->pending_closes++;
}

static void on_alloc(uv_handle_t *handle, size_t suggested_size, uv_buf_t *buf)
{
	/* One buffer per read, freed in on_read: only one read is ever in
	 * flight, so memory stays at one buffer however much is written. */
	buf->base = malloc(suggested_size);
	buf->len = buf->base ? suggested_size : 0;
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
	struct hook *h = container_of((uv_pipe_t *)stream, struct hook, out);

	if (nread > 0)
		output_feed(h, buf->base, (size_t)nread);
	free(buf->base);
	if (nread >= 0)
		return;
	/* UV_ENOBUFS (no memory for a buffer) also ends the reading: retrying
	 * would spin the loop while memory is short. */
	if (nread != UV_EOF)
		log_warning("hook: reading its output: %s", uv_strerror((int)nread));
	output_close(h);
}

/* ---- the process group ---- */

static bool group_alive(const struct hook *h);

static void signal_group(struct hook *h, int sig)
{
	h->signal_sent = sig;
	/* kill(-1) or kill(0) would hit every process we may signal, or our
	 * own group: never without a real child pid. */
	if (h->pid <= 1)
		return;
	/* Once the shell was reaped its pid may be reused (pid_max can be as
	 * low as 32768); the group id stays ours only while a member lives. */
	if (h->exited && !group_alive(h))
		return;
	if (kill(-h->pid, sig) < 0 && errno != ESRCH)
		log_warning("hook: signal %d to process group %d: %s", sig, h->pid,
			    strerror(errno));
}

/* Whether /proc/<name>/stat is a live (not zombie) process of group pgid. */
static bool proc_in_group(const char *name, int pgid)
{
	char path[64], buf[512], state;
	int ppid, pgrp, fd;
	ssize_t n;
	char *rp;

	if (snprintf(path, sizeof(path), "/proc/%s/stat", name) >= (int)sizeof(path))
		return false;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false; /* gone meanwhile */
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	/* "pid (comm) state ppid pgrp ...": comm may hold anything, so parse
	 * from the last ')'. */
	rp = strrchr(buf, ')');
	if (!rp || sscanf(rp + 1, " %c %d %d", &state, &ppid, &pgrp) != 3)
		return false;
	return pgrp == pgid && state != 'Z' && state != 'X';
}

/* Whether any process of the hook's group is left. kill(-pgid, 0) also
 * counts zombies, and the orphans of a killed group stay zombies until
 * PID 1 reaps them, which in a container may be late or never; so when
 * kill says "someone", /proc says whether anyone is alive. /proc is in
 * memory and a container has few processes: this does not block the loop
 * for long, and runs a few times per run. */
static bool group_alive(const struct hook *h)
{
	DIR *dir;
	struct dirent *e;
	bool alive = false;

	if (h->pid <= 1)
		return false;
	if (kill(-h->pid, 0) < 0 && errno != EPERM)
		return false;
	dir = opendir("/proc");
	if (!dir)
		return true; /* cannot tell: assume the worst, the grace bounds it */
	while (!alive && (e = readdir(dir)))
		if (e->d_name[0] >= '1' && e->d_name[0] <= '9')
			alive = proc_in_group(e->d_name, h->pid);
	closedir(dir);
	return alive;
}

static void on_drain_timeout(uv_timer_t *timer)
{
	struct hook *h = container_of(timer, struct hook, timer);

	log_warning("hook exited but a process it left behind still holds its output open; "
		    "no longer reading it");
	output_close(h);
}

static void on_kill_grace(uv_timer_t *timer)
{
	struct hook *h = container_of(timer, struct hook, timer);

	if (group_alive(h))
		log_warning("hook's process group outlived SIGTERM (%llu ms after the start); "
			    "sent SIGKILL to it", run_ms(h));
	signal_group(h, SIGKILL);
	if (!h->exited)
		return; /* on_process_exit follows */
	if (h->out_open)
		uv_timer_start(&h->timer, on_drain_timeout, HOOK_DRAIN_MS, 0);
	else
		maybe_finish(h);
}

static void on_timeout(uv_timer_t *timer)
{
	struct hook *h = container_of(timer, struct hook, timer);

	h->timed_out = true;
	signal_group(h, SIGTERM);
	log_warning("hook timed out after %llu ms; sent SIGTERM to its process group",
		    run_ms(h));
	uv_timer_start(&h->timer, on_kill_grace, h->kill_grace_ms, 0);
}

static void on_process_closed(uv_handle_t *handle);

static void on_process_exit(uv_process_t *process, int64_t exit_status, int term_signal)
{
	struct hook *h = container_of(process, struct hook, process);

	h->exited = true;
	h->exit_status = term_signal ? -1 : exit_status;
	h->term_signal = term_signal;
	uv_close((uv_handle_t *)process, on_process_closed);
	h->pending_closes++;

	/* Ending the group was asked for and some of it is left: the kill
	 * timer keeps running so the rest gets SIGKILL after its grace. */
	if (h->signal_sent == SIGTERM && group_alive(h))
		return;
	uv_timer_stop(&h->timer);
	if (h->out_open)
		uv_timer_start(&h->timer, on_drain_timeout, HOOK_DRAIN_MS, 0);
}

/* ---- the end of a run ---- */

static void report(const struct hook *h)
{
	bool failed = h->timed_out || h->term_signal != 0 || h->exit_status != 0;
	enum log_level level = failed ? LOG_LEVEL_WARNING : LOG_LEVEL_INFO;
	unsigned long long ms = run_ms(h);

	const struct log_field *fields = LOG_FIELDS(
		LOG_STR("result", h->timed_out ? "timeout" : failed ? "failed" : "ok"),
		LOG_INT("status", h->exit_status), LOG_INT("signal", h->term_signal),
		LOG_INT("duration_ms", ms), LOG_BOOL("timed_out", h->timed_out),
		LOG_INT("hook_pid", h->pid));

	if (h->term_signal != 0)
		log_event(LOG_LEVEL_WARNING, "hook", fields, "hook killed by signal %d (%s) after %llu ms",
			  h->term_signal, strsignal(h->term_signal), ms);
	else
		log_event(level, "hook", fields, "hook exited with status %lld after %llu ms",
			  (long long)h->exit_status, ms);
	if (h->lines_total > h->tail_count)
		log_msg(level, "hook output: (%lu earlier lines not shown)",
			h->lines_total - h->tail_count);
	for (unsigned i = 0; i < h->tail_count; i++)
		log_msg(level, "hook output: %s", hook_tail_line(h, i));
}

static void maybe_finish(struct hook *h)
{
	if (!h->running || !h->exited || h->out_open || h->pending_closes > 0)
		return;
	if (h->signal_sent == SIGTERM && group_alive(h))
		return; /* on_kill_grace finishes the job */
	uv_timer_stop(&h->timer);
	h->running = false;
	report(h);
	if (h->done)
		h->done(h, h->exit_status, h->term_signal, h->timed_out);
}

static void closed_one(struct hook *h)
{
	h->pending_closes--;
	if (h->pending_closes > 0)
		return;
	if (h->closing) {
		void (*cb)(struct hook *) = h->close_cb;

		h->close_cb = NULL;
		if (cb)
			cb(h);
		return;
	}
	maybe_finish(h);
}

static void on_out_closed(uv_handle_t *handle)
{
	closed_one(container_of((uv_pipe_t *)handle, struct hook, out));
}

static void on_process_closed(uv_handle_t *handle)
{
	closed_one(container_of((uv_process_t *)handle, struct hook, process));
}

static void on_timer_closed(uv_handle_t *handle)
{
	closed_one(container_of((uv_timer_t *)handle, struct hook, timer));
}

/* ---- starting ---- */

static size_t env_name_len(const char *entry)
{
	const char *eq = strchr(entry, '=');

	return eq ? (size_t)(eq - entry) : strlen(entry);
}

/* Whether extra[from..] sets the variable that entry sets. */
static bool env_overridden(const char *entry, char *const *extra, size_t from)
{
	size_t len = env_name_len(entry);

	for (size_t i = from; extra && extra[i]; i++)
		if (env_name_len(extra[i]) == len && memcmp(extra[i], entry, len) == 0)
			return true;
	return false;
}

/* The child's environment: ours, with each extra entry replacing the one of
 * the same name (and a later extra entry replacing an earlier one), so the
 * hook never sees a variable twice. Only the pointer array is new. */
static int env_build(char *const *extra, char ***out)
{
	size_t n_env = 0, n_extra = 0, k = 0;
	char **env;

	while (environ && environ[n_env])
		n_env++;
	for (; extra && extra[n_extra]; n_extra++) {
		const char *eq = strchr(extra[n_extra], '=');

		if (!eq || eq == extra[n_extra]) {
			log_error("hook: environment entry %zu is not NAME=value", n_extra);
			return -EINVAL;
		}
	}
	env = calloc(n_env + n_extra + 1, sizeof(*env));
	if (!env) {
		log_error("hook: building its environment: %s", strerror(ENOMEM));
		return -ENOMEM;
	}
	for (size_t i = 0; i < n_env; i++)
		if (!env_overridden(environ[i], extra, 0))
			env[k++] = environ[i];
	for (size_t i = 0; i < n_extra; i++)
		if (!env_overridden(extra[i], extra, i + 1))
			env[k++] = extra[i];
	env[k] = NULL;
	*out = env;
	return 0;
}

/* Starts reading fd (the pipe's read end, which it takes over). Failing
 * here does not undo the start: the hook runs on, its output unread. */
static void output_open(struct hook *h, uv_file fd)
{
	int err = uv_pipe_init(h->loop, &h->out, 0);

	if (err) {
		close(fd);
		log_warning("hook: its output will not be read: %s", uv_strerror(err));
		return;
	}
	err = uv_pipe_open(&h->out, fd);
	if (err == 0)
		err = uv_read_start((uv_stream_t *)&h->out, on_alloc, on_read);
	if (err == 0) {
		h->out_open = true;
		return;
	}
	log_warning("hook: its output will not be read: %s", uv_strerror(err));
	/* uv_pipe_open leaves fd to us when it fails; after that, the handle
	 * owns it and closing the handle closes it. */
	if (uv_fileno((uv_handle_t *)&h->out, &(uv_os_fd_t){ 0 }) != 0)
		close(fd);
	uv_close((uv_handle_t *)&h->out, on_out_closed);
	h->pending_closes++;
}

int hook_start(struct hook *h, const char *command, char *const *extra_env,
	       uint64_t timeout_ms, hook_done_cb done)
{
	char **env = NULL;
	uv_file fds[2];
	int err;

	/* pending_closes: a handle of the last run or of a failed start is
	 * still closing and cannot be initialised again before it is closed.
	 * Only a failed start leaves one behind after returning (done_cb comes
	 * after the closes): a retry in the same loop iteration gets -EBUSY. */
	if (h->running || h->pending_closes > 0)
		return -EBUSY;
	if (h->closing)
		return -EINVAL;
	err = env_build(extra_env, &env);
	if (err)
		return err;
	/* The read end is non-blocking for the loop; the write end stays
	 * blocking, as a child expects of its stdout. Both are close-on-exec:
	 * only the dup2'd copies on fd 1 and 2 reach the hook. */
	err = uv_pipe(fds, UV_NONBLOCK_PIPE, 0);
	if (err) {
		free(env);
		log_debug("hook: creating its output pipe: %s", uv_strerror(err));
		return err;
	}

	char *args[] = { "sh", "-c", (char *)command, NULL };
	uv_stdio_container_t stdio[3] = {
		{ .flags = UV_IGNORE },  /* libuv gives fd 0 /dev/null */
		{ .flags = UV_INHERIT_FD, .data.fd = fds[1] },
		{ .flags = UV_INHERIT_FD, .data.fd = fds[1] },
	};
	uv_process_options_t options = {
		.exit_cb = on_process_exit,
		.file = "/bin/sh",
		.args = args,
		.env = env,
		.flags = UV_PROCESS_DETACHED,
		.stdio_count = 3,
		.stdio = stdio,
	};

	h->exited = false;
	h->out_open = false;
	h->timed_out = false;
	h->signal_sent = 0;
	h->pid = 0;
	h->exit_status = 0;
	h->term_signal = 0;
	h->tail_next = 0;
	h->tail_count = 0;
	h->partial_len = 0;
	h->lines_total = 0;
	h->done = done;
	h->started_ms = now_ms();

	err = uv_spawn(h->loop, &h->process, &options);
	free(env);
	close(fds[1]); /* only the hook writes */
	if (err) {
		close(fds[0]);
		/* uv_spawn initialised the handle even though it failed; it
		 * must be closed before it is used again or the loop closes. */
		uv_close((uv_handle_t *)&h->process, on_process_closed);
		h->pending_closes++;
		log_debug("hook: starting /bin/sh: %s", uv_strerror(err));
		return err;
	}
	h->pid = h->process.pid;
	h->running = true;
	output_open(h, fds[0]);
	if (timeout_ms > 0) { /* 0: no timeout; the config allows 1 s at least */
		/* The loop's clock is as old as this loop iteration, and the
		 * caller may have worked since: without an update the timeout
		 * would be shorter by that much. */
		uv_update_time(h->loop);
		uv_timer_start(&h->timer, on_timeout, timeout_ms, 0);
	}
	log_info("hook started (pid %d), timeout %llu ms", h->pid,
		 (unsigned long long)timeout_ms);
	/* The command comes from the trusted config, but it may still carry
	 * a token: only at debug level. */
	log_debug("hook command: %s", command);
	return 0;
}

bool hook_running(const struct hook *h)
{
	return h->running;
}

void hook_stop(struct hook *h, uint64_t grace_ms)
{
	if (!h->running || h->signal_sent == SIGKILL)
		return;
	if (h->signal_sent == SIGTERM) {
		/* Already ending: a stop may only bring SIGKILL closer. */
		if (!h->exited && uv_timer_get_due_in(&h->timer) > grace_ms)
			uv_timer_start(&h->timer, on_kill_grace, grace_ms, 0);
		return;
	}
	if (h->exited)
		return; /* only its output is being drained, which is bounded */
	log_info("stopping hook (pid %d): SIGTERM to its process group, SIGKILL in %llu ms",
		 h->pid, (unsigned long long)grace_ms);
	signal_group(h, SIGTERM);
	uv_timer_start(&h->timer, on_kill_grace, grace_ms, 0);
}

void hook_close(struct hook *h, void (*close_cb)(struct hook *h))
{
	if (h->closing)
		return;
	h->closing = true;
	h->close_cb = close_cb;
	if (h->running) {
		/* Against the contract, but leaving the group behind would leave
		 * it running unsupervised. Nobody will reap it: we are ending. */
		log_error("hook: closed while the hook (pid %d) runs; killing its process group",
			  h->pid);
		signal_group(h, SIGKILL);
		h->running = false;
		if (!h->exited) {
			uv_close((uv_handle_t *)&h->process, on_process_closed);
			h->pending_closes++;
		}
	}
	if (h->out_open) {
		uv_read_stop((uv_stream_t *)&h->out);
		uv_close((uv_handle_t *)&h->out, on_out_closed);
		h->out_open = false;
		h->pending_closes++;
	}
	uv_close((uv_handle_t *)&h->timer, on_timer_closed);
	h->pending_closes++;
}

unsigned hook_tail_count(const struct hook *h)
{
	return h->tail_count;
}

const char *hook_tail_line(const struct hook *h, unsigned i)
{
	if (i >= h->tail_count)
		return NULL;
	return h->tail[(h->tail_next + HOOK_TAIL_LINES - h->tail_count + i) % HOOK_TAIL_LINES];
}
