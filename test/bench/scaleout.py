"""Issue 10: reaction with three agents against one, in the same run.

Every scaled-out instance of an App Service plan runs its own agent on the
same /home share, so three agents (distinct WEBSITE_INSTANCE_ID) watch one
site tree, keep one archive folder on that tree (where the incident's claim
lives) and have a `[hook] scope = site` hook that writes down when it
starts. The same incidents are then run with one agent, in the same run:

  incident      a deployment takes the lock (locks/deployment/info.lock
                written at W) and dies at once: nothing is written again,
                so it becomes stuck at T = W + stuck_after (STUCK_AFTER_MS),
                the earliest an agent can have watched it unchanged that
                long (lockExpiry decides nothing: policy.h);
  removal       T to the lock folder's disappearance (seen in the folder
                underneath, polled every 0.5 ms);
  hook start    T to the hook's first step (`date +%s%N` in the hook, so
                the shell's and date's start-up, about 1-2 ms, are in it).

On the local tree the agents see the new lock through inotify at once; on
the blind bindfs view (every change made underneath) only at their next
rescan, which starts their watch up to one rescan_interval after W. Each
incident is cleared, hooked and its claim released before the next one is
written.

The goal (issue 10): the three-agent median at most 1.1 times the one-agent
median, plus one rescan_interval on the blind share (an agent may look one
rescan later than another, and the one that decides first may be the one
that saw the lock last).
"""

import os
import shlex
import statistics
import time

import bench as lw


def claim_held(archive):
    """The top of the claim sequence (agent/claim.h) exists and is not released."""
    names = [n for n in os.listdir(archive) if n.startswith(".lockwarden-claim-")
             and n[18:].isdigit()] if os.path.isdir(archive) else []
    if not names:
        return False
    top = max(names, key=lambda n: int(n[18:]))
    try:
        path = os.path.join(archive, top)
        with open(os.path.join(path, "claim") if os.path.isdir(path) else path) as f:
            return '"state": "released"' not in f.read()
    except OSError:
        return True

INSTANCES = ("bench0aaaaaa", "bench1bbbbbb", "bench2cccccc")
GOAL_RATIO = 1.1
BLIND_RESCAN_MS = 1000
STUCK_AFTER_MS = 2000
STEP_TIMEOUT_S = 20.0

# Writes the hook's start time (ns since the epoch) into the name of an
# empty file: one creat, so a reader never sees half of it.
HOOK_SCRIPT = """t=$(date +%s%N)
: > "$HOOK_DIR/start.$t.$LOCKWARDEN_INSTANCE"
"""


class Hooks:
    def __init__(self, folder):
        self.dir = folder
        os.makedirs(folder)
        self.script = os.path.join(folder, "hook.sh")
        lw.write(self.script, HOOK_SCRIPT)

    def command(self):
        return "HOOK_DIR=%s /bin/sh %s" % (shlex.quote(self.dir), shlex.quote(self.script))

    def starts(self):
        """(start ns, instance) of every run so far, oldest first."""
        out = []
        for name in os.listdir(self.dir):
            if name.startswith("start."):
                _, t, instance = name.split(".", 2)
                out.append((int(t), instance))
        return sorted(out)


def wait_until(cond, timeout_s, what, agents):
    deadline = time.monotonic() + timeout_s
    while True:
        value = cond()
        if value:
            return value
        dead = [a for a in agents if a.proc.poll() is not None]
        if dead or time.monotonic() >= deadline:
            raise RuntimeError("%s: %s\n%s" % (
                what, "an agent exited" if dead else "timed out",
                "\n".join("  == %s\n%s" % (a.dir, a.log_tail(8)) for a in agents)))
        time.sleep(lw.POLL_S)


def write_incident(site):
    """The lock of a deployment that dies at once; returns when it was
    written (wall ns)."""
    lock = os.path.join(site, "locks/deployment")
    lw.write(os.path.join(lock, "info.lock"), lw.info_lock(time.time_ns() + 1500 * lw.S))
    return time.time_ns()


def removed_count(agents):
    return sum(a.log_text().count("removed locks/deployment") for a in agents)


def run_incidents(bench, label, n_agents, site_backing, site_view, archive_view,
                  archive_backing, settings):
    """Starts n_agents agents, runs the incidents; returns ([removal ms],
    [hook start ms])."""
    os.makedirs(os.path.join(site_backing, "locks"))
    os.makedirs(os.path.join(site_backing, "deployments"))
    lw.age_tree(site_backing, lw.TREE_AGE_S)
    hooks = Hooks(os.path.join(bench.work, "hooks-%s-%d" % (label, n_agents)))
    cfg = dict(settings, **{
        "policy.stuck_after": "%dms" % STUCK_AFTER_MS,
        "hook.command": hooks.command(), "hook.scope": "site", "hook.cooldown": "0s",
        "archive.dir": archive_view})
    agents = [lw.Agent(bench, "scale-%s-%d-%d" % (label, n_agents, i), site_view, cfg,
                       env={"WEBSITE_INSTANCE_ID": INSTANCES[i]}) for i in range(n_agents)]
    removal_ms, hook_ms = [], []
    lock = os.path.join(site_backing, "locks/deployment")
    try:
        for a in agents:
            a.wait_ready()
            a.read_notify()
        for n in range(1, bench.args.incidents + 1):
            stuck_ns = write_incident(site_backing) + STUCK_AFTER_MS * lw.MS
            gone_ns = wait_until(lambda: not os.path.lexists(lock) and time.time_ns(),
                                 STUCK_AFTER_MS / 1000 + STEP_TIMEOUT_S,
                                 "incident %d's lock removed" % n, agents)
            starts = wait_until(lambda: len(hooks.starts()) >= n and hooks.starts(),
                                STEP_TIMEOUT_S, "incident %d's hook" % n, agents)
            wait_until(lambda: not claim_held(archive_backing), STEP_TIMEOUT_S,
                       "incident %d's claim released" % n, agents)
            if removed_count(agents) < n:
                raise RuntimeError("incident %d's lock vanished, but not by an agent" % n)
            if len(starts) != n:
                raise RuntimeError("%d hook runs for %d incidents (scope = site)" % (len(starts), n))
            removal_ms.append((gone_ns - stuck_ns) / lw.MS)
            hook_ms.append((starts[-1][0] - stuck_ns) / lw.MS)
            print(" %.1f/%.1f" % (removal_ms[-1], hook_ms[-1]), end="", flush=True)
    finally:
        for a in agents:
            a.stop()
    return removal_ms, hook_ms


def compare(bench, where, one, three, slack_ms):
    """Prints and tabulates the three-agent/one-agent ratio of the medians."""
    for i, what in enumerate(("removal", "hook start")):
        m1, m3 = statistics.median(one[i]), statistics.median(three[i])
        ratio = m3 / m1 if m1 > 0 else float("inf")
        limit = GOAL_RATIO * m1 + slack_ms
        met = m3 <= limit
        goal = "<= %.1fx%s" % (GOAL_RATIO, " + %d ms" % slack_ms if slack_ms else "")
        print("  %-10s 1 agent %s | 3 agents %s | x%.2f (%+.1f ms); goal %s: %s"
              % (what, lw.spread(one[i]).strip(), lw.spread(three[i]).strip(), ratio, m3 - m1,
                 goal, "met" if met else "NOT met"))
        bench.row("3 agents, %s, %s: 1 agent" % (where, what), lw.spread(one[i]))
        bench.row("  3 agents", lw.spread(three[i]), "", "x%.2f (%+.1f ms)" % (ratio, m3 - m1))
        bench.row("  3 agents / 1 agent (medians)", "x%.2f" % ratio,
                  "%s (%.1f ms)" % (goal, limit), "met" if met else "NOT met")


def run_location(bench, where, view_parent, backing_parent, settings, slack_ms):
    results = {}
    for n_agents in (1, 3):
        site_backing = bench.fresh(backing_parent)
        site_view = os.path.join(view_parent, os.path.basename(site_backing))
        archive = "archive-%s-%d" % (where, n_agents)
        print("  %d agent%s (removal/hook start ms after lock written + stuck_after):"
              % (n_agents, "s" if n_agents > 1 else ""), end="", flush=True)
        try:
            results[n_agents] = run_incidents(
                bench, where, n_agents, site_backing, site_view, os.path.join(view_parent, archive),
                os.path.join(backing_parent, archive), settings)
        except RuntimeError as e:
            print("\n    failed: %s" % e, flush=True)
            bench.row("3 agents, %s" % where, "failed (%d agents)" % n_agents, "", "n/a")
            return
        print(flush=True)
    compare(bench, where, results[1], results[3], slack_ms)


def bench_scaleout(bench):
    print("scale-out: 3 agents (distinct WEBSITE_INSTANCE_ID, one tree, one archive on it, "
          "[hook] scope = site) against 1, %d incidents each: a lock left by a deployment that "
          "died at once, stuck_after %d ms" % (bench.args.incidents, STUCK_AFTER_MS))
    parent = os.path.join(bench.work, "scale-local")
    os.makedirs(parent)
    print(" local tree (inotify)")
    run_location(bench, "local", parent, parent, {}, 0)

    backing = os.path.join(bench.work, "scale-backing")
    view = os.path.join(bench.work, "scale-view")
    why = bench.mount_bindfs(backing, view)
    if why:
        print(" blind share: skipped: %s" % why)
        bench.row("3 agents, blind share", "skipped: %s" % why, "", "n/a")
        return
    try:
        print(" blind share (bindfs view, changes made underneath; rescan_interval %d ms; claims "
              "and archive on the view)" % BLIND_RESCAN_MS)
        run_location(bench, "blind", view, backing,
                     {"scan.rescan_interval": "%dms" % BLIND_RESCAN_MS}, BLIND_RESCAN_MS)
    finally:
        bench.unmount(view)
