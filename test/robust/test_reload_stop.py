"""Reload and stop (issue 3, item 6): SIGHUP with a valid new config takes
effect (a new root and its watches, new timings); with an invalid one the
old config stays and the error names the file and line; SIGTERM during a
large removal ends within 2 s with nothing half-judged left, and a restarted
agent finishes the trash."""

import os
import re
import signal
import time

from conftest import (ACT_TIMEOUT_S, STUCK_LEFTOVERS, TEMP_STUCK, Pause,
                      build_finished_site, build_stuck_site, gone, make_skeleton,
                      pause_shim, start_agent, state_diff, trash_of, settled_tree_state, tree_state, wait_for,
                      without, write_config)  # noqa: F401 (pause_shim: a fixture)
from faults_util import StopFirst, count_entries, fill_folder, tmpfs, wait_cleared

BIG_FILES = 200_000


def reload_and_wait(agent, cfg_path):
    """SIGHUP, then the agent's `reloaded configuration from <file>`; returns
    the log index from which the new configuration's lines come."""
    mark = len(agent.log_lines())
    agent.send(signal.SIGHUP)
    agent.wait_for_log(r"reloaded configuration from " + str(cfg_path), timeout=5, start=mark)
    return mark


def test_reload_to_a_new_root_moves_the_watches_there(tmp_path, agents):
    """With a rescan_interval of a minute, only inotify can make the agent
    look at the new root promptly: a stuck deployment made there after the
    reload is cleared within stuck_after and a margin, and the old root is
    no longer judged at all."""
    old_root, new_root = tmp_path / "old", tmp_path / "new"
    build_finished_site(old_root)
    make_skeleton(new_root)
    timings = {"policy": {"stuck_after": "2s"},
               "scan": {"rescan_interval": "60s"}}
    cfg = write_config(tmp_path / "lw.ini", old_root, **timings)
    agent = start_agent(agents, cfg)
    agent.wait_scan(1)

    write_config(cfg, new_root, **timings)
    scans_before = agent.scans_done()
    mark = reload_and_wait(agent, cfg)
    agent.wait_for_log(r"watching " + str(new_root) + r" \(", timeout=5, start=mark)
    # The first scan of the new root arms its watches.
    agent.wait_scan(scans_before + 1)

    build_stuck_site(old_root)
    old_state = tree_state(old_root)
    created = time.monotonic()
    build_stuck_site(new_root)
    wait_for(lambda: gone(new_root, STUCK_LEFTOVERS), 2 + 4,
             "the stuck tree in the new root to be cleared through its watches", agent.tail)
    print(f"[reload] new root cleared {time.monotonic() - created:.2f} s after the stuck tree "
          "was made (stuck_after 2 s watched, rescan_interval 60 s)")
    assert agent.wait_removed(STUCK_LEFTOVERS) == STUCK_LEFTOVERS
    # The old root was made stuck first: had it still been judged, it would
    # have been cleared by now.
    assert tree_state(old_root) == old_state, state_diff(old_state, tree_state(old_root))


def test_reload_with_a_shorter_stuck_after_takes_effect(site, agents, tmp_path):
    build_stuck_site(site)
    before = tree_state(site)
    cfg = write_config(tmp_path / "lw.ini", site, policy={"stuck_after": "1h"})
    agent = start_agent(agents, cfg)
    agent.wait_fresh_scans(3)
    assert tree_state(site) == before, "removed before the 1 h stuck_after"

    write_config(cfg, site, policy={"stuck_after": "1s"})
    reloaded = time.monotonic()
    mark = reload_and_wait(agent, cfg)
    agent.wait_for_log(r"watching .*stuck_after 1s", timeout=5, start=mark)
    # The agent has watched the tree unchanged for longer than 1 s already:
    # the new stuck_after is over at once, the cleanup follows the next scan.
    wait_for(lambda: gone(site, STUCK_LEFTOVERS), 3, "the cleanup under the new stuck_after",
             agent.tail)
    print(f"[reload] cleared {time.monotonic() - reloaded:.2f} s after SIGHUP set stuck_after 1s")
    wait_cleared(agent, site, STUCK_LEFTOVERS, "the trash to be emptied")
    assert settled_tree_state(site) == without(before, STUCK_LEFTOVERS)


# (id, the file's lines after [site] root, the line the error must name, a
# fragment of the message)
# Lines 1 and 2 are `[site]` and `root = ...`.
BAD_CONFIGS = [
    ("bad-duration", ["[policy]", "stuck_after = 2s", "quiet_period = 5 parsecs"], 5,
     "quiet_period"),
    ("unknown-key", ["[policy]", "quite_period = 1s"], 4, "quite_period"),
    ("unknown-section", ["[hooks]", "command = true"], 4, "[hooks]"),
    ("out-of-range", ["[scan]", "rescan_interval = 10ms"], 4, "rescan_interval"),
    ("syntax", ["[policy", "stuck_after = 2s"], 3, "[policy"),
    ("bad-boolean", ["[policy]", "dry_run = maybe"], 4, "dry_run"),
]


def test_reload_with_an_invalid_file_keeps_the_old_configuration(site, hook, agents, tmp_path):
    build_finished_site(site)
    # Rescans every 200 ms: each bad reload is followed by a fresh scan.
    cfg = write_config(tmp_path / "lw.ini", site, hook={"command": hook.command()},
                       scan={"rescan_interval": "200ms"})
    agent = start_agent(agents, cfg)
    agent.wait_scan(1)

    elsewhere = tmp_path / "elsewhere"
    make_skeleton(elsewhere)
    for name, lines, line_no, fragment in BAD_CONFIGS:
        cfg.write_text("\n".join(["[site]", f"root = {elsewhere}"] + lines) + "\n")
        mark = len(agent.log_lines())
        agent.send(signal.SIGHUP)
        m = agent.wait_for_log(r"reload failed, keeping the old configuration: (.*)",
                               timeout=5, start=mark)
        assert f"{cfg}:{line_no}" in m.group(1) and fragment in m.group(1), \
            f"{name}: the error does not name {cfg}:{line_no} and {fragment!r}: {m.group(0)}"
        agent.wait_fresh_scans(1)
        assert agent.running()
    assert agent.count(r"reloaded configuration") == 0

    # The old root, timings and hook are still in force.
    build_stuck_site(site)
    wait_for(lambda: gone(site, STUCK_LEFTOVERS), ACT_TIMEOUT_S, "the old root to be cleared",
             agent.tail)
    agent.wait_for_log(r"hook exited with status 0")
    assert os.path.realpath(hook.runs()[0]["LOCKWARDEN_SITE_ROOT"]) == os.path.realpath(site)
    assert tree_state(elsewhere) == {"locks": ("dir", None, None),
                                     "deployments": ("dir", None, None)}


def test_sigterm_during_a_large_removal_then_a_restart_finishes_the_trash(tmp_path, agents,
                                                                          pause_shim):
    # On a tmpfs: 200,000 files are made in about a second there.
    with tmpfs(tmp_path / "site", "1g") as site, StopFirst() as stops:
        build_stuck_site(site)
        before = tree_state(site)
        cfg = write_config(tmp_path / "lw.ini", site)

        # A running record with that many files is never judged stuck
        # (README, "What lockwarden does"), and files made while the cleanup
        # runs are a sign of life; so they are made in the record's trash
        # once the cleanup has committed: the agent is held as it writes its
        # third note ("moving", "committed", "done").
        pause = Pause(pause_shim, tmp_path / "pause", "rename", "note.json", at=3)
        agent = stops.add(start_agent(agents, cfg, name="first", env=pause.env()))
        pause.wait_paused(detail=agent.tail)
        # The trash name carries the cleanup's token (agent/reap.h).
        trashes = trash_of(site / "deployments", TEMP_STUCK)
        assert len(trashes) == 1, trashes
        trash = trashes[0]
        fill_folder(trash, BIG_FILES)
        trash_entries = count_entries(trash)
        pause.release()

        agent.wait_for_log(rf"removed deployments/{TEMP_STUCK} \(moved aside")
        sent = time.monotonic()
        agent.send(signal.SIGTERM)
        rc = agent.wait_exit(2.0)
        took = time.monotonic() - sent
        print(f"[stop] exited {rc} {took * 1000:.0f} ms after SIGTERM during the sweep")
        assert rc == 0, agent.tail()

        # The record was committed: it is never back under its own name.
        assert not os.path.lexists(site / "deployments" / TEMP_STUCK), agent.tail()
        assert trash.exists(), ("the sweep was over before SIGTERM, so this run proved nothing: "
                                f"make the trash bigger than {BIG_FILES} files")
        print(f"[stop] trash left with {count_entries(trash)} of {trash_entries} entries")
        # Every other leftover is either gone whole or untouched.
        for rel in STUCK_LEFTOVERS[:-1]:
            if os.path.lexists(site / rel):
                seen = {k: v for k, v in tree_state(site).items()
                        if k == rel or k.startswith(rel + "/")}
                want = {k: v for k, v in before.items() if k == rel or k.startswith(rel + "/")}
                assert seen == want, f"{rel} was half removed:\n{state_diff(want, seen)}"

        # The restarted agent finishes that trash, under its own token: its
        # committed note lists it.
        again = stops.add(start_agent(agents, cfg, name="restarted"))
        wait_cleared(again, site, STUCK_LEFTOVERS,
                     "the restarted agent to finish the cleanup and the trash")
        again.wait_for_log(rf"finished removing deployments/{re.escape(trash.name)} "
                           r"\(\d+ entries\)")
        assert settled_tree_state(site) == without(before, STUCK_LEFTOVERS)
        again.send(signal.SIGTERM)
        assert again.wait_exit(2.0) == 0
    assert not stops.complaints, stops.complaints
