"""Idle rescans that re-read only what changed (issue 12, part 1).

An idle rescan keeps the previous listing of locks/ and deployments/ while
their folders' lstat is unchanged, and looks only at what Kudu rewrites in
place (agent/scan.h). This table proves that no write Kudu makes is missed:
each kind of write from ../shared/KUDU.md is made in the folder underneath a
bindfs view (so the agent gets no inotify event), and each must be seen by
the first scan that begins after it, that is within one rescan.

The view is mounted with FUSE's attribute and entry caches off, so that
"within one rescan" is exact: with them (bindfs's default, or cifs's
actimeo=1 on the real share) a change can show up to 1 s later, the same
for every scan, incremental or not.
"""

import os
import shutil
import signal
import subprocess

import pytest

from conftest import (HOUR_S, STATUS_XML, age_tree, kudu_time, make_file_lock, make_lock,
                      make_pending, make_record, make_settings, make_skeleton, make_tools,
                      notify_socket, clean_env, set_active, start_agent, utc_in,  # noqa: F401
                      wait_for, write_config)
from robust_util import bind_mounts, unwatched  # noqa: F401

RESCAN_S = 1.0
HISTORY = 40
NEW_TEMP = "temp-0000abcd"
CHANGED = "the site tree changed"


def history_id(i):
    return f"{i:032x}"


def rewrite_status(record, status, complete):
    """status.xml rewritten in place (same inode), as Kudu saves it."""
    rid = record.name
    received = utc_in(-600)
    xml = STATUS_XML.format(
        id=rid, progress="", status=status, status_text="",
        last_success="", received=kudu_time(received), start=kudu_time(received),
        end=f"<endTime>{kudu_time(utc_in(0))}</endTime>" if complete else "<endTime />",
        complete="True" if complete else "False", is_temp="False")
    with open(record / "status.xml", "w") as f:
        f.write(xml)


def rewrite_in_place(path, text):
    with open(path, "w") as f:
        f.write(text)


@pytest.fixture
def blind_site(bind_mounts, tmp_path):
    return bind_mounts(tmp_path / "backing", tmp_path / "share",
                       options=["-o", "attr_timeout=0,entry_timeout=0,negative_timeout=0"])


def build(root):
    """HISTORY finished records, active, pending, tools/, settings.xml and
    the lock files Kudu leaves on Linux; all an hour old."""
    make_skeleton(root)
    for i in range(HISTORY):
        make_record(root, history_id(i), "Success", True, False, received=-(HISTORY - i) * HOUR_S)
    set_active(root, history_id(HISTORY - 1))
    make_pending(root)
    make_tools(root)
    make_settings(root)
    make_file_lock(root, "status.lock", acquired_s=-HOUR_S)
    make_file_lock(root, "sshkey.lock", op="Updating SSH key", acquired_s=-HOUR_S)
    age_tree(root, HOUR_S)


# auto reads every finished record's log.log once (agent/silence_read.h): the
# same writes must be seen as with a fixed stuck_after. (A floor of 25m makes
# auto as long as the fixed value's purpose here needs.)
# The whole table of Kudu writes: half a minute.
@pytest.mark.long
@pytest.mark.parametrize("policy", [
    {"stuck_after": "1h", "quiet_period": "1h"},
    {"stuck_after": "auto", "auto_floor": "25m", "quiet_period": "1h"},
], ids=["fixed", "auto"])
def test_every_kudu_write_is_seen_within_one_rescan(blind_site, agents, tmp_path, notify_socket,
                                                    policy):
    root = blind_site.backing
    build(root)
    deps = root / "deployments"
    cfg = write_config(tmp_path / "lw.ini", blind_site.mountpoint,
                       policy=policy,
                       scan={"rescan_interval": f"{int(RESCAN_S * 1000)}ms"})
    agent = start_agent(agents, cfg, env=clean_env(NOTIFY_SOCKET=notify_socket.env_value))
    # A few rescans, so that the listings have settled and are kept.
    agent.wait_scan(5)
    if policy["stuck_after"] == "auto":
        agent.wait_for_log(r"stuck_after auto: 25m \(the floor: 3 × longest silence 1s in ")

    redeployed = deps / history_id(3)
    # (what Kudu does, the change, the state the scan must then show, the
    # number of entries it must list, text a STATUS= must then carry)
    table = [
        ("the deployment lock appears", lambda: make_lock(root, expiry=20 * 60),
         "running", None, "Performing deployment"),
        ("info.lock rewritten in place", lambda: make_lock(root, expiry=20 * 60,
                                                           op="Handling git receive pack"),
         "running", None, "Handling git receive pack"),
        ("status.lock rewritten in place", lambda: make_file_lock(root, "status.lock",
                                                                   acquired_s=0),
         "running", None, None),
        ("pending touched", lambda: rewrite_in_place(deps / "pending", ""),
         "running", None, None),
        ("active rewritten in place", lambda: rewrite_in_place(deps / "active",
                                                               history_id(HISTORY - 1)),
         "running", None, None),
        ("a record appears", lambda: make_record(root, NEW_TEMP, "Pending", False, True,
                                                 received=0),
         "running", +1, None),
        ("the record is completed", lambda: rewrite_status(deps / NEW_TEMP, "Success", True),
         "running", 0, None),
        ("the deployment lock goes", lambda: shutil.rmtree(root / "locks" / "deployment"),
         "idle", -1, None),
        ("a finished record redeployed", lambda: (rewrite_status(redeployed, "Building", False),
                                                   rewrite_in_place(deps / "active",
                                                                    redeployed.name)),
         "running", 0, None),
        ("the redeployed record completes", lambda: rewrite_status(redeployed, "Success", True),
         "idle", 0, None),
        ("an old record is purged", lambda: shutil.rmtree(deps / history_id(0)),
         "idle", -1, None),
    ]
    entries = None
    missed = []
    for what, change, state, entry_delta, status_text in table:
        n = agent.scans_done()
        mark = len(agent.log_lines())
        before_status = len(notify_socket.snapshot())
        change()
        # Scan n+1 may have begun before the change; n+2 cannot have.
        agent.wait_scan(n + 2, timeout=RESCAN_S * 3 + 5)
        lines = agent.log_lines()[mark:]
        done_at = next(i for i, l in enumerate(lines) if f"scan {n + 2} done:" in l)
        seen = [l for l in lines[:done_at + 1] if CHANGED in l]
        done = lines[done_at].split(" done: ", 1)[1]
        count = int(done.split(" entries", 1)[0])
        problems = []
        if not seen:
            problems.append("no change seen")
        if f", {state}" not in done:
            problems.append(f"state is not {state}: {done}")
        if entries is not None and entry_delta is not None and count != entries + entry_delta:
            problems.append(f"{count} entries, expected {entries + entry_delta}")
        if status_text and not any(status_text in m.get("STATUS", "")
                                   for _, m in notify_socket.snapshot()[before_status:]):
            problems.append(f"no STATUS= naming {status_text!r}")
        print(f"{what}: {'; '.join(problems) or 'seen by scan ' + str(n + 2)}")
        if problems:
            missed.append(f"{what}: {'; '.join(problems)}")
        entries = count
    assert not missed, "\n".join(missed) + "\n" + agent.tail(60)
    assert agent.removed() == []


# ------------------------------------------------------ the loop thread's calls

# Calls that look a path up or stat it: on the share each is a round trip,
# and one that does not return would stall the event loop.
METADATA_CALLS = ["inotify_add_watch", "inotify_rm_watch", "stat", "lstat", "newfstatat",
                  "statx", "openat", "open", "access", "readlink", "getdents64"]


class LoopTrace:
    """strace on the agent's main thread only (the event loop: -p without
    -f), recording the metadata calls it makes."""

    def __init__(self, pid, out_path):
        self.out_path = str(out_path)
        self.proc = subprocess.Popen(["strace", "-qq", "-e", "trace=" + ",".join(METADATA_CALLS),
                                      "-o", self.out_path, "-p", str(pid)],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        # Attached once the kernel names a tracer for the thread.
        def attached():
            if self.proc.poll() is not None:
                return True
            with open(f"/proc/{pid}/task/{pid}/status") as f:
                return any(l.startswith("TracerPid:") and l.split()[1] != "0" for l in f)
        wait_for(attached, 5, "strace to attach")
        if self.proc.poll() is not None:
            pytest.skip(f"strace cannot attach here (exit {self.proc.returncode})")

    def stop(self):
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(10)
        with open(self.out_path) as f:
            return [line.strip() for line in f if line.strip() and "resumed>" not in line]


def test_the_loop_thread_makes_no_metadata_call_per_rescan(agents, tmp_path):
    """After every scan the loop thread re-arms a watch only when its
    folder was replaced or its watch lost; idle rescans and the scans that
    events bring forward cost the loop thread no call on the share."""
    if not shutil.which("strace"):
        pytest.skip("needs strace")
    root = tmp_path / "site"
    build(root)
    cfg = write_config(tmp_path / "lw.ini", root,
                       policy={"stuck_after": "1h", "quiet_period": "1h"},
                       scan={"rescan_interval": f"{int(RESCAN_S * 1000)}ms"})
    agent = start_agent(agents, cfg)
    agent.wait_scan(3)
    trace = LoopTrace(agent.pid, tmp_path / "loop.strace")
    try:
        first = n = agent.scans_done()
        # Idle rescans, then scans brought forward by events (each pauses
        # the watches until the scan is done).
        agent.wait_scan(n + 3, timeout=RESCAN_S * 4 + 5)
        for i in range(5):
            n = agent.scans_done()
            (root / "foreign.txt").write_text(f"write {i}\n")
            agent.wait_scan(n + 1, timeout=RESCAN_S * 2 + 5)
        scans = agent.scans_done() - first
    finally:
        calls = trace.stop()
    print(f"{len(calls)} metadata calls on the loop thread over {scans} scans")
    for c in calls[:20]:
        print("  " + c)
    assert calls == [], agent.tail()
    # ... and the watches are still armed on the same folders.
    assert unwatched(agent.pid, [root, root / "locks", root / "deployments"]) == []


def test_a_replaced_folder_is_still_watched_again(agents, tmp_path):
    """The other side: a folder replaced under its name is re-armed."""
    root = tmp_path / "site"
    build(root)
    cfg = write_config(tmp_path / "lw.ini", root,
                       policy={"stuck_after": "1h", "quiet_period": "1h"},
                       scan={"rescan_interval": f"{int(RESCAN_S * 1000)}ms"})
    agent = start_agent(agents, cfg)
    agent.wait_scan(2)
    locks = root / "locks"
    os.rename(locks, root / "locks.old")
    shutil.copytree(root / "locks.old", locks)
    wait_for(lambda: unwatched(agent.pid, [root, locks, root / "deployments"]) == [],
             RESCAN_S * 3 + 5, "the new locks/ to be watched", agent.tail)
