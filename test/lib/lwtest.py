"""Shared fixtures and helpers for the tests that run the real daemon
(test/e2e, test/robust, test/attack: each conftest.py imports this).

Every test starts the real lockwarden binary (LOCKWARDEN_BIN) in the
foreground on a temporary site tree with a temporary config file, and
asserts on files, exit codes, log lines and hook runs. Nothing here sleeps
a fixed time hoping something happened: every wait polls a condition with
a deadline (wait_for), and "the agent has looked again" is read from its
`scan N done:` debug lines.

Site-tree builders write what Kudu writes (see /work/shared/KUDU.md):
make_lock, make_file_lock, make_record, make_pending, set_active, ... and
age() moves mtimes into the past, so a test need not wait for stuck_after.
"""

import datetime
import hashlib
import json
import os
import re
import shlex
import signal
import socket
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

BIN = os.environ.get("LOCKWARDEN_BIN", "")

EX_OK = 0
EX_FAILURE = 1
EX_STUCK = 2
# --once outcomes (agent_options.h, README "Exit codes").
ONCE_NOTHING_STUCK = 0
ONCE_STUCK_DRY_RUN = 2
ONCE_CLEARED = 3
ONCE_PARTIAL = 4
ONCE_HOOK_FAILED = 5
ONCE_UNAVAILABLE = 6
ONCE_UNREADABLE = 7
EX_USAGE = 64
EX_CONFIG = 78

POLL_S = 0.02
# Generous enough for an ASan build on a busy 2-core machine, short enough
# that a hung agent fails the test quickly.
START_TIMEOUT_S = 10.0
ACT_TIMEOUT_S = 15.0

LOG_LINE_RE = re.compile(
    r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z lockwarden\[\d+\] "
    r"(debug|info|warning|error): ")
SCAN_DONE_RE = re.compile(r"scan (\d+) done:")
# One `removed <path>` line per entry the agent removed.
REMOVED_RE = re.compile(r"\bremoved ((?:locks|deployments)/\S+)")


def pytest_collection_modifyitems(config, items):
    if BIN and os.access(BIN, os.X_OK):
        return
    reason = ("LOCKWARDEN_BIN is not set" if not BIN else
              f"LOCKWARDEN_BIN={BIN} does not exist or is not executable "
              "(run `make build/lockwarden`, or `make e2e`)")
    for item in items:
        item.add_marker(pytest.mark.skip(reason=reason))


# ---------------------------------------------------------------- waiting

class WaitTimeout(AssertionError):
    pass


def wait_for(cond, timeout, what="condition", detail=None):
    """Polls cond() until it returns something truthy (returned) or timeout
    seconds pass (WaitTimeout naming `what`, plus detail() if given)."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() >= deadline:
            extra = ""
            if detail is not None:
                extra = "\n" + detail()
            raise WaitTimeout(f"timed out after {timeout:.1f}s waiting for {what}{extra}")
        time.sleep(POLL_S)



def all_threads_stopped(pid):
    """Every thread of pid is stopped (state T or t), or the process is gone."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return True
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            continue
        if state not in ("T", "t"):
            return False
    return True


def stop_process(pid, timeout=10):
    """SIGSTOP, then waits until it took effect: kill() returns before the
    target stops, and a thread still running may yet take a request (a FUSE
    daemon then holds its caller in an uninterruptible wait)."""
    os.kill(pid, signal.SIGSTOP)
    wait_for(lambda: all_threads_stopped(pid), timeout, f"process {pid} to stop")

# ------------------------------------------------------------ Kudu's times

def log_time(line):
    """The wall time (epoch seconds) one agent log line is stamped with."""
    stamp = line.split(" ", 1)[0]
    when = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ")
    return when.replace(tzinfo=datetime.timezone.utc).timestamp()


def kudu_time(when):
    """A datetime (UTC) in .NET's round-trip format: 7 fractional digits, Z."""
    when = when.astimezone(datetime.timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond:06d}0Z"


def utc_in(seconds):
    return datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=seconds)


# --------------------------------------------------------- site-tree build

def _write(path, data, mode="w"):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, mode) as f:
        f.write(data)
    return path


def make_skeleton(root):
    """The folders every site has: locks/ and deployments/."""
    root = Path(root)
    (root / "locks").mkdir(parents=True, exist_ok=True)
    (root / "deployments").mkdir(parents=True, exist_ok=True)
    return root


def make_lock(root, expiry, op="Performing deployment", pid=83, tid=45, worker="abc123"):
    """locks/deployment/info.lock. expiry: a datetime, seconds from now
    (int/float; negative = expired), or a raw JSON value (None, "")."""
    if isinstance(expiry, (int, float)):
        expiry = kudu_time(utc_in(expiry))
    elif isinstance(expiry, datetime.datetime):
        expiry = kudu_time(expiry)
    body = json.dumps({"lockExpiry": expiry, "heldByPID": pid, "heldByTID": tid,
                       "heldByOp": op, "heldByWorker": worker},
                      separators=(",", ":"))
    return _write(Path(root) / "locks" / "deployment" / "info.lock", body)


def make_file_lock(root, name="status.lock", op="Performing deployment",
                   acquired_s=-3600, instance="abc123"):
    """locks/status.lock (or deployments.lock, sshkey.lock, hooks.lock):
    indented JSON with the last holder's details, as Kudu leaves it."""
    stack = ("   at Kudu.Core.Infrastructure.LockFile.TryLockOperation()\n"
             "   at Kudu.Core.Deployment.DeploymentStatusFile.Save()\n"
             "   at Kudu.Services.Deployment.PushDeploymentController.Deploy()")
    body = json.dumps({"OperationName": op,
                       "AcquiredDateTime": kudu_time(utc_in(acquired_s)),
                       "StackTrace": stack, "InstanceId": instance}, indent=2)
    return _write(Path(root) / "locks" / name, body)


STATUS_XML = """<?xml version="1.0" encoding="utf-8"?>
<deployment>
  <id>{id}</id>
  <author>N/A</author>
  <deployer>ZipDeploy</deployer>
  <authorEmail>N/A</authorEmail>
  <message>Created via a push deployment</message>
  <progress>{progress}</progress>
  <status>{status}</status>
  <statusText>{status_text}</statusText>
  <lastSuccessEndTime>{last_success}</lastSuccessEndTime>
  <receivedTime>{received}</receivedTime>
  <startTime>{start}</startTime>
  {end}
  <complete>{complete}</complete>
  <is_temp>{is_temp}</is_temp>
  <is_readonly>False</is_readonly>
</deployment>"""


def make_record(root, rid, status, complete, is_temp, received=-3600, log_lines=3, bom=False):
    """deployments/<rid>/ with status.xml and log.log. received: seconds
    from now (negative: in the past). Returns the record's folder."""
    rec = Path(root) / "deployments" / rid
    rec.mkdir(parents=True, exist_ok=True)
    received_t = utc_in(received)
    end = (f"<endTime>{kudu_time(received_t + datetime.timedelta(seconds=40))}</endTime>"
           if complete else "<endTime />")
    xml = STATUS_XML.format(
        id=rid, progress="" if complete else "Running oryx build...",
        status=status,
        status_text="" if status != "Pending" else "Receiving changes.",
        last_success="" if status != "Success" else kudu_time(received_t + datetime.timedelta(seconds=40)),
        received=kudu_time(received_t),
        start=kudu_time(received_t + datetime.timedelta(seconds=1)),
        end=end, complete="True" if complete else "False",
        is_temp="True" if is_temp else "False")
    # Kudu writes UTF-8 with or without a byte-order mark.
    _write(rec / "status.xml", (b"\xef\xbb\xbf" if bom else b"") + xml.encode("utf-8"), "wb")
    lines = []
    for i in range(log_lines):
        t = kudu_time(received_t + datetime.timedelta(seconds=i))
        lines.append(f"{t},Step {i}&comma; still going.,{'d1c4e5f6-0000-4000-8000-00000000000' + str(i % 10)},0\n")
    _write(rec / "log.log", "".join(lines))
    if complete:
        _write(rec / "manifest", "index.html\n")
    return rec


def append_log(record, message="Building..."):
    with open(Path(record) / "log.log", "a") as f:
        f.write(f"{kudu_time(utc_in(0))},{message},,0\n")


def make_pending(root):
    return _write(Path(root) / "deployments" / "pending", "")


def set_active(root, rid):
    return _write(Path(root) / "deployments" / "active", rid)


def make_tools(root):
    tools = Path(root) / "deployments" / "tools"
    _write(tools / "deploymentCacheKey", "a1b2c3")
    _write(tools / "PostDeploymentActions" / "README.txt", "post-deployment actions\n")
    return tools


def make_settings(root):
    return _write(Path(root) / "deployments" / "settings.xml",
                  '<?xml version="1.0" encoding="utf-8"?>\n<settings>\n'
                  '  <deployment_branch>main</deployment_branch>\n</settings>')


def age(path, seconds):
    """Moves path's atime and mtime `seconds` into the past (no symlink
    following)."""
    t = time.time() - seconds
    os.utime(path, (t, t), follow_symlinks=False)


def age_tree(root, seconds):
    """Ages every entry under root and root itself, children first, so the
    folders' mtimes are not bumped again afterwards."""
    root = Path(root)
    for dirpath, dirnames, filenames in os.walk(root, topdown=False, followlinks=False):
        for name in filenames + dirnames:
            age(os.path.join(dirpath, name), seconds)
    age(root, seconds)


HOUR_S = 3600
# Longer than DEFAULT_TEST_CONFIG's stuck_after (2s): see settle().
SETTLE_S = 2.5


def newest_ctime(root):
    """The newest inode change time under root, root included (no symlink
    following)."""
    newest = os.lstat(root).st_ctime
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            try:
                newest = max(newest, os.lstat(os.path.join(dirpath, name)).st_ctime)
            except FileNotFoundError:
                pass
    return newest


def settle(root, seconds=SETTLE_S):
    """Waits until nothing under root has changed for `seconds`, by ctime.
    age() backdates mtimes, but utime() itself sets ctime to now, and the
    agent counts ctime as activity (it cannot be set back from user space,
    so a backdated mtime does not hide a write). A tree that must look
    untouched has to be left alone for real, longer than the test's
    stuck_after."""
    wait_for(lambda: time.time() - newest_ctime(root) >= seconds, seconds + 10,
             f"{root} untouched for {seconds}s by ctime")
RECORD_DONE = "0123456789abcdef0123456789abcdef"
RECORD_OLD = "fedcba9876543210fedcba9876543210"
TEMP_STUCK = "temp-1a2b3c4d"
TEMP_FAILED = "temp-0000aaaa"

# A cleanup moves each target aside as ".lockwarden-trash-<token>-<name>",
# the token 16 hex digits new to each cleanup (agent/reap.h).
TRASH_RE = r"\.lockwarden-trash-[0-9a-f]{16}-"


def trash_of(folder, name):
    """The trash names `name` was moved aside under in folder, sorted."""
    rx = re.compile(TRASH_RE + re.escape(name) + "$")
    try:
        return sorted(Path(folder) / n for n in os.listdir(folder) if rx.match(n))
    except FileNotFoundError:
        return []


def build_finished_site(root):
    """A healthy site: an older and a newer successful record, active
    pointing to the newer one, tools/, settings.xml, and the lock files
    Kudu leaves behind on Linux (sshkey.lock). Nothing here may ever go."""
    make_skeleton(root)
    make_record(root, RECORD_OLD, "Success", True, False, received=-3 * HOUR_S, bom=True)
    make_record(root, RECORD_DONE, "Success", True, False, received=-2 * HOUR_S)
    set_active(root, RECORD_DONE)
    make_tools(root)
    make_settings(root)
    make_file_lock(root, "sshkey.lock", op="Updating SSH key", acquired_s=-5 * HOUR_S)
    return root


# The leftovers build_stuck_site makes, in the order a cleanup removes them.
# In the order a cleanup removes them: the lock folder last (while it
# exists Kudu answers 409, so nothing new starts during the cleanup).
STUCK_LEFTOVERS = ["locks/status.lock", "locks/deployments.lock",
                   "deployments/pending", f"deployments/{TEMP_STUCK}", "locks/deployment"]


def build_stuck_site(root, age_s=HOUR_S):
    """A deployment that died holding the lock: locks/deployment with a
    future lockExpiry, status.lock, deployments.lock, pending, and a temp
    record still Building (the newest), next to build_finished_site's
    records and an older failed temp record (complete: kept). Everything is
    aged age_s by mtime, and left alone for SETTLE_S (ctime)."""
    build_finished_site(root)
    make_record(root, TEMP_FAILED, "Failed", True, True, received=-90 * 60)
    make_lock(root, expiry=20 * 60)
    make_file_lock(root, "status.lock", acquired_s=-age_s)
    make_file_lock(root, "deployments.lock", acquired_s=-age_s)
    make_pending(root)
    make_record(root, TEMP_STUCK, "Building", False, True, received=-age_s - 10)
    age_tree(root, age_s)
    settle(root)
    return root


# ------------------------------------------------------------- tree hashes

def tree_state(root):
    """{relative path: (kind, content digest or link target, mtime_ns)} for
    every entry under root, symlinks not followed. Folders carry no mtime
    (removing a child changes it legitimately)."""
    root = Path(root)
    state = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            if os.path.islink(p):
                state[rel] = ("link", os.readlink(p), st.st_mtime_ns)
            elif os.path.isdir(p):
                state[rel] = ("dir", None, None)
            else:
                with open(p, "rb") as f:
                    digest = hashlib.sha256(f.read()).hexdigest()
                state[rel] = ("file", digest, st.st_mtime_ns)
    return state


def settled_tree_state(root, timeout=ACT_TIMEOUT_S):
    """tree_state(root) once no moved-aside folder is left in locks/ or
    deployments/: a cleanup's folders are emptied in the background, beside
    its hook, so the tree after a cleanup is compared once that is done."""
    root = Path(root)

    def trash_left():
        return [f"{area}/{n}" for area in ("locks", "deployments")
                if (root / area).is_dir() for n in os.listdir(root / area)
                if n.startswith(".lockwarden-trash-")]
    wait_for(lambda: not trash_left(), timeout, f"the moved-aside folders in {root} to be emptied",
             lambda: "\n".join(trash_left()))
    return tree_state(root)


def tree_hash(root):
    """One digest of tree_state(root)."""
    h = hashlib.sha256()
    for rel, value in sorted(tree_state(root).items()):
        h.update(repr((rel, value)).encode("utf-8", "surrogateescape"))
    return h.hexdigest()


def without(state, removed):
    """state minus every path in removed and everything under them."""
    out = {}
    for rel, value in state.items():
        if any(rel == r or rel.startswith(r + "/") for r in removed):
            continue
        out[rel] = value
    return out


def state_diff(expected, seen):
    lines = []
    for rel in sorted(set(expected) | set(seen)):
        if expected.get(rel) != seen.get(rel):
            lines.append(f"  {rel!r}: expected {expected.get(rel)!r}, seen {seen.get(rel)!r}")
    return "\n".join(lines) or "  (identical)"


def gone(root, rel_paths):
    return all(not os.path.lexists(os.path.join(root, r)) for r in rel_paths)


# ------------------------------------------------------------------ config

DEFAULT_TEST_CONFIG = {
    "policy": {"stuck_after": "2s"},
    "scan": {"rescan_interval": "500ms"},
    "hook": {"timeout": "10s", "cooldown": "0s"},
    "log": {"level": "info"},
}


def archive_dir_for(config_path):
    """Where write_config points [archive] dir: beside the config file."""
    return Path(config_path).parent / "archive"


def write_config(path, root, **sections):
    """Writes an ini file: [site] root plus DEFAULT_TEST_CONFIG, each
    section updated from the keyword arguments (policy={...}). A value of
    None drops the key."""
    merged = {"site": {"root": str(root)}}
    for sec, keys in DEFAULT_TEST_CONFIG.items():
        merged[sec] = dict(keys)
    # The agent archives what it removes; keep that inside the test's folder.
    merged["archive"] = {"dir": str(archive_dir_for(path))}
    for sec, keys in sections.items():
        merged.setdefault(sec, {}).update(keys)
    text = []
    for sec, keys in merged.items():
        text.append(f"[{sec}]")
        for k, v in keys.items():
            if v is not None:
                text.append(f"{k} = {v}")
        text.append("")
    Path(path).write_text("\n".join(text))
    return Path(path)


def parse_duration_ms(text):
    """The config's duration syntax, for comparing check-config output
    whatever unit it chose: 90, 90s, 15m, 2h, 250ms, 1h30m."""
    text = text.strip()
    if re.fullmatch(r"\d+", text):
        return int(text) * 1000
    units = {"ms": 1, "s": 1000, "m": 60000, "h": 3600000, "d": 86400000}
    parts = re.findall(r"(\d+)(ms|s|m|h|d)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a duration: {text!r}")
    return sum(int(n) * units[u] for n, u in parts)


def clean_env(**extra):
    """The test runner's environment without anything that would change
    the agent's behaviour behind the test's back."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LOCKWARDEN_", "NOTIFY_", "WATCHDOG_", "LISTEN_"))
           and k not in ("JOURNAL_STREAM", "INVOCATION_ID")}
    env.update({k: str(v) for k, v in extra.items()})
    return env


# --------------------------------------------------------------- the agent

def run_cli(args, env=None, timeout=20, stdin=subprocess.DEVNULL):
    """Runs the binary to completion; returns CompletedProcess (text)."""
    return subprocess.run([BIN] + [str(a) for a in args], env=env or clean_env(),
                          stdin=stdin, capture_output=True, text=True,
                          errors="surrogateescape", timeout=timeout)


class Agent:
    """The daemon, running in the foreground, stdout and stderr each in a
    file the test reads."""

    def __init__(self, args, workdir, env=None, watchdog_pid_self=False, name="agent"):
        self.args = [str(a) for a in args]
        self.workdir = Path(workdir)
        self.env = env if env is not None else clean_env()
        self.name = name
        self.err_path = self.workdir / f"{name}.stderr"
        self.out_path = self.workdir / f"{name}.stdout"
        self.watchdog_pid_self = watchdog_pid_self
        self.proc = None
        self.returncode = None

    def start(self):
        argv = [BIN] + self.args
        if self.watchdog_pid_self:
            # WATCHDOG_PID must be the agent's own pid, known only once it
            # runs: the shell exports its pid and execs the agent in place.
            argv = ["/bin/sh", "-c", 'export WATCHDOG_PID=$$; exec "$0" "$@"'] + argv
        self._err = open(self.err_path, "wb")
        self._out = open(self.out_path, "wb")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._out,
                                     stderr=self._err, env=self.env,
                                     start_new_session=True)
        return self

    @property
    def pid(self):
        return self.proc.pid

    def log(self):
        try:
            return self.err_path.read_bytes().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log_lines(self):
        return self.log().splitlines()

    def tail(self, n=40):
        lines = self.log_lines()
        return f"--- last {min(n, len(lines))} lines of {self.name} stderr ---\n" + \
            "\n".join(lines[-n:])

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def wait_for_log(self, pattern, timeout=ACT_TIMEOUT_S, start=0):
        """Waits for a log line matching pattern (a regex), among lines
        from index `start` on; returns the match. Fails early if the agent
        exits."""
        rx = re.compile(pattern)

        def found():
            for line in self.log_lines()[start:]:
                m = rx.search(line)
                if m:
                    return m
            if not self.running():
                raise AssertionError(
                    f"{self.name} exited ({self.proc.poll()}) before logging "
                    f"/{pattern}/\n{self.tail()}")
            return None
        return wait_for(found, timeout, f"log line /{pattern}/", self.tail)

    def count(self, pattern):
        rx = re.compile(pattern)
        return sum(1 for line in self.log_lines() if rx.search(line))

    def removed(self):
        """The paths the agent logged as removed, in order."""
        out = []
        for line in self.log_lines():
            out.extend(REMOVED_RE.findall(line))
        return out

    def wait_removed(self, paths, timeout=ACT_TIMEOUT_S):
        """The removed() list once it names every one of paths. A removal
        leaves the tree a moment before the agent logs it, so a test that
        saw the files go waits here for the log before comparing."""
        wait_for(lambda: set(paths) <= set(self.removed()), timeout,
                 f"the agent to log the removal of {sorted(paths)}", self.tail)
        return self.removed()

    def scan_times(self):
        """The wall time (epoch seconds, by the agent's own clock) of each
        `scan N done` line, in order (needs -v)."""
        return [log_time(line) for line in self.log_lines() if SCAN_DONE_RE.search(line)]

    def line_time(self, pattern):
        """The wall time of the first log line matching pattern, by the
        agent's own clock; None when there is none."""
        for line in self.log_lines():
            if re.search(pattern, line):
                return log_time(line)
        return None

    def scans_done(self):
        n = 0
        for line in self.log_lines():
            m = SCAN_DONE_RE.search(line)
            if m:
                n = max(n, int(m.group(1)))
        return n

    def wait_scan(self, n, timeout=START_TIMEOUT_S):
        """Waits until scan n has finished (needs -v)."""
        def done():
            if self.scans_done() >= n:
                return True
            if not self.running():
                raise AssertionError(f"{self.name} exited ({self.proc.poll()}) "
                                     f"before scan {n}\n{self.tail()}")
            return False
        wait_for(done, timeout, f"scan {n} done", self.tail)

    def wait_fresh_scans(self, count=1, timeout=START_TIMEOUT_S):
        """Waits until `count` scans that began after this call have
        finished: scan N+1 may already be running now, N+2 cannot be."""
        n = self.scans_done()
        self.wait_scan(n + 1 + count, timeout)

    def send(self, sig):
        self.proc.send_signal(sig)

    def wait_exit(self, timeout):
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.name} did not exit within {timeout}s\n{self.tail()}")
        return self.returncode

    def stop(self):
        """Teardown: SIGTERM, then SIGKILL to the agent's group if it hangs.
        Returns a complaint when the agent did not stop cleanly, else None."""
        if self.proc is None:
            return None
        complaint = None
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                rc = self.proc.wait(timeout=5)
                if rc != 0:
                    complaint = f"{self.name} exited {rc} on SIGTERM at teardown"
            except subprocess.TimeoutExpired:
                complaint = f"{self.name} ignored SIGTERM at teardown for 5 s: killed"
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout=5)
        for f in (self._err, self._out):
            f.close()
        return complaint


@pytest.fixture
def agents(tmp_path):
    """Starts agents (agents.start(args, ...)) and stops every one of them at
    teardown, even when the test failed; their logs are printed so a
    failure shows them."""
    started = []

    class Factory:
        def start(self, args, env=None, watchdog_pid_self=False, name=None):
            a = Agent(args, tmp_path, env=env, watchdog_pid_self=watchdog_pid_self,
                      name=name or f"agent{len(started)}")
            started.append(a)
            return a.start()

    yield Factory()
    complaints = [c for c in (a.stop() for a in started) if c]
    for a in started:
        print(f"==== {a.name}: {' '.join(a.args)} (exit {a.proc.returncode})")
        print(a.log())
    # Every test also checks that the agent it started stops cleanly.
    if complaints:
        pytest.fail("; ".join(complaints), pytrace=False)


# Folders outside the test's temporary tree that the agent writes to when a
# config key is left at its default (the archive). Other suites may write
# there at the same time, so only new entries that name this test's folder
# count against it.
DEFAULT_OUTPUT_DIRS = ["/home/LogFiles/lockwarden"]


def _listing(path):
    try:
        return set(os.listdir(path))
    except FileNotFoundError:
        return set()


def _mentions(path, needle):
    for dirpath, _, filenames in os.walk(path):
        for name in filenames:
            try:
                with open(os.path.join(dirpath, name), "rb") as f:
                    if needle in f.read(1 << 20):
                        return True
            except OSError:
                pass
    return False


@pytest.fixture(autouse=True)
def nothing_written_outside_tmp(tmp_path):
    before = {d: _listing(d) for d in DEFAULT_OUTPUT_DIRS}
    yield
    ours = []
    for d in DEFAULT_OUTPUT_DIRS:
        for name in sorted(_listing(d) - before[d]):
            if _mentions(os.path.join(d, name), os.fsencode(str(tmp_path))):
                ours.append(os.path.join(d, name))
    if ours:
        pytest.fail(f"the test wrote outside its temporary folder: {ours}", pytrace=False)


@pytest.fixture
def site(tmp_path):
    """An empty site tree (locks/ and deployments/) in a temp folder."""
    return make_skeleton(tmp_path / "site")


@pytest.fixture
def outside(tmp_path):
    """A folder outside the site root (symlink targets)."""
    d = tmp_path / "outside"
    d.mkdir()
    return d


# --------------------------------------------------------------- the hook

class HookRecorder:
    """A hook command that records each run: the environment it got (NUL
    separated, since LOCKWARDEN_REMOVED holds newlines) in one file per
    run, written under a temporary name and renamed, so a reader never sees
    half a run. Its pid is kept so teardown can end a hook left running."""

    def __init__(self, d):
        self.dir = Path(d)
        self.runs_dir = self.dir / "runs"
        self.pids_dir = self.dir / "pids"
        self.runs_dir.mkdir(parents=True)
        self.pids_dir.mkdir()
        self.script = self.dir / "hook.sh"
        self.script.write_text(
            "#!/bin/sh\n"
            f'runs={shlex.quote(str(self.runs_dir))}\n'
            f'echo $$ > {shlex.quote(str(self.pids_dir))}/$$\n'
            'tmp="$runs/.tmp.$$"\n'
            'env -0 > "$tmp"\n'
            'mv "$tmp" "$runs/run.$(date +%s%N).$$"\n'
            'echo "hook saw $LOCKWARDEN_REMOVED_COUNT removals"\n'
            'if [ -n "${HOOK_SLEEP:-}" ]; then exec sleep "$HOOK_SLEEP"; fi\n'
            'exit "${HOOK_EXIT:-0}"\n')

    def command(self, exit_status=0, sleep_s=None):
        cmd = f"HOOK_EXIT={exit_status} "
        if sleep_s is not None:
            cmd += f"HOOK_SLEEP={sleep_s} "
        return cmd + "/bin/sh " + shlex.quote(str(self.script))

    def runs(self):
        """Each run's environment (dict), oldest first."""
        out = []
        for p in sorted(self.runs_dir.glob("run.*")):
            env = {}
            for item in p.read_bytes().split(b"\0"):
                if b"=" in item:
                    k, _, v = item.partition(b"=")
                    env[k.decode("utf-8", "surrogateescape")] = v.decode("utf-8", "surrogateescape")
            out.append(env)
        return out

    def count(self):
        return len(list(self.runs_dir.glob("run.*")))

    def kill_leftovers(self):
        for p in self.pids_dir.iterdir():
            pid = int(p.name)
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


@pytest.fixture
def hook(tmp_path):
    rec = HookRecorder(tmp_path / "hook")
    yield rec
    rec.kill_leftovers()


def faketime_env(offset, env=None):
    """libfaketime moves this agent's wall clock only (its monotonic clock,
    which claims are judged by, stays the host's), by offset ("+2h", "-2h").
    Skips the test when libfaketime is not installed."""
    lib = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"
    if not os.path.exists(lib):
        pytest.skip("libfaketime is not installed (apt-get install libfaketime)")
    env = dict(env or clean_env())
    env["LD_PRELOAD"] = (env.get("LD_PRELOAD", "") + " " + lib).strip()
    # NO_FAKE_STAT: a host whose clock is off still reads the share's
    # timestamps as they are.
    env.update(FAKETIME=offset, DONT_FAKE_MONOTONIC="1", FAKETIME_DONT_RESET="1",
               NO_FAKE_STAT="1")
    # The sanitizer build wants its runtime first in the library list;
    # libfaketime only wraps the clock calls, so the order does not matter.
    env["ASAN_OPTIONS"] = "verify_asan_link_order=0:" + env.get("ASAN_OPTIONS", "")
    return env


def start_agent(agents, cfg, *extra, env=None, **kw):
    """`lockwarden run -c cfg -v ...`: -v, so the scans are counted."""
    return agents.start(["run", "-c", cfg, "-v", *extra], env=env, **kw)


# ------------------------------------------------------------- sd_notify

class NotifySocket:
    """An abstract unix datagram socket collecting (monotonic time, {key:
    value}) for every message."""

    def __init__(self):
        self.name = f"lockwarden-test-{os.getpid()}-{time.monotonic_ns()}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + self.name)
        self.sock.settimeout(0.1)
        self.messages = []
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    @property
    def env_value(self):
        return "@" + self.name

    def _run(self):
        while not self.stop_event.is_set():
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            fields = {}
            for line in data.decode("utf-8", "replace").split("\n"):
                if "=" in line:
                    k, _, v = line.partition("=")
                    fields[k] = v
            with self.lock:
                self.messages.append((time.monotonic(), fields))

    def snapshot(self):
        with self.lock:
            return list(self.messages)

    def first(self, key, value=None, after=0):
        """Index of the first message from index `after` on having key
        (with that value, if given), or None."""
        msgs = self.snapshot()
        for i in range(after, len(msgs)):
            f = msgs[i][1]
            if key in f and (value is None or f[key] == value):
                return i
        return None

    def wait(self, key, value=None, after=0, timeout=10):
        """Waits for such a message; returns its index."""
        def found():
            i = self.first(key, value, after)
            return None if i is None else (i,)
        return wait_for(found, timeout, f"sd_notify {key}={value or '*'}",
                        lambda: f"received: {[m[1] for m in self.snapshot()]}")[0]

    def times(self, key, value):
        """Monotonic times of the messages with key=value."""
        with self.lock:
            return [t for t, f in self.messages if f.get(key) == value]

    def close(self):
        self.stop_event.set()
        self.thread.join(timeout=2)
        self.sock.close()


@pytest.fixture
def notify_socket():
    s = NotifySocket()
    yield s
    s.close()


# ------------------------------------------------- stopping the agent at a step

LIB_DIR = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def pause_shim(tmp_path_factory):
    """pause_shim.c built for this run: LD_PRELOADed into the agent, it stops
    it at one exact call so a test acts inside a race window on purpose."""
    out = tmp_path_factory.mktemp("shim") / "pause_shim.so"
    cc = next((c for c in ("cc", "gcc", "clang") if shutil.which(c)), None)
    if cc is None:
        pytest.skip("no C compiler to build test/lib/pause_shim.c")
    subprocess.run([cc, "-shared", "-fPIC", "-O1", "-o", str(out),
                    str(LIB_DIR / "pause_shim.c"), "-ldl"], check=True)
    return out


class Pause:
    """Where the agent stops: the `at`-th `call` ("openat", "rename",
    "fdopendir") whose name ends in `name`. With `ms` it only sleeps there;
    otherwise it waits for release()."""

    def __init__(self, shim, folder, call, name="", at=1, ms=None, every=False, has="",
                 data=""):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.vars = {"LD_PRELOAD": str(shim), "LW_PAUSE_CALL": call, "LW_PAUSE_NAME": name,
                     "LW_PAUSE_AT": str(at), "LW_PAUSE_HAS": has, "LW_PAUSE_DATA": data,
                     # The sanitizer build wants its runtime first; the shim
                     # only wraps libc calls, so the order does not matter.
                     "ASAN_OPTIONS": "verify_asan_link_order=0:" +
                                     os.environ.get("ASAN_OPTIONS", "")}
        if every:
            self.vars["LW_PAUSE_EVERY"] = "1"
        if ms is None:
            self.vars["LW_PAUSE_DIR"] = str(self.folder)
        else:
            self.vars["LW_PAUSE_MS"] = str(ms)

    def env(self, **extra):
        return clean_env(**self.vars, **extra)

    def wait_paused(self, timeout=ACT_TIMEOUT_S, detail=None):
        wait_for(lambda: (self.folder / "paused").exists(), timeout,
                 f"the agent to reach {self.vars['LW_PAUSE_CALL']} "
                 f"{self.vars['LW_PAUSE_NAME']!r}", detail)

    def release(self):
        (self.folder / "go").touch()


# ---- the incident's claim (agent/claim.h) ------------------------------------

CLAIM_PREFIX = ".lockwarden-claim-"
HOOK_MARK_PREFIX = ".lockwarden-hook-"


def claim_names(archive):
    """The claim sequence's names in the archive folder, by number."""
    archive = Path(archive)
    if not archive.is_dir():
        return []
    out = []
    for p in archive.iterdir():
        tail = p.name[len(CLAIM_PREFIX):]
        if p.name.startswith(CLAIM_PREFIX) and tail.isdigit() and not tail.startswith("0"):
            out.append((int(tail), p))
    return [p for _, p in sorted(out)]


def name_text(path, inner):
    """A protocol name's text: the file in its folder (`inner`: "claim" or
    "mark"), or the name itself when it is a file (an earlier version's)."""
    path = Path(path)
    return (path / inner if path.is_dir() and not path.is_symlink() else path).read_bytes()


def top_claim(archive):
    """The top claim as parsed JSON, or None (none, or not ours/not written)."""
    names = claim_names(archive)
    if not names:
        return None
    try:
        return json.loads(name_text(names[-1], "claim"))
    except (OSError, ValueError):
        return None


def claim_held(archive):
    """An incident is held: the top claim exists and is not released (or
    cannot be read: taken as held)."""
    names = claim_names(archive)
    if not names:
        # The single name of versions before the sequence (a test run
        # against an older build).
        return os.path.lexists(Path(archive) / ".lockwarden-claim")
    top = top_claim(archive)
    return top is None or top.get("state") != "released"


def hook_marks(archive):
    archive = Path(archive)
    if not archive.is_dir():
        return []
    return sorted(p for p in archive.iterdir() if p.name.startswith(HOOK_MARK_PREFIX))
