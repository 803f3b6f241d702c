"""The end-to-end share scenarios, on bindfs and on a real SMB share (see
conftest.py). The site and the archive folder (where the incident's claim
lives) are both on the share, as on App Service (/home/site,
/home/LogFiles/lockwarden). Kudu's writes go through the other client.

What the SMB share shows that bindfs cannot (README, "The share"): ctime
always equals mtime; a file kept open by a writer shows a frozen mtime to
other clients while only its size grows; appends show up to 1 s late;
ftruncate on a write-only handle and O_APPEND fail with EIO.
"""

import os
import signal
import subprocess
import threading
import time

import pytest

from conftest import (HOUR_S, claim_held, STUCK_LEFTOVERS, TEMP_STUCK, age_tree, build_finished_site,
                      build_stuck_site, clean_env, hook, kudu_time, make_file_lock,  # noqa: F401
                      make_lock, make_pending, make_record, start_agent, utc_in, wait_for,
                      write_config)
from robust_util import STUCK_PATHS

RESCAN_S = 1.0
STUCK_AFTER_S = 8.0
WRITE_EVERY_S = 3.0
# max(3 x rescan_interval, 10 s): the agent's hang limit with RESCAN_S.
HANG_LIMIT_S = 10.0
MARGIN_S = 6.0
# The platform's SIGKILL comes this long after its SIGTERM.
PLATFORM_STOP_S = 5.0
NOT_ANSWERING = r"site root .* is not answering"


def on_samba(share, reason):
    """xfail on the SMB share only: these pass on bindfs today."""
    if share.kind == "samba":
        return pytest.mark.xfail(strict=False, reason=reason)
    return None


def xfail_on_samba(request, share, reason):
    mark = on_samba(share, reason)
    if mark:
        request.node.add_marker(mark)


def config(tmp_path, share, hook=None, **extra):
    sections = dict(policy={"stuck_after": f"{int(STUCK_AFTER_S)}s"},
                    scan={"rescan_interval": f"{int(RESCAN_S * 1000)}ms"},
                    archive={"dir": str(share.here / "LogFiles" / "lockwarden")},
                    site={"claim_expiry": "10s"})
    if hook is not None:
        sections["hook"] = {"command": hook.command(), "scope": "site", "cooldown": "0s"}
    for k, v in extra.items():
        sections.setdefault(k, {}).update(v)
    return write_config(tmp_path / "lw.ini", share.here / "site", **sections)


def site_local(share):
    return share.local / "site"


def gone_on_share(share, rels):
    return all(not os.path.lexists(site_local(share) / r) for r in rels)


class Writer:
    """A deployment's logger on Kudu's host: appends a line to the record's
    log.log every `every_s`, either closing the file after each line or
    holding one handle open (as a build's logger does). Opened read-write
    and positioned at the end: O_APPEND fails through smbnetfs."""

    def __init__(self, log_path, every_s, hold_open):
        self.path = log_path
        self.every_s = every_s
        self.hold_open = hold_open
        self.stop_event = threading.Event()
        self.writes = 0
        self.errors = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _line(self):
        return f"{kudu_time(utc_in(0))},Building...,,0\n".encode()

    def _run(self):
        fd = None
        try:
            while not self.stop_event.is_set():
                if fd is None:
                    fd = os.open(self.path, os.O_RDWR | os.O_CLOEXEC)
                os.lseek(fd, 0, os.SEEK_END)
                os.write(fd, self._line())
                self.writes += 1
                if not self.hold_open:
                    os.close(fd)
                    fd = None
                self.stop_event.wait(self.every_s)
        except OSError as e:
            self.errors.append(e)
        finally:
            if fd is not None:
                os.close(fd)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.stop_event.set()
        self.thread.join(timeout=30)


def add_running_deployment(share):
    """A deployment in progress: the lock (expiry far ahead), status.lock,
    pending, a temp record Building; every file an hour old, so only the
    writer's appends can show it alive."""
    root = site_local(share)
    make_lock(root, expiry=HOUR_S)
    make_file_lock(root, "status.lock", acquired_s=-HOUR_S)
    make_pending(root)
    rec = make_record(root, TEMP_STUCK, "Building", False, True, received=-HOUR_S)
    age_tree(root, HOUR_S)
    return share.kudu / "site" / "deployments" / TEMP_STUCK / "log.log"


# ---------------------------------------------------------------- stuck, dead

def test_a_stuck_deployment_is_cleared_and_the_claim_made_and_released(
        request, share, agents, tmp_path, hook):
    build_stuck_site(site_local(share), age_s=HOUR_S)
    agent = start_agent(agents, config(tmp_path, share, hook))
    wait_for(lambda: gone_on_share(share, STUCK_LEFTOVERS),
             STUCK_AFTER_S + 4 * RESCAN_S + MARGIN_S,
             "the stuck deployment to be cleared", agent.tail)
    agent.wait_for_log(r"claimed incident \S+")
    wait_for(lambda: hook.count() == 1 and not claim_held(share.local / "LogFiles" / "lockwarden"),
             MARGIN_S * 2, "the hook to run and the claim to be released", agent.tail)
    agent.wait_for_log(r"incident \S+ cleared \(\d+ removals?\); claim released")
    assert sorted(agent.removed()) == sorted(STUCK_LEFTOVERS)
    assert agent.count(r" error: ") == 0, agent.tail()


def test_a_deployment_that_dies_is_cleared_in_time(request, share, agents, tmp_path):
    """A deployment writes, then its writer dies: cleared no sooner than
    stuck_after after its last write, and not much later."""
    build_finished_site(site_local(share))
    log = add_running_deployment(share)
    agent = start_agent(agents, config(tmp_path, share))
    agent.wait_scan(2)
    w = Writer(log, WRITE_EVERY_S, hold_open=False).start()
    wait_for(lambda: w.writes >= 3, WRITE_EVERY_S * 3 + MARGIN_S, "three writes")
    w.stop()
    died = time.monotonic()
    assert not w.errors, w.errors
    wait_for(lambda: gone_on_share(share, STUCK_PATHS),
             STUCK_AFTER_S + 4 * RESCAN_S + MARGIN_S,
             "the dead deployment to be cleared", agent.tail)
    took = time.monotonic() - died
    print(f"{share.kind}: cleared {took:.1f}s after the last write (stuck_after {STUCK_AFTER_S}s)")
    assert took >= STUCK_AFTER_S - 0.5, agent.tail()


# ------------------------------------------------------------------- live

@pytest.mark.parametrize("hold_open", [False, True], ids=["closes-each-write", "holds-handle"])
def test_a_live_deployment_is_never_touched(share, agents, tmp_path, hold_open):
    """A writer every WRITE_EVERY_S, with stuck_after longer than that and
    the agent alive for three stuck_afters, started between two writes long
    after the writer began (finding 2: over SMB the open handle's mtime is
    frozen for other clients; only the size grows)."""
    build_finished_site(site_local(share))
    log = add_running_deployment(share)
    w = Writer(log, WRITE_EVERY_S, hold_open=hold_open).start()
    try:
        # The writer has been at it longer than stuck_after when the agent
        # starts: whatever the first write stamped is older than that.
        wait_for(lambda: w.writes * WRITE_EVERY_S > STUCK_AFTER_S + WRITE_EVERY_S,
                 STUCK_AFTER_S + 3 * WRITE_EVERY_S + MARGIN_S, "the writer to run a while")
        agent = start_agent(agents, config(tmp_path, share))
        t0 = time.monotonic()
        wait_for(lambda: time.monotonic() - t0 > 3 * STUCK_AFTER_S or agent.removed()
                 or not agent.running(), 3 * STUCK_AFTER_S + MARGIN_S,
                 "three stuck_afters with the writer alive")
    finally:
        w.stop()
    assert not w.errors, w.errors
    assert agent.removed() == [], agent.tail()
    assert agent.count(r"stuck deployment") == 0, agent.tail()
    assert all(os.path.lexists(site_local(share) / p) for p in STUCK_PATHS)


# ------------------------------------------------------ two agents, two hosts

# Known race, issue 19 (left open): through two smbnetfs mounts both agents
# were seen to claim within 14 ms (the clients' cached listings); the second
# cleanup rolled back on the first's removals, and the restart was lost with a
# warning ("hook not run: the incident was taken over"). Nothing live was
# removed. Not strict: it passes in most runs.
@pytest.mark.xfail(strict=False, reason="issue 19: two claims within one listing cache "
                   "period on smbnetfs can lose the restart (with a warning)")
def test_two_agents_on_two_mounts_clear_one_incident_once(request, share, agents, tmp_path,
                                                          hook):
    """Two instances on two hosts: on SMB each has its own client mount; on
    bindfs the second watches the backing folder. One owner clears it, one
    site-scope hook."""
    build_stuck_site(site_local(share), age_s=HOUR_S)
    cfg_a = config(tmp_path, share, hook)
    other_root = share.kudu
    cfg_b = write_config(tmp_path / "lw-b.ini", other_root / "site",
                         policy={"stuck_after": f"{int(STUCK_AFTER_S)}s"},
                         scan={"rescan_interval": f"{int(RESCAN_S * 1000)}ms"},
                         archive={"dir": str(other_root / "LogFiles" / "lockwarden")},
                         site={"claim_expiry": "10s"},
                         hook={"command": hook.command(), "scope": "site", "cooldown": "0s"})
    a = start_agent(agents, cfg_a, env=clean_env(WEBSITE_INSTANCE_ID="inst0aaaaaaa"), name="a")
    b = start_agent(agents, cfg_b, env=clean_env(WEBSITE_INSTANCE_ID="inst1bbbbbbb"), name="b")
    wait_for(lambda: gone_on_share(share, STUCK_LEFTOVERS),
             STUCK_AFTER_S + 4 * RESCAN_S + MARGIN_S, "the incident to be cleared",
             lambda: a.tail() + "\n" + b.tail())
    wait_for(lambda: hook.count() >= 1 and not claim_held(share.local / "LogFiles" / "lockwarden"),
             MARGIN_S * 2, "the hook and the claim's release", lambda: a.tail() + b.tail())
    a.wait_fresh_scans(2)
    b.wait_fresh_scans(2)
    assert hook.count() == 1, a.tail() + b.tail()
    assert a.count(r"claimed incident") + b.count(r"claimed incident") == 1
    assert sorted(a.removed() + b.removed()) == sorted(STUCK_LEFTOVERS)


# ------------------------------------------------------------ a paused server

def test_a_paused_share_removes_nothing_and_is_said(share, agents, tmp_path):
    """The server (smbd, or bindfs's daemon) stops answering while a
    deployment is in progress: the agent says so once at warning level and
    removes nothing, however long the pause."""
    build_finished_site(site_local(share))
    log = add_running_deployment(share)
    w = Writer(log, WRITE_EVERY_S, hold_open=False).start()
    agent = start_agent(agents, config(tmp_path, share))
    agent.wait_scan(2)
    w.stop()
    share.pause()
    try:
        m = agent.wait_for_log(NOT_ANSWERING, timeout=HANG_LIMIT_S + RESCAN_S + MARGIN_S)
        line = next(x for x in agent.log_lines() if m.re.search(x))
        assert " warning: " in line, line
        # Longer than stuck_after: still nothing judged, nothing removed.
        t0 = time.monotonic()
        wait_for(lambda: time.monotonic() - t0 > STUCK_AFTER_S, STUCK_AFTER_S + 1, "the pause")
        assert agent.running()
        assert agent.removed() == [], agent.tail()
        assert agent.count(NOT_ANSWERING) == 1, agent.tail()
    finally:
        share.resume()
    assert all(os.path.lexists(site_local(share) / p) for p in STUCK_PATHS)


def blocked_worker(agent, paused_at):
    """Waits until a worker thread is certainly blocked on the paused share:
    no scan has finished for two rescan intervals."""
    from robust_util import log_time
    wait_for(lambda: time.time() - max([paused_at] + [log_time(x) for x in agent.log_lines()
                                                      if " done:" in x]) > 2 * RESCAN_S,
             RESCAN_S * 3 + MARGIN_S, "a worker thread blocked on the paused share")


def test_sigterm_during_a_pause_lets_go_within_the_platforms_limit(share, agents, tmp_path):
    """Finding 5: SIGTERM while a worker thread is blocked on the paused
    share. The agent gives the worker SHUTDOWN_WORKER_GRACE_MS and leaves
    (_exit). On bindfs the blocked call is still queued, and the kernel drops
    it: the process is gone well within the platform's 5 s. Over smbnetfs
    the client has already taken the call and waits for the server; the
    kernel cannot end a thread in that wait (SIGKILL neither), and a
    process is gone only when all its threads are: its exit waits for the
    client's answer, the bound the README states. Here the server answers
    again right after the agent let go, and the process is then gone at
    once: nothing else is waited for."""
    from robust_util import log_time
    build_finished_site(site_local(share))
    agent = start_agent(agents, config(tmp_path, share))
    agent.wait_scan(2)
    share.pause()
    try:
        blocked_worker(agent, time.time())
        t0 = time.monotonic()
        sent = time.time()
        agent.send(signal.SIGTERM)
        if share.kind == "samba":
            m = agent.wait_for_log(r"stopping: a worker thread is stuck on the share",
                                   timeout=PLATFORM_STOP_S)
            line = next(x for x in agent.log_lines() if m.re.search(x))
            let_go = log_time(line) - sent
            assert let_go < 2.5, line
            share.resume()
        rc = agent.proc.wait(timeout=90)
        took = time.monotonic() - t0
        print(f"{share.kind}: SIGTERM with a worker blocked on the paused share: exit {rc} "
              f"after {took:.2f}s")
    finally:
        if share.paused:
            share.resume()
    assert rc == 0, agent.tail()
    assert took < PLATFORM_STOP_S, agent.tail()


def test_report_during_a_pause_exits_at_its_time_limit(share, tmp_path):
    """`report` says "no reply within 10s" and its process is gone then, not
    when the client gives up on the server."""
    build_finished_site(site_local(share))
    cfg = config(tmp_path, share)
    share.pause()
    try:
        t0 = time.monotonic()
        p = subprocess.Popen([os.environ["LOCKWARDEN_BIN"], "report", "-c", str(cfg)],
                             env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
        # Not communicate(): a child left blocked on the share may still
        # hold the pipes. The process's own exit is what counts.
        rc = p.wait(timeout=120)
        took = time.monotonic() - t0
    finally:
        share.resume()
    err = p.stderr.read()
    print(f"{share.kind}: report on a paused share: exit {rc} after {took:.1f}s: {err.strip()}")
    assert rc == 1
    assert "not answering" in err
    assert HANG_LIMIT_S - 0.5 <= took < HANG_LIMIT_S + 2.0, err


# ------------------------------------------- the client's EIO is not a reply

@pytest.fixture
def samba_gives_up(tmp_path):
    """A Samba share whose client (this host's) gives up on the server after
    12 s without a reply, with no retry: longer than the agent's hang limit."""
    from conftest import SambaShare, smbshare
    reason = smbshare.unavailable_reason()
    if reason:
        pytest.skip(f"needs a samba share: {reason}")
    s = SambaShare(tmp_path / "samba", smb_timeout_ms=12000, retries=0)
    try:
        why = s.start()
        if why:
            pytest.fail(f"the samba share could not be set up: {why}", pytrace=False)
        yield s
    finally:
        s.stop()


# Rests on the SMB client's timeouts (one 12 s wait, then EIO at once), which
# a busy machine stretches: one at a time.
@pytest.mark.serial
def test_the_clients_eio_is_not_the_share_answering(samba_gives_up, agents, tmp_path):
    """Finding 7: "answers again" was logged when the client returned EIO
    after its own timeout, with the server still paused. It is said only
    once a scan reads the share again."""
    share = samba_gives_up
    build_finished_site(site_local(share))
    agent = start_agent(agents, config(tmp_path, share))
    agent.wait_scan(2)
    share.pause()
    try:
        agent.wait_for_log(NOT_ANSWERING, timeout=HANG_LIMIT_S + RESCAN_S + MARGIN_S)
        n = agent.scans_done()
        # The blocked scan comes back with the client's EIO (about 12 s after
        # it began on a quiet machine, over 30 s under load), and the next
        # ones fail at once: the server is still paused. The deadline only
        # bounds a failure, so it is generous: the client's timeout is its own.
        agent.wait_scan(n + 2, timeout=120)
        assert agent.count(r"answers again") == 0, agent.tail()
    finally:
        share.resume()
    agent.wait_for_log(r"site root .* answers again after", timeout=3 * RESCAN_S + MARGIN_S)
    agent.wait_fresh_scans(2)
    assert agent.count(r"answers again") == 1, agent.tail()
    assert agent.count(NOT_ANSWERING) == 1, agent.tail()
    assert agent.removed() == []
