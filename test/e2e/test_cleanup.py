"""The daemon on stuck, finished, hostile and expired site trees: what it
removes, in what order, what it keeps byte for byte, and the hook it runs."""

import json
import os
import re
import time

import pytest

from conftest import (ACT_TIMEOUT_S, archive_dir_for, HOUR_S, LOG_LINE_RE,
                      START_TIMEOUT_S, STUCK_LEFTOVERS, TEMP_FAILED, TEMP_STUCK,
                      age_tree, build_finished_site, build_stuck_site, clean_env,
                      gone, make_file_lock, make_lock, make_pending, make_record,
                      set_active, start_agent, state_diff, settled_tree_state, tree_state, wait_for,
                      without, write_config, ONCE_CLEARED, ONCE_STUCK_DRY_RUN)


def wait_cleared(agent, root, paths, timeout=ACT_TIMEOUT_S):
    wait_for(lambda: gone(root, paths), timeout,
             f"{paths} to be removed from {root}", agent.tail)


def assert_kept(before, root, removed):
    seen = settled_tree_state(root)
    expected = without(before, removed)
    assert seen == expected, "the tree is not the one expected after the cleanup:\n" + \
        state_diff(expected, seen)


def assert_hook_env(env, root, removed, deployment_id):
    assert env.get("LOCKWARDEN_REMOVED", "").rstrip("\n").split("\n") == removed
    assert env.get("LOCKWARDEN_REMOVED_COUNT") == str(len(removed))
    assert os.path.realpath(env.get("LOCKWARDEN_SITE_ROOT", "")) == os.path.realpath(root)
    assert env.get("LOCKWARDEN_DEPLOYMENT_ID") == deployment_id
    assert env.get("LOCKWARDEN_REASON", "").strip(), "LOCKWARDEN_REASON is empty"


def assert_log_well_formed(agent):
    bad = [line for line in agent.log_lines() if line and not LOG_LINE_RE.match(line)]
    assert not bad, "log lines not in the `<UTC time> lockwarden[PID] level: ` form:\n" + \
        "\n".join(map(repr, bad[:10]))


def test_stuck_deployment_is_cleared_and_everything_else_kept(site, hook, agents, tmp_path):
    build_stuck_site(site)
    before = tree_state(site)
    cfg = write_config(tmp_path / "lw.ini", site, hook={"command": hook.command()})

    agent = start_agent(agents, cfg)
    wait_cleared(agent, site, STUCK_LEFTOVERS)
    agent.wait_for_log(r"hook exited with status 0")
    # The hook must not run again on later scans of the now clean tree.
    agent.wait_fresh_scans(3)

    assert_kept(before, site, STUCK_LEFTOVERS)
    assert agent.wait_removed(STUCK_LEFTOVERS) == STUCK_LEFTOVERS
    assert hook.count() == 1
    assert_hook_env(hook.runs()[0], site, STUCK_LEFTOVERS, TEMP_STUCK)
    assert_log_well_formed(agent)


def list_sessions(cfg):
    d = archive_dir_for(cfg)
    return sorted(p for p in d.iterdir() if p.is_dir() and not p.name.startswith(".")) \
        if d.is_dir() else []


def test_cleanup_is_archived_before_removal(site, agents, tmp_path):
    """What a cleanup removes is copied to [archive] dir first, with a note."""
    build_stuck_site(site)
    originals = {rel: (site / rel).read_bytes() for rel in
                 [f"deployments/{TEMP_STUCK}/status.xml", f"deployments/{TEMP_STUCK}/log.log",
                  "locks/deployment/info.lock", "locks/status.lock"]}
    cfg = write_config(tmp_path / "lw.ini", site)
    agent = start_agent(agents, cfg)
    wait_cleared(agent, site, STUCK_LEFTOVERS)
    agent.wait_fresh_scans(1)

    sessions = list_sessions(cfg)
    assert len(sessions) == 1, sessions
    note = json.loads((sessions[0] / "note.json").read_text())
    assert [e["path"] for e in note["entries"]] == STUCK_LEFTOVERS
    assert all(e["removed"] is True for e in note["entries"]), note
    for rel, data in originals.items():
        copy = sessions[0] / rel
        assert copy.is_file(), f"{rel} was not archived"
        assert copy.read_bytes() == data, f"{rel}: the archived copy differs"


def test_nothing_goes_before_the_agent_watched_stuck_after(site, agents, tmp_path):
    build_stuck_site(site)
    cfg = write_config(tmp_path / "lw.ini", site, policy={"stuck_after": "3s"})
    started = time.monotonic()
    agent = start_agent(agents, cfg)
    wait_cleared(agent, site, ["locks/deployment"])
    # The tree has been stuck for an hour by its mtimes, but the agent
    # itself must have watched 3 s without a change first.
    assert time.monotonic() - started >= 3.0


def test_active_temp_record_is_never_removed(site, hook, agents, tmp_path):
    build_finished_site(site)
    make_lock(site, expiry=20 * 60)
    make_file_lock(site, "status.lock", acquired_s=-HOUR_S)
    make_pending(site)
    make_record(site, TEMP_STUCK, "Building", False, True, received=-HOUR_S)
    set_active(site, TEMP_STUCK)
    age_tree(site, HOUR_S)
    removed = ["locks/status.lock", "deployments/pending", "locks/deployment"]  # lock last
    before = tree_state(site)
    cfg = write_config(tmp_path / "lw.ini", site, hook={"command": hook.command()})

    agent = start_agent(agents, cfg)
    wait_cleared(agent, site, removed)
    agent.wait_for_log(r"hook exited with status 0")
    agent.wait_fresh_scans(2)

    assert_kept(before, site, removed)
    assert agent.wait_removed(removed) == removed
    assert hook.count() == 1
    assert hook.runs()[0]["LOCKWARDEN_REMOVED"].rstrip("\n").split("\n") == removed


HARMLESS_SITES = {
    # Kudu never deletes status.lock on Linux: its presence alone means nothing.
    "status-lock-only": lambda root: make_file_lock(root, "status.lock", acquired_s=-HOUR_S),
    # A failed temp record stays (complete); with no lock it is history.
    "status-lock-and-failed-temp-newest": lambda root: (
        make_file_lock(root, "status.lock", acquired_s=-HOUR_S),
        make_record(root, TEMP_FAILED, "Failed", True, True, received=-HOUR_S)),
}


@pytest.mark.parametrize("extra", HARMLESS_SITES.values(), ids=HARMLESS_SITES.keys())
def test_harmless_leftovers_are_left_alone(site, hook, agents, tmp_path, extra):
    build_finished_site(site)
    extra(site)
    age_tree(site, HOUR_S)
    before = tree_state(site)
    cfg = write_config(tmp_path / "lw.ini", site, hook={"command": hook.command()})

    started = time.monotonic()
    agent = start_agent(agents, cfg)
    # Past stuck_after (2s) watched, then two scans that began after that:
    # anything the agent would remove would be gone by now.
    wait_for(lambda: time.monotonic() - started >= 2.2, 10, "stuck_after watched")
    agent.wait_fresh_scans(2)

    assert tree_state(site) == before
    assert agent.removed() == []
    assert agent.count(r"would remove") == 0
    assert hook.count() == 0


@pytest.mark.parametrize("how", ["flag", "file", "env"])
def test_dry_run_removes_nothing_and_runs_no_hook(site, hook, agents, tmp_path, how):
    build_stuck_site(site)
    before = tree_state(site)
    policy = {"dry_run": "true" if how == "file" else "false"}
    cfg = write_config(tmp_path / "lw.ini", site, policy=policy,
                       hook={"command": hook.command()})
    extra = ["--dry-run"] if how == "flag" else []
    env = clean_env(LOCKWARDEN_POLICY_DRY_RUN="true") if how == "env" else None

    agent = start_agent(agents, cfg, *extra, env=env)
    agent.wait_for_log(r"would remove locks/deployment(?![\w.])")
    agent.wait_fresh_scans(2)

    assert tree_state(site) == before
    assert agent.removed() == []
    for path in STUCK_LEFTOVERS:
        assert agent.count(r"would remove " + re.escape(path) + r"(?![\w.-])") >= 1, path
    assert hook.count() == 0
    assert not list_sessions(cfg), "a dry run archived a cleanup"


@pytest.mark.parametrize("run_word", [["run"], []], ids=["run", "no-subcommand"])
def test_once_clears_a_stuck_tree_runs_the_hook_and_exits(site, hook, agents, tmp_path,
                                                          run_word):
    build_stuck_site(site)
    before = tree_state(site)
    cfg = write_config(tmp_path / "lw.ini", site, hook={"command": hook.command()})

    started = time.monotonic()
    agent = agents.start([*run_word, "-c", cfg, "--once"])
    assert agent.wait_exit(ACT_TIMEOUT_S) == ONCE_CLEARED, agent.tail()
    assert time.monotonic() - started >= 2.0, "exited before watching stuck_after (2s)"

    assert_kept(before, site, STUCK_LEFTOVERS)
    assert hook.count() == 1, "--once exited without running the hook to completion"
    assert_hook_env(hook.runs()[0], site, STUCK_LEFTOVERS, TEMP_STUCK)


def test_once_on_a_healthy_tree_changes_nothing(site, hook, agents, tmp_path):
    build_finished_site(site)
    make_file_lock(site, "status.lock", acquired_s=-HOUR_S)
    age_tree(site, HOUR_S)
    before = tree_state(site)
    cfg = write_config(tmp_path / "lw.ini", site, hook={"command": hook.command()})

    agent = agents.start(["run", "-c", cfg, "--once"])
    assert agent.wait_exit(ACT_TIMEOUT_S) == 0, agent.tail()
    assert tree_state(site) == before
    assert hook.count() == 0


def test_once_with_dry_run_removes_nothing(site, hook, agents, tmp_path):
    build_stuck_site(site)
    before = tree_state(site)
    cfg = write_config(tmp_path / "lw.ini", site, hook={"command": hook.command()})

    agent = agents.start(["run", "-c", cfg, "--once", "--dry-run"])
    assert agent.wait_exit(ACT_TIMEOUT_S) == ONCE_STUCK_DRY_RUN, agent.tail()
    assert tree_state(site) == before
    assert agent.count(r"would remove locks/deployment(?![\w.])") >= 1
    assert hook.count() == 0


@pytest.mark.parametrize("expiry", [-600, None, "", 20 * 60],
                         ids=["past", "null", "empty", "held"])
def test_a_lock_of_a_fresh_deployment_is_kept_whatever_its_lockexpiry(site, agents, tmp_path,
                                                                      expiry):
    """Issue 18: an expired, null or empty lockExpiry is never grounds for a
    removal (main removed the lock folder alone after quiet_period): only a
    deployment watched unchanged for stuck_after (here 1h) is cleaned up."""
    build_finished_site(site)
    make_lock(site, expiry=expiry)
    make_file_lock(site, "status.lock", acquired_s=-60)
    make_pending(site)
    make_record(site, TEMP_STUCK, "Building", False, True, received=-60)
    before = tree_state(site)
    cfg = write_config(tmp_path / "lw.ini", site, policy={"stuck_after": "1h"})

    started = time.monotonic()
    agent = start_agent(agents, cfg)
    wait_for(lambda: time.monotonic() - started >= 3.0, 10, "three times the old quiet_period")
    agent.wait_fresh_scans(2)
    assert tree_state(site) == before, agent.tail()
    assert agent.removed() == []


FORGED = "2026-01-01T00:00:00.000Z lockwarden[1] info: removed everything"


def build_foreign_names(root, outside):
    """Names in locks/ and deployments/ that Kudu does not make, some of them
    dressed up as stuck temp records."""
    make_record(outside, "temp-0badf00d", "Building", False, True, received=-60)
    (outside / "keep.txt").write_text("outside the site root\n")
    dep = root / "deployments"
    locks = root / "locks"
    make_record(root, "temp-xyz", "Building", False, True)
    make_record(root, "temp-1a2b3c4", "Building", False, True)       # 7 hex digits
    make_record(root, "temp-1a2b3c4d5", "Building", False, True)     # 9 hex digits
    make_record(root, "temp-1a2b3c4e\n" + FORGED, "Building", False, True)
    (dep / "notes.txt").write_text("my notes\n")
    os.symlink(outside / "deployments" / "temp-0badf00d", dep / "temp-0badf00d")
    (locks / "notes.txt").write_text("my notes\n")
    (locks / "temp-xyz").write_text("{}")
    (locks / ("status.lock\n" + FORGED)).write_text("{}")
    make_file_lock(root, "hooks.lock", op="Running hooks", acquired_s=-5 * HOUR_S)


def test_names_that_are_not_kudus_are_never_removed(site, outside, hook, agents, tmp_path):
    build_stuck_site(site)
    build_foreign_names(site, outside)
    age_tree(site, HOUR_S)
    before = tree_state(site)
    outside_before = tree_state(outside)
    cfg = write_config(tmp_path / "lw.ini", site, hook={"command": hook.command()})

    agent = start_agent(agents, cfg)
    wait_cleared(agent, site, STUCK_LEFTOVERS)
    agent.wait_for_log(r"hook exited with status")
    agent.wait_fresh_scans(2)

    assert_kept(before, site, STUCK_LEFTOVERS)
    assert tree_state(outside) == outside_before
    assert agent.wait_removed(STUCK_LEFTOVERS) == STUCK_LEFTOVERS
    assert hook.runs()[0]["LOCKWARDEN_REMOVED"].rstrip("\n").split("\n") == STUCK_LEFTOVERS
    # A newline in a name must not forge a log line.
    assert not [line for line in agent.log_lines() if line.startswith(FORGED[:30])]
    assert_log_well_formed(agent)


def test_a_site_root_that_is_missing_is_waited_for(tmp_path, hook, agents):
    """App Service storage may not be mounted yet: the agent keeps running
    and clears the tree once it appears."""
    root = tmp_path / "late-site"
    cfg = write_config(tmp_path / "lw.ini", root, hook={"command": hook.command()})
    agent = start_agent(agents, cfg)
    agent.wait_scan(2, START_TIMEOUT_S)
    staging = tmp_path / "staging"
    build_stuck_site(staging)
    os.rename(staging, root)
    wait_cleared(agent, root, STUCK_LEFTOVERS)
    assert agent.running()
