"""Resource limits (issue 3, item 7): the inotify watch limit, EMFILE, EACCES
on a folder and a full archive disk. Each is logged once with its cause,
nothing is removed while the agent cannot see or record what it would
remove, the agent lives on rescans, and it never busy-loops: its CPU time
over a FAULT_WINDOW_S fault window is printed (ms per minute) and must stay
far from a spinning core."""

import os
import re
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import (ACT_TIMEOUT_S, STUCK_LEFTOVERS, archive_dir_for, build_finished_site,
                      build_stuck_site, gone, start_agent, state_diff,
                      settled_tree_state, tree_state, wait_for, without, write_config)
from faults_util import CpuWindow, StopFirst, tmpfs, wait_cleared, wrapped_agents  # noqa: F401 (fixture)

# Measures the agent's CPU over a window and limits its fds: one at a time.
pytestmark = pytest.mark.serial

# The issue asks for 60 s; 10 s keeps the suite short and still shows a spin
# (20 rescans of the fault).
FAULT_WINDOW_S = 10
# A spinning agent burns a core (10 s of CPU in 10 s); an idle one a few
# ms per rescan. 0.5 s in 10 s is far from both.
MAX_CPU_FRACTION = 1.0 / 20
RESCAN_S = 0.5
NOBODY = 65534


def assert_idle(window):
    used, wall = window.report()
    assert used < wall * MAX_CPU_FRACTION, \
        f"{window.label}: {used:.2f} s of CPU in {wall:.1f} s: the agent is busy-looping"


def warnings(agent, start=0):
    """The warning and error lines from index start on, without their
    timestamps, so the same message logged twice compares equal."""
    out = []
    for line in agent.log_lines()[start:]:
        m = re.search(r"\] (warning|error): (.*)", line)
        if m:
            out.append(m.group(2))
    return out


def assert_each_said_once(lines, label):
    repeated = {m: lines.count(m) for m in set(lines) if lines.count(m) > 1}
    assert not repeated, f"{label}: messages repeated during the fault: {repeated}"


# ------------------------------------------------------- inotify watch limit

# Run in a user namespace of its own, whose inotify watch limit
# (/proc/sys/user/max_inotify_watches, per user namespace since Linux 4.9)
# is set to 0: the limit is reached for the agent alone. Lowering the global
# /proc/sys/fs/inotify/max_user_watches instead would break every other
# suite running on the machine at the same time.
NO_WATCHES = ["unshare", "--user", "--map-root-user", "/bin/sh", "-c",
              'echo 0 > /proc/sys/user/max_inotify_watches && exec "$0" "$@"']


def require_watch_limit_namespace():
    probe = subprocess.run(NO_WATCHES + ["/bin/true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip("cannot set an inotify watch limit in a user namespace "
                    f"({probe.stderr.strip() or probe.returncode}): needs unshare -U and "
                    "Linux >= 4.9")


def test_inotify_watch_limit_reached_lives_on_rescans(site, wrapped_agents, tmp_path):
    require_watch_limit_namespace()
    build_finished_site(site)
    cfg = write_config(tmp_path / "lw.ini", site)
    agent = wrapped_agents.start(NO_WATCHES, ["run", "-c", cfg, "-v"])
    agent.wait_scan(1)
    window = CpuWindow(agent.pid, "inotify watch limit 0")

    build_stuck_site(site)
    made = time.monotonic()
    wait_for(lambda: gone(site, STUCK_LEFTOVERS), ACT_TIMEOUT_S,
             "the stuck deployment to be cleared by rescans alone", agent.tail)
    took = time.monotonic() - made
    print(f"[limits] cleared by rescans {took:.2f} s after the stuck tree was made")
    assert took < 1 + RESCAN_S + 3, "slower than quiet_period + rescan_interval + margin"

    window.wait_until(FAULT_WINDOW_S, agent)
    assert_idle(window)
    for path in (site, site / "locks", site / "deployments", site / "locks" / "deployment"):
        said = agent.count(rf"cannot watch {re.escape(str(path))}: .*; relying on rescans")
        assert said == 1, f"`cannot watch {path}` logged {said} times, expected once"
    assert agent.count(r"cannot watch .*(no space left|ENOSPC)") >= 1, \
        "the cause (the watch limit, ENOSPC) is not in the message"


# ----------------------------------------------------------------- EMFILE

def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_emfile_is_logged_once_removes_nothing_and_recovers(site, agents, tmp_path):
    """The open-file limit of the running agent is lowered (prlimit) to one
    above what it holds when idle: a scan can open the site root but not
    locks/ or deployments/. A deployment that gets stuck meanwhile must not
    be judged, let alone removed, until the limit is raised again; the
    log must say why (EMFILE), once."""
    build_finished_site(site)
    cfg = write_config(tmp_path / "lw.ini", site)
    agent = start_agent(agents, cfg)
    agent.wait_fresh_scans(2)
    soft, hard = resource.prlimit(agent.pid, resource.RLIMIT_NOFILE)
    # Between scans the agent holds only its own descriptors: sample a few
    # times and take the least, in case a scan was holding some.
    idle = min(open_fds(agent.pid) for _ in range(5))
    mark = len(agent.log_lines())
    resource.prlimit(agent.pid, resource.RLIMIT_NOFILE, (idle + 1, hard))
    try:
        window = CpuWindow(agent.pid, f"RLIMIT_NOFILE {idle + 1}")
        build_stuck_site(site)
        stuck = tree_state(site)
        # The fault lasts the whole window, whatever the agent logs.
        window.wait_until(FAULT_WINDOW_S, agent)
        assert tree_state(site) == stuck, \
            "removed while blind:\n" + state_diff(stuck, tree_state(site))
        assert_idle(window)
        said = warnings(agent, mark)
    finally:
        resource.prlimit(agent.pid, resource.RLIMIT_NOFILE, (soft, hard))

    wait_cleared(agent, site, STUCK_LEFTOVERS, "the cleanup once descriptors are available again")
    assert settled_tree_state(site) == without(stuck, STUCK_LEFTOVERS)

    # How the fault was told, checked last so the behaviour above is
    # checked whatever the wording.
    print("[limits] EMFILE warnings:\n  " + "\n  ".join(said))
    assert_each_said_once(said, "EMFILE")
    assert any("Too many open files" in m for m in said), \
        f"the cause (EMFILE, Too many open files) was never logged; logged instead: {said}"
    wrong = [m for m in said if "vanished" in m or "another filesystem" in m]
    assert not wrong, f"EMFILE was reported as something it is not: {wrong}"


# ----------------------------------------------------------------- EACCES

@pytest.fixture
def shared_tmp():
    """A folder others may traverse (pytest's tmp_path is under a 0700
    folder, which a non-root agent could not reach), removed at teardown."""
    d = Path(tempfile.mkdtemp(prefix="lockwarden-eacces-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


AS_NOBODY = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]


def chown_tree(path, uid):
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            os.lchown(os.path.join(dirpath, name), uid, uid)
    os.lchown(path, uid, uid)


def test_eacces_on_deployments_is_logged_once_and_removes_nothing(
        shared_tmp, wrapped_agents):
    """The agent runs as nobody; locks/ and the archive are nobody's (it
    could remove and record the stuck lock), deployments/ is nobody's but
    mode 0000. Half a tree must not be judged: nothing goes until the
    folder can be read, then the cleanup proceeds."""
    if not shutil.which("setpriv"):
        pytest.skip("setpriv (util-linux) is not installed")
    site = shared_tmp / "site"
    build_stuck_site(site)
    cfg = write_config(shared_tmp / "lw.ini", site)
    archive = archive_dir_for(cfg)
    archive.mkdir()
    for p in (site / "locks", site / "deployments", archive):
        chown_tree(p, NOBODY)
    (site / "deployments").chmod(0o000)
    stuck = tree_state(site)

    agent = wrapped_agents.start(AS_NOBODY, ["run", "-c", cfg, "-v"])
    agent.wait_for_log(r"cannot be read whole \(Permission denied\)")
    window = CpuWindow(agent.pid, "EACCES on deployments/")
    window.wait_until(FAULT_WINDOW_S, agent)
    assert_idle(window)
    assert tree_state(site) == stuck, "removed while half the tree was unreadable:\n" + \
        state_diff(stuck, tree_state(site))
    said = warnings(agent)
    print("[limits] EACCES warnings:\n  " + "\n  ".join(said))
    assert_each_said_once(said, "EACCES")
    assert agent.count(r"cannot be read whole") == 1

    (site / "deployments").chmod(0o755)
    wait_cleared(agent, site, STUCK_LEFTOVERS, "the cleanup once deployments/ can be read")
    assert settled_tree_state(site) == without(stuck, STUCK_LEFTOVERS)


# -------------------------------------------------------------- disk full

def fill_up(folder):
    """Writes a file in folder until the filesystem is full."""
    path = Path(folder) / "filler"
    chunk = b"\0" * 4096
    with open(path, "wb", buffering=0) as f:
        try:
            while True:
                f.write(chunk)
        except OSError as e:
            assert e.errno == 28, e  # ENOSPC
    return path


def test_full_archive_disk_refuses_the_cleanup_without_a_busy_loop(site, agents, tmp_path):
    build_stuck_site(site)
    cfg = write_config(tmp_path / "lw.ini", site)
    with tmpfs(archive_dir_for(cfg), "64k") as archive, StopFirst() as stops:
        filler = fill_up(archive)
        stuck = tree_state(site)
        # At the info level: at debug a busy loop would write megabytes.
        agent = stops.add(agents.start(["run", "-c", cfg]))
        window = CpuWindow(agent.pid, "archive disk full")
        agent.wait_for_log(r"error: archive: .*No space left on device")
        window.wait_until(FAULT_WINDOW_S, agent)
        cpu_used, wall = window.report()
        attempts = agent.count(r"cleaning up")
        archive_errors = agent.count(r"error: archive: ")
        sessions = len(os.listdir(archive)) - 1
        print(f"[limits] archive full: {attempts} cleanup attempts and {sessions} session "
              f"folders left in the archive in {wall:.1f} s (rescan_interval {RESCAN_S} s)")
        assert tree_state(site) == stuck, "removed what could not be archived:\n" + \
            state_diff(stuck, tree_state(site))

        mark = len(agent.log_lines())
        filler.unlink()
        wait_cleared(agent, site, STUCK_LEFTOVERS, "the cleanup once the archive has room")
        agent.wait_for_log(r"archive: what was removed is recorded in", start=mark)
        assert settled_tree_state(site) == without(stuck, STUCK_LEFTOVERS)
    assert not stops.complaints, stops.complaints

    # How the refusals went, checked last so that the recovery above is
    # checked as well.
    most = wall / RESCAN_S + 3
    problems = []
    if archive_errors != 1:
        problems.append(f"the archive error was logged {archive_errors} times, not once")
    if attempts > most:
        problems.append(f"{attempts} cleanup attempts in {wall:.0f} s: retried in a busy loop, "
                        f"not at the rescan pace (at most {most:.0f})")
    if sessions > most:
        problems.append(f"{sessions} session folders left in the archive by the refusals")
    if cpu_used >= wall * MAX_CPU_FRACTION:
        problems.append(f"{cpu_used:.1f} s of CPU in {wall:.0f} s: busy-looping on a full disk")
    assert not problems, "\n".join(problems)
