#!/bin/sh
# ensure-deps.sh build|check|fuzz|demo [--report] - makes sure the Debian
# packages a make target needs are installed. As root it installs what is
# missing with apt-get; otherwise, or with --report (plain `make` and `make
# install`, which never install anything), it prints the exact command and
# fails.
set -eu

build_pkgs="gcc make pkg-config libuv1-dev libinih-dev libsystemd-dev"
check_pkgs="$build_pkgs libcmocka-dev python3 python3-pytest python3-pytest-xdist bindfs fuse3"
# Test suites that need more list their packages in packaging/deps-*.txt.
here=$(dirname "$0")
for f in "$here"/deps-*.txt; do
	[ -e "$f" ] && check_pkgs="$check_pkgs $(grep -v '^#' "$f" | tr '\n' ' ')"
done

case "${1:-build}" in
build) want=$build_pkgs ;;
check) want=$check_pkgs ;;
fuzz) want="$build_pkgs clang libclang-rt-14-dev" ;;
demo) want="$build_pkgs python3 python3-pytest" ;;
*) echo "usage: $0 build|check|fuzz|demo" >&2; exit 64 ;;
esac

missing=""
for p in $want; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

if [ "${2:-}" != "--report" ] && [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
	echo "lockwarden: installing missing packages:$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# shellcheck disable=SC2086
	apt-get install -y -qq --no-install-recommends $missing >/dev/null
	exit 0
fi
echo "lockwarden: missing packages:$missing" >&2
echo "install them with:  sudo apt-get install$missing" >&2
exit 1
