#!/bin/sh
# run-unit.sh BUILD_DIR TEST... - runs the cmocka test binaries, UNIT_JOBS
# (default 4) at a time, prints each one's output whole and in the order
# given, and one closing line with the totals; fails if any test failed.
# They run side by side because the slow ones wait on the disk (test_reap
# makes and removes trees of thousands of files), not on a core; each works
# in its own mkdtemp() folder.
set -u
build=$1; shift
jobs=${UNIT_JOBS:-4}
out=$(mktemp -d "${TMPDIR:-/tmp}/lockwarden-unit.XXXXXX") || exit 1
trap 'rm -rf "$out"' EXIT

# Each binary's output in $out/<name>.log, its exit status in $out/<name>.rc.
for t in "$@"; do
	printf '%s\n' "$t"
done | xargs -P "$jobs" -I{} sh -c 'n=$(basename "$1"); "$1" >"$2/$n.log" 2>&1; echo $? >"$2/$n.rc"' sh {} "$out"

passed=0; failed=0
for t in "$@"; do
	n=$(basename "$t")
	cat "$out/$n.log"
	if [ "$(cat "$out/$n.rc" 2>/dev/null)" = 0 ]; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1)); echo "FAILED: $t"
	fi
done
echo "unit: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
