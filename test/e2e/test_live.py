"""A slow deployment that is still alive must never be touched, however
long it runs, as long as it shows activity; once the activity stops it is
stuck like any other."""

import os
import threading
import time

import pytest

from conftest import (ACT_TIMEOUT_S, EX_OK, HOUR_S, TEMP_STUCK, age_tree, append_log,
                      build_finished_site, gone, make_file_lock, make_lock, make_pending,
                      make_record, run_cli, start_agent, settled_tree_state, tree_state, wait_for, without,
                      write_config)

LIVE_PATHS = ["locks/deployment", "locks/status.lock", "deployments/pending",
              f"deployments/{TEMP_STUCK}"]


class Activity:
    """Does `step` every 300 ms on a thread until stopped."""

    def __init__(self, step, period_s=0.3):
        self.step = step
        self.period_s = period_s
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.steps = 0

    def _run(self):
        while not self.stop_event.wait(self.period_s):
            self.step()
            self.steps += 1

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.stop_event.set()
        self.thread.join(timeout=5)


def bump_mtime(path):
    os.utime(path, None)


ACTIVITY = {
    # Kudu appends to the record's log.log as the build goes on.
    "log-appended": lambda root: append_log(root / "deployments" / TEMP_STUCK),
    # Every status.xml save bumps active's mtime (Kudu's ETag).
    "active-bumped": lambda root: bump_mtime(root / "deployments" / "active"),
    # CI keeps touching pending while it waits for the lock.
    "pending-touched": lambda root: bump_mtime(root / "deployments" / "pending"),
}


@pytest.fixture
def live_site(site):
    """A deployment holding the lock, every file aged an hour: only the
    activity the test makes tells that it is alive."""
    build_finished_site(site)
    make_lock(site, expiry=20 * 60)
    make_file_lock(site, "status.lock", acquired_s=-HOUR_S)
    make_pending(site)
    make_record(site, TEMP_STUCK, "Building", False, True, received=-HOUR_S)
    age_tree(site, HOUR_S)
    return site


@pytest.mark.parametrize("kind", ACTIVITY.keys())
def test_slow_live_deployment_is_left_alone_until_it_stops(live_site, hook, agents,
                                                            tmp_path, kind):
    site = live_site
    cfg = write_config(tmp_path / "lw.ini", site, policy={"stuck_after": "2s"},
                       hook={"command": hook.command()})
    activity = Activity(lambda: ACTIVITY[kind](site)).start()
    try:
        started = time.monotonic()
        agent = start_agent(agents, cfg)
        # Well past stuck_after (2s) + quiet_period (1s), then scans that
        # began after that moment: a wrong verdict would have acted by now.
        wait_for(lambda: time.monotonic() - started >= 3.5, 10, "3.5 s of activity")
        agent.wait_fresh_scans(2)
        assert all(os.path.lexists(site / p) for p in LIVE_PATHS), \
            f"a live deployment was touched:\n{agent.tail()}"
        assert agent.removed() == []
        assert agent.count(r"would remove") == 0
        assert hook.count() == 0
        # report judges from mtimes alone; the activity is recent.
        r = run_cli(["report", "-c", cfg])
        assert r.returncode == EX_OK, r.stdout + r.stderr
        assert activity.steps >= 10
    finally:
        activity.stop()

    # With the activity gone, the same deployment is stuck after stuck_after.
    before = tree_state(site)
    wait_for(lambda: gone(site, LIVE_PATHS), ACT_TIMEOUT_S,
             "the deployment to be cleared once its activity stopped", agent.tail)
    agent.wait_for_log(r"hook exited with status 0")
    assert settled_tree_state(site) == without(before, LIVE_PATHS), agent.tail()
    assert hook.count() == 1
