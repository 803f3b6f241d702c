"""Issue 3, item 2: folders replaced under the watch. inotify watches an
inode, not a name: when deployments/, locks/ or the whole site root is
deleted and created again, or renamed away and back, the old watch is dead
and the agent must watch the new folder. rescan_interval is a minute here,
so only inotify events can bring the scan that sees the next stuck
deployment in time: a dead watch shows as a deployment left for a minute."""

import os
import re
import shutil
import time

import pytest

from conftest import (HOUR_S, TEMP_STUCK, age_tree, build_finished_site, gone,
                      make_file_lock, make_lock, make_pending, make_record,
                      make_skeleton, start_agent, wait_for, write_config)
from robust_util import STUCK_PATHS, add_stuck_deployment, unwatched

STUCK_AFTER_S = 2.0
# Far longer than any step of these tests: no rescan comes to the rescue.
RESCAN_S = 60
# A deployment that appears is activity: it may go stuck_after later.
PROMPT_S = STUCK_AFTER_S + 3.0


def stuck_in_deployments(root):
    """A temp record still Building and pending, nothing in locks/."""
    make_pending(root)
    make_record(root, TEMP_STUCK, "Building", False, True, received=-HOUR_S)
    age_tree(root, HOUR_S)
    return ["deployments/pending", f"deployments/{TEMP_STUCK}"]


def stuck_in_locks(root):
    """A lock folder (lockExpiry ahead) and status.lock, no record running."""
    make_lock(root, expiry=20 * 60)
    make_file_lock(root, "status.lock", acquired_s=-HOUR_S)
    age_tree(root, HOUR_S)
    return ["locks/status.lock", "locks/deployment"]  # removal order: the lock last


def stuck_everywhere(root):
    add_stuck_deployment(root)
    return STUCK_PATHS


def replace_folder(root, name, away):
    shutil.rmtree(root / name)
    (root / name).mkdir()


def rename_away_new_folder(root, name, away):
    os.rename(root / name, away / name)
    (root / name).mkdir()


def swap_in_new_root(root, away):
    """The site root replaced: a new tree built beside it takes its name
    (the old one is renamed away first, as `mv site old; mv new site`)."""
    fresh = root.parent / "site.new"
    build_finished_site(fresh)
    os.rename(root, away / "site.old")
    os.rename(fresh, root)


@pytest.mark.parametrize("shape", ["finished", "running"])
def test_every_folder_is_watched(site, agents, tmp_path, shape):
    """The premise of the tests below, read from the kernel's own list of the
    agent's inotify watches: the root, locks/, deployments/ and the lock
    folder are watched, also while a deployment runs (its record has no
    manifest yet, its lock folder exists)."""
    build_finished_site(site)
    folders = [site, site / "locks", site / "deployments"]
    if shape == "running":
        add_stuck_deployment(site, age_s=0)
        folders.append(site / "locks" / "deployment")
    cfg = write_config(tmp_path / "lw.ini", site, policy={"stuck_after": "1h"},
                       scan={"rescan_interval": "200ms"})
    agent = start_agent(agents, cfg)
    agent.wait_scan(3)
    missing = unwatched(agent.pid, folders)
    assert not missing, f"not watched after 3 scans: {missing}\n{agent.tail()}"


class Case:
    def __init__(self, name, replace, rearmed, stuck):
        self.name = name
        self.replace = replace      # (agent, root, away) -> None
        self.rearmed = rearmed      # folders whose watch must be armed again
        self.stuck = stuck          # root -> paths of the stuck deployment


def renamed_away_and_back(agent, root, away, name):
    """Renamed away, seen gone by the agent, renamed back: the same inode
    comes back under the name, watched again through the name."""
    start = len(agent.log_lines())
    os.rename(root / name, away / name)
    # The agent saw it gone: its watch of that folder was dropped.
    agent.wait_for_log(r"the site tree changed", start=start)
    os.rename(away / name, root / name)


CASES = [
    Case("deployments-deleted-and-recreated",
         lambda agent, root, away: replace_folder(root, "deployments", away),
         ["deployments"], stuck_in_deployments),
    Case("locks-deleted-and-recreated",
         lambda agent, root, away: replace_folder(root, "locks", away),
         ["locks"], stuck_in_locks),
    Case("deployments-renamed-away-and-back",
         lambda agent, root, away: renamed_away_and_back(agent, root, away, "deployments"),
         ["deployments"], stuck_in_deployments),
    Case("locks-renamed-away-and-back",
         lambda agent, root, away: renamed_away_and_back(agent, root, away, "locks"),
         ["locks"], stuck_in_locks),
    Case("deployments-renamed-away-new-one-made",
         lambda agent, root, away: rename_away_new_folder(root, "deployments", away),
         ["deployments"], stuck_in_deployments),
    Case("both-deleted-and-recreated",
         lambda agent, root, away: (replace_folder(root, "locks", away),
                                    replace_folder(root, "deployments", away)),
         ["locks", "deployments"], stuck_everywhere),
    Case("site-root-replaced",
         lambda agent, root, away: swap_in_new_root(root, away),
         ["", "locks", "deployments"], stuck_everywhere),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_next_stuck_deployment_in_replaced_folders_is_handled_promptly(site, agents,
                                                                       tmp_path, case):
    build_finished_site(site)
    away = tmp_path / "away"
    away.mkdir()
    cfg = write_config(tmp_path / "lw.ini", site,
                       policy={"stuck_after": f"{int(STUCK_AFTER_S * 1000)}ms",
                               "quiet_period": "1s"},
                       scan={"rescan_interval": f"{RESCAN_S}s"})
    started = time.monotonic()
    agent = start_agent(agents, cfg)
    agent.wait_scan(1)
    for rel in case.rearmed:
        agent.wait_for_log(r"debug: watching " + re.escape(os.path.join(str(site), rel).rstrip("/")) + "$")

    start = len(agent.log_lines())
    case.replace(agent, site, away)
    # Each replaced folder is watched again, through its name.
    for rel in case.rearmed:
        agent.wait_for_log(r"debug: watching " + re.escape(os.path.join(str(site), rel).rstrip("/")) + "$",
                           start=start, timeout=PROMPT_S)

    paths = case.stuck(site)
    made = time.monotonic()
    wait_for(lambda: gone(site, paths), PROMPT_S,
             f"the stuck deployment made in the new folders ({paths}) to be cleared "
             f"within {PROMPT_S}s (rescan_interval is {RESCAN_S}s: only inotify can "
             "bring the scan that sees it)", agent.tail)
    took = time.monotonic() - made
    print(f"{case.name}: cleared {took:.3f}s after it was made (stuck_after {STUCK_AFTER_S}s)")
    assert time.monotonic() - started < RESCAN_S - 5, "a rescan may have helped: too slow a run"
    assert sorted(agent.wait_removed(paths)) == sorted(paths)


def test_site_root_missing_for_a_while_then_made_again(site, agents, tmp_path):
    """The root renamed away, the agent sees it missing, then a new root is
    made at the same path. Nothing inotify watched exists any more, so a
    prompt return needs the agent to watch for the root's name (its parent)
    or to look more often while the root is missing."""
    build_finished_site(site)
    away = tmp_path / "away"
    away.mkdir()
    cfg = write_config(tmp_path / "lw.ini", site,
                       policy={"stuck_after": f"{int(STUCK_AFTER_S * 1000)}ms",
                               "quiet_period": "1s"},
                       scan={"rescan_interval": f"{RESCAN_S}s"})
    started = time.monotonic()
    agent = start_agent(agents, cfg)
    agent.wait_scan(1)

    os.rename(site, away / "site.old")
    agent.wait_for_log(r"site root .*: No such file or directory; removing nothing until it is back")
    make_skeleton(site)
    build_finished_site(site)
    add_stuck_deployment(site)
    made = time.monotonic()
    try:
        agent.wait_for_log(r"site root .* is back; watching it afresh", timeout=PROMPT_S)
        wait_for(lambda: gone(site, STUCK_PATHS), PROMPT_S,
                 f"the stuck deployment in the new root to be cleared within {PROMPT_S}s", agent.tail)
    finally:
        print(f"root made again: waited {time.monotonic() - made:.3f}s")
    assert time.monotonic() - started < RESCAN_S - 5, "a rescan may have helped: too slow a run"
    assert agent.wait_removed(STUCK_PATHS) == STUCK_PATHS
