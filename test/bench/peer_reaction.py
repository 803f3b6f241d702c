"""Issue 12: reaction after an item becomes removable, lockwarden next to
what users run instead, in the same run, on the same incidents.

"Removable" is the same for everyone: a deployment holds the lock, writes
its log.log every 100 ms for RUN_S, and dies at t0 (its last write); with a
threshold of STUCK_S it becomes removable at t0 + STUCK_S. Each tool gets its
own copy of the site, written at the same moments, and the same threshold
in its own terms, at the same pace (PACE_S):

  lockwarden   stuck_after = STUCK_S, rescan_interval PACE_S (locally
               inotify brings a scan forward);
  find loop    every PACE_S: if nothing under locks/ and deployments/ was
               modified in the last STUCK_S (`find -mmin -0.0833`) and the
               lock folder is there, remove the lock folder, status.lock,
               pending and every temp-* record. It reads mtimes only: it
               cannot tell a finished record from a running one, trusts
               file times (a clock ahead or behind moves its verdict), and
               a build step that writes nothing for STUCK_S (an `npm
               install`, a test run) is taken for dead;
  monit        a cycle of PACE_S, `check directory` on locks/deployment,
               `if timestamp > STUCK_S seconds then exec` the same removal.
               It can watch fixed paths only: the running record is a
               temp-<random> folder it cannot name, so its rule measures the
               lock's age (the folder's timestamp, set when the lock is
               taken), not the deployment's activity. It fires STUCK_S after
               the lock was taken, so RUN_S too early here, and removes a
               deployment that is still writing when the build runs longer
               than STUCK_S (the "long build" incident shows it);
  incron       acts on inotify events: on the share none arrive, and a rule
               fires on an event, never on the absence of one ("nothing
               written for STUCK_S" needs a timer of its own). Measured only
               where installed; never run on the blind view.

Reaction = the lock folder's disappearance (polled underneath every
0.5 ms) - (t0 + STUCK_S); negative means removed before it was removable.
Each incident starts at a random moment of the pace, so no poller's phase
locks onto the incidents'.

t0 + STUCK_S is when lockwarden can first have watched the deployment
unchanged for stuck_after: it dates a change at the scan that saw it, never
by a file time (policy.h). On the blind view a last write it sees late (at
the next rescan, or one later while the client's attribute cache still
shows the previous one) postpones the removal by as much. The find loop
compares the file times with its own clock and is not held back that way.
"""

import os
import random
import shutil
import signal
import statistics
import subprocess
import time

import bench as lw

PACE_S = 1
STUCK_S = 5
# Longer than SCAN_SETTLE_MS (2 s, scan.h) plus a rescan, so that on the
# blind view the new record is known (its folder listing counted) well
# before the deployment dies.
RUN_S = 3.5
WRITE_EVERY_S = 0.1
LONG_RUN_S = STUCK_S + 2      # the long build: longer than the threshold
DEADLINE_S = 12               # after t0 + STUCK_S, for the slowest poller

FIND_LOOP = r"""site=$1; pace=$2; stuck_min=$3
while :; do
    recent=$(find "$site/locks" "$site/deployments" -mmin -"$stuck_min" -print | head -n 1)
    if [ -z "$recent" ] && [ -d "$site/locks/deployment" ]; then
        . "$(dirname "$0")/clear.sh"
    fi
    sleep "$pace"
done
"""

# The manual procedure (KUDU.md), as the find loop and monit both run it.
CLEAR = r"""rm -rf "$site/locks/deployment" "$site/locks/status.lock" "$site/deployments/pending"
find "$site/deployments" -maxdepth 1 -name 'temp-*' -exec rm -rf {} +
"""

MONIT_RC = """set daemon %(pace)d
set logfile %(dir)s/monit.log
set pidfile %(dir)s/monit.pid
set idfile %(dir)s/monit.id
set statefile %(dir)s/monit.state
check directory lock with path %(site)s/locks/deployment
    if timestamp > %(stuck)d seconds then exec "/bin/sh %(dir)s/monit-clear.sh"
"""


class Peer:
    """A process group started with argv, ended with SIGTERM to the group."""

    def __init__(self, name, argv):
        self.name = name
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        self.proc.wait(10)


class Tool:
    """One contender on its own copy of the site."""

    def __init__(self, name, site_backing, site_view):
        self.name = name
        self.backing = site_backing
        self.view = site_view
        self.samples = []
        self.failures = 0
        self.early_while_running = None
        self.handle = None


def start_lockwarden(bench, tool, where):
    agent = lw.Agent(bench, "peer-react-%s" % where, tool.view,
                     {"policy.stuck_after": "%ds" % STUCK_S,
                      "scan.rescan_interval": "%ds" % PACE_S,
                      "archive.dir": os.path.join(bench.work, "archive-peer-react-" + where)})
    agent.wait_ready()
    agent.read_notify()
    tool.handle = agent
    tool.stop = agent.stop
    tool.alive = lambda: agent.proc.poll() is None


def start_find(bench, tool, where):
    d = os.path.join(bench.work, "find-react-" + where)
    lw.write(os.path.join(d, "loop.sh"), FIND_LOOP)
    lw.write(os.path.join(d, "clear.sh"), CLEAR)
    peer = Peer(tool.name, ["/bin/sh", os.path.join(d, "loop.sh"), tool.view, str(PACE_S),
                            "%g" % (STUCK_S / 60)])
    tool.handle, tool.stop, tool.alive = peer, peer.stop, peer.alive


def start_monit(bench, tool, where, monit):
    d = os.path.join(bench.work, "monit-react-" + where)
    lw.write(os.path.join(d, "monit-clear.sh"), "site=%s\n%s" % (tool.view, CLEAR))
    rc = os.path.join(d, "monitrc")
    lw.write(rc, MONIT_RC % {"pace": PACE_S, "dir": d, "site": tool.view, "stuck": STUCK_S})
    os.chmod(rc, 0o600)
    # -I: in the foreground; no `set httpd`, so it opens no port.
    peer = Peer(tool.name, [monit, "-I", "-c", rc])
    log = os.path.join(d, "monit.log")
    deadline = time.monotonic() + 10
    while not (os.path.exists(log) and "started" in open(log, errors="replace").read()):
        if not peer.alive() or time.monotonic() > deadline:
            peer.stop()
            raise RuntimeError("monit did not start (see %s)" % log)
        time.sleep(0.05)
    tool.handle, tool.stop, tool.alive = peer, peer.stop, peer.alive


def write_incident(site, n):
    """A deployment that has just taken the lock; returns its log.log."""
    now_ns = time.time_ns()
    dep = "temp-%08x" % (0x0be40000 + n)
    lw.write(os.path.join(site, "locks/deployment/info.lock"), lw.info_lock(now_ns + 1500 * lw.S))
    lw.write(os.path.join(site, "locks/status.lock"), lw.status_lock(now_ns))
    lw.write(os.path.join(site, "deployments/pending"), "")
    lw.write(os.path.join(site, "deployments", dep, "status.xml"),
             lw.status_xml(dep, "Building", now_ns, is_temp=True))
    log = os.path.join(site, "deployments", dep, "log.log")
    lw.write(log, lw.log_line(now_ns, "Fetching changes."))
    return log


def clear_by_hand(site):
    """What a tool left behind, so the next incident starts clean."""
    for rel in ("locks/deployment", "locks/status.lock", "deployments/pending"):
        p = os.path.join(site, rel)
        if os.path.isdir(p) and not os.path.islink(p):
            shutil.rmtree(p, ignore_errors=True)
        elif os.path.lexists(p):
            os.unlink(p)
    deps = os.path.join(site, "deployments")
    for name in os.listdir(deps):
        if name.startswith("temp-"):
            shutil.rmtree(os.path.join(deps, name), ignore_errors=True)


def one_incident(tools, n, run_s):
    """Writes the incident into every tool's site, runs the deployment for
    run_s, waits for each lock folder to go; returns {tool: (t0 ns, gone ns
    or None, gone before t0)}."""
    # A random start: the pollers' phase must not lock onto the incidents'.
    time.sleep(random.uniform(0, PACE_S))
    logs = {t: write_incident(t.backing, n) for t in tools}
    locks = {t: os.path.join(t.backing, "locks/deployment") for t in tools}
    t0 = {}
    gone = {}
    early = {}
    for i in range(int(round(run_s / WRITE_EVERY_S))):
        time.sleep(WRITE_EVERY_S)
        for t in tools:
            if t in gone:
                continue
            try:
                with open(logs[t], "a", encoding="utf-8") as f:
                    f.write(lw.log_line(time.time_ns(), "Running build step %d." % i))
            except FileNotFoundError:
                pass  # removed under the running deployment: noted below
            t0[t] = time.time_ns()
            if not os.path.lexists(locks[t]):
                gone[t] = time.time_ns()
                early[t] = True
    deadline = time.monotonic() + STUCK_S + DEADLINE_S
    while len(gone) < len(tools) and time.monotonic() < deadline:
        for t in tools:
            if t not in gone and not os.path.lexists(locks[t]):
                gone[t] = time.time_ns()
        time.sleep(lw.POLL_S)
    out = {}
    for t in tools:
        out[t] = (t0[t], gone.get(t), early.get(t, False))
        clear_by_hand(t.backing)
    return out


def run_location(bench, where, view_parent, backing_parent, monit):
    tools = []
    names = ["lockwarden", "find -mmin loop"] + (["monit"] if monit else [])
    for name in names:
        backing = bench.fresh(backing_parent)
        for d in ("locks", "deployments"):
            os.makedirs(os.path.join(backing, d))
        lw.age_tree(backing, lw.TREE_AGE_S)
        tools.append(Tool(name, backing, os.path.join(view_parent, os.path.basename(backing))))
    started = []
    try:
        start_lockwarden(bench, tools[0], where)
        started.append(tools[0])
        start_find(bench, tools[1], where)
        started.append(tools[1])
        if monit:
            start_monit(bench, tools[2], where, monit)
            started.append(tools[2])
        print("  reaction ms (%s):" % " / ".join(names), flush=True)
        for n in range(1, bench.args.incidents + 1):
            got = one_incident(tools, n, RUN_S)
            line = []
            for t in tools:
                t0, gone_ns, early = got[t]
                if gone_ns is None:
                    t.failures += 1
                    line.append("-")
                    continue
                t.samples.append((gone_ns - (t0 + STUCK_S * lw.S)) / lw.MS)
                line.append("%.0f" % t.samples[-1])
            print("   " + " / ".join(line), flush=True)
            for t in tools:
                if not t.alive():
                    raise RuntimeError("%s exited" % t.name)
        got = one_incident(tools, bench.args.incidents + 1, LONG_RUN_S)
        for t in tools:
            t.early_while_running = got[t][2]
    finally:
        for t in started:
            t.stop()
    report(bench, where, tools)


def report(bench, where, tools):
    base = statistics.median(tools[0].samples) if tools[0].samples else None
    for t in tools:
        figure = "reaction after removable, %s: %s" % (where, t.name)
        if not t.samples:
            bench.row(figure, "never removed (%d incidents)" % t.failures, "", "n/a")
            continue
        med = statistics.median(t.samples)
        if t is tools[0] or base is None or base <= 0:
            ratio = ""
        elif med <= 0:
            ratio = "fires before removable"
        else:
            ratio = "x%.*f" % (2 if med / base < 10 else 0, med / base)
        extra = " (%d never)" % t.failures if t.failures else ""
        print("  %-16s %s%s  %s" % (t.name, lw.spread(t.samples), extra, ratio))
        bench.row(figure, lw.spread(t.samples) + extra, "", ratio)
    for t in tools:
        verdict = "REMOVED IT" if t.early_while_running else "kept it"
        print("  long build (%ds of writes, threshold %ds): %-16s %s while it ran"
              % (LONG_RUN_S, STUCK_S, t.name, verdict))
        bench.row("  %s, a %d s build (threshold %d s)" % (t.name, LONG_RUN_S, STUCK_S),
                  verdict + " while it ran")


def bench_peer_reaction(bench):
    print("peer reaction: a deployment writes log.log every %d ms for %.1f s, then dies (t0); "
          "removable at t0 + %d s; everyone every %d s, %d incidents, each tool on its own copy"
          % (WRITE_EVERY_S * 1000, RUN_S, STUCK_S, PACE_S, bench.args.incidents))
    print("  rules: lockwarden stuck_after %ds; find loop `find locks deployments -mmin -%g` "
          "(mtimes only); monit `if timestamp > %d seconds` on locks/deployment (the lock's age)"
          % (STUCK_S, STUCK_S / 60, STUCK_S))
    monit, why = lw.ensure_monit()
    if why:
        print("  monit skipped: %s" % why)
        bench.row("reaction after removable: monit", "skipped: %s" % why)
    if shutil.which("incrond"):
        print("  incron: installed, not run: its rules fire on inotify events, never on their "
              "absence, so 'nothing written for %d s' needs a timer it does not have" % STUCK_S)
    else:
        print("  incron: skipped (not installed; it acts on inotify events, none on the share)")
    bench.row("reaction after removable: incron", "skipped (inotify only: blind on the share)")
    parent = os.path.join(bench.work, "peer-react-local")
    os.makedirs(parent)
    print(" local tree (inotify for lockwarden; the peers poll)")
    try:
        run_location(bench, "local", parent, parent, monit)
    except RuntimeError as e:
        print("  failed: %s" % e)
        bench.row("reaction after removable, local", "failed", "", "n/a")

    backing = os.path.join(bench.work, "peer-react-backing")
    view = os.path.join(bench.work, "peer-react-view")
    why = bench.mount_bindfs(backing, view)
    if why:
        print(" blind share: skipped: %s" % why)
        bench.row("reaction after removable, blind", "skipped: %s" % why, "", "n/a")
        return
    print(" blind share (bindfs view, every write underneath; everyone reads through the view)")
    try:
        run_location(bench, "blind", view, backing, monit)
    except RuntimeError as e:
        print("  failed: %s" % e)
        bench.row("reaction after removable, blind", "failed", "", "n/a")
    finally:
        bench.unmount(view)
