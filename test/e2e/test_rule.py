"""Issue 18: one rule for acting. A deployment is stuck only when this agent
has itself watched everything its verdict rests on stay unchanged for
stuck_after; an expired (or missing) lockExpiry is never grounds for a
removal or a restart. The timings are read from the agent's own log lines
(its `scan N done` lines and the cleanup's), never from the test's sleeps.

The configuration sets quiet_period = 1s as an old file would: it still
loads, is said to have no effect, and changes nothing."""

import threading
import time

import pytest

from conftest import (TEMP_STUCK, append_log, build_finished_site, make_file_lock, make_lock,
                      make_record, start_agent, wait_for, write_config)

# The rule itself, both ways: part of make check-fast's smoke run.
pytestmark = pytest.mark.smoke

STUCK_AFTER_S = 3.0
QUIET_PERIOD_IGNORED = r"quiet_period no longer has any effect: nothing is removed before " \
                       r"stuck_after has been watched"


def rule_config(tmp_path, site, hook):
    return write_config(tmp_path / "lw.ini", site,
                        policy={"stuck_after": f"{int(STUCK_AFTER_S)}s", "quiet_period": "1s"},
                        hook={"command": hook.command()})


class Build:
    """Kudu's build writing its log.log every 0.5 s, with a silent step of
    silent_s (shorter than stuck_after, longer than the old quiet_period)
    after every busy_s of writes: a quiet npm install between noisy ones."""

    def __init__(self, record, busy_s=2.0, silent_s=2.0):
        self.record, self.busy_s, self.silent_s = record, busy_s, silent_s
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.writes = 0

    def _run(self):
        while not self.stop_event.is_set():
            busy_until = time.monotonic() + self.busy_s
            while time.monotonic() < busy_until:
                append_log(self.record, "npm notice: still installing")
                self.writes += 1
                if self.stop_event.wait(0.5):
                    return
            self.stop_event.wait(self.silent_s)

    def __enter__(self):
        self.thread.start()
        wait_for(lambda: self.writes > 0, 5, "the build's first write")
        return self

    def __exit__(self, *exc):
        self.stop_event.set()
        self.thread.join(timeout=5)


def test_an_expired_lock_of_a_live_build_is_never_removed(site, agents, tmp_path, hook):
    """Kudu's lock expires 25 minutes after it is taken and is never renewed,
    so a longer build holds an expired lock while it runs. Main removed that
    lock after quiet_period of silence (a quiet step) and ran the hook."""
    build_finished_site(site)
    record = make_record(site, TEMP_STUCK, "Building", False, True, received=-30 * 60)
    make_lock(site, expiry=-5 * 60)
    make_file_lock(site, "status.lock", acquired_s=-30 * 60)
    with Build(record):
        agent = start_agent(agents, rule_config(tmp_path, site, hook))
        # Watched for three times stuck_after, by the agent's own scans.
        wait_for(lambda: len(agent.scan_times()) > 1 and
                 agent.scan_times()[-1] - agent.scan_times()[0] >= 3 * STUCK_AFTER_S,
                 6 * STUCK_AFTER_S + 10, "the agent to watch for 3 x stuck_after", agent.tail)
    assert (site / "locks" / "deployment" / "info.lock").is_file(), agent.tail()
    assert (site / "deployments" / TEMP_STUCK).is_dir()
    assert agent.removed() == [], agent.tail()
    assert agent.count(r"stuck deployment:") == 0, agent.tail()
    assert hook.count() == 0, agent.tail()
    assert agent.count(QUIET_PERIOD_IGNORED) == 1, agent.tail()


def test_a_lock_with_no_lockexpiry_waits_stuck_after_watched(site, agents, tmp_path, hook):
    """An info.lock with no lockExpiry key is unknown, not expired: main
    removed a lock taken seconds before after quiet_period. Under the rule
    the silent tree goes only once stuck_after has been watched unchanged,
    the lock folder last."""
    build_finished_site(site)
    make_record(site, TEMP_STUCK, "Building", False, True, received=-20)
    (site / "locks" / "deployment").mkdir(parents=True)
    (site / "locks" / "deployment" / "info.lock").write_text(
        '{"heldByPID":83,"heldByTID":45,"heldByOp":"Performing deployment",'
        '"heldByWorker":"abc123"}')
    make_file_lock(site, "status.lock", acquired_s=-20)
    agent = start_agent(agents, rule_config(tmp_path, site, hook))
    removed = agent.wait_removed(["locks/deployment", f"deployments/{TEMP_STUCK}"],
                                 timeout=STUCK_AFTER_S + 15)
    assert removed[-1] == "locks/deployment", removed
    first_scan = agent.scan_times()[0]
    acted = agent.line_time(r"stuck deployment:")
    assert acted is not None, agent.tail()
    # The first scan starts the watch; its line comes a moment after the
    # scan began, so allow the scan's own duration.
    assert acted - first_scan >= STUCK_AFTER_S - 0.2, \
        f"acted {acted - first_scan:.3f}s after the first scan\n{agent.tail()}"
    m = agent.wait_for_log(r"stuck deployment: (.*)")
    assert "watched with no change" in m.group(1) and "lockExpiry" not in m.group(1), m.string
