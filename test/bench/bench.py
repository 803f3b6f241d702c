#!/usr/bin/python3
"""bench.py BINARY [--quick] [--runs N] - lockwarden's figures, measured.

    make bench                      # the full run
    /usr/bin/python3 test/bench/bench.py build/lockwarden --quick
    /usr/bin/python3 test/bench/bench.py build/lockwarden --only scaleout --only big-removal

Prints measurements next to the budgets of the issue and says "within" or
"OVER" for each; it asserts nothing and exits 0 whatever it measured (130
when interrupted). What is measured:

  reaction, local folder   a live deployment that stops writing, on a
                           local tree the agent sees through inotify, timed
                           from its last write + stuck_after (budget 50 ms);
  reaction, blind share    the same through a bindfs FUSE view, every change
                           made in the folder underneath so the agent gets no
                           inotify event (budget rescan_interval + 50 ms);
  footprint                VmRSS/VmHWM and idle CPU of the agent on a tree of
                           50 finished deployments with default settings;
  scan time                `lockwarden report` on 500 deployment records;
  recovery                 from the death of a deployment to the next
                           successful deploy, and the 409s meanwhile, with
                           and without lockwarden (recovery.py).
  metadata calls           stat/open/getdents calls (each a round trip on the
                           share) per rescan on 300 finished deployments,
                           idle and while one runs, counted with strace -f -c
                           (--baseline BINARY counts another build beside it).
  peers                    idle CPU and metadata calls of what users run
                           instead: a find -mmin loop, monit, incron.
  scaleout (issue 10)      reaction with three agents on one tree against
                           one agent, local and on the blind share, as a
                           ratio (scaleout.py);
  peer-reaction (issue 12) reaction after a deployment becomes removable:
                           lockwarden, the find loop and monit, on the same
                           incidents, local and blind (peer_reaction.py);
  share (issue 22)         the idle figures on a Samba share mounted through
                           smbnetfs, beside bindfs and a local folder: calls
                           on the share per rescan, lockwarden's CPU and the
                           server's and client's, against the find loop
                           (share_bench.py);
  big-removal (issue 12)   the largest stuck record the agent removes (just
                           under the walk bound, 10,000 entries) against
                           rm -rf of a copy, with the event loop's latency
                           meanwhile (big_removal.py);
  untrusted (issue 19)     peak memory with 100,000 record-named folders and
                           with 100,000 entries in the archive folder, and
                           idle CPU with those entries against an empty
                           archive (untrusted.py).

Nothing here is timed from lockExpiry or file times: no file time and no
lockExpiry makes the agent act (policy.h); a deployment is stuck once the
agent itself watched it unchanged for stuck_after, so reactions are timed
from the last change + stuck_after.

The agent runs in the foreground with a temporary config (-c) on a
temporary site tree; it says READY=1 through a NOTIFY_SOCKET we own once its
first scan is done, which is how "started" is known without reading logs.
Every process, mount and temporary folder is cleaned up, also on Ctrl-C.
"""

import argparse
import datetime
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

# The parts in their own files (scaleout.py, peer_reaction.py,
# big_removal.py) `import bench` for the helpers below: run as a script,
# this module is __main__, and must not be loaded a second time as bench.
if __name__ == "__main__":
    sys.modules.setdefault("bench", sys.modules["__main__"])

import big_removal  # noqa: E402  issue 12: a 100,000-file record against rm -rf
import peer_reaction  # noqa: E402  issue 12: the peers' reaction
import recovery  # noqa: E402  the deploys-to-recovery figure, against the Kudu stand-in
import scaleout  # noqa: E402  issue 10: three agents against one
import share_bench  # noqa: E402  issue 22: the idle figures on a Samba share
import untrusted  # noqa: E402  issue 19: memory and CPU against untrusted folders

MS = 1_000_000          # nanoseconds
S = 1_000_000_000       # nanoseconds
MIB = 1024 * 1024

POLL_S = 0.0005         # how finely a removal is timed
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 3.0

# The budgets.
REACTION_LOCAL_BUDGET_MS = 50
REACTION_BLIND_SLACK_MS = 50          # on top of rescan_interval
RSS_BUDGET_BYTES = 3 * MIB
IDLE_CPU_BUDGET_MS_PER_MIN = 10.0

# The scenarios' settings (see the module docstring and each scenario).
TREE_AGE_S = 3600
LIVE_STUCK_AFTER_MS = 2000
LIVE_WRITES = 12          # log.log appends of the live deployment ...
LIVE_WRITE_EVERY_S = 0.1  # ... this far apart
BLIND_RESCAN_MS = 1000
DEFAULT_RESCAN_MS = 5000  # config.def's default, for CPU per scan
HISTORY_RECORDS = 50
SCAN_RECORDS = 500
FAST_SCAN_WINDOW_S = 3    # 30 scans of the 500-record tree, 100 ms apart


class Interrupted(Exception):
    pass


def on_stop_signal(signum, frame):
    raise Interrupted(signal.Signals(signum).name)


# ---- what Kudu writes (../../shared/KUDU.md) ------------------------------------

def kudu_time(ns):
    """UTC round-trip format with 7 fractional digits: 2026-11-26T03:51:59.1234567Z."""
    sec, frac = divmod(ns, S)
    when = datetime.datetime.fromtimestamp(sec, datetime.timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%S") + ".%07dZ" % (frac // 100)


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def info_lock(expiry_ns):
    return ('{"lockExpiry":"%s","heldByPID":1,"heldByTID":1,'
            '"heldByOp":"Performing deployment","heldByWorker":"w"}' % kudu_time(expiry_ns))


def status_lock(acquired_ns):
    return ('{\n  "OperationName": "Performing deployment",\n'
            '  "AcquiredDateTime": "%s",\n'
            '  "StackTrace": "   at Kudu.Core.Infrastructure.LockFile.TryLockOperation()",\n'
            '  "InstanceId": "bench0"\n}\n' % kudu_time(acquired_ns))


def status_xml(dep_id, status, received_ns, end_ns=None, is_temp=False):
    complete = status in ("Success", "Failed")
    end = "<endTime>%s</endTime>" % kudu_time(end_ns) if end_ns else "<endTime />"
    return f"""<?xml version="1.0" encoding="utf-8"?>
<deployment>
  <id>{dep_id}</id>
  <author>N/A</author>
  <deployer>ZipDeploy</deployer>
  <authorEmail>N/A</authorEmail>
  <message>Created via a push deployment</message>
  <progress />
  <status>{status}</status>
  <statusText />
  <lastSuccessEndTime />
  <receivedTime>{kudu_time(received_ns)}</receivedTime>
  <startTime>{kudu_time(received_ns)}</startTime>
  {end}
  <complete>{complete}</complete>
  <is_temp>{is_temp}</is_temp>
  <is_readonly>False</is_readonly>
</deployment>
"""


def log_line(ns, message):
    return "%s,%s,,0\n" % (kudu_time(ns), message.replace(",", "&comma;"))


def age_tree(root, age_s):
    """Moves every mtime under root (root included) age_s into the past."""
    then_ns = time.time_ns() - age_s * S
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            os.utime(os.path.join(dirpath, name), ns=(then_ns, then_ns), follow_symlinks=False)
    os.utime(root, ns=(then_ns, then_ns))


def make_live_site(site, now_ns):
    """A running deployment that holds the lock for 25 minutes and writes its
    log. Returns the log.log it appends to."""
    dep = "temp-1a2b3c4d"
    write(os.path.join(site, "locks/deployment/info.lock"), info_lock(now_ns + 1500 * S))
    write(os.path.join(site, "locks/status.lock"), status_lock(now_ns))
    write(os.path.join(site, "deployments", dep, "status.xml"),
          status_xml(dep, "Building", now_ns, is_temp=True))
    log = os.path.join(site, "deployments", dep, "log.log")
    write(log, log_line(now_ns, "Fetching changes."))
    return log


def make_history_site(site, n_records, seed):
    """n_records finished deployments, each with status.xml and log.log, the
    newest active, plus Kudu's settings, tools and a harmless status.lock."""
    rnd = random.Random(seed)
    now_ns = time.time_ns()
    newest = ""
    for i in range(n_records):
        dep = "%032x" % rnd.getrandbits(128)
        received = now_ns - (n_records - i) * 3600 * S
        base = os.path.join(site, "deployments", dep)
        write(os.path.join(base, "status.xml"),
              status_xml(dep, "Success" if i % 7 else "Failed", received, received + 90 * S))
        write(os.path.join(base, "log.log"),
              "".join(log_line(received + k * S, m) for k, m in enumerate((
                  "Updating submodules.", "Preparing deployment for commit id '%s'." % dep[:10],
                  "Running build. Project type: OneDeploy", "Deployment successful."))))
        newest = dep
    write(os.path.join(site, "deployments/active"), newest)
    write(os.path.join(site, "deployments/settings.xml"),
          '<?xml version="1.0" encoding="utf-8"?><settings />\n')
    write(os.path.join(site, "deployments/tools/deploymentCacheKey"), "bench")
    write(os.path.join(site, "locks/status.lock"), status_lock(now_ns - 3600 * S))
    age_tree(site, TREE_AGE_S)


# ---- processes, mounts and temporary folders -------------------------------------

class Agent:
    """One `lockwarden run` in the foreground, with its own config, log and
    sd_notify socket."""

    def __init__(self, bench, name, root, settings, notify=True, verbose=False, env=None):
        self.bench = bench
        self.notify_enabled = notify
        self.dir = os.path.join(bench.work, "agents", name)
        os.makedirs(self.dir)
        self.log_path = os.path.join(self.dir, "agent.log")
        ini = os.path.join(self.dir, "lockwarden.ini")
        sections = {"site": {"root": root}}
        if bench.has_archive:
            # A cleanup's copies and notes stay in our own temporary folder,
            # not in the default /home/LogFiles/lockwarden.
            sections["archive"] = {"dir": os.path.join(bench.work, "archive")}
        for key, value in settings.items():
            section, name_ = key.split(".")
            sections.setdefault(section, {})[name_] = value
        write(ini, "".join("[%s]\n" % s + "".join("%s = %s\n" % kv for kv in keys.items())
                           for s, keys in sections.items()))
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify_path = os.path.join(self.dir, "notify.sock")
        self.notify.bind(notify_path)
        extra_env = env or {}
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("LOCKWARDEN_", "NOTIFY_", "WATCHDOG_", "WEBSITE_"))}
        env.update(extra_env)
        if notify:
            env["NOTIFY_SOCKET"] = notify_path
        argv = [bench.binary, "run", "-c", ini] + (["-v"] if verbose else [])
        with open(self.log_path, "wb") as log:
            self.started_ns = time.monotonic_ns()
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=log, env=env)
        bench.agents.append(self)
        self.pid = self.proc.pid

    def wait_ready(self, timeout_s=START_TIMEOUT_S):
        """Monotonic ns at which READY=1 (the first scan is done) arrived;
        without a notify socket, when the first `scan 1 done` line (-v) did."""
        if not self.notify_enabled:
            if not self.wait_log("scan 1 done", timeout_s):
                raise RuntimeError("the agent did not finish its first scan\n" + self.log_tail())
            return time.monotonic_ns()
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                raise RuntimeError("the agent did not get ready (%s)\n%s" % (
                    "exited %s" % self.proc.returncode if self.proc.returncode is not None
                    else "timed out", self.log_tail()))
            self.notify.settimeout(min(left, 0.1))
            try:
                msg = self.notify.recv(4096)
            except socket.timeout:
                continue
            if b"READY=1" in msg.split(b"\n"):
                return time.monotonic_ns()

    def read_notify(self):
        """From now on reads every sd_notify message in a thread, keeping
        (wall-clock ns, message): an agent whose notify socket is full
        blocks in sd_notify, so a long-running agent needs a reader."""
        self.messages = []
        self.reading = True

        def run():
            self.notify.settimeout(0.1)
            while self.reading:
                try:
                    msg = self.notify.recv(4096)
                except socket.timeout:
                    continue
                except OSError:
                    return
                self.messages.append((time.time_ns(), msg))
        self.reader = threading.Thread(target=run, daemon=True)
        self.reader.start()

    def log_text(self):
        with open(self.log_path, "r", encoding="utf-8", errors="replace") as f:
            return f.read()

    def log_tail(self, lines=15):
        return "\n".join("    " + l for l in self.log_text().splitlines()[-lines:])

    def wait_log(self, needle, timeout_s):
        deadline = time.monotonic() + timeout_s
        while needle not in self.log_text():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "reader", None):
            self.reading = False
            self.reader.join()
        self.notify.close()
        if self in self.bench.agents:
            self.bench.agents.remove(self)


class Bench:
    def __init__(self, binary, args):
        self.binary = os.path.abspath(binary)
        self.args = args
        self.work = tempfile.mkdtemp(prefix="lockwarden-bench.")
        self.agents = []
        self.mounts = []
        self.serial = 0
        self.rows = []   # (figure, measured, budget, verdict)
        sample = subprocess.run([self.binary, "check-config", "--sample"], stdin=subprocess.DEVNULL,
                                capture_output=True, text=True)
        self.has_archive = "[archive]" in sample.stdout

    def fresh(self, parent):
        self.serial += 1
        return os.path.join(parent, "site-%03d" % self.serial)

    def mount_bindfs(self, backing, view):
        """Returns None, or why a blind view cannot be had here."""
        if not shutil.which("bindfs"):
            return "bindfs is not installed (apt-get install bindfs)"
        if not os.path.exists("/dev/fuse"):
            return "/dev/fuse is missing"
        os.makedirs(backing, exist_ok=True)
        os.makedirs(view, exist_ok=True)
        r = subprocess.run(["bindfs", "--no-allow-other", backing, view],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=10)
        if r.returncode != 0:
            return "bindfs failed: %s" % (r.stderr.strip() or "exit %d" % r.returncode)
        self.mounts.append(view)
        if not os.path.ismount(view):
            return "bindfs exited 0 but %s is not a mount" % view
        probe = os.path.join(backing, ".bench-probe")
        write(probe, "x")
        seen = os.path.exists(os.path.join(view, ".bench-probe"))
        os.unlink(probe)
        return None if seen else "the bindfs view does not show the folder underneath"

    def unmount(self, view):
        for cmd in (["fusermount", "-u", view], ["umount", view], ["umount", "-l", view]):
            if not shutil.which(cmd[0]):
                continue
            r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=10)
            if r.returncode == 0 and not os.path.ismount(view):
                self.mounts.remove(view)
                return True
        print("warning: could not unmount %s" % view, file=sys.stderr)
        return False

    def cleanup(self):
        for agent in list(self.agents):
            try:
                agent.stop()
            except Exception as e:  # keep cleaning up whatever happened
                print("warning: stopping agent %d: %s" % (agent.pid, e), file=sys.stderr)
        stuck_mounts = [v for v in list(self.mounts) if not self.unmount(v)]
        if stuck_mounts:
            print("warning: left %s in place (still mounted: %s)" % (self.work, ", ".join(stuck_mounts)),
                  file=sys.stderr)
            return
        shutil.rmtree(self.work, ignore_errors=True)

    def row(self, figure, measured, budget="", verdict=""):
        self.rows.append((figure, measured, budget, verdict))


# ---- measuring -------------------------------------------------------------------

def wait_gone(path, deadline_mono, agent):
    """Wall-clock ns at which path was first seen gone, or None at the
    deadline or when the agent died."""
    while time.monotonic() < deadline_mono:
        try:
            os.lstat(path)
        except FileNotFoundError:
            return time.time_ns()
        if agent.proc.poll() is not None:
            return None
        time.sleep(POLL_S)
    return None


def spread(samples_ms):
    if not samples_ms:
        return "no sample"
    return "%7.1f / %7.1f / %7.1f ms" % (min(samples_ms), statistics.median(samples_ms),
                                         max(samples_ms))


def verdict(value, budget):
    return "within" if value <= budget else "OVER"


def reaction_live(bench, view_parent, backing_parent, settings):
    """A live deployment appends to log.log every 100 ms, then stops at t0.
    Returns ms from t0 + stuck_after to the lock folder's disappearance."""
    site_backing = bench.fresh(backing_parent)
    site_view = os.path.join(view_parent, os.path.basename(site_backing))
    log = make_live_site(site_backing, time.time_ns())
    agent = Agent(bench, os.path.basename(site_backing), site_view,
                  dict(settings, **{"policy.stuck_after": "%dms" % LIVE_STUCK_AFTER_MS}))
    try:
        agent.wait_ready()
        t0_ns = 0
        for i in range(LIVE_WRITES):
            time.sleep(LIVE_WRITE_EVERY_S)
            with open(log, "a", encoding="utf-8") as f:
                f.write(log_line(time.time_ns(), "Running build step %d." % i))
            t0_ns = time.time_ns()
        lock = os.path.join(site_backing, "locks/deployment")
        if not os.path.isdir(lock):
            raise RuntimeError("the live deployment's lock went while it was writing\n"
                               + agent.log_tail())
        gone_ns = wait_gone(lock, time.monotonic() + LIVE_STUCK_AFTER_MS / 1000 + 15, agent)
        if gone_ns is None:
            raise RuntimeError("locks/deployment was not removed\n" + agent.log_tail())
        if not agent.wait_log("removed locks/deployment", 5):
            raise RuntimeError("locks/deployment vanished, but not by the agent\n" + agent.log_tail())
        return (gone_ns - (t0_ns + LIVE_STUCK_AFTER_MS * MS)) / MS
    finally:
        agent.stop()


def run_reaction(bench, where, view_parent, backing_parent, settings, budget_ms, rescan_note):
    scenarios = (
        ("deployment stops", "removal - (t0 + stuck_after)", reaction_live),
    )
    for name, what, fn in scenarios:
        samples = []
        print("  %-18s (%s, %d runs):" % (name, what, bench.args.runs), end="", flush=True)
        for _ in range(bench.args.runs):
            try:
                ms = fn(bench, view_parent, backing_parent, settings)
            except RuntimeError as e:
                print("\n    run failed: %s" % e, flush=True)
                continue
            samples.append(ms)
            print(" %.1f" % ms, end="", flush=True)
        print(" ms", flush=True)
        figure = "reaction, %s, %s" % (where, name)
        if samples:
            bench.row(figure, spread(samples), "<= %d ms %s" % (budget_ms, rescan_note),
                      verdict(max(samples), budget_ms) + (" (max)" if max(samples) > budget_ms
                                                          and statistics.median(samples) <= budget_ms
                                                          else ""))
        else:
            bench.row(figure, "every run failed", "<= %d ms" % budget_ms, "n/a")


def describe_scenarios():
    print("  deployment stops: log.log appended every %d ms for %.1f s, the last at t0;"
          " stuck_after %d ms" % (LIVE_WRITE_EVERY_S * 1000, LIVE_WRITES * LIVE_WRITE_EVERY_S,
                                  LIVE_STUCK_AFTER_MS))


def bench_reaction_local(bench):
    print("reaction, local folder (inotify; rescan_interval default %d ms)" % DEFAULT_RESCAN_MS)
    describe_scenarios()
    parent = os.path.join(bench.work, "local")
    os.makedirs(parent)
    run_reaction(bench, "local", parent, parent, {}, REACTION_LOCAL_BUDGET_MS, "")


def bench_reaction_blind(bench):
    print("reaction, blind share (bindfs view, changes made underneath; rescan_interval %d ms)"
          % BLIND_RESCAN_MS)
    backing = os.path.join(bench.work, "share-backing")
    view = os.path.join(bench.work, "share-view")
    why = bench.mount_bindfs(backing, view)
    budget_ms = BLIND_RESCAN_MS + REACTION_BLIND_SLACK_MS
    if why:
        print("  skipped: %s" % why)
        bench.row("reaction, blind share", "skipped: %s" % why, "<= %d ms" % budget_ms, "n/a")
        return
    describe_scenarios()
    try:
        run_reaction(bench, "blind", view, backing, {"scan.rescan_interval": "%dms" % BLIND_RESCAN_MS},
                     budget_ms, "(rescan + 50)")
    finally:
        bench.unmount(view)


def cpu_ns(pid):
    """(utime+stime from /proc/PID/stat in ns, at clock-tick resolution;
    the sum of every thread's run time from schedstat, in ns)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])      # utime, stime (stat fields 14, 15)
    stat_ns = ticks * S // os.sysconf("SC_CLK_TCK")
    sched_ns = 0
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
                sched_ns += int(f.read().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            pass  # a thread that ended meanwhile
    return stat_ns, sched_ns


def memory(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem", "Threads"):
                parts = value.split()
                out[key] = int(parts[0]) * (1024 if len(parts) > 1 else 1)
    try:
        # Pss shares each library page among the processes that map it:
        # what this process costs the machine, next to what it touches.
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith("Pss:"):
                    out["Pss"] = int(line.split()[1]) * 1024
    except FileNotFoundError:
        pass
    return out


def kib(n):
    return "%.0f KiB" % (n / 1024)


def bench_footprint(bench):
    window_s = 20 if bench.args.quick else 60
    print("footprint: %d finished deployments, default settings, %d s idle window%s"
          % (HISTORY_RECORDS, window_s, " (--quick: scaled to a minute)" if bench.args.quick else ""))
    site = os.path.join(bench.work, "history", "site")
    make_history_site(site, HISTORY_RECORDS, seed=50)
    # As inside App Service: no service manager, so no NOTIFY_SOCKET, and
    # the agent never loads libsystemd. (-v only tells us the first scan.)
    print("  as in an App Service container: no NOTIFY_SOCKET (libsystemd not loaded)")
    under_systemd = Agent(bench, "footprint-notify", site, {})
    try:
        under_systemd.wait_ready()
        notify_mem = memory(under_systemd.pid)
    except RuntimeError:
        notify_mem = None
    finally:
        under_systemd.stop()
    agent = Agent(bench, "footprint", site, {}, notify=False, verbose=True)
    try:
        ready_mono = agent.wait_ready()
        start = cpu_ns(agent.pid)
        print("  ready %.1f ms after start; first scan and start-up used %.1f ms CPU"
              % ((ready_mono - agent.started_ns) / MS, start[1] / MS), flush=True)
        # The window is the measurement itself, not a wait for an event.
        time.sleep(max(0.0, ready_mono / S + window_s - time.monotonic()))
        if agent.proc.poll() is not None:
            raise RuntimeError("the agent exited\n" + agent.log_tail())
        end = cpu_ns(agent.pid)
        mem = memory(agent.pid)
        status_errors = [l for l in agent.log_text().splitlines() if "error" in l or "warning" in l]
    except RuntimeError as e:
        print("  failed: %s" % e)
        bench.row("footprint", "failed", "", "n/a")
        return
    finally:
        agent.stop()
    scale = 60.0 / window_s
    stat_ms = (end[0] - start[0]) / MS * scale
    sched_ms = (end[1] - start[1]) / MS * scale
    scans = window_s * 1000 // DEFAULT_RESCAN_MS
    print("  VmRSS %s (anon %s, file %s, shmem %s), VmHWM %s, %d threads"
          % (kib(mem["VmRSS"]), kib(mem.get("RssAnon", 0)), kib(mem.get("RssFile", 0)),
             kib(mem.get("RssShmem", 0)), kib(mem["VmHWM"]), mem.get("Threads", 0)))
    for line in status_errors[:5]:
        print("  agent said: %s" % line)
    bench.row("memory, VmRSS after %d s" % window_s, kib(mem["VmRSS"]), "<= 3 MiB",
              verdict(mem["VmRSS"], RSS_BUDGET_BYTES))
    bench.row("memory, VmHWM (peak)", kib(mem["VmHWM"]), "<= 3 MiB",
              verdict(mem["VmHWM"], RSS_BUDGET_BYTES))
    bench.row("  of which RssAnon / RssFile", "%s / %s" % (kib(mem.get("RssAnon", 0)),
                                                          kib(mem.get("RssFile", 0))))
    if "Pss" in mem:
        bench.row("  Pss (libraries shared out)", kib(mem["Pss"]))
    if notify_mem:
        bench.row("memory under systemd (libsystemd loaded)", kib(notify_mem["VmRSS"]))
    bench.row("idle CPU per minute (schedstat)", "%.2f ms" % sched_ms, "<= 10 ms",
              verdict(sched_ms, IDLE_CPU_BUDGET_MS_PER_MIN))
    bench.row("idle CPU per minute (/proc stat)", "%.0f ms (10 ms ticks)" % stat_ms, "<= 10 ms",
              verdict(stat_ms, IDLE_CPU_BUDGET_MS_PER_MIN))
    bench.row("CPU per scan (%d records)" % HISTORY_RECORDS,
              "%.3f ms (%d scans)" % ((end[1] - start[1]) / MS / scans, scans))


JUNK_NAMES = 100_000
JUNK_RSS_BUDGET_BYTES = 4 * 1024 * 1024


def bench_junk(bench):
    """Names that are not Kudu's (anyone with FTP access can create them) are
    counted, not stored: memory stays bounded by what Kudu can hold."""
    print("memory: %d junk names in deployments/ beside %d finished deployments"
          % (JUNK_NAMES, HISTORY_RECORDS))
    site = os.path.join(bench.work, "junk", "site")
    make_history_site(site, HISTORY_RECORDS, seed=7)
    dep = os.path.join(site, "deployments")
    for i in range(JUNK_NAMES):
        os.close(os.open(os.path.join(dep, "upload-%06d.zip" % i), os.O_CREAT | os.O_WRONLY, 0o644))
    agent = Agent(bench, "junk", site, {}, notify=False, verbose=True)
    try:
        ready_mono = agent.wait_ready()
        # Three rescans: the peak of a scan that reads everything again.
        time.sleep(max(0.0, ready_mono / S + 3 * DEFAULT_RESCAN_MS / 1000 - time.monotonic()))
        if agent.proc.poll() is not None:
            raise RuntimeError("the agent exited\n" + agent.log_tail())
        mem = memory(agent.pid)
    except RuntimeError as e:
        print("  failed: %s" % e)
        bench.row("memory with junk names", "failed", "", "n/a")
        return
    finally:
        agent.stop()
    print("  VmRSS %s, VmHWM %s" % (kib(mem["VmRSS"]), kib(mem["VmHWM"])))
    bench.row("memory, VmHWM with %d junk names" % JUNK_NAMES, kib(mem["VmHWM"]), "<= 4 MiB",
              verdict(mem["VmHWM"], JUNK_RSS_BUDGET_BYTES))


def bench_scan_time(bench):
    runs = max(3, bench.args.runs * 2)
    print("scan time: %d deployment records, `lockwarden report`, %d runs" % (SCAN_RECORDS, runs))
    site = os.path.join(bench.work, "big", "site")
    make_history_site(site, SCAN_RECORDS, seed=500)
    ini = os.path.join(bench.work, "big", "lockwarden.ini")
    write(ini, "[site]\nroot = %s\n" % site)
    samples = []
    for _ in range(runs):
        t = time.perf_counter_ns()
        r = subprocess.run([bench.binary, "report", "-c", ini], stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        elapsed = time.perf_counter_ns() - t
        if r.returncode not in (0, 2):
            print("  report failed (exit %d): %s" % (r.returncode, r.stderr.decode(errors="replace")))
            continue
        samples.append(elapsed / MS)
    print("  %s" % " ".join("%.1f" % s for s in samples))
    bench.row("report on %d records (wall)" % SCAN_RECORDS, spread(samples))

    # The daemon's own first scan of the same tree: start to READY=1.
    ready = []
    peak = 0
    for _ in range(3):
        agent = Agent(bench, "big-%d" % len(ready), site, {})
        try:
            ready.append((agent.wait_ready() - agent.started_ns) / MS)
            peak = max(peak, memory(agent.pid)["VmHWM"])
        except RuntimeError as e:
            print("  agent failed: %s" % e)
        finally:
            agent.stop()
    bench.row("agent start to READY, %d records" % SCAN_RECORDS, spread(ready))
    if peak:
        bench.row("memory, VmHWM after that scan", kib(peak))

    # CPU per scan of the same tree: the agent rescanning every 100 ms.
    agent = Agent(bench, "big-fast", site, {"scan.rescan_interval": "100ms"})
    try:
        ready_mono = agent.wait_ready()
        start = cpu_ns(agent.pid)
        time.sleep(max(0.0, ready_mono / S + FAST_SCAN_WINDOW_S - time.monotonic()))
        end = cpu_ns(agent.pid)
        scans = int(FAST_SCAN_WINDOW_S * 10)
        per_scan_ms = (end[1] - start[1]) / MS / scans
        bench.row("CPU per scan (%d records)" % SCAN_RECORDS, "%.3f ms (%d scans)" % (per_scan_ms, scans))
        bench.row("  idle CPU per minute at 5 s rescans", "%.1f ms (projected)" % (per_scan_ms * 12),
                  "<= 10 ms", verdict(per_scan_ms * 12, IDLE_CPU_BUDGET_MS_PER_MIN))
    except RuntimeError as e:
        print("  agent failed: %s" % e)
    finally:
        agent.stop()


# ---- metadata calls per rescan (issue 12) ----------------------------------------

META_RECORDS = 300
META_RESCAN_MS = 1000
META_IDLE_BUDGET = 12          # per idle rescan, whatever the history
META_PER_RUNNING_RECORD = 3    # on top, per unfinished record while one runs
# The calls that cost a round trip to the server on a network share.
METADATA_SYSCALLS = frozenset((
    "open", "openat", "openat2", "stat", "lstat", "fstat", "newfstatat", "statx",
    "getdents", "getdents64", "readlink", "readlinkat", "access", "faccessat",
    "faccessat2"))


def scans_logged(agent):
    n = 0
    for line in agent.log_text().splitlines():
        if " scan " in line and " done:" in line:
            try:
                n = max(n, int(line.split(" scan ", 1)[1].split(" ", 1)[0]))
            except ValueError:
                pass
    return n


def strace_window(pid, options, out_path, window_s):
    """Runs `strace OPTIONS -o out_path -p pid` (every thread, -f) for
    window_s seconds; False when strace cannot attach here."""
    tracer = subprocess.Popen(["strace", "-f"] + options + ["-o", out_path, "-p", str(pid)],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    # Attached once the kernel names a tracer for the process.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with open("/proc/%d/status" % pid) as f:
            if any(l.startswith("TracerPid:") and l.split()[1] != "0" for l in f):
                break
        if tracer.poll() is not None:
            return False
        time.sleep(0.01)
    else:
        tracer.kill()
        tracer.wait()
        return False
    time.sleep(window_s)  # the window is the measurement itself
    tracer.send_signal(signal.SIGINT)
    tracer.wait(10)
    return True


def strace_counts(pid, window_s, out_path):
    """{syscall: calls} of every thread of pid over window_s seconds
    (`strace -f -c -p`), or None when strace cannot attach here."""
    if not strace_window(pid, ["-c"], out_path, window_s):
        return None
    counts = {}
    with open(out_path) as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 5 and fields[0][0].isdigit() and fields[-1] != "total":
                try:
                    counts[fields[-1]] = int(fields[3])
                except ValueError:
                    pass
    return counts


def metadata_per_scan(bench, binary, name, site, window_s, stuck_after="1h"):
    """(metadata calls per rescan, rescans in the window, {syscall: calls}).
    stuck_after "auto" also waits until every finished record's log.log has
    been read (agent/silence_read.h) before counting."""
    saved = bench.binary
    bench.binary = binary
    try:
        agent = Agent(bench, name, site, {"scan.rescan_interval": "%dms" % META_RESCAN_MS,
                                          "policy.stuck_after": stuck_after},
                      notify=False, verbose=True)
    finally:
        bench.binary = saved
    try:
        agent.wait_ready()
        # auto reads the history first, in back-to-back scans.
        if stuck_after == "auto" and not agent.wait_log("(the floor: ", 20):
            raise RuntimeError("the history was not read\n" + agent.log_tail())
        # Let the listings settle (scan.h): the steady state is measured.
        settled = scans_logged(agent) + 4
        deadline = time.monotonic() + 10
        while scans_logged(agent) < settled and time.monotonic() < deadline:
            time.sleep(0.05)
        first = scans_logged(agent)
        counts = strace_counts(agent.pid, window_s, os.path.join(agent.dir, "strace.txt"))
        scans = scans_logged(agent) - first
    finally:
        agent.stop()
    if counts is None or scans <= 0:
        return None
    meta = sum(v for k, v in counts.items() if k in METADATA_SYSCALLS)
    return meta / scans, scans, {k: v for k, v in counts.items() if k in METADATA_SYSCALLS}


def add_running_deployment(site):
    """A deployment in progress: the lock folder and one unfinished temp
    record; returns its log.log, which the caller appends to."""
    now_ns = time.time_ns()
    write(os.path.join(site, "locks/deployment/info.lock"), info_lock(now_ns + 1500 * S))
    dep = "temp-0be4c000"
    write(os.path.join(site, "deployments", dep, "status.xml"),
          status_xml(dep, "Building", now_ns, is_temp=True))
    log = os.path.join(site, "deployments", dep, "log.log")
    write(log, log_line(now_ns, "Fetching changes."))
    return log


def bench_metadata(bench):
    """Metadata calls (stat, open, getdents: each a round trip on the share)
    per rescan on a site with a long history, counted with strace -f -c:
    idle, and while a deployment runs (its log growing)."""
    if not shutil.which("strace"):
        print("metadata calls: skipped (strace is not installed: apt-get install strace)")
        bench.row("metadata calls per idle rescan", "skipped (no strace)")
        return
    window_s = 8 if bench.args.quick else 20
    print("metadata calls: %d finished deployments, rescan every %d ms, %d s windows under "
          "strace -f -c" % (META_RECORDS, META_RESCAN_MS, window_s))
    binaries = [("", bench.binary)]
    if bench.args.baseline:
        binaries.append((" (baseline)", os.path.abspath(bench.args.baseline)))
    for label, binary in binaries:
        site = bench.fresh(os.path.join(bench.work, "meta"))
        make_history_site(site, META_RECORDS, seed=300)
        idle = metadata_per_scan(bench, binary, "meta-idle%d" % bench.serial, site, window_s)
        if idle is None:
            print("  skipped: strace cannot attach here (ptrace not allowed?)")
            bench.row("metadata calls per idle rescan" + label, "skipped (strace cannot attach)")
            return
        per_scan, scans, calls = idle
        print("  idle%s: %.1f per rescan over %d rescans (%s)" % (
            label, per_scan, scans, ", ".join("%s %d" % kv for kv in sorted(calls.items()))))
        bench.row("metadata calls per idle rescan, %d records%s" % (META_RECORDS, label),
                  "%.1f" % per_scan, "<= %d" % META_IDLE_BUDGET,
                  verdict(per_scan, META_IDLE_BUDGET))
        bench.row("  per idle minute at 5 s rescans%s" % label, "%.0f" % (per_scan * 12))

        auto = metadata_per_scan(bench, binary, "meta-auto%d" % bench.serial, site, window_s,
                                 stuck_after="auto")
        if auto:
            print("  idle, stuck_after = auto%s: %.1f per rescan over %d rescans (%s)" % (
                label, auto[0], auto[1], ", ".join("%s %d" % kv for kv in sorted(auto[2].items()))))
            bench.row("  idle with stuck_after = auto (history read once)%s" % label,
                      "%.1f" % auto[0], "<= %d" % META_IDLE_BUDGET,
                      verdict(auto[0], META_IDLE_BUDGET))

        log = add_running_deployment(site)
        stop = threading.Event()

        def grow():
            while not stop.wait(0.5):
                with open(log, "a") as f:
                    f.write(log_line(time.time_ns(), "Building..."))
        writer = threading.Thread(target=grow, daemon=True)
        writer.start()
        try:
            running = metadata_per_scan(bench, binary, "meta-run%d" % bench.serial, site, window_s)
        finally:
            stop.set()
            writer.join()
        if running:
            budget = META_IDLE_BUDGET + META_PER_RUNNING_RECORD
            print("  running%s: %.1f per rescan over %d rescans (%s)" % (
                label, running[0], running[1],
                ", ".join("%s %d" % kv for kv in sorted(running[2].items()))))
            bench.row("  while a deployment runs (1 unfinished record)%s" % label,
                      "%.1f" % running[0], "<= %d" % budget, verdict(running[0], budget))


# ---- the peers: what users run instead (issue 12) ---------------------------------

PEER_PACE_S = 5               # the default rescan_interval, for everyone
PEER_STUCK_MIN = 15           # stuck_after, as find's -mmin

# The loop a user writes from the manual procedure: every pass, look for
# anything Kudu touched in the last 15 minutes; if nothing was and the lock
# folder is there, clear the leftovers.
FIND_LOOP = r"""
site=$1; pace=$2
while :; do
    recent=$(find "$site/locks" "$site/deployments" -mmin -%d -print | head -n 1)
    if [ -z "$recent" ] && [ -d "$site/locks/deployment" ]; then
        rm -rf "$site/locks/deployment" "$site/locks/status.lock" "$site/deployments/pending"
        find "$site/deployments" -maxdepth 1 -name 'temp-*' -exec rm -rf {} +
    fi
    sleep "$pace"
done
""" % PEER_STUCK_MIN

MONIT_RC = """set daemon %(pace)d
set logfile %(dir)s/monit.log
set pidfile %(dir)s/monit.pid
set idfile %(dir)s/monit.id
set statefile %(dir)s/monit.state
check directory lock with path %(site)s/locks/deployment
    if timestamp > %(stuck)d minutes then exec "/bin/sh %(dir)s/cleanup.sh"
check directory deployments with path %(site)s/deployments
    if changed timestamp then alert
check file status_lock with path %(site)s/locks/status.lock
    if changed timestamp then alert
check file pending with path %(site)s/deployments/pending
    if changed timestamp then alert
check file active with path %(site)s/deployments/active
    if changed timestamp then alert
"""


def proc_cpu_s(pid, children=True):
    """utime + stime (+ the reaped children's) of pid, in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / os.sysconf("SC_CLK_TCK")


def ensure_monit():
    """The monit binary, installed with apt-get as make check installs
    what it needs (as root only), or (None, why not)."""
    found = shutil.which("monit") or (os.path.exists("/usr/bin/monit") and "/usr/bin/monit")
    if found:
        return found, None
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return None, "monit is not installed (apt-get install monit, as root)"
    r = subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "monit"],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    found = shutil.which("monit") or (os.path.exists("/usr/bin/monit") and "/usr/bin/monit")
    if not found:
        return None, "apt-get install monit failed: %s" % (r.stderr.strip().splitlines() or ["?"])[-1]
    return found, None


def share_calls(pid, window_s, out_path, site):
    """Metadata calls on the site's tree (the share) by pid and all it
    starts, over window_s: `strace -f -y` prints the path behind every
    descriptor, so calls on /proc, libraries and the like are left out."""
    if not strace_window(pid, ["-y", "-qq", "-e", "trace=%file,fstat,getdents64"], out_path,
                         window_s):
        return None
    n = 0
    with open(out_path, errors="replace") as f:
        for line in f:
            fields = line.split(None, 1)
            call = fields[-1].split("(", 1)[0] if fields else ""
            if call in METADATA_SYSCALLS and site in line:
                n += 1
    return n


def measure_peer(bench, name, argv, window_s, site):
    """Runs argv: (CPU seconds over one window_s window, metadata calls on
    the site over another, under strace, which would slow what it traces
    and so is kept out of the CPU window, VmRSS of its long-lived process),
    or None if it did not run."""
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        time.sleep(1.0)  # a start-up allowance, not a measurement
        if proc.poll() is not None:
            return None
        cpu0 = proc_cpu_s(proc.pid)
        time.sleep(window_s)
        cpu1 = proc_cpu_s(proc.pid)
        rss = memory(proc.pid)["VmRSS"]
        calls = share_calls(proc.pid, window_s, os.path.join(bench.work, "%s.strace" % name), site)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        proc.wait(10)
    if calls is None:
        return None
    return cpu1 - cpu0, calls, rss


def bench_peers(bench):
    """lockwarden beside what users run instead, on the same tree (300
    finished deployments), at the same 5 s pace, in the same run: idle CPU
    per minute and metadata calls per idle minute."""
    window_s = 20 if bench.args.quick else 60
    print("peers: %d finished deployments, everyone every %d s, %d s idle windows (CPU, then "
          "metadata calls on the tree under strace -f -y)"
          % (META_RECORDS, PEER_PACE_S, window_s))
    if not shutil.which("strace"):
        print("  skipped: strace is not installed")
        bench.row("peers", "skipped (no strace)")
        return
    site = bench.fresh(os.path.join(bench.work, "peers"))
    make_history_site(site, META_RECORDS, seed=301)
    scale = 60.0 / window_s
    results = []

    agent = Agent(bench, "peer-lockwarden", site, {}, notify=False, verbose=True)
    try:
        agent.wait_ready()
        # Two rescans: its listings have settled (scan.h), the steady state.
        deadline = time.monotonic() + 3 * PEER_PACE_S
        while scans_logged(agent) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        c0 = cpu_ns(agent.pid)[1]
        time.sleep(window_s)
        c1 = cpu_ns(agent.pid)[1]
        rss = memory(agent.pid)["VmRSS"]
        calls = share_calls(agent.pid, window_s, os.path.join(agent.dir, "share.strace"), site)
    finally:
        agent.stop()
    if calls is not None:
        results.append(("lockwarden", (c1 - c0) / MS * scale, calls * scale, rss))

    loop = os.path.join(bench.work, "find-loop.sh")
    write(loop, FIND_LOOP)
    got = measure_peer(bench, "find-loop", ["/bin/sh", loop, site, str(PEER_PACE_S), os.devnull],
                       window_s, site)
    if got:
        # (its RSS is the shell's; each pass's find comes and goes)
        results.append(("find -mmin loop (sh)", got[0] * 1000 * scale, got[1] * scale, got[2]))

    monit, why = ensure_monit()
    if monit:
        mdir = os.path.join(bench.work, "monit")
        os.makedirs(mdir)
        write(os.path.join(mdir, "cleanup.sh"), "exit 0\n")
        rc = os.path.join(mdir, "monitrc")
        write(rc, MONIT_RC % {"pace": PEER_PACE_S, "dir": mdir, "site": site,
                              "stuck": PEER_STUCK_MIN})
        os.chmod(rc, 0o600)

        # -I: in the foreground; no `set httpd`, so it opens no port at all.
        got = measure_peer(bench, "monit", [monit, "-I", "-c", rc], window_s, site)
        if got:
            results.append(("monit", got[0] * 1000 * scale, got[1] * scale, got[2]))
        else:
            why = "monit did not run (see %s)" % os.path.join(mdir, "monit.log")
    if why:
        print("  monit skipped: %s" % why)
        bench.row("peer: monit", "skipped: %s" % why)
    if shutil.which("incrond"):
        print("  incron: not measured: it reacts to inotify events, which Kudu's writes on the"
              " share never produce (it would never see a stuck deployment)")
    else:
        print("  incron: skipped (not installed; and it relies on inotify, blind on the share)")
    if not results or results[0][0] != "lockwarden":
        return
    base_cpu, base_meta = results[0][1], results[0][2]
    base_rss = results[0][3]
    for name, cpu_ms, meta, rss in results:
        print("  %-24s %8.1f ms CPU/min  %7.0f metadata calls on the tree/min  VmRSS %s"
              % (name, cpu_ms, meta, kib(rss)))
        bench.row("peer: %s, idle CPU per minute" % name, "%.1f ms" % cpu_ms,
                  "", "x%.1f" % (cpu_ms / base_cpu) if base_cpu > 0 else "")
        bench.row("peer: %s, metadata calls on the tree per minute" % name, "%.0f" % meta,
                  "", "x%.1f" % (meta / base_meta) if base_meta > 0 else "")
        bench.row("peer: %s, VmRSS" % name, kib(rss), "", "x%.1f" % (rss / base_rss))


def print_table(bench):
    widths = [max(len(r[i]) for r in bench.rows + [("figure", "measured (min / median / max)",
                                                   "budget", "")]) for i in range(4)]
    header = ("figure", "measured (min / median / max)", "budget", "verdict")
    line = "  ".join("%-*s" % (w, h) for w, h in zip(widths, header)).rstrip()
    print()
    print(line)
    print("-" * len(line))
    for r in bench.rows:
        print("  ".join("%-*s" % (w, c) for w, c in zip(widths, r)).rstrip())


PARTS = (("local", bench_reaction_local), ("blind", bench_reaction_blind),
         ("footprint", bench_footprint), ("junk", bench_junk), ("scan", bench_scan_time),
         ("metadata", bench_metadata), ("peers", bench_peers),
         ("scaleout", scaleout.bench_scaleout), ("peer-reaction", peer_reaction.bench_peer_reaction),
         ("big-removal", big_removal.bench_big_removal),
         ("untrusted", untrusted.bench_untrusted),
         ("recovery", recovery.bench_recovery), ("share", share_bench.bench_share))


def main():
    parser = argparse.ArgumentParser(description="lockwarden's measured figures (never pass/fail)")
    parser.add_argument("binary", help="the lockwarden binary (build/lockwarden)")
    parser.add_argument("--quick", action="store_true",
                        help="a 20 s idle window (scaled to a minute) instead of 60 s, and 3 runs")
    parser.add_argument("--runs", type=int, default=None,
                        help="runs of each reaction scenario (default 5, 3 with --quick)")
    parser.add_argument("--incidents", type=int, default=None,
                        help="incidents per setting in scaleout and peer-reaction "
                             "(default 10, 5 with --quick)")
    parser.add_argument("--baseline", metavar="BINARY",
                        help="also count another build's metadata calls (e.g. one built from main)")
    parser.add_argument("--only", choices=[name for name, _ in PARTS],
                        action="append",
                        help="run only these parts (repeatable)")
    args = parser.parse_args()
    if args.runs is None:
        args.runs = 3 if args.quick else 5
    if args.incidents is None:
        args.incidents = 5 if args.quick else 10
    if not os.access(args.binary, os.X_OK):
        print("bench: %s is not an executable" % args.binary, file=sys.stderr)
        return 64

    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(signum, on_stop_signal)
    bench = Bench(args.binary, args)
    started = time.monotonic()
    code = 0
    try:
        print("lockwarden bench: %s, %d CPUs, %s" % (
            subprocess.run([bench.binary, "--version"], capture_output=True, text=True).stdout.strip(),
            os.cpu_count() or 0, os.uname().release))
        for name, fn in PARTS:
            if not args.only or name in args.only:
                part_started = time.monotonic()
                fn(bench)
                print("  (%s: %.0f s)" % (name, time.monotonic() - part_started), flush=True)
    except Interrupted as e:
        print("\nbench: interrupted (%s); cleaning up" % e, file=sys.stderr)
        code = 130
    finally:
        # A second Ctrl-C must not leave a mount or an agent behind.
        for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(signum, signal.SIG_IGN)
        bench.cleanup()
    if bench.rows:
        print_table(bench)
    print("\n(%.0f s; measurements, not assertions: the exit status is 0 whatever they say)"
          % (time.monotonic() - started))
    return code


if __name__ == "__main__":
    sys.exit(main())
