"""Issue 3, item 8, and issue 18: clock skew. The share's clock is not the
agent's: Kudu may stamp files hours in the future or far in the past, a lock
may claim to hold for years, and the agent's own wall clock may jump. None
of this may get a live deployment removed: the agent acts only once it has
itself watched stuck_after pass without a change. A file time in the future
counts as a change at every scan, so it delays a cleanup until the agent's
clock passes it; one in the past changes nothing."""

import datetime
import glob
import threading
import time

import pytest

from conftest import (HOUR_S, TEMP_STUCK, age_tree, build_finished_site, clean_env, gone,
                      start_agent, utc_in, wait_for, write_config)
from robust_util import (STUCK_PATHS, add_stuck_deployment, append_log_at, log_time,
                         present)

RESCAN_S = 0.5
STUCK_AFTER_S = 3.0
DAY_S = 24 * HOUR_S


def skew_config(tmp_path, root):
    return write_config(tmp_path / "lw.ini", root,
                        policy={"stuck_after": f"{int(STUCK_AFTER_S * 1000)}ms"},
                        scan={"rescan_interval": f"{int(RESCAN_S * 1000)}ms"})


class SkewedWriter:
    """Kudu appending to the build log every period_s, each write stamped
    with the share's clock: skew_s away from ours (None: not re-stamped)."""

    def __init__(self, record, skew_s, period_s=0.2):
        self.record = record
        self.skew_s = skew_s
        self.period_s = period_s
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.writes = 0
        self.last = None
        self.error = None

    def _run(self):
        try:
            while True:
                mtime = None if self.skew_s is None else time.time() + self.skew_s
                append_log_at(self.record, mtime)
                self.last = time.monotonic()
                self.writes += 1
                if self.stop_event.wait(self.period_s):
                    return
        except OSError as e:  # the record vanished: reported by the test
            self.error = e

    def start(self):
        self.thread.start()
        wait_for(lambda: self.writes > 0, 5, "the first write")
        return self

    def stop(self):
        self.stop_event.set()
        self.thread.join(timeout=5)


def assert_live_kept(site, agent, writer):
    assert present(site, STUCK_PATHS) == STUCK_PATHS, \
        f"a live deployment was touched:\n{agent.tail()}"
    assert agent.removed() == []
    assert agent.count(r"stuck deployment:") == 0, agent.tail()
    assert writer.error is None, writer.error


def wait_stuck_after(agent):
    since = time.monotonic()
    wait_for(lambda: time.monotonic() - since >= STUCK_AFTER_S + 1, 15,
             "stuck_after of activity")
    agent.wait_fresh_scans(2)


def measure_clearing(site, agent, last_write, what):
    wait_for(lambda: gone(site, STUCK_PATHS), STUCK_AFTER_S + 2 * RESCAN_S + 10,
             "the deployment to be cleared once it stopped", agent.tail)
    took = time.monotonic() - last_write
    print(f"{what}: cleared {took:.3f}s after its last write (stuck_after {STUCK_AFTER_S}s)")
    # Only the agent's own watch can tell it stopped: never before stuck_after.
    assert took >= STUCK_AFTER_S - 0.05, f"removed before stuck_after\n{agent.tail()}"
    assert took <= STUCK_AFTER_S + 2 * RESCAN_S + 1, agent.tail()
    assert agent.wait_removed(STUCK_PATHS) == STUCK_PATHS


# Bounds how late the clearing comes (measure_clearing): one at a time.
@pytest.mark.serial
@pytest.mark.parametrize("skew_s", [3 * HOUR_S, -10 * DAY_S], ids=["3h-ahead", "10d-behind"])
def test_skewed_mtimes_live_deployment_kept_then_cleared_by_the_agents_watch(
        site, agents, tmp_path, skew_s):
    build_finished_site(site)
    add_stuck_deployment(site)
    # Every file of the running deployment as the skewed share stamped it.
    age_tree(site / "locks", -skew_s)
    age_tree(site / "deployments" / TEMP_STUCK, -skew_s)
    writer = SkewedWriter(site / "deployments" / TEMP_STUCK, skew_s).start()
    try:
        agent = start_agent(agents, skew_config(tmp_path, site))
        wait_stuck_after(agent)
        assert_live_kept(site, agent, writer)
    finally:
        writer.stop()
    if skew_s < 0:
        measure_clearing(site, agent, writer.last, f"mtimes {skew_s:+d}s, writes stopped")
        return
    # Stamped 3 h ahead: still in the future after the writes stop, so each
    # scan counts a change and the deployment stays for as long as they are.
    since = time.monotonic()
    wait_for(lambda: time.monotonic() - since >= 2 * STUCK_AFTER_S, 15, "2 x stuck_after")
    agent.wait_fresh_scans(2)
    assert_live_kept(site, agent, writer)


def test_lock_expiry_years_ahead_does_not_hold_a_stuck_deployment(site, agents, tmp_path):
    build_finished_site(site)
    add_stuck_deployment(site, expiry=utc_in(5 * 365 * DAY_S))
    agent = start_agent(agents, skew_config(tmp_path, site))
    wait_for(lambda: gone(site, STUCK_PATHS), STUCK_AFTER_S + 2 * RESCAN_S + 10,
             "the stuck deployment to be cleared", agent.tail)
    m = agent.wait_for_log(r"stuck deployment: (.*); cleaning up")
    took = log_time(m.string) - log_time(next(line for line in agent.log_lines()
                                               if "scan 1 done" in line))
    print(f"lockExpiry 5 years ahead: cleared {took:.3f}s after the agent's first scan "
          f"(stuck_after {STUCK_AFTER_S}s)")
    assert took >= STUCK_AFTER_S - 0.2, agent.tail()
    assert "watched with no change" in m.group(1) and "stuck_after" in m.group(1), m.string
    assert agent.wait_removed(STUCK_PATHS) == STUCK_PATHS


def libfaketime_path():
    found = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))
    return found[0] if found else None


# Bounds how late the clearing comes (measure_clearing): one at a time.
@pytest.mark.serial
def test_wall_clock_jumping_hours_ahead_keeps_a_live_deployment(site, agents, tmp_path):
    """libfaketime moves the agent's wall clock (CLOCK_REALTIME) 3 h ahead in
    the middle of the run; the monotonic clock and file times stay true. The
    deployment's fresh log lines now look 3 h old by the agent's clock."""
    lib = libfaketime_path()
    if not lib:
        pytest.skip("libfaketime is not installed (apt-get install libfaketime; "
                    "see packaging/deps-robust.txt)")
    offset_file = tmp_path / "faketime-offset"
    offset_file.write_text("+0\n")
    env = clean_env(LD_PRELOAD=lib, FAKETIME_TIMESTAMP_FILE=offset_file,
                    FAKETIME_NO_CACHE=1,              # read the file at every call
                    FAKETIME_DONT_FAKE_MONOTONIC=1,   # a wall clock jump only
                    NO_FAKE_STAT=1)                   # file times stay the share's

    build_finished_site(site)
    add_stuck_deployment(site)
    writer = SkewedWriter(site / "deployments" / TEMP_STUCK, None).start()
    try:
        agent = start_agent(agents, skew_config(tmp_path, site), env=env)
        agent.wait_scan(2)
        first = agent.log_lines()[0]
        if abs(log_time(first) - time.time()) > 600:
            pytest.skip(f"libfaketime gave the agent a wrong clock from the start: {first}")

        start = len(agent.log_lines())
        jumped_at = time.monotonic()
        offset_file.write_text("+3h\n")

        def jumped():
            lines = agent.log_lines()[start:]
            return any(log_time(line) - time.time() > 2.5 * HOUR_S for line in lines
                       if "scan " in line)
        try:
            wait_for(jumped, 5, "the agent's clock to jump 3 h ahead")
        except AssertionError:
            pytest.skip("libfaketime did not move the running agent's clock "
                        f"(LD_PRELOAD={lib}, FAKETIME_TIMESTAMP_FILE): cannot test a jump")
        wait_stuck_after(agent)
        print(f"wall clock jumped +3h; live deployment watched "
              f"{time.monotonic() - jumped_at:.1f}s after the jump")
        assert_live_kept(site, agent, writer)
    finally:
        writer.stop()
    measure_clearing(site, agent, writer.last, "wall clock 3 h ahead, writes stopped")
    stamp = datetime.datetime.fromtimestamp(log_time(agent.log_lines()[-1]),
                                            datetime.timezone.utc)
    print(f"the agent's last log line is stamped {stamp.isoformat()}")
