#!/bin/sh
# demo.sh BINARY - the newcomer's first run: a throwaway site tree with one
# stuck deployment next to one finished one, the real daemon on it with short
# timings, and what it found, removed and kept, in plain words. Then the
# story users live, against a Kudu stand-in (test/kudu/demo_story.py): a
# deploy, a death, 409s, the cleanup, the site restart, a deploy that
# succeeds.
set -eu
bin=$1
work=$(mktemp -d /tmp/lockwarden-demo.XXXXXX)
agent_pid=""
cleanup() {
	[ -n "$agent_pid" ] && kill $agent_pid 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

site=$work/site
mkdir -p "$site/locks/deployment" "$site/deployments/tools"
now=$(date -u +%s)
iso() { date -u -d "@$1" +%Y-%m-%dT%H:%M:%S.0000000Z; }

# The finished deployment: Success, and the active one.
done_id=3f2a9c1e5b7d4e6f8a0b1c2d3e4f5a6b
mkdir "$site/deployments/$done_id"
cat > "$site/deployments/$done_id/status.xml" <<XML
<?xml version="1.0" encoding="utf-8"?>
<deployment>
  <id>$done_id</id>
  <author>N/A</author>
  <deployer>ZipDeploy</deployer>
  <authorEmail>N/A</authorEmail>
  <message>Created via a push deployment</message>
  <progress />
  <status>Success</status>
  <statusText />
  <lastSuccessEndTime>$(iso $((now - 7200)))</lastSuccessEndTime>
  <receivedTime>$(iso $((now - 7300)))</receivedTime>
  <startTime>$(iso $((now - 7290)))</startTime>
  <endTime>$(iso $((now - 7200)))</endTime>
  <complete>True</complete>
  <is_temp>False</is_temp>
  <is_readonly>False</is_readonly>
</deployment>
XML
printf '%s' "$done_id" > "$site/deployments/active"
echo '<?xml version="1.0" encoding="utf-8"?><settings />' > "$site/deployments/settings.xml"

# The stuck one: a cancelled pipeline left the lock held, a temp record
# still "Receiving changes.", and a queued deploy marker, an hour ago.
temp=temp-1a2b3c4d
mkdir "$site/deployments/$temp"
cat > "$site/deployments/$temp/status.xml" <<XML
<?xml version="1.0" encoding="utf-8"?>
<deployment>
  <id>$temp</id>
  <author>N/A</author>
  <deployer>Push-Deployer</deployer>
  <authorEmail>N/A</authorEmail>
  <message>Fetching changes.</message>
  <progress />
  <status>Pending</status>
  <statusText>Receiving changes.</statusText>
  <lastSuccessEndTime />
  <receivedTime>$(iso $((now - 3600)))</receivedTime>
  <startTime>$(iso $((now - 3600)))</startTime>
  <endTime />
  <complete>False</complete>
  <is_temp>True</is_temp>
  <is_readonly>False</is_readonly>
</deployment>
XML
printf '%s,Fetching changes.,c5b1a2d4-0000-4000-8000-000000000000,0\n' "$(iso $((now - 3600)))" \
	> "$site/deployments/$temp/log.log"
: > "$site/deployments/pending"
printf '{"lockExpiry":"%s","heldByPID":83,"heldByTID":45,"heldByOp":"Performing deployment","heldByWorker":"demo-instance"}' \
	"$(iso $((now - 3600 + 1500 + 86400)))" > "$site/locks/deployment/info.lock"
cat > "$site/locks/status.lock" <<JSON
{
  "OperationName": "Performing deployment",
  "AcquiredDateTime": "$(iso $((now - 3600)))",
  "StackTrace": "   at Kudu.Core.Infrastructure.LockFile.TryLockOperation()",
  "InstanceId": "demo01"
}
JSON
find "$site" -exec touch -h -d "@$((now - 3600))" {} +
touch -d "@$((now - 7200))" "$site/deployments/$done_id" "$site/deployments/$done_id/status.xml" \
	"$site/deployments/active"

cat > "$work/hook.sh" <<'HOOK'
#!/bin/sh
# A stand-in for the restart hook: it writes down what it was told.
{
	echo "reason:  $LOCKWARDEN_REASON"
	echo "removed ($LOCKWARDEN_REMOVED_COUNT):"
	printf '%s\n' "$LOCKWARDEN_REMOVED" | sed 's/^/  /'
} > "$LOCKWARDEN_HOOK_OUT"
HOOK
chmod 0700 "$work/hook.sh"
cat > "$work/lockwarden.ini" <<INI
[site]
root = $site
[policy]
stuck_after = 3s
[scan]
rescan_interval = 1s
[hook]
command = LOCKWARDEN_HOOK_OUT=$work/hook.out $work/hook.sh
[archive]
dir = $work/archive
INI

# The same incident for the fleet: a copy of the tree, judged by a second
# agent at the same time, logging JSON lines and writing the metrics file.
cp -a "$site" "$work/site-json"
sed -e "s|^root = .*|root = $work/site-json|" -e "s|hook.out|hook-json.out|" \
	-e "s|^dir = .*|dir = $work/archive-json|" "$work/lockwarden.ini" > "$work/lockwarden-json.ini"
cat >> "$work/lockwarden-json.ini" <<INI
[log]
format = json
[metrics]
file = $work/metrics-\$INSTANCE.prom
INI

say() { printf '\n== %s\n' "$*"; }
say "A throwaway App Service site tree in $site"
(cd "$site" && find . -mindepth 1 | sort | sed 's|^\./|  |')

# touch -d backdates mtimes, but touch itself changes each file's ctime, which
# the agent counts as activity (nothing in user space can set ctime back): the
# tree must also be left alone for longer than stuck_after (2s here).
say "Leaving the tree alone for 3 s: touch -d was a change too (ctime)"
settled=$(( $(date +%s) + 4 ))
while [ "$(date +%s)" -lt "$settled" ]; do sleep 0.2; done

say "What 'lockwarden report' sees (changes nothing; exit 2 means stuck)"
echo "(This demo's site is a folder of this host, not App Service's share: the report and"
echo " the daemon say so, as they would if /home were not Kudu's share.)"
set +e
"$bin" report -c "$work/lockwarden.ini"
echo "(report exit code: $?)"
set -e

say "Running the daemon: it must watch the tree unchanged for stuck_after (3s) before it acts"
"$bin" run -c "$work/lockwarden.ini" 2> "$work/agent.log" &
agent_pid=$!
"$bin" run -c "$work/lockwarden-json.ini" 2> "$work/agent-json.log" &
json_pid=$!
agent_pid="$agent_pid $json_pid"
deadline=$(( $(date +%s) + 45 ))
while [ ! -s "$work/hook.out" ] || [ ! -s "$work/hook-json.out" ] ||
	! grep -q '"event":"hook"' "$work/agent-json.log"; do
	if [ "$(date +%s)" -ge "$deadline" ] || ! kill -0 $agent_pid 2>/dev/null; then
		echo "demo: the hook did not run within 45 s; the agents' logs:" >&2
		cat "$work/agent.log" "$work/agent-json.log" >&2
		exit 1
	fi
	sleep 0.2
done
kill -TERM $agent_pid
wait $agent_pid || true
agent_pid=""
sed 's/^[^ ]* lockwarden\[[0-9]*\] /  /' "$work/agent.log"

say "The same incident with [log] format = json (for Log Analytics), its named events only"
grep -v '"event":"log"' "$work/agent-json.log" | sed 's/^/  /'
say "... and its [metrics] file (Prometheus text format), without the HELP lines"
grep -v '^# HELP' "$work"/metrics-*.prom | sed 's/^/  /'

say "The hook ran once and was told"
sed 's/^/  /' "$work/hook.out"

say "Nothing is lost: what was removed is archived, with a note ('lockwarden report' lists it)"
(cd "$work/archive" && find . -mindepth 1 | sort | sed 's|^\./|  |')
sed 's/^/  /' "$work"/archive/*/note.txt

say "What is left: the finished deployment, its history and settings are kept"
(cd "$site" && find . -mindepth 1 | sort | sed 's|^\./|  |')
for gone in locks/deployment locks/status.lock deployments/pending "deployments/$temp"; do
	[ ! -e "$site/$gone" ] || { echo "demo: $gone is still there" >&2; exit 1; }
done
for kept in deployments/active "deployments/$done_id/status.xml" deployments/settings.xml deployments/tools; do
	[ -e "$site/$kept" ] || { echo "demo: $kept was removed" >&2; exit 1; }
done
say "Done: the stuck deployment was cleared, the finished one kept, and the hook ran."

/usr/bin/python3 "$(dirname "$0")/kudu/demo_story.py" "$bin"
