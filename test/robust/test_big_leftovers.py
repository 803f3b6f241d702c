"""Big leftovers (issue 3, item 9): a temp-* record holding 150,000 files is
emptied off the event loop. While the trash sweep runs, the agent still
answers the systemd watchdog on time and clears a second, small incident
made meanwhile within quiet_period and a margin.

The site is a FUSE view (bindfs) over a tmpfs: the files are made quickly
in the backing tmpfs, and every removal the agent makes goes through FUSE,
which makes the sweep last seconds (the share in production is slower
still). How long the sweep took is printed.

A running record with that many entries is never judged stuck (its walk
cannot see it whole: README, "What lockwarden does"), and files made
while the cleanup runs are a sign of life (the evidence walks the record
again after the move), so the files are made in the record's trash once
the cleanup has committed: the agent is held (test/lib/pause_shim.c) as it
writes the note that says "done", the files are made, and it goes on. The
background sweep then empties that trash."""

import re
import time

import pytest

from conftest import (ACT_TIMEOUT_S, STUCK_LEFTOVERS, TEMP_STUCK, Pause, build_stuck_site,
                      gone, trash_of, tree_state, wait_for, write_config)
from faults_util import (StopFirst, bindfs, count_entries, fill_folder,  # noqa: F401 (fixtures)
                         make_second_incident, tmpfs)

# Bounds the gap between watchdog pings: one at a time.
pytestmark = pytest.mark.serial

# The issue names 100,000 files; half as many again keeps the sweep (4 to 12 s
# for 100,000 here, by load) longer than the second incident takes (2.5 s).
BIG_FILES = 150_000
TEMP_SECOND = "temp-2b3c4d5e"
WATCHDOG_USEC = 500_000
MAX_WATCHDOG_GAP_S = 0.75
QUIET_S, RESCAN_S = 1.0, 0.5
# The second incident is seen by a rescan (FUSE: no inotify), judged after
# quiet_period, then archived and moved aside through FUSE.
SECOND_MARGIN_S = RESCAN_S + 2.5


def log_index(agent, pattern):
    rx = re.compile(pattern)
    for i, line in enumerate(agent.log_lines()):
        if rx.search(line):
            return i
    return None


def test_big_record_is_swept_off_the_loop_while_watchdog_and_a_second_incident_go_on(
        tmp_path, agents, notify_socket, pause_shim):
    with tmpfs(tmp_path / "backing", "1g") as backing, \
            bindfs(backing, tmp_path / "site") as site, StopFirst() as stops:
        build_stuck_site(backing)
        cfg = write_config(tmp_path / "lw.ini", site,
                           policy={"quiet_period": f"{QUIET_S:g}s"},
                           scan={"rescan_interval": f"{RESCAN_S * 1000:g}ms"})
        # The third note of the cleanup ("moving", "committed", "done"):
        # the record is committed trash, not yet swept.
        pause = Pause(pause_shim, tmp_path / "pause", "rename", "note.json", at=3)
        env = pause.env(NOTIFY_SOCKET=notify_socket.env_value, WATCHDOG_USEC=WATCHDOG_USEC)
        agent = stops.add(agents.start(["run", "-c", cfg, "-v"], env=env,
                                       watchdog_pid_self=True))
        pause.wait_paused(detail=agent.tail)
        trashes = trash_of(backing / "deployments", TEMP_STUCK)
        assert len(trashes) == 1, trashes
        trash = f"deployments/{trashes[0].name}"
        fill_folder(backing / trash, BIG_FILES)
        big_entries = count_entries(backing / trash)
        pause.release()

        agent.wait_for_log(rf"removed deployments/{TEMP_STUCK} \(moved aside")
        sweep_seen = time.monotonic()
        before_second = tree_state(backing / "deployments" / "tools")

        # The second incident, while the sweep empties the trash.
        second = make_second_incident(backing, TEMP_SECOND)
        made = time.monotonic()
        wait_for(lambda: gone(backing, second), QUIET_S + SECOND_MARGIN_S,
                 "the second incident to be cleared during the sweep", agent.tail)
        cleared = time.monotonic()
        trash_left = count_entries(backing / trash) if (backing / trash).exists() else 0

        agent.wait_for_log(rf"finished removing {re.escape(trash)} \((\d+) entries\)",
                           timeout=120)
        swept = time.monotonic()
        wait_for(lambda: gone(backing, STUCK_LEFTOVERS + [trash]), ACT_TIMEOUT_S,
                 "every leftover and trash folder to be gone", agent.tail)
        print(f"[big] sweep of {big_entries} entries through FUSE took about "
              f"{swept - sweep_seen:.1f} s; second incident cleared "
              f"{cleared - made:.2f} s after it was made, with {trash_left} entries "
              "still in the trash")

        # The second incident was handled while the first trash was still
        # being emptied, not after it.
        assert trash_left > 0, "the sweep was over before the second incident was cleared: " \
            "this run proves nothing about handling it during a sweep"
        i_second = log_index(agent, rf"removed deployments/{TEMP_SECOND}\b")
        i_swept = log_index(agent, rf"finished removing {re.escape(trash)}")
        assert i_second is not None and i_second < i_swept, agent.tail()
        assert tree_state(backing / "deployments" / "tools") == before_second

        # The watchdog was answered all along.
        pings = [t for t in notify_socket.times("WATCHDOG", "1")
                 if sweep_seen - 1 <= t <= swept]
        gaps = [b - a for a, b in zip(pings, pings[1:])]
        print(f"[big] {len(pings)} WATCHDOG=1 during the sweep, longest gap "
              f"{max(gaps, default=0) * 1000:.0f} ms (WATCHDOG_USEC {WATCHDOG_USEC})")
        assert len(pings) >= (swept - sweep_seen) / (WATCHDOG_USEC / 1e6 / 2) * 0.8 - 1, \
            f"only {len(pings)} pings in {swept - sweep_seen:.1f} s"
        assert max(gaps) < MAX_WATCHDOG_GAP_S, \
            f"a watchdog gap of {max(gaps):.2f} s during the sweep"
    assert not stops.complaints, stops.complaints
