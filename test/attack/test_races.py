"""Races with the agent's removal, on the real binary.

1. A racing process swaps the stuck temp record (and the trash name the
   agent moves it to) with symlinks to a folder outside, thousands of
   times, while agents clear stuck incidents that are rebuilt in a loop.
   Whatever the interleaving, nothing outside may change.
2. A racing writer appends to the record's log.log, or touches pending, at
   random moments around the agent's decision: an entry changed between
   the decision and its removal is kept, and what is removed is exactly
   what was archived.

Both use `run --once`: one decision, one cleanup, exit - so a round is a
single judge-archive-remove sequence whose log can be read whole.
"""

import os
import random
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from attack_util import ArchiveGuard, TRASH_PREFIX, TreeGuard, log_time_ms, notes
from conftest import (BIN, HOUR_S, TEMP_STUCK, age_tree, archive_dir_for,
                      build_stuck_site, clean_env, make_file_lock, make_lock,
                      make_pending, make_record, write_config)

HERE = Path(__file__).resolve().parent
TRASH = TRASH_PREFIX + TEMP_STUCK
# Decide at the first scan: the tree is aged, quiet_period 0.
ONCE_NOW = {"policy": {"stuck_after": "1s", "quiet_period": "0s"},
            "scan": {"rescan_interval": "100ms"}}


# ------------------------------------------------- 1. symlink swap race

class Racer:
    """attack_racer.py in its own process: swaps temp-X <-> swap and
    .lockwarden-trash-temp-X <-> swap2 (both symlinks to outside/victim)."""

    def __init__(self, folder):
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "attack_racer.py"), str(folder),
             f"{TEMP_STUCK}:swap", f"{TRASH}:swap2"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.swaps = 0

    def go(self, pause_us=0, delay_us=0):
        self.proc.stdin.write(f"go {pause_us} {delay_us}\n")
        self.proc.stdin.flush()

    def stop(self):
        self.proc.stdin.write("stop\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line.startswith("stopped "), f"racer answered {line!r}"
        self.swaps = int(line.split()[1])

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


def restore(dep, victim):
    """After a round: the symlinks back under swap and swap2, whatever the
    racer left where; a record (or trash) swapped away back under its own
    name. Returns nothing; the next round's record is made if missing."""
    for link, name in (("swap", TEMP_STUCK), ("swap2", TRASH)):
        for n in (name, link):
            if os.path.islink(dep / n):
                os.unlink(dep / n)
        if os.path.isdir(dep / link):
            os.rename(dep / link, dep / name)
        os.symlink(victim, dep / link)


def rebuild_incident(site, victim):
    """A stuck deployment again: lock folder, status.lock, pending and the
    temp record (with links to the outside folder inside), all aged."""
    make_lock(site, expiry=20 * 60)
    make_file_lock(site, "status.lock", acquired_s=-HOUR_S)
    make_pending(site)
    rec = site / "deployments" / TEMP_STUCK
    if not rec.exists():
        make_record(site, TEMP_STUCK, "Building", False, True, received=-HOUR_S)
        os.symlink(victim, rec / "link-out")
        (rec / "artifact").mkdir()
        os.symlink("../../../../outside/victim", rec / "artifact" / "relative-out")
    age_tree(site, HOUR_S)


def outcome(log, name):
    if re.search(r"\bremoved deployments/" + re.escape(name) + r"\b", log):
        return "removed"
    if re.search(r"\bkept deployments/" + re.escape(name) + r"\b", log):
        return "kept"
    if re.search(r"could not remove deployments/" + re.escape(name) + r"\b", log):
        return "failed"
    return "not judged"


def test_swap_with_symlink_race_for_thousands_of_swaps(site, outside, tmp_path):
    """At least 3,000 successful swaps over at least 150 incidents, each
    cleared by a fresh `lockwarden run --once`. After every round the
    outside folder is checksummed whole, and every agent must have exited
    normally (0, or 1 when it kept something that changed)."""
    victim = outside / "victim"
    (victim / "sub").mkdir(parents=True)
    (victim / "precious.txt").write_text("must survive\n")
    (victim / "sub" / "deep.txt").write_text("must survive too\n")
    age_tree(outside, 2 * HOUR_S)
    guard = TreeGuard(outside)
    dep = site / "deployments"
    restore(dep, victim)
    rebuild_incident(site, victim)
    cfg = write_config(tmp_path / "lw.ini", site, **ONCE_NOW)
    archive = ArchiveGuard(archive_dir_for(cfg))
    racer = Racer(dep)
    rng = random.Random(int(os.environ.get("LW_RACE_SEED", "4")))
    counts = {}
    failures = []
    rounds = 0
    deadline = time.monotonic() + 40
    try:
        while rounds < 150 or racer.swaps < 3000:
            assert time.monotonic() < deadline, \
                f"only {rounds} rounds and {racer.swaps} swaps in 40 s"
            # The racer starts at a random moment of the agent's short life
            # (it judges at its first scan, ~1 ms after it starts, and the
            # cleanup takes a few ms) and swaps flat out or with pauses, so
            # that rounds end every way: removed, kept, not even judged.
            agent = subprocess.Popen([BIN, "run", "-c", str(cfg), "--once", "-v"],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True, env=clean_env())
            racer.go(rng.choice([0, 0, 50, 500]), rng.randint(0, 15000))
            try:
                _, stderr = agent.communicate(timeout=20)
            finally:
                racer.stop()
            done = subprocess.CompletedProcess(agent.args, agent.returncode, "", stderr)
            rounds += 1
            assert done.returncode in (0, 1), \
                f"round {rounds}: exit {done.returncode}\n{done.stderr}"
            for name in (TEMP_STUCK, TRASH):
                key = (name, outcome(done.stderr, name))
                counts[key] = counts.get(key, 0) + 1
            failures.extend(re.findall(r"(?:kept|could not remove) deployments/.*", done.stderr))
            guard.check()
            restore(dep, victim)
            rebuild_incident(site, victim)
    finally:
        racer.close()
    print(f"{rounds} rounds, {racer.swaps} swaps: {counts}")
    print("\n".join(sorted(set(re.sub(r"\d+", "N", f) for f in failures))))
    archive.check()
    guard.check()
    # The race must have reached the removal: some rounds removed the
    # record, some kept it because it changed under the agent.
    assert counts.get((TEMP_STUCK, "removed"), 0) > 0, counts
    assert counts.get((TEMP_STUCK, "kept"), 0) > 0, counts


# ------------------------------------------ 2. re-check before removal

APPEND_LINE = "2026-01-01T00:00:00.0000000Z,writer line {n},,0\n"


class Writer(threading.Thread):
    """Appends to log.log and/or touches pending at chosen wall times.
    Every operation records (wall time after it returned, ok, content of
    log.log after it when it was an append). No O_CREAT, no creating
    touch: once the agent has removed a name, the writer's attempt fails
    instead of making a new file."""

    def __init__(self, log_path, pending_path, times_append, times_touch):
        super().__init__(daemon=True)
        self.log_path = log_path
        self.pending_path = pending_path
        self.plan = sorted([(t, "append") for t in times_append] +
                           [(t, "touch") for t in times_touch])
        self.initial = self.content = Path(log_path).read_bytes()
        self.appends = []     # (t_done, ok, content after)
        self.touches = []     # (t_done, ok)

    def run(self):
        n = 0
        for when, op in self.plan:
            while time.time() < when:
                pass          # busy-wait: sleep's granularity is too coarse
            if op == "append":
                n += 1
                line = APPEND_LINE.format(n=n).encode()
                try:
                    fd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND)
                except FileNotFoundError:
                    self.appends.append((time.time(), False, self.content))
                    continue
                try:
                    os.write(fd, line)
                finally:
                    os.close(fd)
                self.content += line
                self.appends.append((time.time(), True, self.content))
            else:
                try:
                    os.utime(self.pending_path)
                    self.touches.append((time.time(), True))
                except FileNotFoundError:
                    self.touches.append((time.time(), False))


def plan_times(rng, style, center, count):
    """Wall times for the writer. A write well before the decision only
    makes the tree look active (nothing is judged stuck); the window that
    matters opens at the judging scan and closes a few ms later, when the
    archived and verified record is moved out of Kudu's sight."""
    if style == "burst":
        # One write every ~0.3 ms from a random point near the decision:
        # when the burst starts after the judging scan, some write lands
        # between the agent's look and its removal.
        start = center + rng.uniform(-0.004, 0.004)
        return [start + i * 0.0003 for i in range(100)]
    return sorted(center + rng.uniform(-0.010, 0.015) for _ in range(count))


def run_writer_round(base, rng, style, target):
    site = base / "site"
    build_stuck_site(site)
    rec = site / "deployments" / TEMP_STUCK
    cfg = write_config(base / "lw.ini", site,
                       policy={"stuck_after": "1s", "quiet_period": "200ms"},
                       scan={"rescan_interval": "100ms"})
    original_status = (rec / "status.xml").read_bytes()
    err_path = base / "agent.stderr"
    with open(err_path, "wb") as err:
        t0 = time.time()
        proc = subprocess.Popen([BIN, "run", "-c", str(cfg), "--once"], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=err, env=clean_env())
        # The decision is due quiet_period after the agent's first scan,
        # a few ms after it starts.
        center = t0 + 0.2 + 0.005
        times = plan_times(rng, style, center, rng.randint(1, 3))
        writer = Writer(rec / "log.log", site / "deployments" / "pending",
                        times if target == "log" else [], times if target == "pending" else [])
        writer.start()
        rc = proc.wait(timeout=20)
        writer.join(timeout=10)
    log = err_path.read_text(errors="replace")
    assert rc in (0, 1), f"exit {rc}\n{log}"
    return site, cfg, rec, original_status, writer, log


def cleanup_time_ms(log):
    for line in log.splitlines():
        if "; cleaning up" in line:
            return log_time_ms(line)
    return None


def check_log_round(site, cfg, rec, original_status, writer, log):
    """What can be asserted exactly, whatever the scheduling:

    The agent judges log.log by an lstat during a scan (time tj), logs
    `cleaning up` (tl > tj) before it hands the cleanup to a worker, whose
    archive copy and removal both verify log.log against that lstat (size
    and mtime; an append always changes the size). So an append that
    returned before tl either was seen by the judging scan (then it is in
    the judged size, and the copy - which reads exactly the judged size -
    holds it) or came after the scan (then the copy or the re-check fails
    and the record is kept). Hence, if the record was removed: its archived
    log.log is one complete state the writer produced (never torn), and it
    holds every append that returned before tl (log timestamps are
    truncated to the ms, so "before tl" is judged against that truncated
    time, which can only make the claim weaker, never wrong). What cannot
    be asserted: that an append returning after tl is kept, since it may
    have landed after the folder left Kudu's sight (into the trash), which
    is the writer writing into a removed record.

    If the record was kept (changed since it was judged), or not judged
    stuck at all, it is still there under its own name with every append
    the writer made, in order."""
    oc = outcome(log, TEMP_STUCK)
    if oc == "removed":
        tl = cleanup_time_ms(log)
        assert tl is not None, log
        sessions = notes(archive_dir_for(cfg))
        assert len(sessions) == 1, sessions
        copy = sessions[0][0] / "deployments" / TEMP_STUCK
        archived = (copy / "log.log").read_bytes()
        produced = [writer.initial] + [c for _, ok, c in writer.appends if ok]
        assert archived in produced, "the archived log.log is not a state the writer made"
        k = produced.index(archived)
        before_tl = sum(1 for t, ok, _ in writer.appends if ok and t * 1000 < tl)
        assert k >= before_tl, \
            (f"{before_tl} appends returned before the agent began the cleanup, "
             f"but the archive holds only {k}: removed without the latest content")
        assert (copy / "status.xml").read_bytes() == original_status
        assert not rec.exists()
    else:
        assert oc in ("kept", "not judged"), oc
        assert rec.is_dir(), "kept, but gone"
        assert (rec / "log.log").read_bytes() == writer.content
    return oc


def check_pending_round(site, writer, log):
    """pending is empty: only its mtime shows a touch. A touch that
    returned before tl either made the tree look active to the judging
    scan (then nothing is stuck and nothing is removed) or came after it
    (then the re-check sees the new mtime and keeps pending). So if pending
    was removed, no touch returned before tl."""
    pending = site / "deployments" / "pending"
    if re.search(r"\bremoved deployments/pending\b", log):
        tl = cleanup_time_ms(log)
        early = [t for t, ok in writer.touches if ok and t * 1000 < tl]
        assert not early, f"pending was touched {len(early)} times before the cleanup " \
            "began, and still removed"
        assert not pending.exists()
        return "removed"
    assert pending.exists(), "pending is gone but the agent did not say it removed it"
    return "kept" if re.search(r"\bkept deployments/pending\b", log) else "not judged"


def test_entries_touched_between_decision_and_removal_are_kept(tmp_path):
    """Rounds of: a fresh stuck tree, `run --once` (quiet_period 200ms), and
    a writer thread that appends to the temp record's log.log or touches
    pending around the moment the agent decides (quiet_period after its
    start), in bursts or at a few random moments. Every round's outcome
    must satisfy the invariants of check_log_round / check_pending_round;
    over the rounds the re-check must have kept something at least once
    (the bursts make that near certain), else the test did not reach the
    window it is about."""
    rng = random.Random(int(os.environ.get("LW_RACE_SEED", "4")))
    counts = {}
    for n in range(24):
        style = "burst" if n % 3 == 0 else "sparse"
        target = "log" if n % 2 == 0 else "pending"
        base = tmp_path / f"round{n}"
        base.mkdir()
        site, cfg, rec, status, writer, log = run_writer_round(base, rng, style, target)
        if target == "log":
            oc = check_log_round(site, cfg, rec, status, writer, log)
        else:
            oc = check_pending_round(site, writer, log)
        counts[(target, style, oc)] = counts.get((target, style, oc), 0) + 1
        # A kept entry must be reported as such, with the reason.
        if oc == "kept":
            assert "(changed since it was judged)" in log, log
        shutil.rmtree(base)
    print(counts)
    assert any(oc == "kept" for (_, _, oc) in counts), \
        f"no round caught a change between the decision and the removal: {counts}"
    assert any(oc == "removed" for (_, _, oc) in counts), counts
