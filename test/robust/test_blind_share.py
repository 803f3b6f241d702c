"""Issue 3, item 1: blind storage. On App Service, /home is a share Kudu
writes from another container: inotify sees none of it. Here the agent
watches a bindfs view of a backing folder and the test, playing Kudu, only
ever writes the backing folder, so the agent gets no inotify event at all
and must live on its rescans: a stuck deployment is still cleared within
rescan_interval (plus a small margin) of the moment it may go, and a live
one is never touched."""

import threading
import time

import pytest

from conftest import (EX_OK, HOUR_S, TEMP_STUCK, build_finished_site, gone, make_file_lock,
                      run_cli, start_agent, tree_state, wait_for, without, write_config)
from robust_util import (STUCK_PATHS, add_live_deployment, add_stuck_deployment,
                         append_log_at, bind_mounts, bind_site, present,  # noqa: F401
                         scan_times)

RESCAN_S = 1.0
QUIET_S = 1.0
STUCK_AFTER_S = 3.0
# bindfs keeps attributes for 1 s (FUSE's default attr_timeout), as the
# share's client does (cifs actimeo=1): a change can show that much later.
ATTR_CACHE_S = 1.0


def blind_config(tmp_path, root, **extra):
    return write_config(tmp_path / "lw.ini", root,
                        policy={"stuck_after": f"{int(STUCK_AFTER_S * 1000)}ms"},
                        scan={"rescan_interval": f"{int(RESCAN_S * 1000)}ms"}, **extra)


def next_scan_after(agent, n, timeout=RESCAN_S * 3 + 2):
    """Waits for scan n+1 and returns its wall time."""
    agent.wait_scan(n + 1, timeout=timeout)
    return dict(scan_times(agent))[n + 1]


def test_changes_through_the_backing_folder_bring_no_scan_forward(bind_site, agents, tmp_path):
    """The premise of the other tests: what Kudu does through the backing
    folder reaches the agent only by its rescans, while the same change
    made through the mount brings a scan within milliseconds."""
    build_finished_site(bind_site.backing)
    agent = start_agent(agents, blind_config(tmp_path, bind_site.mountpoint))
    agent.wait_scan(2)

    backing = bind_site.backing
    changes = [
        ("a file created in deployments/", lambda: (backing / "deployments" / "x.tmp").write_text("x")),
        ("a lock file created in locks/", lambda: make_file_lock(backing, "hooks.lock")),
        ("a file deleted from deployments/", lambda: (backing / "deployments" / "x.tmp").unlink()),
    ]
    delays = []
    for what, change in changes:
        n = agent.scans_done()
        changed_at = time.time()
        change()
        scanned_at = next_scan_after(agent, n)
        delays.append((what, scanned_at - changed_at))
    print("blind changes -> next scan (s): " +
          ", ".join(f"{what}: {d:.3f}" for what, d in delays))
    for what, d in delays:
        # Just after scan n the next one is a whole rescan_interval away;
        # an inotify event would have brought it within ~10 ms.
        assert d >= RESCAN_S * 0.5, \
            f"{what} through the backing folder brought a scan {d:.3f}s later: " \
            f"the agent is not blind to it, so this test proves nothing\n{agent.tail()}"

    # Control: the same kind of change through the mount is seen at once.
    n = agent.scans_done()
    changed_at = time.time()
    (bind_site.mountpoint / "deployments" / "y.tmp").write_text("y")
    d = next_scan_after(agent, n) - changed_at
    print(f"change through the mount -> next scan: {d:.3f}s")
    assert d < RESCAN_S * 0.5, \
        f"a change through the mount brought no early scan ({d:.3f}s)\n{agent.tail()}"
    assert agent.removed() == []


@pytest.mark.parametrize("age_s", [0, HOUR_S], ids=["died-at-once", "appears-old"])
def test_stuck_deployment_made_blind_is_cleared_within_a_rescan(bind_site, agents, tmp_path,
                                                                 age_s):
    """A deployment that appears and never changes again goes stuck_after
    after the scan that saw it appear, whatever its file times say (fresh:
    died-at-once; an hour old: appears-old)."""
    backing = bind_site.backing
    build_finished_site(backing)
    agent = start_agent(agents, blind_config(tmp_path, bind_site.mountpoint))
    agent.wait_scan(2)

    add_stuck_deployment(backing, age_s=age_s)
    ready = time.monotonic()
    before = tree_state(backing)
    wait_for(lambda: gone(backing, STUCK_PATHS), STUCK_AFTER_S + 2 * RESCAN_S + 10,
             "the stuck deployment to be cleared through the mount", agent.tail)
    cleared = time.monotonic()
    late = cleared - (ready + STUCK_AFTER_S)
    print(f"blind stuck deployment ({'mtimes now' if age_s == 0 else 'mtimes 1 h old'}): "
          f"cleared {cleared - ready:.3f}s after it was made, {late:.3f}s after it could go "
          f"(stuck_after {STUCK_AFTER_S}s, rescan_interval {RESCAN_S}s)")
    assert late >= -0.1, f"removed before stuck_after had passed\n{agent.tail()}"
    # Seen at the next rescan at the latest, and the decision timer fires on
    # time; the generous bound is two rescans plus the attribute cache.
    assert late <= 2 * RESCAN_S + ATTR_CACHE_S, \
        f"cleared {late:.3f}s after it could go: more than 2 rescans\n{agent.tail()}"

    # bindfs answers EINVAL to renameat2(RENAME_NOREPLACE): the folders were
    # still moved aside and emptied, nothing is left behind.
    agent.wait_for_log(r"finished removing deployments/\.lockwarden-trash-[0-9a-f]{16}-" + TEMP_STUCK)
    agent.wait_for_log(r"finished removing locks/\.lockwarden-trash-[0-9a-f]{16}-deployment")
    assert agent.wait_removed(STUCK_PATHS) == STUCK_PATHS
    after = tree_state(backing)
    assert after == without(before, STUCK_PATHS), \
        f"more than the stuck deployment changed: {sorted(set(before) ^ set(after))}"
    assert not [p for p in after if ".lockwarden-trash-" in p]


class Appender:
    """Kudu writing the build log through the backing folder, every
    period_s, until stopped; `last` is the monotonic time of the last
    append."""

    def __init__(self, record, period_s=0.2):
        self.record = record
        self.period_s = period_s
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.appends = 0
        self.last = None
        self.error = None

    def _run(self):
        try:
            while True:
                append_log_at(self.record)
                self.last = time.monotonic()
                self.appends += 1
                if self.stop_event.wait(self.period_s):
                    return
        except OSError as e:  # the record vanished: the test reports it
            self.error = e

    def start(self):
        self.thread.start()
        wait_for(lambda: self.appends > 0, 5, "the first append")
        return self

    def stop(self):
        self.stop_event.set()
        self.thread.join(timeout=5)


def test_live_deployment_made_blind_is_kept_until_its_log_stops(bind_site, agents, tmp_path):
    backing = bind_site.backing
    build_finished_site(backing)
    add_live_deployment(backing)
    appender = Appender(backing / "deployments" / TEMP_STUCK).start()
    try:
        started = time.monotonic()
        agent = start_agent(agents, blind_config(tmp_path, bind_site.mountpoint))
        # Past stuck_after + quiet_period, then two scans that began later:
        # a live deployment judged stuck would have been removed by now.
        wait_for(lambda: time.monotonic() - started >= STUCK_AFTER_S + QUIET_S + 0.5, 15,
                 "stuck_after + quiet_period of a growing log")
        agent.wait_fresh_scans(2)
        assert present(backing, STUCK_PATHS) == STUCK_PATHS, \
            f"a live deployment was touched:\n{agent.tail()}"
        assert agent.removed() == []
        assert agent.count(r"stuck deployment:") == 0
        assert appender.error is None, appender.error
        assert run_cli(["report", "-c", tmp_path / "lw.ini"]).returncode == EX_OK
    finally:
        appender.stop()

    last = appender.last
    wait_for(lambda: gone(backing, STUCK_PATHS), STUCK_AFTER_S + 2 * RESCAN_S + 10,
             "the deployment to be cleared once its log stopped", agent.tail)
    cleared = time.monotonic()
    late = cleared - (last + STUCK_AFTER_S)
    print(f"blind live deployment whose log stopped: cleared {cleared - last:.3f}s after "
          f"its last write, {late:.3f}s after stuck_after (rescan_interval {RESCAN_S}s)")
    assert late >= -0.1, f"removed before stuck_after had passed\n{agent.tail()}"
    assert late <= 2 * RESCAN_S + ATTR_CACHE_S, \
        f"cleared {late:.3f}s after it could go: more than 2 rescans\n{agent.tail()}"
    assert agent.wait_removed(STUCK_PATHS) == STUCK_PATHS
