"""Helpers of the attack suite (test/attack): checksums of whole trees
outside the site root, the archive's shape, running the agent once, running
it as another user, mounts, and paths too deep for path-based calls.

The suite's one promise is "nothing outside the site root changes": every
test snapshots the trees it must not touch (full_state) before the agent
runs and compares after. A snapshot holds, for every entry, its type, mode,
owner, size, mtime, link count, content digest (files), link target
(symlinks) or device number (device nodes) - so a file rewritten, chmod'ed,
chown'ed, touched, hard-linked or unlinked elsewhere, a link re-pointed, or
an entry added or removed anywhere in the tree shows up. Folders carry their
mtime too: nothing may be added to or removed from a folder outside.
"""

import ctypes
import hashlib
import json
import os
import re
import stat
import subprocess
from pathlib import Path

from lwtest import BIN, clean_env, state_diff

# Session folders the archive may gain: <YYYYmmddTHHMMSSZ>-<instance>-<n>.
SESSION_RE = re.compile(r"^\d{8}T\d{6}Z-[A-Za-z0-9._-]{1,12}-\d+$")
# The only lines LOCKWARDEN_REMOVED may hold: names Kudu makes.
KUDU_REMOVABLE_RE = re.compile(
    r"^(locks/(deployment|status\.lock|deployments\.lock)"
    r"|deployments/(pending|temp-[0-9a-f]{8}))$")
# The agent's log timestamp: <ISO time with ms>Z.
LOG_TIME_RE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z ")

TRASH_PREFIX = ".lockwarden-trash-"


# ------------------------------------------------------------ checksums

def _entry(path, st):
    kind = stat.S_IFMT(st.st_mode)
    if stat.S_ISLNK(st.st_mode):
        payload = os.readlink(path)
    elif stat.S_ISREG(st.st_mode):
        h = hashlib.sha256()
        # O_NONBLOCK: a file is never a FIFO here, but be safe anyway.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        try:
            while True:
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    break
                h.update(chunk)
        finally:
            os.close(fd)
        payload = h.hexdigest()
    elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        payload = st.st_rdev
    else:
        payload = None     # folders, FIFOs, sockets: identity only
    return (kind, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_nlink,
            st.st_size if not stat.S_ISDIR(st.st_mode) else None,
            st.st_mtime_ns, payload)


def full_state(root):
    """{relative path (bytes): entry tuple} for root and everything under
    it, links never followed, and the walk never leaves root's mount (a
    mount made inside is listed as its mount point, not entered)."""
    root = os.fsencode(os.fspath(root))
    state = {}
    root_st = os.lstat(root)
    state[b"."] = _entry(root, root_st)
    stack = [root]
    while stack:
        d = stack.pop()
        for name in sorted(os.listdir(d)):
            p = os.path.join(d, name)
            st = os.lstat(p)
            state[os.path.relpath(p, root)] = _entry(p, st)
            if stat.S_ISDIR(st.st_mode) and st.st_dev == root_st.st_dev and \
                    not os.path.ismount(p):
                stack.append(p)
    return state


class TreeGuard:
    """Snapshots trees that must not change; check() fails with a diff.
    expect_nlink maps a path (inside a guarded tree) to the link count it
    must have afterwards: a hard link inside the site, removed by the
    agent, legitimately lowers the count of a file outside."""

    def __init__(self, *roots):
        self.roots = [Path(r) for r in roots]
        self.before = {r: full_state(r) for r in self.roots}

    def check(self, expect_nlink=None):
        expect_nlink = {os.fsencode(str(k)): v for k, v in (expect_nlink or {}).items()}
        problems = []
        for r in self.roots:
            want = dict(self.before[r])
            for abs_path, nlink in expect_nlink.items():
                rel = os.path.relpath(abs_path, os.fsencode(str(r)))
                if rel in want:
                    e = list(want[rel])
                    e[4] = nlink
                    want[rel] = tuple(e)
            seen = full_state(r)
            if seen != want:
                problems.append(f"{r} changed:\n" + state_diff(
                    {k.decode("utf-8", "backslashreplace"): v for k, v in want.items()},
                    {k.decode("utf-8", "backslashreplace"): v for k, v in seen.items()}))
        assert not problems, "\n".join(problems)


# The claim protocol's files in the archive folder (agent/claim.h).
PROTOCOL_RE = re.compile(r"^\.lockwarden-(claim|hook)-[^/]*(/[^/]*)?$")


class ArchiveGuard:
    """The archive folder may only gain session folders: what it held
    before stays exactly as it was."""

    def __init__(self, archive_dir):
        self.dir = Path(archive_dir)
        self.before = full_state(self.dir) if self.dir.exists() else {}

    def new_sessions(self):
        if not self.dir.exists():
            return []
        old_top = {k for k in self.before if b"/" not in k and k != b"."}
        return sorted(n for n in os.listdir(self.dir) if os.fsencode(n) not in old_top)

    def check(self):
        # The incident's claim names and hook marks (claim.h) come and go by
        # the protocol's own rules: each a folder holding its one plain
        # file, never a link.
        protocol = [n for n in self.new_sessions() if PROTOCOL_RE.match(n)]
        bad = [n for n in protocol if (self.dir / n).is_symlink() or not (self.dir / n).is_dir()
               or any(p.is_symlink() or not p.is_file() for p in (self.dir / n).iterdir())]
        assert not bad, f"the claim protocol's names are not folders of plain files: {bad}"
        new = [n for n in self.new_sessions() if not PROTOCOL_RE.match(n)]
        bad = [n for n in new if not SESSION_RE.match(n) or not (self.dir / n).is_dir()
               or (self.dir / n).is_symlink()]
        assert not bad, f"the archive gained entries that are not session folders: {bad}"
        if not self.before:
            return new
        seen = full_state(self.dir)
        kept = {k: v for k, v in seen.items()
                if not PROTOCOL_RE.match(os.fsdecode(k)) and
                not any(k == os.fsencode(n) or k.startswith(os.fsencode(n) + b"/")
                        for n in new)}
        want = {k: v for k, v in self.before.items()
                if k != b"." and not PROTOCOL_RE.match(os.fsdecode(k))}
        kept.pop(b".", None)
        assert kept == want, "the archive's older content changed:\n" + state_diff(
            {k.decode("utf-8", "backslashreplace"): v for k, v in want.items()},
            {k.decode("utf-8", "backslashreplace"): v for k, v in kept.items()})
        return new


def notes(archive_dir):
    """note.json of every session in the archive, oldest first."""
    d = Path(archive_dir)
    out = []
    for n in sorted(os.listdir(d)) if d.is_dir() else []:
        if SESSION_RE.match(n) and (d / n / "note.json").is_file():
            out.append((d / n, json.loads((d / n / "note.json").read_text())))
    return out


# ------------------------------------------------------------- the agent

def run_once(cfg, *extra, env=None, user=None, timeout=30):
    """`lockwarden run -c cfg --once -v`, to completion (as user, a
    (uid, gid) pair, when given). Returns CompletedProcess."""
    argv = [BIN, "run", "-c", str(cfg), "--once", "-v", *map(str, extra)]
    if user is not None:
        argv = as_user(user) + argv
    return subprocess.run(argv, env=env or clean_env(), stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, errors="surrogateescape",
                          timeout=timeout)


def as_user(user):
    """The setpriv prefix that runs a command as uid:gid with no
    supplementary groups and no capabilities left over."""
    uid, gid = user
    return ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups",
            "--inh-caps=-all", "--"]


def log_time_ms(line):
    """A log line's wall time in ms since the epoch (as written: truncated
    to the millisecond), or None."""
    import datetime
    m = LOG_TIME_RE.match(line)
    if not m:
        return None
    t = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f").replace(
        tzinfo=datetime.timezone.utc)
    return int(t.timestamp() * 1000 + 0.5)


def trash_gone(root):
    return all(not n.startswith(TRASH_PREFIX)
               for a in ("locks", "deployments") for n in os.listdir(Path(root) / a))


# ---------------------------------------------------------------- mounts

def mounts_under(path):
    """Mount points at or under path (from /proc/self/mountinfo), deepest
    first, so they can be unmounted in that order."""
    prefix = os.path.realpath(path)
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4].encode().decode("unicode_escape")
            if mp == prefix or mp.startswith(prefix + "/"):
                found.append(mp)
    return sorted(found, key=len, reverse=True)


def can_mount(probe_dir):
    probe = Path(probe_dir) / ".mount-probe"
    probe.mkdir(exist_ok=True)
    ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "probe", str(probe)],
                        capture_output=True).returncode == 0
    if ok:
        subprocess.run(["umount", str(probe)], check=True)
    probe.rmdir()
    return ok


def unmount_all(path):
    for mp in mounts_under(path):
        subprocess.run(["umount", "-l", mp], capture_output=True)


# ------------------------------------------------------- deep trees

def make_deep(parent, depth, name="d"):
    """parent/d/d/.../d, depth levels, built through folder descriptors
    (the path is far longer than PATH_MAX). Returns an open descriptor of
    the deepest folder; the caller closes it."""
    fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(depth):
        os.mkdir(name, dir_fd=fd)
        nfd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
        os.close(fd)
        fd = nfd
    return fd


# ------------------------------------------------------- renameat2

_libc = ctypes.CDLL(None, use_errno=True)
RENAME_EXCHANGE = 2
AT_FDCWD = -100


def rename_exchange(dir_fd, a, b):
    """Swaps two names in one folder atomically; 0 or an errno."""
    r = _libc.renameat2(dir_fd, os.fsencode(a), dir_fd, os.fsencode(b), RENAME_EXCHANGE)
    return 0 if r == 0 else ctypes.get_errno()


def remove_deep(parent, name="d"):
    """Removes a chain left by make_deep (when the agent did not), without
    recursion and with one descriptor: down to the bottom, then back up
    through "..", emptying and removing one level at a time. For cleaning
    up after a failed test only (it trusts the tree)."""
    fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY)
    depth = 0
    try:
        while True:
            try:
                nfd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            except OSError:
                break
            os.close(fd)
            fd, depth = nfd, depth + 1
        while depth > 0:
            for entry in os.listdir(fd):
                if entry != name:
                    os.unlink(entry, dir_fd=fd)
            up = os.open("..", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd, depth = up, depth - 1
            os.rmdir(name, dir_fd=fd)
    finally:
        os.close(fd)


# ------------------------------------------------------------ other users

# A user and group that own nothing on this machine (no passwd entry is
# needed by setpriv), and a second one for "owned by another user".
AGENT_USER = (4242, 4242)
OTHER_USER = (4343, 4343)


def make_user_dir(owner=AGENT_USER):
    """A fresh folder under /tmp (sticky, so trusted by the config check)
    owned by owner, mode 0755: pytest's own tmp folders are 0700 root and
    cannot be reached by another user. The caller removes it."""
    import tempfile
    d = Path(tempfile.mkdtemp(prefix="lw-attack-", dir="/tmp"))
    os.chown(d, *owner)
    os.chmod(d, 0o755)
    return d


def chown_tree(root, owner):
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            os.chown(os.path.join(dirpath, n), *owner, follow_symlinks=False)
    os.chown(root, *owner, follow_symlinks=False)


def start_as(agents, workdir, user, args):
    """Starts the agent through setpriv as user, with the agents fixture
    (so it is stopped and its log printed at teardown): the fixture starts
    lwtest.BIN, pointed for this one start at a wrapper that execs setpriv
    and then the binary (the pid stays the agent's)."""
    import shlex
    import lwtest
    wrapper = Path(workdir) / "as-user.sh"
    wrapper.write_text("#!/bin/sh\nexec " + " ".join(map(shlex.quote, as_user(user))) +
                       f" {shlex.quote(lwtest.BIN)} \"$@\"\n")
    os.chmod(wrapper, 0o755)
    saved = lwtest.BIN
    lwtest.BIN = str(wrapper)
    try:
        return agents.start([str(a) for a in args])
    finally:
        lwtest.BIN = saved


def process_uids(pid):
    """(real, effective, saved, fs) uids of a running process."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Uid:"):
                return tuple(int(x) for x in line.split()[1:])
    raise AssertionError(f"no Uid line for {pid}")
