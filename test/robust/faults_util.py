"""Helpers shared by the fault tests of test/robust (hooks that misbehave,
reload and stop, resource limits, big leftovers, valgrind).

Everything here cleans up after itself even when the test fails: mounts are
context managers that unmount in `finally`, agents started through
`wrapped_agents` are stopped at teardown, and processes are checked through
/proc, where a zombie counts as gone (PID 1 of a container may never reap
the orphans of a killed process group).
"""

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from lwtest import (ACT_TIMEOUT_S, BIN, HOUR_S, Agent, age, age_tree, gone, make_file_lock,
                    make_lock, make_pending, make_record, wait_for)

CLK_TCK = os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------- processes

def alive(pid):
    """True while pid exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError):
        return False


def read_pids(folder):
    """{file name: pid} for every *.pid file a test hook wrote in folder."""
    out = {}
    for p in Path(folder).glob("*.pid"):
        text = p.read_text().strip()
        if text:
            out[p.stem] = int(text)
    return out


def kill_pids(pids):
    """Teardown for a hook's processes that a failed test left behind."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def cpu_s(pid):
    """CPU time (user + system, every thread) a live process has used."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # After the comm: state is fields[0], utime is stat field 14 = fields[11].
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def peak_rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


class CpuWindow:
    """The agent's CPU time over a window of wall time; report() prints it
    as ms per minute so runs of different lengths compare."""

    def __init__(self, pid, label):
        self.pid = pid
        self.label = label
        self.t0 = time.monotonic()
        self.c0 = cpu_s(pid)

    def elapsed_s(self):
        return time.monotonic() - self.t0

    def wait_until(self, seconds, agent):
        """Lets the window run until `seconds` have passed since it began;
        fails early if the agent exits meanwhile."""
        def over():
            if not agent.running():
                raise AssertionError(f"agent exited during the fault window\n{agent.tail()}")
            return self.elapsed_s() >= seconds
        wait_for(over, seconds + 5, f"{seconds} s of the fault window")

    def report(self):
        wall = self.elapsed_s()
        used = cpu_s(self.pid) - self.c0
        print(f"[cpu] {self.label}: {used * 1000:.0f} ms of CPU in {wall:.1f} s "
              f"= {used * 1000 * 60 / wall:.0f} ms per minute")
        return used, wall


# ---------------------------------------------------------- site contents

def make_second_incident(root, temp_name):
    """Another deployment that died holding the lock (a lock folder, a
    status.lock, pending and an unfinished temp record), aged an hour.
    Only what it makes is aged (and locks/, deployments/ themselves): a
    trash folder being emptied beside it is not walked. Returns the
    leftovers a cleanup removes, in its order."""
    root = Path(root)
    made = [make_record(root, temp_name, "Building", False, True, received=-HOUR_S),
            make_lock(root, expiry=20 * 60).parent,
            make_file_lock(root, "status.lock", acquired_s=-HOUR_S),
            make_pending(root)]
    for path in made:
        if path.is_dir():
            age_tree(path, HOUR_S)
        else:
            age(path, HOUR_S)
    age(root / "locks", HOUR_S)
    age(root / "deployments", HOUR_S)
    return ["locks/status.lock", "deployments/pending", f"deployments/{temp_name}",
            "locks/deployment"]  # in removal order: the lock folder last


def trash_left(root):
    """The agent's .lockwarden-trash-* folders still in locks/ or deployments/."""
    out = []
    for area in ("locks", "deployments"):
        with contextlib.suppress(FileNotFoundError):
            out += [f"{area}/{n}" for n in os.listdir(Path(root) / area)
                    if n.startswith(".lockwarden-trash-")]
    return out


def wait_cleared(agent, root, leftovers, what, timeout=ACT_TIMEOUT_S):
    """Waits until the leftovers are gone and the trash they became has been
    emptied too (the sweep runs after the cleanup), so the tree can be
    compared whole."""
    wait_for(lambda: gone(root, leftovers) and not trash_left(root), timeout, what,
             lambda: f"left: {[p for p in leftovers if os.path.lexists(Path(root) / p)]}"
                     f" {trash_left(root)}\n{agent.tail()}")


def fill_folder(folder, n_files):
    """n_files empty regular files in folder (mknod: no open/close per file),
    then the folder's mtime put back an hour, so the bulk is not activity."""
    folder = Path(folder)
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for i in range(n_files):
            os.mknod(f"bulk{i:07d}", 0o100644, dir_fd=fd)
    finally:
        os.close(fd)
    t = time.time() - HOUR_S
    os.utime(folder, (t, t))


def count_entries(folder):
    n = 0
    for _, dirnames, filenames in os.walk(folder):
        n += len(dirnames) + len(filenames)
    return n


# ------------------------------------------------------------------ mounts

def _umount(path):
    """Unmounts path; a busy mount is detached lazily rather than left."""
    r = subprocess.run(["umount", str(path)], capture_output=True, text=True)
    if r.returncode != 0 and os.path.ismount(path):
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


@contextlib.contextmanager
def tmpfs(path, size):
    """A tmpfs of `size` (mount's syntax: 64k, 512m) at path, unmounted on
    the way out whatever happened. Skips the test if mounting fails."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs",
                        str(path)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs ({r.stderr.strip()}): needs root")
    try:
        yield path
    finally:
        _umount(path)


@contextlib.contextmanager
def bindfs(backing, mountpoint):
    """A FUSE view of backing at mountpoint (Debian's bindfs), so every
    operation the agent makes goes through a slow userspace filesystem.
    Skips the test, with the reason, when FUSE is not available."""
    if not shutil.which("bindfs"):
        pytest.skip("bindfs is not installed (apt-get install bindfs)")
    if not os.path.exists("/dev/fuse"):
        pytest.skip("/dev/fuse is missing: FUSE is not available here")
    mountpoint = Path(mountpoint)
    mountpoint.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["bindfs", "--no-allow-other", str(backing), str(mountpoint)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"bindfs could not mount ({r.stderr.strip()})")
    try:
        wait_for(lambda: os.path.ismount(mountpoint), 10, "the bindfs mount")
        yield mountpoint
    finally:
        _umount(mountpoint)


class StopFirst:
    """Stops the agents added to it on the way out of its with-block, even
    when the test failed: listed after a mount in the same `with`, it exits
    first, so no agent is still using a mount when it goes. A complaint
    (an agent that did not stop cleanly) is kept for the test to assert
    once the mounts are gone."""

    def __init__(self):
        self.agents = []
        self.complaints = []

    def add(self, agent):
        self.agents.append(agent)
        return agent

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for a in self.agents:
            complaint = a.stop()
            if complaint:
                self.complaints.append(complaint)
        return False


# -------------------------------------------------- agents under a wrapper

class WrappedAgent(Agent):
    """The daemon started through a wrapper that execs it in place
    (prlimit, setpriv, unshare, valgrind): self.pid is the agent's pid
    (or valgrind's, which is the agent too)."""

    def __init__(self, prefix, args, workdir, env=None, name="agent"):
        super().__init__(args, workdir, env=env, name=name)
        self.prefix = [str(p) for p in prefix]

    def start(self):
        argv = self.prefix + [BIN] + self.args
        self._err = open(self.err_path, "wb")
        self._out = open(self.out_path, "wb")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._out,
                                     stderr=self._err, env=self.env,
                                     start_new_session=True)
        return self


@pytest.fixture
def wrapped_agents(tmp_path):
    """Like `agents`, for WrappedAgent: start(prefix, args, ...). Every agent
    is stopped at teardown and its log printed."""
    started = []

    class Factory:
        def start(self, prefix, args, env=None, name=None):
            a = WrappedAgent(prefix, args, tmp_path, env=env,
                             name=name or f"wrapped{len(started)}")
            started.append(a)
            return a.start()

    yield Factory()
    complaints = [c for c in (a.stop() for a in started) if c]
    for a in started:
        print(f"==== {a.name}: {' '.join(a.prefix + a.args)} (exit {a.proc.returncode})")
        print(a.log()[-20000:])
    if complaints:
        pytest.fail("; ".join(complaints), pytrace=False)


# ------------------------------------------------------------ sd_notify

def shell_script(path, body):
    """A /bin/sh script at path, mode 0755 (not writable by others: the
    agent refuses a hook program others could write)."""
    path = Path(path)
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def q(path):
    return shlex.quote(str(path))
