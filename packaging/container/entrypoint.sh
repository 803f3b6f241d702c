#!/bin/sh
# entrypoint.sh APP [ARG...] - the container's entrypoint for an App Service
# custom container: starts sshd (when installed) for the portal's SSH
# console, starts lockwarden next to the app, runs the app, and stops
# lockwarden with it.
#
#   ENTRYPOINT ["/usr/lib/lockwarden/container/entrypoint.sh"]
#   CMD ["node", "server.js"]
#
# lockwarden is configured by /etc/lockwarden/lockwarden.ini when present and
# by app settings: every LOCKWARDEN_<SECTION>_<KEY> setting reaches it as an
# environment variable (e.g. LOCKWARDEN_POLICY_STUCK_AFTER=20m).
# LOCKWARDEN_CONFIG names another config file. Its log goes to the
# container's stderr, which the platform's log stream shows.
#
# Why the app is not exec'd, although that is the usual entrypoint idiom:
# after `exec` this script is gone and the app is PID 1, so nothing would be
# left to forward the platform's SIGTERM to lockwarden, and when PID 1 exits
# the kernel SIGKILLs every other process of the container: lockwarden
# would never stop cleanly (a restart hook it runs would die half way).
# Worse, a process running as PID 1 ignores every signal it has no handler
# for, so an app without a SIGTERM handler (many node and python apps)
# ignores the platform's stop request and is killed only after the stop
# time limit (WEBSITES_CONTAINER_STOP_TIME_LIMIT, 5 s by default).
#
# So this script stays PID 1, as a small init:
#   - the app runs as its child, with the container's stdin, stdout and
#     stderr, and this script exits with the app's exit status;
#   - SIGTERM (docker stop, the platform) goes to the app and to lockwarden,
#     which stops cleanly at once;
#   - SIGINT (Ctrl-C of `docker run -it`) goes to both as SIGTERM: a
#     background child of a non-interactive shell starts with SIGINT and
#     SIGQUIT ignored, and an ignored signal cannot be un-ignored;
#   - SIGHUP, SIGUSR1 and SIGUSR2 go to the app only;
#   - when the app exits by itself, lockwarden gets SIGTERM, is waited for
#     (SIGKILL after 10 s), and the script exits with the app's status, so
#     the container stops and the platform starts it again;
#   - when lockwarden exits while the app runs (a mistyped app setting
#     makes it exit 78 at start), the app goes on, and a small supervisor
#     (a background subshell) says so on stderr with the exit status and
#     what it means, and starts it again after a back-off: 1 s, doubling
#     to 60 s, back to 1 s once it had run for 10 minutes. Without it the
#     app would run on unprotected and nobody would be told;
#   - as PID 1 the shell also reaps orphaned processes while it waits.
# The restart-container hook relies on this: its SIGTERM to PID 1 ends the
# app and the container the same way a platform stop does.
#
# App settings for SSH sessions: an SSH login starts from sshd and does not
# get the container's environment, so the commands the README suggests over
# SSH (`lockwarden report`, `restart-site --check`) would miss every app
# setting. Before anything starts, this script saves its own environment, as
# /proc/PID/environ holds it, in /run/lockwarden/environ (LOCKWARDEN_ENV_FILE
# names another file; empty: none): a folder of mode 0700 and a file of mode
# 0600, root's alone, since app settings hold secrets (IDENTITY_HEADER,
# connection strings). lockwarden, the hooks and the login profile
# (/etc/profile.d/lockwarden-app-settings.sh, from profile.sh) read it;
# nothing is written to a world-readable profile.
#
# Exit status: the app's (128+N when a signal N ended it); 64 when no app
# was given; 127 or 126 when the app cannot be run.
set -u

me=lockwarden-entrypoint
log() { printf '%s: %s\n' "$me" "$*" >&2; }

if [ $# -eq 0 ]; then
	log "usage: entrypoint.sh APP [ARG...] (the app to run, e.g. the image's CMD)"
	exit 64
fi

app_pid=""
agent_pid=""
stop_signal=""

# The state letter of /proc/PID/stat, or nothing when PID is gone.
proc_state() {
	sed 's/.*) \(.\).*/\1/' "/proc/$1/stat" 2>/dev/null
}

# Alive: exists and is not a zombie (an exited child not yet reaped).
alive() {
	case $(proc_state "$1") in
	"" | Z | X) return 1 ;;
	esac
	return 0
}

stop_agent() {
	[ -n "$agent_pid" ] && kill -TERM "$agent_pid" 2>/dev/null
	return 0
}

# Runs from the traps. The wait below returns when a trapped signal comes,
# and goes back to waiting while the app lives.
# shellcheck disable=SC2317 # reached from the traps only
on_signal() {
	stop_signal=$1
	case $1 in
	TERM | INT)
		[ -n "$app_pid" ] && kill -TERM "$app_pid" 2>/dev/null
		stop_agent
		;;
	*)
		[ -n "$app_pid" ] && kill -"$1" "$app_pid" 2>/dev/null
		;;
	esac
	return 0
}
for sig in TERM INT HUP USR1 USR2; do
	# shellcheck disable=SC2064 # the signal's name is meant to be fixed now
	trap "on_signal $sig" "$sig"
done

# ---- app settings for SSH sessions ----------------------------------------

env_file=${LOCKWARDEN_ENV_FILE-/run/lockwarden/environ}

# The folder is made 0700 only when this script creates it: a file named in
# an existing folder (/tmp, say) must not change that folder's mode. The
# file is written under a temporary name and renamed, so a reader never
# sees half of it, and a symlink planted at its name is replaced, not
# followed.
save_environment() {
	dir=${env_file%/*}
	[ -n "$dir" ] || dir=/
	if [ ! -d "$dir" ]; then
		(umask 077 && mkdir -p "$dir") || return 1
	fi
	tmp=$(umask 077 && mktemp "$dir/.environ.XXXXXX") || return 1
	if cat "/proc/$$/environ" >"$tmp" && chmod 0600 "$tmp" && mv -f "$tmp" "$env_file"; then
		return 0
	fi
	rm -f "$tmp"
	return 1
}
if [ -n "$env_file" ]; then
	if save_environment 2>/dev/null; then
		log "app settings saved for SSH sessions in $env_file (root only)"
	else
		log "cannot save the app settings in $env_file; SSH sessions will not see them"
	fi
fi

# ---- sshd: the platform's SSH console connects to port 2222 -------------

if sshd=$(command -v sshd 2>/dev/null); then
	# Debian's sshd refuses to start without its privilege separation
	# folder, which is not kept in the image when /run is a fresh tmpfs.
	mkdir -p /run/sshd 2>/dev/null
	# sshd puts itself in the background once it listens.
	if "$sshd"; then
		log "sshd started"
	else
		log "sshd did not start (exit status $?); the app starts anyway"
	fi
fi

# ---- lockwarden, kept running ---------------------------------------------

# What an exit status of lockwarden means (lockwarden(8), EXIT STATUS).
exit_meaning() {
	case $1 in
	0) echo "it stopped by itself" ;;
	1) echo "a runtime failure: its own last lines above say what" ;;
	64) echo "a usage error" ;;
	78) echo "a configuration error: its own lines above name the setting to fix" ;;
	126 | 127) echo "it could not be run" ;;
	*) if [ "$1" -gt 128 ]; then
		echo "killed by signal $(($1 - 128))"
	else
		echo "see its own lines above"
	fi ;;
	esac
}

# The supervisor: runs lockwarden, and when it exits starts it again after
# the back-off, until SIGTERM, which it passes on (SIGKILL after 10 s). It
# exits with lockwarden's last status. Its output is the container's:
# inherited stdout and stderr; lockwarden's stdin is /dev/null (the shell
# does that for background commands).
supervise() {
	child=""
	stopping=""
	trap 'stopping=1; [ -n "$child" ] && kill -TERM "$child" 2>/dev/null' TERM
	delay_s=1
	status=0
	while [ -z "$stopping" ]; do
		started_s=$(date +%s)
		if [ -n "${LOCKWARDEN_CONFIG-}" ]; then
			"$agent" run -c "$LOCKWARDEN_CONFIG" &
		else
			# Without -c it reads /etc/lockwarden/lockwarden.ini when
			# that exists, and otherwise runs on its defaults and app
			# settings.
			"$agent" run &
		fi
		child=$!
		# A SIGTERM that came before $! was known found no child.
		[ -n "$stopping" ] && kill -TERM "$child" 2>/dev/null
		log "lockwarden started (pid $child)"
		while :; do
			[ -n "$stopping" ] && stop_within 10 "$child"
			wait "$child"
			status=$?
			alive "$child" || break
		done
		# See the app's wait below: dash and busybox forget a child
		# once a wait returned its status.
		wait "$child" 2>/dev/null
		again=$?
		[ "$again" -ne 127 ] && status=$again
		child=""
		[ -n "$stopping" ] && break
		[ $(($(date +%s) - started_s)) -ge 600 ] && delay_s=1
		log "lockwarden exited with status $status ($(exit_meaning "$status")); the app" \
			"runs on unprotected; starting lockwarden again in $delay_s s"
		sleep "$delay_s" &
		child=$!
		wait "$child"
		child=""
		delay_s=$((delay_s * 2))
		[ "$delay_s" -gt 60 ] && delay_s=60
	done
	exit "$status"
}

# Waits until pid is gone, at most limit_s seconds, then SIGKILLs it.
stop_within() {
	step=0.1
	sleep "$step" 2>/dev/null || step=1
	ticks=0
	limit=$(($1 * 10))
	[ "$step" = 1 ] && limit=$1
	while alive "$2"; do
		if [ "$ticks" -ge "$limit" ]; then
			log "lockwarden did not stop within $1 s of SIGTERM; killing it"
			kill -KILL "$2" 2>/dev/null
			return 0
		fi
		sleep "$step"
		ticks=$((ticks + 1))
	done
	return 0
}

if agent=$(command -v lockwarden 2>/dev/null); then
	supervise &
	agent_pid=$!
else
	log "lockwarden is not installed (not in PATH); the app starts without it"
fi

if [ -n "$stop_signal" ]; then
	# Asked to stop before the app even started.
	log "SIG$stop_signal before the app started; stopping"
	stop_agent
	[ -n "$agent_pid" ] && wait "$agent_pid"
	exit 143
fi

# ---- the app --------------------------------------------------------------

# A background command gets /dev/null as stdin unless redirected, so the
# container's stdin is handed over on fd 3 (docker run -it keeps working).
exec 3<&0
"$@" <&3 3<&- &
app_pid=$!
exec 3<&-
log "app started (pid $app_pid): $*"

# wait returns early, with 128+N, whenever a trapped signal arrives: go on
# waiting while the app is alive.
while :; do
	wait "$app_pid"
	app_status=$?
	alive "$app_pid" || break
done
# When a signal cut the last wait short just as the app ended, the shell
# still holds the app's own status and one more wait returns it; when the
# last wait did return it, dash and busybox have forgotten the child and
# answer 127 (bash answers the status again).
wait "$app_pid" 2>/dev/null
again=$?
[ "$again" -ne 127 ] && app_status=$again
log "the app exited with status $app_status; stopping lockwarden"

# ---- stop lockwarden and leave ------------------------------------------

if [ -n "$agent_pid" ]; then
	# The supervisor SIGKILLs lockwarden after 10 s; it is itself given
	# two more.
	stop_agent
	stop_within 12 "$agent_pid"
	wait "$agent_pid"
	log "lockwarden stopped (status $?)"
fi
exit "$app_status"
