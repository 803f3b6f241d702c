"""A share that stops answering (issue 12, part 2). During a storage failover
the /home share stops answering and every call on it blocks in the kernel.
Here the site is a bindfs view whose FUSE daemon the test stops with
SIGSTOP: each call on the view then blocks exactly that way until SIGCONT.

The agent must say so once (naming the site root, "not answering") and once
more when the share answers, put it in systemd's STATUS=, judge nothing from
a scan that straddled the outage, watch afresh before removing anything,
resume by itself, and still stop within 2 s on SIGTERM while a worker thread
is blocked on the share. `report` gives up after a bounded time with exit 1,
and `run --once` with exit 6.

Every job on the share counts, not only scans and removals: the incident's
claim (made, renewed, released off the loop), the trash sweep.
"""

import os
import signal
import subprocess
import time

import pytest

from conftest import (ACT_TIMEOUT_S, HOUR_S, ONCE_UNAVAILABLE, STUCK_LEFTOVERS, TEMP_STUCK,
                      TRASH_RE, Pause, age_tree, claim_held, build_finished_site,
                      build_stuck_site, clean_env, hook,  # noqa: F401
                      notify_socket, pause_shim, settle, start_agent, stop_process,  # noqa: F401
                      trash_of, wait_for, write_config)
from robust_util import fuse_unavailable_reason, is_mount_point, log_time, _fusermount

RESCAN_S = 1.0
# max(3 x rescan_interval, 10 s): the agent's hang limit with RESCAN_S.
HANG_LIMIT_S = 10.0
MARGIN_S = 5.0
QUIET_S = 2.0
NOT_ANSWERING = r"site root .* is not answering"
ANSWERS_AGAIN = r"site root .* answers again after (\S+) out"


class FreezableShare:
    """`bindfs -f` (in the foreground, so its pid is the FUSE daemon's)
    over `backing`, mounted on `mountpoint`; freeze() stops the daemon with
    SIGSTOP, thaw() lets it go on with SIGCONT."""

    def __init__(self, backing, mountpoint):
        self.backing = backing
        self.mountpoint = mountpoint
        self.proc = None
        self.frozen = False

    def mount(self):
        self.backing.mkdir(parents=True, exist_ok=True)
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(["bindfs", "-f", "--no-allow-other", str(self.backing),
                                      str(self.mountpoint)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_for(lambda: is_mount_point(self.mountpoint) or self.proc.poll() is not None,
                 10, "bindfs to be mounted")
        if self.proc.poll() is not None:
            pytest.skip(f"needs a FUSE mount: bindfs exited {self.proc.returncode}: "
                        f"{self.proc.stderr.read().decode(errors='replace').strip()}")

    def freeze(self):
        stop_process(self.proc.pid)
        self.frozen = True

    def thaw(self):
        os.kill(self.proc.pid, signal.SIGCONT)
        self.frozen = False

    def teardown(self):
        if self.proc is None:
            return
        if self.frozen:
            self.thaw()
        subprocess.run([_fusermount(), "-u", "-z", str(self.mountpoint)],
                       capture_output=True, timeout=10)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)


@pytest.fixture
def share(tmp_path):
    reason = fuse_unavailable_reason()
    if reason:
        pytest.skip(f"needs a FUSE mount: {reason}")
    s = FreezableShare(tmp_path / "backing", tmp_path / "share")
    try:
        s.mount()
        yield s
    finally:
        s.teardown()


def config(tmp_path, root):
    return write_config(tmp_path / "lw.ini", root,
                        policy={"stuck_after": "3s", "quiet_period": f"{int(QUIET_S)}s"},
                        scan={"rescan_interval": f"{int(RESCAN_S * 1000)}ms"})


def test_a_hung_share_is_said_once_in_the_log_and_status_and_the_agent_resumes(
        share, agents, tmp_path, notify_socket):
    build_finished_site(share.backing)
    env = clean_env(NOTIFY_SOCKET=notify_socket.env_value)
    agent = start_agent(agents, config(tmp_path, share.mountpoint), env=env)
    agent.wait_scan(2)

    share.freeze()
    frozen_at = time.time()
    m = agent.wait_for_log(NOT_ANSWERING, timeout=HANG_LIMIT_S + RESCAN_S + MARGIN_S)
    line = next(x for x in agent.log_lines() if m.re.search(x))
    said_after = log_time(line) - frozen_at
    print(f"frozen share said after {said_after:.1f}s: {line}")
    assert str(share.mountpoint) in line
    assert " warning: " in line
    # Not before the limit (a scan may have begun up to a rescan before).
    assert said_after >= HANG_LIMIT_S - RESCAN_S - 0.5, line
    notify_socket.wait("STATUS", f"blocked: site root {share.mountpoint} is not answering")

    # Say it once, not at every rescan: let a few rescans pass.
    n_lines = len(agent.log_lines())
    wait_for(lambda: time.time() - frozen_at > HANG_LIMIT_S + 4 * RESCAN_S, 30,
             "a few rescans while frozen")
    assert agent.count(NOT_ANSWERING) == 1, agent.tail()
    assert agent.running()

    share.thaw()
    m = agent.wait_for_log(ANSWERS_AGAIN, timeout=MARGIN_S, start=n_lines)
    print(f"answered again: {m.group(0)}")
    # Back to work by itself: fresh scans, and the status is no longer blocked.
    agent.wait_fresh_scans(2)
    assert agent.count(NOT_ANSWERING) == 1
    wait_for(lambda: [m for _, m in notify_socket.snapshot()
                      if m.get("STATUS", "").startswith("idle")], 5,
             "an idle STATUS= after the share answered")
    assert agent.removed() == []


# Bounds how long SIGTERM takes (2 s): one at a time.
@pytest.mark.serial
def test_sigterm_exits_within_2s_while_a_worker_is_blocked_on_the_share(
        share, agents, tmp_path):
    build_finished_site(share.backing)
    agent = start_agent(agents, config(tmp_path, share.mountpoint))
    agent.wait_scan(2)
    share.freeze()
    # The next rescan's worker blocks on the frozen share: once no scan has
    # finished for two rescan intervals, one is certainly in flight, blocked.
    frozen_at = time.time()
    wait_for(lambda: time.time() - max([frozen_at] + [log_time(x) for x in agent.log_lines()
                                                      if " done:" in x]) > 2 * RESCAN_S,
             RESCAN_S * 3 + MARGIN_S, "a worker thread blocked on the frozen share")
    t0 = time.monotonic()
    agent.send(signal.SIGTERM)
    rc = agent.wait_exit(5)
    took = time.monotonic() - t0
    print(f"SIGTERM with a worker blocked on the share: exit {rc} after {took:.2f}s")
    assert rc == 0, agent.tail()
    assert took < 2.0, agent.tail()
    assert agent.count(r"worker thread is stuck on the share") == 1, agent.tail()


def test_report_gives_up_with_exit_1_when_the_share_does_not_answer(share, tmp_path):
    build_finished_site(share.backing)
    cfg = config(tmp_path, share.mountpoint)
    share.freeze()
    t0 = time.monotonic()
    r = subprocess.run([os.environ["LOCKWARDEN_BIN"], "report", "-c", str(cfg)],
                       env=clean_env(), capture_output=True, text=True,
                       timeout=HANG_LIMIT_S + 3 * MARGIN_S)
    took = time.monotonic() - t0
    print(f"report on a frozen share: exit {r.returncode} after {took:.1f}s: {r.stderr.strip()}")
    assert r.returncode == 1
    assert "not answering" in r.stderr and str(share.mountpoint) in r.stderr
    assert r.stdout == ""
    assert HANG_LIMIT_S - 0.5 <= took < HANG_LIMIT_S + MARGIN_S


def test_check_config_skips_the_history_when_the_share_does_not_answer(share, tmp_path):
    """check-config reads the site's history to compare stuck_after with it
    (agent/silence_read.h); on a frozen share it says so after the hang
    limit and still prints the configuration."""
    build_finished_site(share.backing)
    cfg = config(tmp_path, share.mountpoint)
    share.freeze()
    t0 = time.monotonic()
    r = subprocess.run([os.environ["LOCKWARDEN_BIN"], "check-config", "--insecure-config",
                        "-c", str(cfg)], env=clean_env(), capture_output=True, text=True,
                       timeout=HANG_LIMIT_S + 3 * MARGIN_S)
    took = time.monotonic() - t0
    assert r.returncode == 0, r.stderr
    assert "it did not answer in time" in r.stderr and str(share.mountpoint) in r.stderr
    assert "[policy]" in r.stdout
    assert HANG_LIMIT_S - 0.5 <= took < HANG_LIMIT_S + MARGIN_S, took


def test_nothing_is_judged_across_an_outage_and_removal_waits_for_a_fresh_quiet_period(
        share, agents, tmp_path):
    """A stuck deployment, the share frozen before the agent's first scan:
    the scan that straddles the outage is not judged; the cleanup comes only
    after quiet_period watched from the moment the share answered."""
    build_stuck_site(share.backing, age_s=HOUR_S)
    share.freeze()
    agent = start_agent(agents, config(tmp_path, share.mountpoint))
    agent.wait_for_log(NOT_ANSWERING, timeout=HANG_LIMIT_S + MARGIN_S)
    assert agent.removed() == []
    share.thaw()
    m = agent.wait_for_log(ANSWERS_AGAIN, timeout=MARGIN_S)
    answered = log_time(next(x for x in agent.log_lines() if m.re.search(x)))
    removed = agent.wait_removed(STUCK_LEFTOVERS, timeout=QUIET_S + 3 * RESCAN_S + MARGIN_S)
    first = next(x for x in agent.log_lines() if "stuck deployment:" in x)
    print(f"cleanup began {log_time(first) - answered:.2f}s after the share answered")
    assert log_time(first) - answered >= QUIET_S - 0.05, agent.tail()
    assert sorted(removed) == sorted(STUCK_LEFTOVERS)


def test_a_single_pass_on_a_share_that_does_not_answer_exits_6(share, tmp_path):
    """`run --once` from cron must not wait for the share: passes would pile
    up behind it. It says the share is not answering and exits 6 (the tree
    is unavailable) soon after the limit."""
    build_stuck_site(share.backing, age_s=HOUR_S)
    cfg = config(tmp_path, share.mountpoint)
    share.freeze()
    t0 = time.monotonic()
    r = subprocess.run([os.environ["LOCKWARDEN_BIN"], "run", "--once", "-c", str(cfg)],
                       env=clean_env(), capture_output=True, text=True,
                       timeout=HANG_LIMIT_S + 3 * MARGIN_S)
    took = time.monotonic() - t0
    print(f"run --once on a frozen share: exit {r.returncode} after {took:.1f}s")
    assert r.returncode == ONCE_UNAVAILABLE, r.stderr
    assert "not answering" in r.stderr
    assert took < HANG_LIMIT_S + 2 + MARGIN_S
    share.thaw()
    assert all((share.backing / p).exists() for p in STUCK_LEFTOVERS)


# ------------------------------------------------ the claim and the trash sweep

CLAIM = ".lockwarden-claim-1"


def scaled_config(tmp_path, share, hook, **extra):
    """The site and the archive (where the claim lives) both on the share,
    with [hook] scope = site, as on App Service."""
    return write_config(tmp_path / "lw.ini", share.mountpoint / "site",
                        policy={"stuck_after": "3s", "quiet_period": f"{int(QUIET_S)}s"},
                        scan={"rescan_interval": f"{int(RESCAN_S * 1000)}ms"},
                        archive={"dir": str(share.mountpoint / "LogFiles" / "lockwarden")},
                        hook={"command": hook.command(**extra), "scope": "site"},
                        site={"claim_expiry": "2s"})


def claim_gone(share):
    return not claim_held(share.backing / "LogFiles" / "lockwarden")


def sessions(share):
    d = share.backing / "LogFiles" / "lockwarden"
    return sorted(p.name for p in d.iterdir() if p.is_dir()) if d.exists() else []


def test_a_claim_that_hangs_is_said_and_the_incident_is_cleared_once_after(
        share, agents, tmp_path, pause_shim, hook, notify_socket):
    """The share stops answering the moment the owner creates the claim:
    the loop goes on (the claim is made off it), says so once, and once the
    share answers the incident is cleared exactly once, with one hook."""
    build_stuck_site(share.backing / "site", age_s=HOUR_S)
    cfg = scaled_config(tmp_path, share, hook)
    pause = Pause(pause_shim, tmp_path / "pause", "openat", CLAIM)
    agent = start_agent(agents, cfg, env=pause.env(NOTIFY_SOCKET=notify_socket.env_value))
    pause.wait_paused(detail=agent.tail)
    # The claim's own openat now blocks in the kernel on the frozen share.
    share.freeze()
    pause.release()
    m = agent.wait_for_log(NOT_ANSWERING, timeout=HANG_LIMIT_S + MARGIN_S)
    line = next(x for x in agent.log_lines() if m.re.search(x))
    print(f"claim on a frozen share: {line}")
    assert "claim" in line, line
    notify_socket.wait("STATUS", f"blocked: site root {share.mountpoint / 'site'} is not answering")
    # The loop is alive: the watchdog's thread of work, its timers, go on.
    assert agent.running()

    share.thaw()
    agent.wait_for_log(ANSWERS_AGAIN, timeout=MARGIN_S)
    agent.wait_removed(STUCK_LEFTOVERS, timeout=QUIET_S + 3 * RESCAN_S + ACT_TIMEOUT_S)
    wait_for(lambda: hook.count() >= 1 and claim_gone(share), ACT_TIMEOUT_S,
             "the hook and the claim's release", agent.tail)
    agent.wait_fresh_scans(2)
    assert hook.count() == 1, agent.tail()
    assert len(sessions(share)) == 1, sessions(share)
    # A claim made across the outage removed nothing and may be let go
    # (the decision it was made for is stale); the incident is cleared once.
    assert agent.count(r"incident \S+ cleared \(") == 1, agent.tail()
    assert agent.count(NOT_ANSWERING) == 1, agent.tail()
    assert agent.count(ANSWERS_AGAIN) == 1, agent.tail()


# Bounds how long SIGTERM takes (2 s): one at a time.
@pytest.mark.serial
def test_a_renewal_that_hangs_is_said_sigterm_still_exits_and_the_incident_ends_once(
        share, agents, tmp_path, hook):
    """The owner holds the claim while its site-scope hook runs, renewing it
    every claim_expiry / 4; the share stops answering. The hang is said,
    SIGTERM still ends the agent within 2 s, and once the share answers the
    instance that takes the incident over finishes it without a second
    hook."""
    build_stuck_site(share.backing / "site", age_s=HOUR_S)
    cfg = scaled_config(tmp_path, share, hook, sleep_s=120)
    env = clean_env(WEBSITE_INSTANCE_ID="inst0aaaaaaa")
    owner = start_agent(agents, cfg, env=env, name="owner")
    owner.wait_removed(STUCK_LEFTOVERS, timeout=QUIET_S + ACT_TIMEOUT_S)
    wait_for(lambda: hook.count() == 1, ACT_TIMEOUT_S, "the site-scope hook to start", owner.tail)
    assert not claim_gone(share)  # held while the hook runs

    share.freeze()
    owner.wait_for_log(NOT_ANSWERING, timeout=HANG_LIMIT_S + MARGIN_S)
    t0 = time.monotonic()
    owner.send(signal.SIGTERM)
    rc = owner.wait_exit(5)
    took = time.monotonic() - t0
    print(f"SIGTERM with a claim job blocked on the share: exit {rc} after {took:.2f}s")
    assert rc == 0, owner.tail()
    assert took < 2.0, owner.tail()

    share.thaw()
    other = start_agent(agents, cfg, env=clean_env(WEBSITE_INSTANCE_ID="inst1bbbbbbb"),
                        name="other")
    wait_for(lambda: claim_gone(share), ACT_TIMEOUT_S, "the claim to be taken over and released",
             other.tail)
    other.wait_fresh_scans(2)
    assert hook.count() == 1, other.tail()
    assert len(sessions(share)) == 1, sessions(share)
    assert all(not (share.backing / "site" / p).exists() for p in STUCK_LEFTOVERS)


def test_a_trash_sweep_that_hangs_is_said(share, agents, tmp_path, pause_shim, notify_socket):
    """A committed cleanup leaves its folders as trash for the background
    sweep, and the sweep that empties them blocks on the share: that is the
    share not answering too."""
    site = build_stuck_site(share.backing / "site")
    # A folder inside the lock folder, which only the sweep of its trash
    # opens (the cleanup archives and verifies info.lock alone).
    (site / "locks" / "deployment" / "hang-here").mkdir()
    (site / "locks" / "deployment" / "hang-here" / "data").write_text("{}")
    age_tree(site, HOUR_S)
    settle(site)
    cfg = config(tmp_path, share.mountpoint / "site")
    pause = Pause(pause_shim, tmp_path / "pause", "openat", "hang-here")
    agent = start_agent(agents, cfg, env=pause.env(NOTIFY_SOCKET=notify_socket.env_value))
    pause.wait_paused(detail=agent.tail)
    # Committed: the lock folder is trash under the cleanup's token.
    agent.wait_for_log(r"removed locks/deployment \(moved aside as " + TRASH_RE + "deployment")
    trashes = trash_of(site / "locks", "deployment")
    assert len(trashes) == 1, trashes
    share.freeze()
    pause.release()
    m = agent.wait_for_log(NOT_ANSWERING, timeout=HANG_LIMIT_S + MARGIN_S)
    line = next(x for x in agent.log_lines() if m.re.search(x))
    print(f"trash sweep on a frozen share: {line}")
    assert "trash sweep" in line, line
    notify_socket.wait("STATUS", f"blocked: site root {share.mountpoint / 'site'} is not answering")
    share.thaw()
    agent.wait_for_log(ANSWERS_AGAIN, timeout=MARGIN_S)
    wait_for(lambda: not trashes[0].exists() and not trash_of(site / "deployments", TEMP_STUCK),
             ACT_TIMEOUT_S, "the trash to be swept", agent.tail)
    assert all(not (site / p).exists() for p in STUCK_LEFTOVERS)
    assert agent.count(NOT_ANSWERING) == 1, agent.tail()
