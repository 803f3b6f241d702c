"""Memory follows what the agent needs, not what untrusted folders hold
(issue 19, finding 5). Anyone who can write /home can make folders with a
deployment record's name in deployments/, or session-shaped folders in the
archive folder. Main stored ~1.8 KiB for each record folder, twice (the
last snapshot and the one being taken), and listed every session of the
archive into memory at every scan.

Each test builds many such folders, lets the agent scan them several times
and reads its peak resident memory (VmHWM in /proc/<pid>/status). The bound
is structural, not a timing: main peaks near 90 MiB with 20,000 record
folders and near 95 MiB with 100,000 sessions; bounded, the agent stays
near its idle size (under 8 MiB, `make bench` prints the figure). Over the
cap the verdict is "cannot tell": a stuck deployment beside too many
record folders is never judged stuck, with a warning, and is judged again
once they are gone."""

import os
import shutil
import time

import pytest

from conftest import (ACT_TIMEOUT_S, STUCK_LEFTOVERS, build_finished_site, build_stuck_site,
                      gone, start_agent, tree_state, wait_for, write_config)

# Peak memory is measured: one at a time, after the parallel tests.
pytestmark = pytest.mark.serial

# Twenty times the cap of Kudu entries the agent judges (site.h); main
# stores each at ~1.8 KiB twice, and peaked at 88 MiB.
RECORD_FOLDERS = 20_000
SESSION_FOLDERS = 100_000
# Far above the bounded agent (~4 MiB here), far below main.
PEAK_BOUND_BYTES = 16 * 1024 * 1024
STATUS_XML = ('<?xml version="1.0" encoding="utf-8"?>\n<deployment>\n  <id>{id}</id>\n'
              '  <status>Success</status>\n  <complete>True</complete>\n</deployment>\n')


def peak_rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc/%d/status" % pid)


def make_record_folders(site, n):
    dep = site / "deployments"
    for i in range(n):
        rid = "%032x" % (0xf00d0000 + i)
        os.mkdir(dep / rid)
        with open(dep / rid / "status.xml", "w") as f:
            f.write(STATUS_XML.format(id=rid))
    return [dep / ("%032x" % (0xf00d0000 + i)) for i in range(n)]


def test_many_record_folders_bounded_memory_and_cannot_tell(site, agents, tmp_path):
    build_stuck_site(site)
    folders = make_record_folders(site, RECORD_FOLDERS)
    stuck = tree_state(site / "locks")
    cfg = write_config(tmp_path / "lw.ini", site)
    agent = start_agent(agents, cfg)
    # Several full scans: each lists every folder again (the last one was
    # over the cap, so nothing of it is reused).
    agent.wait_scan(4, timeout=ACT_TIMEOUT_S)
    peak = peak_rss(agent.pid)
    print(f"[untrusted] {RECORD_FOLDERS} record folders: VmHWM {peak // 1024} KiB")
    assert peak < PEAK_BOUND_BYTES, \
        f"peak RSS {peak // 1024} KiB with {RECORD_FOLDERS} record folders: memory follows them"
    # Never judged stuck while over the cap (stuck_after is 2 s: four scans
    # of a stuck tree would have removed it), said with a warning.
    assert tree_state(site / "locks") == stuck, "removed while the site was over the cap"
    agent.wait_for_log(r"warning: deployments/ holds \d+ entries of Kudu's shape, more than "
                       r"the \d+ this agent judges: cannot tell")
    # Not a verdict for ever: once the folders are gone the stuck deployment
    # is judged and cleared.
    for folder in folders:
        shutil.rmtree(folder)
    wait_for(lambda: gone(site, STUCK_LEFTOVERS), ACT_TIMEOUT_S,
             "the stuck deployment to be cleared once under the cap", agent.tail)


def test_many_archive_sessions_bounded_memory(site, agents, tmp_path):
    build_finished_site(site)
    cfg = write_config(tmp_path / "lw.ini", site)
    archive = tmp_path / "archive"
    archive.mkdir()
    # Dated the last SESSION_FOLDERS seconds: within [archive] keep, so
    # the agent's prune leaves them.
    now = time.time()
    for i in range(SESSION_FOLDERS):
        when = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now - i))
        os.mkdir(archive / ("%s-%08x" % (when, i)))
    agent = start_agent(agents, cfg)
    agent.wait_scan(4, timeout=ACT_TIMEOUT_S)
    # One more session made meanwhile: the folder is listed again.
    os.mkdir(archive / "20991231T000000Z-0000ffff")
    agent.wait_fresh_scans(2, timeout=ACT_TIMEOUT_S)
    peak = peak_rss(agent.pid)
    print(f"[untrusted] {SESSION_FOLDERS} archive sessions: VmHWM {peak // 1024} KiB")
    assert peak < PEAK_BOUND_BYTES, \
        f"peak RSS {peak // 1024} KiB with {SESSION_FOLDERS} archive sessions: memory follows them"
