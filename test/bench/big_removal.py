"""Issue 12: removing the largest leftover record the agent removes, against
`rm -rf` of a copy: wall time, and the agent's event-loop latency meanwhile.

The agent looks at everything inside an unfinished record every scan
(recordwalk.h) and never judges stuck a record it cannot see whole: one of
more than 10,000 entries (SITE_TREE_MAX_ENTRIES) is "cannot tell", never
removed. So the largest record it can remove holds just under that bound,
and that is what is timed here (a 100,000-file record would only show that
nothing happens). A deployment died holding the lock; its temp-* record
holds FILES small files (FILE_DIRS folders of FILES / FILE_DIRS files of
FILE_BYTES bytes, like an unpacked node_modules) beside status.xml and
log.log: FILES + FILE_DIRS + 3 entries in all, under the bound. The agent
watches it from its first scan, unchanged; the agent,
with stuck_after STUCK_AFTER, decides, moves the record aside (one rename:
the lock folder goes right after, so Kudu can deploy again) and empties it
on a worker thread. Timed from its log lines (millisecond timestamps):

  decision      `stuck deployment: ...`
  lock removed  `removed locks/deployment`
  record gone   `finished removing deployments/.lockwarden-trash-<token>-temp-...`

and `rm -rf` of a copy of the same tree is timed (wall time, its start-up
included). Both trees are built and flushed (sync) first, then removed back
to back, the order alternating between rounds: the machine's disk is shared,
and only removals close together see the same load.

Event-loop latency: the agent runs with a NOTIFY_SOCKET the bench reads and
WATCHDOG_USEC = WATCHDOG_USEC, so it sends WATCHDOG=1 from a libuv timer on
its loop every half period (agent.c, on_watchdog_timer): a loop that is
held up sends late. The largest gap between two pings while the record is
removed is set against the largest gap while the agent waits, idle, for
stuck_after. The pings are timed where the bench receives them, so the
bench's own scheduling is in both figures alike.

Every file lives in the bench's temporary folder: removed at the end of the
part, and by the bench's cleanup when interrupted (Ctrl-C, SIGTERM, SIGHUP).
"""

import datetime
import os
import re
import shutil
import statistics
import subprocess
import time

import bench as lw

FILES = 9_000
FILE_DIRS = 90
WALK_BOUND = 10_000       # SITE_TREE_MAX_ENTRIES (agent/site.h)
FILE_BYTES = 64
STUCK_AFTER = "5s"        # long enough for an idle stretch of watchdog pings
WATCHDOG_USEC = 200_000   # pings every 100 ms
RECORD = "temp-0b16f11e"
REMOVE_TIMEOUT_S = 120
ROUNDS = 2                # 1 with --quick
LOG_TIME_RE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z ")


def fill(folder):
    """FILES files of FILE_BYTES bytes in FILE_DIRS folders."""
    data = b"x" * FILE_BYTES
    per_dir = FILES // FILE_DIRS
    for d in range(FILE_DIRS):
        sub = os.path.join(folder, "node_modules", "pkg-%03d" % d)
        os.makedirs(sub)
        for f in range(per_dir):
            fd = os.open(os.path.join(sub, "f-%04d.js" % f),
                         os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC, 0o644)
            os.write(fd, data)
            os.close(fd)


def make_big_stuck_site(site):
    now_ns = time.time_ns()
    record = os.path.join(site, "deployments", RECORD)
    os.makedirs(record)
    fill(record)
    lw.write(os.path.join(site, "locks/deployment/info.lock"), lw.info_lock(now_ns + 1500 * lw.S))
    lw.write(os.path.join(site, "locks/status.lock"), lw.status_lock(now_ns))
    lw.write(os.path.join(record, "status.xml"), lw.status_xml(RECORD, "Building", now_ns,
                                                               is_temp=True))
    lw.write(os.path.join(record, "log.log"), lw.log_line(now_ns, "Extracting the artifact."))


def log_time_ns(agent, needle):
    """Wall-clock ns of the first log line holding needle, or None."""
    for line in agent.log_text().splitlines():
        if needle in line:
            m = LOG_TIME_RE.match(line)
            if m:
                when = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f")
                when = when.replace(tzinfo=datetime.timezone.utc)
                return int(when.timestamp() * 1000) * lw.MS
    return None


def largest_gap_ms(pings, start_ns, end_ns):
    """The largest gap between consecutive pings overlapping [start, end]."""
    gaps = [(b - a) / lw.MS for a, b in zip(pings, pings[1:]) if b >= start_ns and a <= end_ns]
    return max(gaps) if gaps else None


def agent_removal(bench, site, round_no):
    agent = lw.Agent(bench, "big-removal-%d" % round_no, site,
                     {"policy.stuck_after": STUCK_AFTER, "scan.rescan_interval": "1s"},
                     env={"WATCHDOG_USEC": str(WATCHDOG_USEC)})
    try:
        agent.wait_ready(timeout_s=60)
        ready_ns = time.time_ns()
        agent.read_notify()
        deployments = os.path.join(site, "deployments")
        # The record's trash is named with the cleanup's token (agent/reap.h).
        trash_re = re.compile(r"\.lockwarden-trash-[0-9a-f]{16}-" + re.escape(RECORD) + "$")
        deadline = time.monotonic() + REMOVE_TIMEOUT_S
        # Coarse polls: the bench must not crowd the agent it times.
        while any(n == RECORD or trash_re.match(n) for n in os.listdir(deployments)) \
                or "finished removing deployments/" not in agent.log_text():
            if time.monotonic() > deadline or agent.proc.poll() is not None:
                raise RuntimeError("the record was not removed\n" + agent.log_tail())
            time.sleep(0.05)
        done_seen_ns = time.time_ns()
        time.sleep(0.5)   # a few more pings after the removal
        pings = [t for t, msg in agent.messages if b"WATCHDOG=1" in msg.split(b"\n")]
        log = agent.log_text()
    finally:
        agent.stop()
    decided = log_time_ns(agent, "stuck deployment:")
    lock_gone = log_time_ns(agent, "removed locks/deployment")
    done = log_time_ns(agent, "finished removing deployments/")
    if None in (decided, lock_gone, done):
        raise RuntimeError("missing log lines\n" + log[-2000:])
    m = re.search(r"finished removing deployments/\S+ \((\d+) entr", log)
    return {"decided": decided, "lock_gone": lock_gone, "done": done,
            "done_seen": done_seen_ns, "entries": int(m.group(1)) if m else 0,
            "idle_gap": largest_gap_ms(pings, ready_ns, decided - 200 * lw.MS),
            "busy_gap": largest_gap_ms(pings, decided, done),
            "pings": len(pings)}


def rm_rf(folder):
    t = time.perf_counter_ns()
    subprocess.run(["rm", "-rf", folder], check=True, stdin=subprocess.DEVNULL)
    return (time.perf_counter_ns() - t) / lw.MS


def one_round(bench, parent, round_no):
    """Builds the stuck site and its copy, flushes both to disk, then times
    the two removals back to back (the disk is shared: what else runs on
    it moves both alike only when they are close together)."""
    site = os.path.join(parent, "site")
    copy = os.path.join(parent, "copy")
    t = time.monotonic()
    make_big_stuck_site(site)
    os.makedirs(copy)
    fill(copy)
    os.sync()
    print("  built both trees in %.1f s" % (time.monotonic() - t), flush=True)
    rm_first = round_no % 2 == 1
    rm_ms = rm_rf(copy) if rm_first else None
    got = agent_removal(bench, site, round_no)
    if not rm_first:
        rm_ms = rm_rf(copy)
    got["rm_ms"] = rm_ms
    return got


def bench_big_removal(bench):
    print("big removal: a stuck temp-* record of %d files (%d folders, %d bytes each: %d entries,"
          " under the walk bound of %d a record must keep to be judged at all), the agent "
          "against rm -rf of a copy; WATCHDOG_USEC %d (a ping every %d ms from the loop); "
          "%d rounds, the order alternating"
          % (FILES, FILE_DIRS, FILE_BYTES, FILES + FILE_DIRS + 3, WALK_BOUND, WATCHDOG_USEC,
             WATCHDOG_USEC // 2000, ROUNDS))
    parent = os.path.join(bench.work, "big-removal")
    rounds = []
    try:
        for i in range(1 if bench.args.quick else ROUNDS):
            try:
                got = one_round(bench, parent, i)
            except RuntimeError as e:
                print("  failed: %s" % e)
                continue
            finally:
                shutil.rmtree(parent, ignore_errors=True)
            rounds.append(got)
            print("  %s: agent decision -> lock removed %.0f ms, -> record emptied %.0f ms "
                  "(%d entries); rm -rf %.0f ms; watchdog gap idle %.0f ms, removing %.0f ms"
                  % ("rm -rf first" if i % 2 else "agent first",
                     (got["lock_gone"] - got["decided"]) / lw.MS,
                     (got["done"] - got["decided"]) / lw.MS, got["entries"], got["rm_ms"],
                     got["idle_gap"] or 0, got["busy_gap"] or 0), flush=True)
    finally:
        shutil.rmtree(parent, ignore_errors=True)
    if not rounds:
        bench.row("removal of a %d-file record" % FILES, "failed", "", "n/a")
        return
    to_lock = [(g["lock_gone"] - g["decided"]) / lw.MS for g in rounds]
    to_done = [(g["done"] - g["decided"]) / lw.MS for g in rounds]
    rm_ms = [g["rm_ms"] for g in rounds]
    ratio = statistics.median(to_done) / statistics.median(rm_ms)
    idle = [g["idle_gap"] for g in rounds if g["idle_gap"]]
    busy = [g["busy_gap"] for g in rounds if g["busy_gap"]]
    bench.row("%d-file record: decision to lock removed" % FILES, lw.spread(to_lock))
    bench.row("  decision to record emptied (agent)", lw.spread(to_done), "",
              "x%.2f of rm -rf" % ratio)
    bench.row("  rm -rf of a copy (wall)", lw.spread(rm_ms))
    if idle and busy:
        bench.row("  event loop: largest watchdog gap, idle", lw.spread(idle),
                  "%d ms nominal" % (WATCHDOG_USEC // 2000))
        bench.row("  event loop: largest watchdog gap, removing", lw.spread(busy),
                  "%d ms nominal" % (WATCHDOG_USEC // 2000),
                  "x%.2f of idle" % (max(busy) / max(idle)))
