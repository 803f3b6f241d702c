"""The restart hook: its cooldown, its exit status and its timeout."""

import os
import time

import pytest

from conftest import (ACT_TIMEOUT_S, HOUR_S, STUCK_LEFTOVERS, age_tree, build_stuck_site,
                      gone, make_file_lock, make_lock, make_pending, make_record,
                      start_agent, wait_for, write_config)

TEMP_SECOND = "temp-2b3c4d5e"
SECOND_LEFTOVERS = ["locks/status.lock", "deployments/pending", f"deployments/{TEMP_SECOND}",
                    "locks/deployment"]


def make_second_incident(root):
    """Another deployment dies holding the lock, after the first cleanup."""
    make_record(root, TEMP_SECOND, "Building", False, True, received=-HOUR_S)
    make_lock(root, expiry=20 * 60)
    make_file_lock(root, "status.lock", acquired_s=-HOUR_S)
    make_pending(root)
    age_tree(root, HOUR_S)


@pytest.mark.parametrize("cooldown,runs", [("1h", 1), ("0s", 2)])
def test_hook_cooldown_across_two_incidents(site, hook, agents, tmp_path, cooldown, runs):
    build_stuck_site(site)
    cfg = write_config(tmp_path / "lw.ini", site,
                       hook={"command": hook.command(), "cooldown": cooldown})
    agent = start_agent(agents, cfg)
    wait_for(lambda: gone(site, STUCK_LEFTOVERS), ACT_TIMEOUT_S, "first cleanup", agent.tail)
    agent.wait_for_log(r"hook exited with status 0")
    assert hook.count() == 1

    mark = len(agent.log_lines())
    make_second_incident(site)
    wait_for(lambda: gone(site, SECOND_LEFTOVERS), ACT_TIMEOUT_S, "second cleanup", agent.tail)
    if runs == 2:
        agent.wait_for_log(r"hook exited with status 0", start=mark)
    else:
        # The second cleanup happened; its hook is held back and says why.
        agent.wait_for_log(r"(?i)cooldown", start=mark)
    agent.wait_fresh_scans(2)

    assert agent.removed() == STUCK_LEFTOVERS + SECOND_LEFTOVERS
    assert hook.count() == runs
    if runs == 2:
        second = hook.runs()[1]
        assert second["LOCKWARDEN_REMOVED"].rstrip("\n").split("\n") == SECOND_LEFTOVERS
        assert second["LOCKWARDEN_DEPLOYMENT_ID"] == TEMP_SECOND


def test_hook_failure_is_logged_with_its_status(site, hook, agents, tmp_path):
    build_stuck_site(site)
    cfg = write_config(tmp_path / "lw.ini", site, hook={"command": hook.command(exit_status=3)})
    agent = start_agent(agents, cfg)
    agent.wait_for_log(r"hook exited with status 3")
    agent.wait_fresh_scans(1)
    assert agent.running()
    assert hook.count() == 1


def _alive(pid):
    """True while pid exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def test_hook_that_hangs_is_killed_at_its_timeout(site, hook, agents, tmp_path):
    build_stuck_site(site)
    cfg = write_config(tmp_path / "lw.ini", site,
                       hook={"command": hook.command(sleep_s=60), "timeout": "1s"})
    agent = start_agent(agents, cfg)
    wait_for(lambda: hook.count() == 1, ACT_TIMEOUT_S, "the hook to start", agent.tail)
    started = time.monotonic()
    agent.wait_for_log(r"hook timed out", timeout=10)
    assert time.monotonic() - started >= 0.5
    pids = [int(p.name) for p in hook.pids_dir.iterdir()]
    assert len(pids) == 1
    wait_for(lambda: not _alive(pids[0]), 10, "the hung hook's process to be gone", agent.tail)
    agent.wait_fresh_scans(1)
    assert agent.running()


def test_no_hook_configured_still_cleans(site, agents, tmp_path):
    build_stuck_site(site)
    cfg = write_config(tmp_path / "lw.ini", site, hook={"command": ""})
    agent = start_agent(agents, cfg)
    wait_for(lambda: gone(site, STUCK_LEFTOVERS), ACT_TIMEOUT_S, "cleanup", agent.tail)
    agent.wait_fresh_scans(1)
    assert agent.running()
    assert agent.count(r"hook exited") == 0
    assert os.path.isdir(site / "deployments" / "tools")
