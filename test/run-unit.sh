#!/bin/sh
# run-unit.sh BUILD_DIR TEST... - runs each cmocka test binary and prints one
# closing line with the totals, failing if any test failed.
set -u
build=$1; shift
passed=0; failed=0
for t in "$@"; do
	if "$t"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAILED: $t"; fi
done
echo "unit: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
