"""Least privilege: the agent needs no root. Run as a non-root user that
owns the site tree (setpriv --reuid/--regid --clear-groups, no
capabilities), it clears a stuck deployment and archives it into a folder
that user owns; a file owned by root that the user cannot remove is
reported, and the agent goes on. (The systemd unit's hardening is tested in
test/packaging/test_unit.py.)
"""

import os
import shutil

import pytest

from attack_util import (AGENT_USER, ArchiveGuard, TreeGuard, chown_tree, make_user_dir,
                         notes, process_uids, start_as, trash_gone)
from conftest import (ACT_TIMEOUT_S, HOUR_S, STUCK_LEFTOVERS, TEMP_STUCK, TRASH_RE, age_tree,
                      archive_dir_for, build_stuck_site, gone, trash_of, wait_for, write_config)

FAST = {"policy": {"stuck_after": "2s", "quiet_period": "1s"},
        "scan": {"rescan_interval": "100ms"}}


@pytest.fixture
def user_dir():
    if os.geteuid() != 0:
        pytest.skip("needs root to make files owned by another user")
    d = make_user_dir(AGENT_USER)
    yield d
    shutil.rmtree(d)


def test_non_root_agent_clears_a_stuck_deployment(user_dir, agents):
    site = user_dir / "site"
    build_stuck_site(site)
    age_tree(site, HOUR_S)
    cfg = write_config(user_dir / "lw.ini", site, **FAST)
    chown_tree(user_dir, AGENT_USER)
    archive = ArchiveGuard(archive_dir_for(cfg))

    agent = start_as(agents, user_dir, AGENT_USER, ["run", "-c", cfg, "-v"])
    agent.wait_scan(1)
    assert set(process_uids(agent.pid)) == {AGENT_USER[0]}
    wait_for(lambda: gone(site, STUCK_LEFTOVERS) and trash_gone(site), ACT_TIMEOUT_S,
             "the cleanup and the sweep", agent.tail)

    assert agent.wait_removed(STUCK_LEFTOVERS) == STUCK_LEFTOVERS
    sessions = archive.check()
    assert len(sessions) == 1
    session = archive_dir_for(cfg) / sessions[0]
    assert (os.stat(session).st_uid, os.stat(session).st_gid) == AGENT_USER
    assert (session / "deployments" / TEMP_STUCK / "status.xml").is_file()


def test_root_owned_files_in_the_tree_are_reported_not_forced(user_dir, outside, agents):
    """Inside the stuck record, a folder owned by root (mode 0755) holds a
    file owned by root: the user cannot remove them. The record still
    leaves Kudu's sight (renamed, which the user may do), the rest is
    removed, the failure is logged, the root-owned file is untouched, and
    the agent keeps running."""
    site = user_dir / "site"
    build_stuck_site(site)
    cfg = write_config(user_dir / "lw.ini", site, **FAST)
    chown_tree(user_dir, AGENT_USER)
    artifact = site / "deployments" / TEMP_STUCK / "artifact"
    artifact.mkdir()
    (artifact / "20240101000000.zip").write_bytes(b"PK\x05\x06" + b"\0" * 18)
    os.chmod(artifact, 0o755)            # root's, not writable by the user
    age_tree(site, HOUR_S)
    guard = TreeGuard(artifact)

    agent = start_as(agents, user_dir, AGENT_USER, ["run", "-c", cfg, "-v"])
    wait_for(lambda: gone(site, STUCK_LEFTOVERS), ACT_TIMEOUT_S, "the cleanup", agent.tail)
    line = agent.wait_for_log(r"could not remove deployments/" + TRASH_RE + TEMP_STUCK
                              + r": .*Permission denied").string
    assert "20240101000000.zip" in line, line
    agent.wait_fresh_scans(2)

    trashes = trash_of(site / "deployments", TEMP_STUCK)
    assert len(trashes) == 1, trashes
    trash = trashes[0]
    assert sorted(os.listdir(trash)) == ["artifact"], "the user's files should be gone"
    # The root-owned folder and file, exactly as they were (moved along
    # with the record's rename, which does not touch them).
    guard.roots = [trash / "artifact"]
    guard.before = {trash / "artifact": guard.before[artifact]}
    guard.check()
    assert agent.running()
    assert len(notes(archive_dir_for(cfg))) == 1
