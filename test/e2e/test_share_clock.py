"""One instance's wall clock hours off the share's (issue 10, scale-out).

File times are stamped by the share's clock and lockExpiry by Kudu's; an
agent whose own clock is 2 h ahead must not see a fresh lock as expired and
every file time as 2 h old, and one 2 h behind must not wait hours to free a
lock that expired. The agent measures its clock against the share's with a
probe file in its archive folder (agent/shareclock.h) and judges by the
share's clock. libfaketime moves the agent's wall clock only: the kernel
still stamps files with the true time, as the file server would."""

import os
import re
import subprocess

import pytest

from conftest import (HOUR_S, ONCE_CLEARED, ONCE_NOTHING_STUCK, TEMP_STUCK, ACT_TIMEOUT_S,
                      age_tree, archive_dir_for, faketime_env, make_file_lock, make_lock,
                      make_pending, make_record, run_cli, start_agent, tree_state, write_config)

QUIET_SCANS = 8
CLOCK_OFF = r"this host's clock is (\S+) (ahead of|behind) the share's"


def live_but_quiet_site(root, lock_expiry_s):
    """A deployment that holds the lock and has been silent for 10 minutes
    (a quiet npm install): nothing Kudu's has been written since."""
    make_record(root, TEMP_STUCK, "Building", False, True, received=-600)
    make_lock(root, expiry=lock_expiry_s)
    make_file_lock(root, "status.lock", acquired_s=-600)
    make_pending(root)
    age_tree(root, 600)


def config(tmp_path, site, **archive):
    # Kudu's own lock lifetime: a silent step of 10 minutes is not stuck.
    return write_config(tmp_path / "lw.ini", site,
                        policy={"stuck_after": "25m", "quiet_period": "1s"},
                        scan={"rescan_interval": "200ms"}, **archive)


def test_an_agent_two_hours_ahead_keeps_a_fresh_lock(site, agents, tmp_path):
    """lockExpiry is 20 minutes from now by the share's clock, and the last
    write 10 minutes ago: by this host's clock (+2 h) the lock expired 1 h 40
    ago and the deployment has been silent for 2 h 10."""
    live_but_quiet_site(site, lock_expiry_s=20 * 60)
    before = tree_state(site)
    cfg = config(tmp_path, site)
    env = faketime_env("+2h")

    once = agents.start(["run", "-c", cfg, "--once", "-v"], env=env, name="once")
    assert once.wait_exit(ACT_TIMEOUT_S) == ONCE_NOTHING_STUCK, once.tail()
    assert tree_state(site) == before
    assert once.removed() == []

    # report judges as the agent does (the archive folder now exists).
    # (report waits on a monotonic condition variable, which libfaketime
    # breaks unless told not to "fix" it.)
    r = run_cli(["report", "-c", cfg], env=dict(env, FAKETIME_FORCE_MONOTONIC_FIX="0"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"this host's clock is 2h\d*m? ahead of the share's", r.stdout), r.stdout

    agent = start_agent(agents, cfg, env=env)
    agent.wait_scan(QUIET_SCANS)
    assert tree_state(site) == before, agent.tail()
    assert agent.removed() == []
    assert agent.count(r"stuck deployment:") == 0, agent.tail()
    m = agent.wait_for_log(CLOCK_OFF)
    assert m.group(1).startswith("2h") and m.group(2) == "ahead of", m.string
    assert agent.count(CLOCK_OFF) == 1, agent.tail()
    # The probe is gone at once: nothing of it in the archive folder.
    assert not [p for p in os.listdir(archive_dir_for(cfg)) if p.startswith(".lockwarden-clock")]


def test_an_agent_two_hours_behind_frees_a_lock_that_expired(site, agents, tmp_path):
    """lockExpiry passed an hour ago by the share's clock; by this host's
    (-2 h) it is an hour away. The lock folder alone goes after quiet_period;
    the records, touched 10 minutes ago, stay."""
    live_but_quiet_site(site, lock_expiry_s=-HOUR_S)
    cfg = config(tmp_path, site)

    once = agents.start(["run", "-c", cfg, "--once", "-v"], env=faketime_env("-2h"),
                        name="once")
    assert once.wait_exit(ACT_TIMEOUT_S) == ONCE_CLEARED, once.tail()
    assert once.removed() == ["locks/deployment"], once.tail()
    assert (site / "deployments" / TEMP_STUCK).is_dir()
    m = once.wait_for_log(CLOCK_OFF)
    assert m.group(1).startswith("2h") and m.group(2) == "behind", m.string


@pytest.fixture
def other_fs(tmp_path):
    """A tmpfs: a filesystem other than the site's."""
    path = tmp_path / "other-fs"
    path.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs", str(path)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs ({r.stderr.strip()}): needs root")
    yield path
    subprocess.run(["umount", "-l", str(path)], capture_output=True)


@pytest.mark.parametrize("exists", [True, False], ids=["folder-there", "folder-missing"])
def test_an_archive_on_another_filesystem_says_so_once(site, agents, tmp_path, other_fs, exists):
    """Its clock says nothing of the share's: no offset is measured or used
    (the agent judges by its own clock, as before), and the log says so
    once, not at every probe. A missing folder is not made there for it."""
    live_but_quiet_site(site, lock_expiry_s=20 * 60)
    before = tree_state(site)
    archive = other_fs / "lockwarden"
    if exists:
        archive.mkdir()
    cfg = config(tmp_path, site, archive={"dir": str(archive)})

    agent = start_agent(agents, cfg)
    agent.wait_scan(QUIET_SCANS)
    assert agent.count(r"is not on the site root's filesystem") == 1, agent.tail()
    assert agent.count(r"measured this host's clock|" + CLOCK_OFF) == 0, agent.tail()
    assert (os.listdir(archive) == []) if exists else not archive.exists()
    assert tree_state(site) == before
