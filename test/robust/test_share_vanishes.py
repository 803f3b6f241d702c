"""Issue 3, item 3: the share disappears. If the site root stops being the
tree the agent was watching (the share unmounted: another filesystem, the
folder missing, locks/ and deployments/ suddenly gone), the agent says so
once and removes nothing, whatever the folder shows meanwhile; when the
tree is back it watches it afresh, so a share coming back never looks as
if it had been quiet all along: quiet_period starts again at its return."""

import os
import re
import shutil
import time

import pytest

from conftest import build_finished_site, gone, start_agent, wait_for, write_config
from robust_util import (STUCK_PATHS, add_stuck_deployment, bind_mounts,  # noqa: F401
                         log_time, present)

RESCAN_S = 0.5
QUIET_S = 2.0
STUCK_AFTER_S = 3.0
GONE_RE = r"site root .*: (?P<why>.*); removing nothing until it is back"
BACK_RE = r"site root .* is back; watching it afresh"


def vanish_config(tmp_path, root):
    return write_config(tmp_path / "lw.ini", root,
                        policy={"stuck_after": f"{int(STUCK_AFTER_S * 1000)}ms",
                                "quiet_period": f"{int(QUIET_S * 1000)}ms"},
                        scan={"rescan_interval": f"{int(RESCAN_S * 1000)}ms"})


def lines_matching(agent, pattern, start=0):
    rx = re.compile(pattern)
    return [line for line in agent.log_lines()[start:] if rx.search(line)]


def watch_a_while(agent, seconds, scans=3):
    """Lets the agent look for `seconds` and at least `scans` more scans:
    long enough for a wrong judgement (quiet_period, stuck_after) to act."""
    since = time.monotonic()
    wait_for(lambda: time.monotonic() - since >= seconds, seconds + 5, f"{seconds}s to pass")
    agent.wait_fresh_scans(scans)


def removal_after_return(agent, back_line):
    """Seconds from the `is back` line to the first removal logged after it.
    The files leave the tree a moment before the agent logs them: wait for
    the line."""
    def removed_lines():
        lines = agent.log_lines()
        after = lines[lines.index(back_line):]
        return [line for line in after if re.search(r"\bremoved (locks|deployments)/", line)]
    wait_for(removed_lines, 10, "the removal to be logged", agent.tail)
    return log_time(removed_lines()[0]) - log_time(back_line)


def test_share_unmounted_under_the_agent_and_mounted_again(bind_mounts, agents, tmp_path):
    mountpoint = tmp_path / "share"
    backing = tmp_path / "backing"
    # Underneath the mount point, hidden while the share is mounted: a tree
    # that looks stuck. Once unmounted, this is what the folder shows.
    build_finished_site(mountpoint)
    add_stuck_deployment(mountpoint)
    build_finished_site(backing)
    # (libfuse refuses to hide a folder's content unless told it may.)
    share = bind_mounts(backing, mountpoint, options=["-o", "nonempty"])
    assert not present(mountpoint, STUCK_PATHS), "the mount does not hide the folder beneath"

    agent = start_agent(agents, vanish_config(tmp_path, mountpoint))
    agent.wait_scan(2)
    problems = []

    # 1. The share goes away under the running agent.
    start = len(agent.log_lines())
    share.unmount()
    unmounted_at = time.monotonic()
    agent.wait_for_log(GONE_RE, start=start)
    watch_a_while(agent, QUIET_S + STUCK_AFTER_S + 1)
    said = lines_matching(agent, GONE_RE, start)
    print(f"unmounted for {time.monotonic() - unmounted_at:.1f}s: said {len(said)}x: "
          + " | ".join(line.split(": ", 1)[1] for line in said))
    if len(said) != 1:
        problems.append(f"the share's loss was logged {len(said)} times, not once: {said}")
    if present(mountpoint, STUCK_PATHS) != STUCK_PATHS or agent.removed():
        problems.append(
            "with the share unmounted the agent removed what the bare mount point "
            f"folder held: removed {agent.removed()} "
            f"(log: {lines_matching(agent, r'is back|stuck deployment|removed', start)})")

    # 2. Meanwhile Kudu's deployment on the share got stuck; the share is
    # mounted again. Nothing may go before quiet_period after its return.
    add_stuck_deployment(backing)
    start = len(agent.log_lines())
    share.mount()
    back = agent.wait_for_log(BACK_RE, start=start, timeout=10).string
    wait_for(lambda: gone(backing, STUCK_PATHS), QUIET_S + 4 * RESCAN_S + 10,
             "the stuck deployment on the share to be cleared after its return", agent.tail)
    waited = removal_after_return(agent, back)
    print(f"share back: first removal {waited:.3f}s after the `is back` line "
          f"(quiet_period {QUIET_S}s)")
    if waited < QUIET_S - 0.05:
        problems.append(f"removed {waited:.3f}s after the share came back, before quiet_period")
    assert not problems, "\n".join(problems) + "\n" + agent.tail(60)


def vanish_root(root, away):
    os.rename(root, away / "site.old")


def return_root(root, away):
    """A new root, built aside, takes the name in one rename."""
    fresh = away / "site.new"
    build_finished_site(fresh)
    add_stuck_deployment(fresh)
    os.rename(fresh, root)


def vanish_folders(root, away):
    shutil.rmtree(root / "locks")
    shutil.rmtree(root / "deployments")


def return_folders(root, away):
    """Both folders, built aside, come back by two renames in a row."""
    fresh = away / "site.new"
    build_finished_site(fresh)
    add_stuck_deployment(fresh)
    os.rename(fresh / "locks", root / "locks")
    os.rename(fresh / "deployments", root / "deployments")


@pytest.mark.parametrize("vanish, come_back, why", [
    (vanish_root, return_root, "No such file or directory"),
    (vanish_folders, return_folders, "locks/ and deployments/ vanished"),
], ids=["site-root-missing-then-made", "locks-and-deployments-vanish-then-return"])
def test_tree_vanishes_then_returns_with_a_stuck_deployment(site, agents, tmp_path,
                                                             vanish, come_back, why):
    """Gone for a while, then back with a stuck deployment whose mtimes are
    an hour old: the agent waits quiet_period from the return."""
    build_finished_site(site)
    away = tmp_path / "away"
    away.mkdir()
    agent = start_agent(agents, vanish_config(tmp_path, site))
    agent.wait_scan(2)

    start = len(agent.log_lines())
    vanish(site, away)
    m = agent.wait_for_log(GONE_RE, start=start)
    assert m.group("why") == why, m.string
    watch_a_while(agent, 1.0)
    assert len(lines_matching(agent, GONE_RE, start)) == 1, agent.tail()

    start = len(agent.log_lines())
    come_back(site, away)
    back = agent.wait_for_log(BACK_RE, start=start).string
    wait_for(lambda: gone(site, STUCK_PATHS), QUIET_S + 4 * RESCAN_S + 10,
             "the stuck deployment to be cleared after the tree's return", agent.tail)
    waited = removal_after_return(agent, back)
    print(f"{why}: first removal {waited:.3f}s after the `is back` line "
          f"(quiet_period {QUIET_S}s)")
    assert waited >= QUIET_S - 0.05, \
        f"removed {waited:.3f}s after the tree came back, before quiet_period\n{agent.tail()}"
    assert waited <= STUCK_AFTER_S + 2 * RESCAN_S + 1, agent.tail()
    assert agent.wait_removed(STUCK_PATHS) == STUCK_PATHS
