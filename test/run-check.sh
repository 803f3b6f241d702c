#!/bin/bash
# run-check.sh - what `make check` runs. The model starts at once (it needs
# no build); every binary the other suites need is built at once (the
# normal build with its static binary, man pages and .deb, beside the
# sanitizer build with the fuzz targets); then the suites run in lanes side
# by side, each part's output in build/check/<part>.log. The tests mostly
# wait for agents and shares, so the lanes share two cores well; the
# CPU-bound parts (the model, the builds) overlap the waiting ones. Ends
# with a table of each part's wall and CPU time; fails if any part failed,
# after the tail of its log.
#
# Called by the Makefile (MAKE set to its make, WERROR passed on in MAKEFLAGS).
set -u
# Job control on: each lane (`&`) is a process group of its own, and starts
# its commands with SIGINT and SIGQUIT not ignored (see sigdefault too).
set -m
cd "$(dirname "$0")/.."
MAKE=${MAKE:-make}
out=build/check
rm -rf "$out"
mkdir -p "$out"

now() { date +%s.%N; }

# sigdefault COMMAND...: COMMAND with SIGINT and SIGQUIT at their defaults.
# A make check started in the background (`&`, nohup, some CI runners)
# inherits them ignored, a shell cannot undo that, and the container tests
# that stop an entrypoint with SIGINT would fail for it.
sigdefault() {
	/usr/bin/python3 -c 'import os, signal, sys
for s in (signal.SIGINT, signal.SIGQUIT):
    signal.signal(s, signal.SIG_DFL)
os.execvp(sys.argv[1], sys.argv[1:])' "$@"
}

# part NAME COMMAND...: runs COMMAND with its output in $out/NAME.log and
# writes "NAME rc wall_s cpu_s" to $out/NAME.time. CPU is the user + system
# time of every process it waited for (bash's `times`), agents included.
part() {
	local name=$1; shift
	local t0 rc
	t0=$(now)
	echo "  start $name"
	(
		sigdefault "$@" >"$out/$name.log" 2>&1 </dev/null
		rc=$?
		times >"$out/$name.times"
		exit $rc
	)
	rc=$?
	awk -v n="$name" -v rc="$rc" -v t0="$t0" -v t1="$(now)" '
		function s(x,  m) { m = x; sub(/m.*/, "", m); sub(/^[0-9]+m/, "", x); sub(/s$/, "", x); return m * 60 + x }
		NR == 2 { cpu = s($1) + s($2) }
		END { printf "%s %d %.1f %.1f\n", n, rc, t1 - t0, cpu }' "$out/$name.times" >"$out/$name.time"
	if [ "$rc" -eq 0 ]; then
		echo "  ok    $name ($(cut -d' ' -f3 "$out/$name.time") s)"
	else
		echo "  FAIL  $name (exit $rc): $out/$name.log"
	fi
	return "$rc"
}

# suite NAME: part NAME with that suite's make target.
suite() {
	local m="$MAKE --no-print-directory"
	case $1 in
	unit) part unit $m unit ;;
	e2e) part e2e $m e2e ;;
	# CPU-bound and in no hurry: niced, it yields to the compilers and to
	# the agents under test.
	model) part model nice -n 10 $m model ;;
	robust) part robust $m robust-parallel ROBUST_JOBS="${ROBUST_JOBS:-12}" ;;
	robust-serial) part robust-serial $m robust-serial ;;
	share) part share $m share-parallel ;;
	share-serial) part share-serial $m share-serial ;;
	packaging) part packaging $m packaging-check ;;
	kudu) part kudu $m kudu-check ;;
	fuzz-regress) part fuzz-regress $m fuzz-regress ;;
	san-unit) part san-unit $m SAN=1 unit ;;
	san-e2e) part san-e2e $m SAN=1 e2e ;;
	# Everything compiled up front, two builds side by side: the normal
	# build with what packaging-check makes (static, man pages, the .deb),
	# and the sanitizer build with the fuzz targets.
	build) part build bash -c "$m -j2 check-build & $m -j2 SAN=1 check-build; san=\$?; wait \$! && [ \$san -eq 0 ]" ;;
	*) echo "run-check.sh: no part $1" >&2; return 64 ;;
	esac
}

# lane SUITE...: the suites one after the other; a failed one does not
# stop the rest of its lane (every failure is reported at once).
lane() {
	local p
	for p in "$@"; do
		suite "$p"
	done
	return 0
}

echo "make check: logs in $out/"
# Installing missing Debian packages (as root) is timed apart: it is not
# the suite's time.
part deps $MAKE --no-print-directory deps-check deps-fuzz || { tail -40 "$out/deps.log"; exit 1; }
t_start=$(now)
# The lanes are process groups of their own (set -m): an interrupted make
# check stops them whole.
lanes=
stop_lanes() {
	local l
	for l in $lanes; do kill -TERM -- "-$l" 2>/dev/null; done
	exit 130
}
trap stop_lanes INT TERM

# The model needs no build: it starts at once, beside the compilers (niced).
lane model &
lanes="$lanes $!"
suite build || { tail -60 "$out/build.log"; wait; exit 1; }

# The other lanes, side by side: robust and attack twelve at a time (they
# wait on agents), then the serial few of robust, attack and the shares
# (the share ones rest on the SMB client's timeouts: by then the other
# lanes are mostly done); the shares, the Kudu stand-in and the fuzz corpus;
# the end-to-end suite on each build, and packaging.
lane robust robust-serial share-serial &
lanes="$lanes $!"
lane share kudu fuzz-regress &
lanes="$lanes $!"
lane unit e2e &
lanes="$lanes $!"
lane san-unit san-e2e packaging &
lanes="$lanes $!"
wait
trap - INT TERM
t_end=$(now)

failed=0
echo
printf "%-14s %6s %9s %9s\n" part result "wall s" "CPU s"
for f in deps build model robust robust-serial share-serial share kudu fuzz-regress unit e2e san-unit san-e2e packaging; do
	[ -e "$out/$f.time" ] || { printf "%-14s %6s\n" "$f" "-"; failed=1; continue; }
	read -r n rc wall cpu <"$out/$f.time"
	res=ok; [ "$rc" -eq 0 ] || { res=FAIL; failed=1; }
	printf "%-14s %6s %9s %9s\n" "$n" "$res" "$wall" "$cpu"
done
awk -v a="$t_start" -v b="$t_end" \
	'BEGIN { printf "%-14s %6s %9.1f   (build and suites; deps not counted)\n", "total", "", b - a }'
for f in "$out"/*.time; do
	read -r n rc _ <"$f"
	if [ "$rc" -ne 0 ]; then
		echo
		echo "==== $n failed: the end of $out/$n.log"
		tail -60 "$out/$n.log"
	fi
done
exit $failed
