"""Issue 19, finding 5: memory and time against folders anyone who can write
/home can make.

  record folders   RECORD_FOLDERS folders with a deployment record's name in
                   deployments/, each with a finished status.xml, beside a
                   finished site: the agent's peak memory (VmHWM) after
                   SCANS scans. It keeps at most 1,000 of Kudu's entries
                   (site.h); over that its verdict is "cannot tell".
  archive entries  SESSION_FOLDERS session-shaped folders (no note) in the
                   archive folder: the peak memory after SCANS scans, one
                   more session made meanwhile so the folder is listed
                   again.
  idle CPU         agents with default settings (rescan every 5 s) on the
                   same finished site, one with an empty archive folder, one
                   with the SESSION_FOLDERS entries, and the same two with a
                   released claim name in the archive (as after any
                   incident; without one the claim's look lists the folder
                   again only when its stat changed, claim.c): CPU time (schedstat)
                   over a window after a warm-up (the first listing). A
                   session without a note is looked at again after 2, 8, 32,
                   128 s and then every 5 minutes (incident.h): the full
                   run's window covers one such cycle; --quick's window
                   does not, and lands on the look at 42 s. Not in any
                   window: the archive folder listed again and every note
                   read again, once an hour.

Goals: <= 8 MiB peak with either, and idle CPU with the archive entries
within 2x of the empty archive's.
"""

import os
import time

import bench as lw

RECORD_FOLDERS = 100_000
SESSION_FOLDERS = 100_000
SCANS = 4
PEAK_GOAL_BYTES = 8 * 1024 * 1024
CPU_GOAL_RATIO = 2.0
WARMUP_S = 60             # 40 with --quick
WINDOW_S = 300            # 20 with --quick; scaled to a minute
SCAN_TIMEOUT_S = 120


def make_record_folders(site, n):
    dep = os.path.join(site, "deployments")
    now_ns = time.time_ns()
    for i in range(n):
        rid = "%032x" % (0x5eed0000 + i)
        os.makedirs(os.path.join(dep, rid))
        with open(os.path.join(dep, rid, "status.xml"), "w", encoding="utf-8") as f:
            f.write(lw.status_xml(rid, "Success", now_ns - 7200 * lw.S, now_ns - 7100 * lw.S))


def make_sessions(archive, n):
    """n session-shaped folders dated the last n seconds: within [archive]
    keep (30 days), so the agent's prune leaves them."""
    os.makedirs(archive, exist_ok=True)
    now = time.time()
    for i in range(n):
        when = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now - i))
        os.mkdir(os.path.join(archive, "%s-%08x" % (when, i)))


def wait_scans(agent, n):
    deadline = time.monotonic() + SCAN_TIMEOUT_S
    while "scan %d done" % n not in agent.log_text():
        if time.monotonic() > deadline or agent.proc.poll() is not None:
            raise RuntimeError("the agent did not finish scan %d\n%s" % (n, agent.log_tail()))
        time.sleep(0.1)


def peak(bench, name, site, settings, between=None):
    """VmHWM after SCANS scans (between() runs after the second)."""
    agent = lw.Agent(bench, name, site, dict(settings, **{"scan.rescan_interval": "1s"}),
                     notify=False, verbose=True)
    try:
        wait_scans(agent, 2)
        if between:
            between()
        wait_scans(agent, SCANS)
        mem = lw.memory(agent.pid)
        said = [l.split("warning: ", 1)[1] for l in agent.log_text().splitlines()
                if "warning: " in l]
    finally:
        agent.stop()
    return mem, said


def bench_memory(bench):
    print("untrusted folders: peak memory after %d scans (rescan_interval 1 s)" % SCANS)
    site = os.path.join(bench.work, "untrusted-records", "site")
    lw.make_history_site(site, lw.HISTORY_RECORDS, seed=19)
    t = time.monotonic()
    make_record_folders(site, RECORD_FOLDERS)
    print("  %d record folders made in %.0f s" % (RECORD_FOLDERS, time.monotonic() - t), flush=True)
    try:
        mem, said = peak(bench, "untrusted-records", site, {})
        print("  record folders: VmHWM %s, VmRSS %s" % (lw.kib(mem["VmHWM"]), lw.kib(mem["VmRSS"])))
        for line in said[:3]:
            print("  agent said: %s" % line)
        bench.row("memory, VmHWM with %d record folders" % RECORD_FOLDERS, lw.kib(mem["VmHWM"]),
                  "<= 8 MiB", lw.verdict(mem["VmHWM"], PEAK_GOAL_BYTES))
        bench.row("  verdict over the cap", "cannot tell" if any("cannot tell" in l for l in said)
                  else "no 'cannot tell' warning")
    except RuntimeError as e:
        print("  failed: %s" % e)
        bench.row("memory with %d record folders" % RECORD_FOLDERS, "failed", "", "n/a")

    site = os.path.join(bench.work, "untrusted-archive", "site")
    archive = os.path.join(bench.work, "untrusted-archive", "archive")
    lw.make_history_site(site, lw.HISTORY_RECORDS, seed=20)
    t = time.monotonic()
    make_sessions(archive, SESSION_FOLDERS)
    print("  %d archive sessions made in %.0f s" % (SESSION_FOLDERS, time.monotonic() - t),
          flush=True)
    try:
        mem, _ = peak(bench, "untrusted-archive", site, {"archive.dir": archive},
                      between=lambda: os.mkdir(os.path.join(archive, "20991231T000000Z-ffff")))
        print("  archive entries: VmHWM %s, VmRSS %s" % (lw.kib(mem["VmHWM"]),
                                                         lw.kib(mem["VmRSS"])))
        bench.row("memory, VmHWM with %d archive entries" % SESSION_FOLDERS, lw.kib(mem["VmHWM"]),
                  "<= 8 MiB", lw.verdict(mem["VmHWM"], PEAK_GOAL_BYTES))
    except RuntimeError as e:
        print("  failed: %s" % e)
        bench.row("memory with %d archive entries" % SESSION_FOLDERS, "failed", "", "n/a")
    return site, archive


# A released claim as claim.c writes it (format 2), as the archive holds
# after any incident: the claim's look then probes from that name instead
# of listing the folder. Should the format change, the look lists again and
# the figure shows it.
RELEASED_CLAIM = ('{"lockwarden_claim": 2, "n": 1, "instance": "benchprev", "incident": "bench1", '
                  '"state": "released"}')


def bench_idle_cpu(bench, site, archive):
    warmup_s = 40 if bench.args.quick else WARMUP_S
    window_s = 20 if bench.args.quick else WINDOW_S
    base = os.path.join(bench.work, "untrusted-archive")
    empty = os.path.join(base, "empty-archive")
    os.makedirs(empty)
    claimed = {}
    for name, src in (("empty", empty), ("full", archive)):
        # The same folders with a claim name: a copy of the entries would
        # take as long again to make, so the claim goes into a second
        # archive made the same way for the full one.
        claimed[name] = os.path.join(base, "claimed-" + name)
        if name == "empty":
            os.makedirs(claimed[name])
        else:
            make_sessions(claimed[name], SESSION_FOLDERS)
        lw.write(os.path.join(claimed[name], ".lockwarden-claim-1"), RELEASED_CLAIM)
    print("untrusted folders: idle CPU, default settings, an empty archive and one of %d entries "
          "side by side, each without and with a claim name; %d s warm-up, %d s window%s"
          % (SESSION_FOLDERS + 1, warmup_s, window_s,
             " (--quick: scaled to a minute)" if bench.args.quick else ""), flush=True)
    runs = (("empty", empty), ("full", archive), ("empty+claim", claimed["empty"]),
            ("full+claim", claimed["full"]))
    agents = []
    try:
        for name, adir in runs:
            a = lw.Agent(bench, "untrusted-cpu-" + name.replace("+", "-"), site,
                         {"archive.dir": adir})
            a.wait_ready(timeout_s=SCAN_TIMEOUT_S)
            a.read_notify()
            agents.append(a)
        # The window is the measurement itself, not a wait for an event.
        time.sleep(warmup_s)
        start = [lw.cpu_ns(a.pid)[1] for a in agents]
        time.sleep(window_s)
        for a in agents:
            if a.proc.poll() is not None:
                raise RuntimeError("an agent exited\n" + a.log_tail())
        used = [(lw.cpu_ns(a.pid)[1] - s) / lw.MS * 60.0 / window_s for a, s in zip(agents, start)]
    except RuntimeError as e:
        print("  failed: %s" % e)
        bench.row("idle CPU with %d archive entries" % SESSION_FOLDERS, "failed", "", "n/a")
        return
    finally:
        for a in agents:
            a.stop()
    for label, empty_ms, full_ms in (("no claim yet", used[0], used[1]),
                                     ("a claim name, as after any incident", used[2], used[3])):
        ratio = full_ms / empty_ms if empty_ms > 0 else float("inf")
        print("  idle CPU per minute, %s: empty archive %.2f ms, %d entries %.2f ms (x%.2f)"
              % (label, empty_ms, SESSION_FOLDERS, full_ms, ratio))
        bench.row("idle CPU per minute, %s: empty archive" % label, "%.2f ms" % empty_ms)
        bench.row("  with %d archive entries" % SESSION_FOLDERS, "%.2f ms" % full_ms,
                  "<= %.0fx empty" % CPU_GOAL_RATIO,
                  ("within" if ratio <= CPU_GOAL_RATIO else "OVER") + " (x%.2f)" % ratio)


def bench_untrusted(bench):
    site, archive = bench_memory(bench)
    bench_idle_cpu(bench, site, archive)
