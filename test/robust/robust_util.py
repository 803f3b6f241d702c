"""Helpers for test/robust's storage, storm and clock tests (issue 3, items
1, 2, 3, 4 and 8): a FUSE view (bindfs) that hides every change made through
its backing folder from inotify, as App Service's /home share does, CPU
accounting from /proc, log-line times, and small site builders.

Everything waits for a condition with a deadline (lwtest.wait_for); every
mount made here is unmounted at teardown, lazily if it is still busy.
"""

import datetime
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from lwtest import (HOUR_S, TEMP_STUCK, age_tree, kudu_time, make_file_lock, make_lock,
                    make_pending, make_record, utc_in, wait_for)

MOUNT_TIMEOUT_S = 10.0

# ------------------------------------------------------------------- FUSE

def _fusermount():
    return shutil.which("fusermount3") or shutil.which("fusermount")


def fuse_unavailable_reason():
    """Why a bindfs mount cannot be made here, or None when it can."""
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse does not exist (no FUSE in this kernel or container)"
    try:
        fd = os.open("/dev/fuse", os.O_RDWR)
        os.close(fd)
    except OSError as e:
        return f"/dev/fuse cannot be opened: {e.strerror}"
    if not shutil.which("bindfs"):
        return "bindfs is not installed (apt-get install bindfs; see packaging/deps-robust.txt)"
    if not _fusermount():
        return "fusermount3 is not installed (apt-get install fuse3)"
    return None


def _unescape_mountinfo(field):
    # /proc/self/mountinfo escapes space, tab, newline and backslash as \ooo.
    out, i = bytearray(), 0
    raw = field.encode("utf-8", "surrogateescape")
    while i < len(raw):
        if raw[i:i + 1] == b"\\" and raw[i + 1:i + 4].isdigit():
            out.append(int(raw[i + 1:i + 4], 8))
            i += 4
        else:
            out.append(raw[i])
            i += 1
    return out.decode("utf-8", "surrogateescape")


def is_mount_point(path):
    """Whether some mount sits exactly at path (per /proc/self/mountinfo)."""
    target = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split(" ")
            if len(fields) > 4 and _unescape_mountinfo(fields[4]) == target:
                return True
    return False


class BindMount:
    """`bindfs --no-allow-other <backing> <mountpoint>`: the mount shows the
    backing folder, and inotify on the mount sees only what is done through
    the mount, never what is done to the backing folder directly."""

    def __init__(self, backing, mountpoint, options=()):
        self.backing = Path(backing)
        self.mountpoint = Path(mountpoint)
        self.options = list(options)

    def mount(self):
        self.backing.mkdir(parents=True, exist_ok=True)
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        r = subprocess.run(["bindfs", "--no-allow-other", *self.options,
                            str(self.backing), str(self.mountpoint)],
                           capture_output=True, text=True, timeout=MOUNT_TIMEOUT_S)
        if r.returncode != 0:
            return f"bindfs exited {r.returncode}: {r.stderr.strip()}"
        wait_for(lambda: is_mount_point(self.mountpoint), MOUNT_TIMEOUT_S,
                 f"bindfs to be mounted on {self.mountpoint}")
        return None

    def mounted(self):
        return is_mount_point(self.mountpoint)

    def unmount(self, timeout=MOUNT_TIMEOUT_S):
        """Unmounts, retrying while busy (a scan may hold a folder open for a
        moment), then lazily so teardown never leaves a mount behind."""
        if not self.mounted():
            return
        fm = _fusermount()
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            r = subprocess.run([fm, "-u", str(self.mountpoint)], capture_output=True,
                               text=True, timeout=MOUNT_TIMEOUT_S)
            if r.returncode == 0 or not self.mounted():
                break
            last = r.stderr.strip()
            time.sleep(0.05)
        else:
            subprocess.run([fm, "-u", "-z", str(self.mountpoint)], capture_output=True,
                           timeout=MOUNT_TIMEOUT_S)
            print(f"{self.mountpoint} was busy ({last}): unmounted lazily")
        wait_for(lambda: not self.mounted(), timeout, f"{self.mountpoint} to be unmounted")


@pytest.fixture
def bind_mounts():
    """A factory of BindMounts (bind_mounts(backing, mountpoint, mount=True,
    options=())): options go to bindfs (e.g. ["-o", "nonempty"]);
    every one is unmounted at teardown, even when the test failed. Skips the
    test, with the reason, where FUSE cannot work: never a silent pass."""
    reason = fuse_unavailable_reason()
    if reason:
        pytest.skip(f"needs a FUSE mount: {reason}")
    made = []

    def make(backing, mountpoint, mount=True, options=()):
        bm = BindMount(backing, mountpoint, options)
        made.append(bm)
        if mount:
            failed = bm.mount()
            if failed:
                pytest.skip(f"needs a FUSE mount: {failed}")
        return bm

    try:
        yield make
    finally:
        for bm in made:
            bm.unmount()


@pytest.fixture
def bind_site(bind_mounts, tmp_path):
    """A site tree reached two ways: `.backing` (Kudu's side: every change
    the test makes as Kudu goes here) and `.mountpoint` (the agent's side, a
    bindfs view of it)."""
    return bind_mounts(tmp_path / "backing", tmp_path / "share")


# ------------------------------------------------------- times and CPU

def log_time(line):
    """The wall time (epoch seconds) of one agent log line."""
    stamp = line.split(" ", 1)[0]
    when = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ")
    return when.replace(tzinfo=datetime.timezone.utc).timestamp()


def scan_times(agent):
    """[(scan number, wall time of its `scan N done` line)], in order."""
    out = []
    for line in agent.log_lines():
        if " scan " in line and " done:" in line:
            try:
                n = int(line.split(" scan ", 1)[1].split(" ", 1)[0])
            except ValueError:
                continue
            out.append((n, log_time(line)))
    return out


def cpu_ns(pid):
    """CPU time a process used so far, all its threads, in nanoseconds
    (from each task's schedstat: finer than the 10 ms ticks of stat)."""
    total = 0
    task_dir = f"/proc/{pid}/task"
    for tid in os.listdir(task_dir):
        try:
            with open(f"{task_dir}/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            pass  # a thread that ended in between
    return total


def first_line_index(agent, pattern_substring):
    """Index of the first log line containing the substring, or None."""
    for i, line in enumerate(agent.log_lines()):
        if pattern_substring in line:
            return i
    return None


# --------------------------------------------------------------- sites

# What add_stuck_deployment makes, in the order the agent removes it (the
# lock folder last).
STUCK_PATHS = ["locks/status.lock", "deployments/pending", f"deployments/{TEMP_STUCK}",
               "locks/deployment"]


def add_stuck_deployment(root, age_s=HOUR_S, expiry=20 * 60, rid=TEMP_STUCK):
    """A deployment that died holding the lock: lock folder (lockExpiry
    `expiry` from now), status.lock, pending and a temp record still
    Building; the whole tree then aged age_s."""
    root = Path(root)
    make_lock(root, expiry=expiry)
    make_file_lock(root, "status.lock", acquired_s=-age_s)
    make_pending(root)
    make_record(root, rid, "Building", False, True, received=-age_s - 10)
    age_tree(root, age_s)
    return root


def add_live_deployment(root, age_s=HOUR_S, rid=TEMP_STUCK):
    """The same shape, as a running deployment has it: the caller makes it
    live by appending to its log (append_log_at)."""
    return add_stuck_deployment(root, age_s=age_s, rid=rid)


def append_log_at(record, mtime=None, message="Building..."):
    """Appends a line to record/log.log as Kudu does; mtime (epoch seconds)
    stamps the file as a share with another clock would."""
    log = Path(record) / "log.log"
    with open(log, "a") as f:
        f.write(f"{kudu_time(utc_in(0))},{message},,0\n")
    if mtime is not None:
        os.utime(log, (mtime, mtime))


def present(root, rel_paths):
    return [r for r in rel_paths if os.path.lexists(os.path.join(root, r))]


def inotify_watched_inodes(pid):
    """{(st_dev, st_ino)} of everything the process watches with inotify,
    read from /proc/PID/fdinfo (the kernel lists each watch there)."""
    out = set()
    fd_dir = f"/proc/{pid}/fd"
    for fd in os.listdir(fd_dir):
        try:
            if os.readlink(f"{fd_dir}/{fd}") != "anon_inode:inotify":
                continue
            with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                info = f.read()
        except (FileNotFoundError, ProcessLookupError):
            continue
        for line in info.splitlines():
            if not line.startswith("inotify wd:"):
                continue
            fields = dict(kv.split(":", 1) for kv in line.split()[1:] if ":" in kv)
            # sdev is the kernel's dev_t (major << 20 | minor).
            sdev = int(fields["sdev"], 16)
            dev = os.makedev(sdev >> 20, sdev & 0xFFFFF)
            out.add((dev, int(fields["ino"], 16)))
    return out


def unwatched(pid, paths):
    """The paths (folders) among `paths` the process has no inotify watch on."""
    watched = inotify_watched_inodes(pid)
    missing = []
    for p in paths:
        st = os.stat(p)
        if (st.st_dev, st.st_ino) not in watched:
            missing.append(str(p))
    return missing
