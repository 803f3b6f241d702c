"""A cleanup is one verified transaction (issue 8): nothing goes once the
deployment shows a sign of life, the lock goes last, and the inputs from the
share cannot break the arithmetic, the clocks, the descriptors or the memory.

Every race window here is reached on purpose: the pause shim
(test/lib/pause_shim.c) stops the agent at one exact call, the test writes
as Kudu would, then lets the agent go on."""

import json
import os
import re
import subprocess
import time

import pytest

from conftest import (ACT_TIMEOUT_S, BIN, HOUR_S, ONCE_CLEARED, ONCE_HOOK_FAILED,
                      ONCE_PARTIAL, ONCE_UNAVAILABLE, ONCE_UNREADABLE, RECORD_DONE,
                      STUCK_LEFTOVERS, TEMP_STUCK, Pause, age, age_tree, append_log,
                      archive_dir_for, build_finished_site, build_stuck_site, clean_env, gone,
                      make_record, run_cli, settle, start_agent, tree_state, wait_for,
                      write_config)

GUID_RUNNING = "abcdef0123456789abcdef0123456789"
NOTE = ".note.json.tmp"      # written after the archive copy, before any removal


def sessions(cfg):
    """The archive's session folders (the incident's claim, a file beside
    them while an agent works, is not one)."""
    d = archive_dir_for(cfg)
    return sorted(p.name for p in d.iterdir() if p.is_dir() and not p.name.startswith(".")) \
        if d.exists() else []


def note_states(cfg):
    """Each archive session's transaction state (note.json "state")."""
    d = archive_dir_for(cfg)
    return [json.loads((d / name / "note.json").read_text())["state"] for name in sessions(cfg)]


def no_trash(site):
    return [p.name for area in ("locks", "deployments") for p in (site / area).iterdir()
            if p.name.startswith(".lockwarden-")]


def assert_abandoned_then_cleared(agent, site, cfg, before):
    """The first cleanup saw the sign of life and was rolled back as a whole:
    every leftover is back under its own name, as it was, nothing was
    removed and nothing of ours is left; after stuck_after of silence the
    agent clears them all (only the first attempt pauses)."""
    agent.wait_for_log(r"cleanup abandoned: the deployment showed a sign of life")
    for rel in STUCK_LEFTOVERS:
        assert os.path.lexists(site / rel), f"{rel} is not back after the rollback"
    for rel, state in before.items():
        assert tree_state(site / rel) == state, f"{rel} did not come back whole"
    assert agent.removed() == []
    assert no_trash(site) == []
    wait_for(lambda: gone(site, STUCK_LEFTOVERS), ACT_TIMEOUT_S,
             "the deployment to be cleared once it was silent again", agent.tail)


def test_append_after_the_archive_abandons_everything(site, agents, tmp_path, pause_shim):
    """Before: the per-target re-check kept the changed temp record, but only
    after the lock, status.lock and pending had gone. Now the moves stop at
    the temp record and the three moved before it are put back."""
    build_stuck_site(site)
    cfg = write_config(tmp_path / "lw.ini", site)
    pause = Pause(pause_shim, tmp_path / "pause", "openat", NOTE)
    agent = start_agent(agents, cfg, env=pause.env())
    pause.wait_paused(detail=agent.tail)
    append_log(site / "deployments" / TEMP_STUCK, "npm install: still going")
    before = {rel: tree_state(site / rel) for rel in STUCK_LEFTOVERS}
    pause.release()
    assert_abandoned_then_cleared(agent, site, cfg, before)
    # The rolled-back attempt is on record, then the cleanup that committed.
    # "done" follows "committed" once what was moved aside is deleted.
    wait_for(lambda: note_states(cfg) == ["rolled-back", "done"], ACT_TIMEOUT_S,
             "the notes: rolled back, then done", lambda: str(note_states(cfg)))


def test_a_guid_record_showing_life_abandons_the_cleanup(site, agents, tmp_path, pause_shim):
    """A GUID record is never a target, yet its log.log growing is a sign of
    life that the whole plan rested on."""
    build_stuck_site(site)
    rec = make_record(site, GUID_RUNNING, "Building", False, False, received=-HOUR_S - 60)
    age_tree(site, HOUR_S)
    cfg = write_config(tmp_path / "lw.ini", site)
    pause = Pause(pause_shim, tmp_path / "pause", "openat", NOTE)
    agent = start_agent(agents, cfg, env=pause.env())
    pause.wait_paused(detail=agent.tail)
    append_log(rec, "Running oryx build")
    before = {rel: tree_state(site / rel) for rel in STUCK_LEFTOVERS}
    pause.release()
    assert_abandoned_then_cleared(agent, site, cfg, before)
    assert rec.is_dir(), "a GUID record is never removed"


def test_the_lock_goes_last_and_stays_when_life_shows_midway(site, agents, tmp_path,
                                                              pause_shim):
    """Stopped while pending is being renamed aside: the lock is still in
    place (Kudu keeps answering 409); the deployment writes, so the moves
    stop at the temp record and pending, status.lock and deployments.lock,
    already aside, are put back: nothing half-removed is ever left."""
    build_stuck_site(site)
    cfg = write_config(tmp_path / "lw.ini", site)
    pause = Pause(pause_shim, tmp_path / "pause", "rename", "-pending")
    agent = start_agent(agents, cfg, env=pause.env())
    pause.wait_paused(detail=agent.tail)
    assert (site / "locks" / "deployment").is_dir(), "the lock went before the other leftovers"
    append_log(site / "deployments" / TEMP_STUCK)
    before = {rel: tree_state(site / rel) for rel in STUCK_LEFTOVERS if rel != "deployments/pending"}
    pause.release()
    assert_abandoned_then_cleared(agent, site, cfg, before)
    assert agent.wait_removed(STUCK_LEFTOVERS)[-1] == "locks/deployment"


@pytest.mark.parametrize("what", ["record", "pending"])
def test_a_write_during_the_rename_is_put_back(site, agents, tmp_path, pause_shim, what):
    """The window between the last check and the rename: the write shows when
    the renamed entry is compared again through its descriptor; the entry is
    put back under its own name, whole, and so is everything moved before
    it."""
    build_stuck_site(site)
    cfg = write_config(tmp_path / "lw.ini", site)
    name = TEMP_STUCK if what == "record" else "pending"
    pause = Pause(pause_shim, tmp_path / "pause", "rename", "-" + name)
    agent = start_agent(agents, cfg, env=pause.env())
    pause.wait_paused(detail=agent.tail)
    target = site / "deployments" / name
    if what == "record":
        append_log(target, "a write in the window")
    else:
        os.utime(target, (time.time(), time.time()))
    expected = tree_state(target) if what == "record" else None
    pause.release()
    agent.wait_for_log(r"cleanup abandoned: .*deployments/" + re.escape(name))
    agent.wait_for_log(r"put deployments/" + re.escape(name) + r" back under its own name")
    assert target.exists(), "the changed entry is not back under its own name"
    if expected is not None:
        assert tree_state(target) == expected
    assert (site / "locks" / "deployment").is_dir()
    assert all(os.path.lexists(site / rel) for rel in STUCK_LEFTOVERS)
    assert no_trash(site) == []


def test_a_sign_of_life_at_the_lock_rolls_back_everything(site, agents, tmp_path, pause_shim,
                                                          hook):
    """Finding 2 of issue 18: held at the rename of locks/deployment, the
    last target, with everything else already aside, one byte is appended
    to its info.lock. Before, what was already moved was swept as trash and
    the hook ran ("cleared"). Now every target comes back under its own name,
    no trash is left, no hook runs, the json log says abandoned and the
    metric counts it."""
    build_stuck_site(site)
    before = {rel: tree_state(site / rel) for rel in STUCK_LEFTOVERS}
    metrics = tmp_path / "lw.prom"
    cfg = write_config(tmp_path / "lw.ini", site, hook={"command": hook.command()},
                       log={"format": "json"}, metrics={"file": str(metrics)})
    pause = Pause(pause_shim, tmp_path / "pause", "rename", "-deployment")
    agent = start_agent(agents, cfg, env=pause.env())
    pause.wait_paused(detail=agent.tail)
    assert not (site / "deployments" / "pending").exists(), "the rest moves before the lock"
    with open(site / "locks" / "deployment" / "info.lock", "ab") as f:
        f.write(b" ")
    before["locks/deployment"] = tree_state(site / "locks" / "deployment")
    pause.release()
    agent.wait_for_log(r'"event":"abandoned"')
    for rel, state in before.items():
        assert tree_state(site / rel) == state, f"{rel} is not back whole"
    assert no_trash(site) == []
    assert agent.removed() == []
    assert not agent.count(r"cleared"), agent.tail()
    assert hook.count() == 0, "a cleanup that did not commit runs no hook"
    wait_for(lambda: metrics.exists() and
             re.search(r'\nlockwarden_cleanups_abandoned_total\{instance_id="[^"]+"\} 1\n',
                       metrics.read_text()),
             ACT_TIMEOUT_S, "the abandoned counter", agent.tail)
    # Judged afresh: once silent for stuck_after again, it is cleared, and
    # the hook runs once, for that committed cleanup.
    wait_for(lambda: gone(site, STUCK_LEFTOVERS), ACT_TIMEOUT_S, "the cleanup", agent.tail)
    wait_for(lambda: hook.count() == 1, ACT_TIMEOUT_S, "the hook", agent.tail)


def test_a_name_kudu_makes_again_keeps_kudus_entry(site, agents, tmp_path, pause_shim, hook):
    """Held at the rename of the lock, Kudu makes deployments/pending again
    (pending was already aside). The evidence sees it; the rollback puts
    everything back, but pending's name is Kudu's now: Kudu's stays, ours is
    kept beside it as .lockwarden-kept-<token>-pending, and the log says
    both names."""
    build_stuck_site(site)
    cfg = write_config(tmp_path / "lw.ini", site, hook={"command": hook.command()})
    pause = Pause(pause_shim, tmp_path / "pause", "rename", "-deployment")
    agent = start_agent(agents, cfg, env=pause.env())
    pause.wait_paused(detail=agent.tail)
    (site / "deployments" / "pending").write_text("kudu's new deploy\n")
    pause.release()
    agent.wait_for_log(r"cleanup abandoned: .*deployments/pending appeared")
    line = agent.wait_for_log(r"deployments/pending was made again .* kept beside it as "
                              r"deployments/\.lockwarden-kept-[0-9a-f]{16}-pending")
    assert (site / "deployments" / "pending").read_text() == "kudu's new deploy\n"
    kept = [p for p in (site / "deployments").iterdir()
            if re.fullmatch(r"\.lockwarden-kept-[0-9a-f]{16}-pending", p.name)]
    assert len(kept) == 1, line
    assert all(os.path.lexists(site / rel) for rel in STUCK_LEFTOVERS)
    assert not any(p.name.startswith(".lockwarden-trash-")
                   for area in ("locks", "deployments") for p in (site / area).iterdir())
    assert hook.count() == 0
    notes = [json.loads((archive_dir_for(cfg) / n / "note.json").read_text())
             for n in sessions(cfg)]
    assert notes[0]["state"] == "rolled-back"
    assert any(e["kept_as"].startswith(".lockwarden-kept-") for e in notes[0]["entries"])


# ------------------------------------------------------------------ --once

def run_once(cfg, env=None, timeout=ACT_TIMEOUT_S * 2, prefix=()):
    return subprocess.run([*prefix, BIN, "run", "-c", str(cfg), "--once"],
                          env=env or clean_env(), capture_output=True, text=True,
                          timeout=timeout)


def test_expiry_before_the_epoch_is_expired_not_live(site, agents, tmp_path):
    """lockExpiry 1700: its nanoseconds overflowed, the lock looked live for
    about 230 years (and the sanitizer build aborted)."""
    (site / "locks" / "deployment").mkdir(parents=True, exist_ok=True)
    (site / "locks" / "deployment" / "info.lock").write_text(
        '{"lockExpiry":"1700-01-01T00:00:00.0000000Z","heldByPID":1,"heldByTID":1,'
        '"heldByOp":"Performing deployment","heldByWorker":"abc"}')
    (site / "deployments").mkdir(exist_ok=True)
    age_tree(site, HOUR_S)
    cfg = write_config(tmp_path / "lw.ini", site)
    agent = start_agent(agents, cfg)
    wait_for(lambda: not (site / "locks" / "deployment").exists(), ACT_TIMEOUT_S,
             "the expired lock folder to go", agent.tail)


def test_mtime_in_2300_neither_crashes_nor_is_taken_for_death(site, agents, tmp_path):
    """A file time in the future counts as a change at every scan (issue 18:
    file times can prove life, never death), so a deployment with an mtime
    in 2300 is never cleared while it is ahead; nothing overflows, and
    report shows it (exit 0: not silent by file times)."""
    build_stuck_site(site)
    t2300 = 10_413_792_000  # 2300-01-01
    os.utime(site / "deployments" / "pending", (t2300, t2300))
    before = tree_state(site)
    cfg = write_config(tmp_path / "lw.ini", site)
    agent = start_agent(agents, cfg)
    wait_for(lambda: len(agent.scan_times()) > 1 and
             agent.scan_times()[-1] - agent.scan_times()[0] >= 3 * 2.0, 20,
             "the agent to watch for 3 x stuck_after", agent.tail)
    assert agent.removed() == [] and agent.running(), agent.tail()
    assert tree_state(site) == before
    r = subprocess.run([BIN, "report", "-c", str(cfg)], env=clean_env(), capture_output=True,
                       timeout=20)
    assert r.returncode == 0, r.stderr


def open_fds(pid):
    """{fd: (target, flags)} of a running process."""
    out = {}
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{name}")
            with open(f"/proc/{pid}/fdinfo/{name}") as f:
                flags = int(re.search(r"flags:\s*([0-7]+)", f.read()).group(1), 8)
        except (FileNotFoundError, AttributeError):
            continue
        out[int(name)] = (target, flags)
    return out


def test_every_descriptor_is_close_on_exec(site, agents, tmp_path, pause_shim):
    """Stopped inside a scan's listing on a worker thread (the moment a hook
    spawned on the loop would inherit what is open): every descriptor above
    stderr is close-on-exec. Before, the listing's dup() was not."""
    build_stuck_site(site)
    cfg = write_config(tmp_path / "lw.ini", site, policy={"stuck_after": "1h"})
    # Inside the first scan's listing of deployments/: the temp record is
    # opened to be read while that listing is open (by name, since how many
    # folders are listed before it - the archive's pruning, the walk of
    # each unfinished record - is not this test's business).
    pause = Pause(pause_shim, tmp_path / "pause", "openat", TEMP_STUCK)
    agent = start_agent(agents, cfg, env=pause.env())
    pause.wait_paused(detail=agent.tail)
    try:
        fds = open_fds(agent.pid)
    finally:
        pause.release()
    leaking = {fd: t for fd, (t, flags) in fds.items() if fd > 2 and not flags & 0o2000000}
    assert not leaking, f"descriptors a hook would inherit: {leaking}"
    assert any(str(site) in t for t, _ in fds.values()), \
        f"the pause was not inside a listing of the site: {fds}"


def test_the_hook_inherits_no_descriptor(site, agents, tmp_path, pause_shim):
    """The harness kept as a regression test: every listing is slowed, so
    scans are in flight whenever the hook is spawned; the hook lists what
    it holds open."""
    build_stuck_site(site)
    listing = tmp_path / "hook-fds"
    script = tmp_path / "list-fds"
    script.write_text(f"#!/bin/sh\nls -l /proc/$$/fd/ > {listing}\n")
    script.chmod(0o755)
    cfg = write_config(tmp_path / "lw.ini", site, hook={"command": str(script)},
                       scan={"rescan_interval": "100ms"})
    pause = Pause(pause_shim, tmp_path / "pause", "fdopendir", ms=150, every=True)
    agent = start_agent(agents, cfg, env=pause.env())
    wait_for(listing.exists, ACT_TIMEOUT_S * 2, "the hook to run", agent.tail)
    agent.wait_for_log(r"hook exited with status 0")
    text = listing.read_text()
    assert str(site) not in text and str(archive_dir_for(cfg)) not in text, text


def test_junk_names_do_not_drive_memory(site, agents, tmp_path):
    """50,000 names that are not Kudu's beside a stuck site: counted, not
    stored. Before, each cost about 1.7 KB of snapshot (about 85 MB)."""
    if "build-san" in BIN:
        pytest.skip("the sanitizer build's shadow memory hides the figure")
    build_stuck_site(site)
    dep = site / "deployments"
    for i in range(50_000):
        os.close(os.open(dep / f"junk-{i:06d}.zip", os.O_CREAT | os.O_WRONLY, 0o644))
    cfg = write_config(tmp_path / "lw.ini", site, policy={"stuck_after": "1h"})
    agent = start_agent(agents, cfg)
    agent.wait_fresh_scans(3, timeout=60)
    with open(f"/proc/{agent.pid}/status") as f:
        hwm_kib = int(re.search(r"VmHWM:\s+(\d+) kB", f.read()).group(1))
    print(f"[memory] peak RSS with 50,000 junk names: {hwm_kib / 1024:.1f} MiB")
    assert hwm_kib < 16 * 1024, f"peak RSS {hwm_kib} KiB with 50,000 junk names"
    r = subprocess.run([BIN, "report", "-c", str(cfg)], env=clean_env(), capture_output=True,
                       text=True, timeout=60)
    assert "more entries that are not Kudu's" in r.stdout, r.stdout[-2000:]


# ------------------------------------------------------------------ --once

def run_once(cfg, env=None, timeout=ACT_TIMEOUT_S * 2, prefix=()):
    return subprocess.run([*prefix, BIN, "run", "-c", str(cfg), "--once"],
                          env=env or clean_env(), capture_output=True, text=True,
                          timeout=timeout)


def test_once_abandoned_cleanup_is_partial_and_runs_no_hook(site, tmp_path, pause_shim,
                                                            hook):
    """--once: a cleanup abandoned on a sign of life exits 4 (partial), runs
    no hook, and leaves every leftover under its own name."""
    build_stuck_site(site)
    cfg = write_config(tmp_path / "lw.ini", site, hook={"command": hook.command()})
    pause = Pause(pause_shim, tmp_path / "pause", "rename", "-" + TEMP_STUCK)
    proc = subprocess.Popen([BIN, "run", "-c", str(cfg), "--once"], env=pause.env(),
                            stderr=subprocess.PIPE, text=True)
    try:
        pause.wait_paused()
        append_log(site / "deployments" / TEMP_STUCK)
        pause.release()
        _, err = proc.communicate(timeout=ACT_TIMEOUT_S)
    finally:
        proc.kill()
    assert proc.returncode == ONCE_PARTIAL, err
    assert hook.count() == 0, "a cleanup that did not commit runs no hook"
    assert all(os.path.lexists(site / rel) for rel in STUCK_LEFTOVERS), err
    assert no_trash(site) == []
    assert "cleared" not in err


def test_once_hook_failure_has_its_own_code(site, tmp_path):
    build_stuck_site(site)
    failing = tmp_path / "fail"
    failing.write_text("#!/bin/sh\nexit 3\n")
    failing.chmod(0o755)
    cfg = write_config(tmp_path / "lw.ini", site, hook={"command": str(failing)})
    r = run_once(cfg)
    assert r.returncode == ONCE_HOOK_FAILED, r.stderr
    assert gone(site, STUCK_LEFTOVERS)


def test_a_hook_that_cannot_start_is_retried_not_dropped(site, agents, tmp_path, pause_shim,
                                                          hook):
    """The agent is out of descriptors when the hook is due (pipe2 fails
    with EMFILE): the incident still needs its restart, so the start is
    retried at the rescan pace until it works. Before, it was dropped."""
    build_stuck_site(site)
    cfg = write_config(tmp_path / "lw.ini", site, hook={"command": hook.command()})
    no_pipes = tmp_path / "no-pipes"
    pause = Pause(pause_shim, tmp_path / "pause", "none")
    agent = start_agent(agents, cfg, env=pause.env(LW_FAIL_PIPES_WHILE=no_pipes))
    agent.wait_fresh_scans(1)
    no_pipes.touch()
    wait_for(lambda: gone(site, STUCK_LEFTOVERS), ACT_TIMEOUT_S, "the cleanup", agent.tail)
    agent.wait_for_log(r"cannot start the hook: .*tried again every rescan_interval")
    agent.wait_fresh_scans(2)
    assert hook.count() == 0
    no_pipes.unlink()
    wait_for(lambda: hook.count() == 1, ACT_TIMEOUT_S, "the hook to start once it could",
             agent.tail)
    assert agent.count(r"(error|warning): (hook: )?(cannot start|creating|starting)") == 1, \
        "a failure that repeats is said once"


def test_once_on_a_missing_tree_exits_unavailable(tmp_path):
    """Before, a missing or unmounted root made `--once` wait forever."""
    cfg = write_config(tmp_path / "lw.ini", tmp_path / "no-site")
    r = run_once(cfg)
    assert r.returncode == ONCE_UNAVAILABLE, r.stderr


def test_once_on_an_unreadable_tree_exits_unreadable():
    """As nobody, with deployments/ mode 0000: half a tree is never judged,
    and the pass ends "unreadable", not "nothing stuck"."""
    import shutil
    import tempfile
    from pathlib import Path
    if not shutil.which("setpriv"):
        pytest.skip("setpriv (util-linux) is not installed")
    shared = Path(tempfile.mkdtemp(prefix="lockwarden-once-"))
    try:
        shared.chmod(0o755)
        site = shared / "site"
        build_stuck_site(site)
        cfg = write_config(shared / "lw.ini", site)
        (site / "deployments").chmod(0o000)
        r = run_once(cfg, prefix=["setpriv", "--reuid=65534", "--regid=65534",
                                  "--clear-groups"])
        (site / "deployments").chmod(0o755)
        assert r.returncode == ONCE_UNREADABLE, r.stderr
        assert all(os.path.lexists(site / rel) for rel in STUCK_LEFTOVERS)
    finally:
        shutil.rmtree(shared, ignore_errors=True)


# ------------------------------------------------------------------ only trash we made

def test_trash_names_we_did_not_make_are_never_removed(site, agents, tmp_path):
    """Finding 4 of issue 18: the name alone was taken as proof, and
    anything named .lockwarden-trash-* was deleted on sight. Now only trash
    that a committed note of the archive lists is swept: a customer's folder
    and a file that only look like ours stay, through idle scans and through
    a real cleanup of a stuck deployment beside them, and report lists them
    as not Kudu's."""
    build_finished_site(site)
    backup = site / "deployments" / ".lockwarden-trash-customer-backup"
    backup.mkdir()
    (backup / "file").write_text("the customer's backup\n")
    (site / "locks" / ".lockwarden-trash-x").write_text("not ours\n")
    age_tree(site, HOUR_S)
    planted = {p: tree_state(site / p) for p in ("deployments/.lockwarden-trash-customer-backup",
                                                  "locks/.lockwarden-trash-x")}
    cfg = write_config(tmp_path / "lw.ini", site)
    agent = start_agent(agents, cfg)
    agent.wait_fresh_scans(4)
    for rel, state in planted.items():
        assert tree_state(site / rel) == state, f"{rel} was touched on an idle site"

    # A real cleanup on the same tree: its own trash goes, the planted stays.
    build_stuck_site(site)          # ages the whole tree again
    planted = {rel: tree_state(site / rel) for rel in planted}
    wait_for(lambda: gone(site, STUCK_LEFTOVERS), ACT_TIMEOUT_S, "the cleanup", agent.tail)
    wait_for(lambda: not any(p.name.startswith(".lockwarden-trash-") and
                             re.match(r"\.lockwarden-trash-[0-9a-f]{16}-", p.name)
                             for area in ("locks", "deployments")
                             for p in (site / area).iterdir()),
             ACT_TIMEOUT_S, "the committed trash to be swept", agent.tail)
    agent.wait_fresh_scans(2)
    for rel, state in planted.items():
        assert tree_state(site / rel) == state, f"{rel} was touched by the cleanup"
    agent.stop()

    r = run_cli(["report", "-c", cfg, "--json"])
    doc = json.loads(r.stdout)
    verdicts = {e["path"]: e["verdict"] for e in doc["entries"]}
    for rel in planted:
        assert verdicts.get(rel) == "not Kudu's", (rel, verdicts)
