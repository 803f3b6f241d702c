"""Hostile site trees: the daemon clears a stuck deployment next to entries
built to make a careless cleaner delete, follow, open or interpret
something outside the site root - and nothing outside changes.

Each test builds build_stuck_site (so the agent really acts), adds its
hostile entries, ages the tree, snapshots every tree the agent must not
touch (attack_util.TreeGuard: content, modes, owners, mtimes, link targets,
link counts), runs the real daemon until the cleanup and the background
sweep of the trash are over, and compares. The archive may only gain
session folders (ArchiveGuard).
"""

import os
import socket
import subprocess
from pathlib import Path

import pytest

from attack_util import (ArchiveGuard, KUDU_REMOVABLE_RE, TRASH_PREFIX, TreeGuard,
                         can_mount, make_deep, mounts_under, remove_deep,
                         trash_gone, unmount_all)
from conftest import (ACT_TIMEOUT_S, HOUR_S, age, STUCK_LEFTOVERS, TEMP_STUCK, age_tree,
                      archive_dir_for, build_stuck_site, gone, make_lock,
                      make_record, start_agent, settled_tree_state, tree_state, wait_for, without,
                      write_config)

FAST = {"policy": {"stuck_after": "2s", "quiet_period": "1s"},
        "scan": {"rescan_interval": "100ms"}}
RECORD = Path("deployments") / TEMP_STUCK


def make_outside(outside):
    """What the hostile entries point at: a folder with files, a folder
    dressed as a stuck temp record, a lock folder, and a 'secret' file."""
    (outside / "victim" / "sub").mkdir(parents=True)
    (outside / "victim" / "precious.txt").write_text("must survive\n")
    (outside / "victim" / "sub" / "deep.txt").write_text("must survive too\n")
    (outside / "secret").write_text("root's secret\n")
    os.chmod(outside / "secret", 0o600)
    (outside / "shared.txt").write_text("linked from the site\n")
    make_record(outside, "temp-0badf00d", "Building", False, True, received=-HOUR_S)
    make_lock(outside, expiry=20 * 60)            # outside/locks/deployment/info.lock
    age_tree(outside, 2 * HOUR_S)


def clear(agents, site, tmp_path, expect_gone=STUCK_LEFTOVERS, hook=None, extra_cfg=None):
    """Runs the daemon on the prepared tree until expect_gone is gone and
    no trash is left; returns the agent (still running)."""
    sections = {k: dict(v) for k, v in FAST.items()}
    if hook is not None:
        sections["hook"] = {"command": hook.command(), "timeout": "10s", "cooldown": "0s"}
    for k, v in (extra_cfg or {}).items():
        sections.setdefault(k, {}).update(v)
    cfg = write_config(tmp_path / "lw.ini", site, **sections)
    agent = start_agent(agents, cfg)
    wait_for(lambda: gone(site, expect_gone), ACT_TIMEOUT_S,
             f"{expect_gone} to be removed", agent.tail)
    wait_for(lambda: trash_gone(site), ACT_TIMEOUT_S, "the trash to be swept", agent.tail)
    # Two scans that began after the tree settled: anything else the agent
    # would do to it has been done.
    agent.wait_fresh_scans(2)
    return agent


@pytest.fixture
def stuck(site, outside):
    build_stuck_site(site)
    make_outside(outside)
    return site


def settle(site):
    age_tree(site, HOUR_S)


# ------------------------------------------------- symlinks at the top

def test_temp_record_that_is_a_symlink_to_outside_is_never_followed(
        stuck, outside, agents, tmp_path):
    """deployments/temp-* as a symlink (absolute and relative) to a folder
    outside that looks exactly like a stuck temp record."""
    dep = stuck / "deployments"
    os.symlink(outside / "deployments" / "temp-0badf00d", dep / "temp-0badf00d")
    os.symlink("../../outside/deployments/temp-0badf00d", dep / "temp-0badf00e")
    os.symlink(outside / "victim", dep / "temp-0badf00f")
    settle(stuck)
    guard = TreeGuard(outside)
    site_before = tree_state(stuck)
    archive = ArchiveGuard(archive_dir_for(tmp_path / "lw.ini"))

    agent = clear(agents, stuck, tmp_path)

    guard.check()
    archive.check()
    assert settled_tree_state(stuck) == without(site_before, STUCK_LEFTOVERS)
    assert agent.wait_removed(STUCK_LEFTOVERS) == STUCK_LEFTOVERS


def test_lock_folder_that_is_a_symlink_is_never_followed(site, outside, agents, tmp_path):
    """locks/deployment as a symlink to a real-looking lock folder outside,
    next to a stuck temp record: the link is not Kudu's lock folder."""
    build_stuck_site(site)
    make_outside(outside)
    import shutil
    shutil.rmtree(site / "locks" / "deployment")
    os.symlink(outside / "locks" / "deployment", site / "locks" / "deployment")
    settle(site)
    guard = TreeGuard(outside)
    archive = ArchiveGuard(archive_dir_for(tmp_path / "lw.ini"))
    expect = [p for p in STUCK_LEFTOVERS if p != "locks/deployment"]

    agent = clear(agents, site, tmp_path, expect_gone=expect)

    guard.check()
    archive.check()
    assert os.path.islink(site / "locks" / "deployment")
    assert os.readlink(site / "locks" / "deployment") == str(outside / "locks" / "deployment")
    assert "locks/deployment" not in agent.removed()


# Kudu's file names, each replaced by something hostile: (the name, what
# to put there). The agent may only ever remove a name in the site; what a
# link points at must stay as it was.
TOP_LEVEL_SWAPS = {
    "status.lock-symlink-to-secret":
        ("locks/status.lock", lambda o, p: os.symlink(o / "secret", p)),
    "pending-symlink-to-secret":
        ("deployments/pending", lambda o, p: os.symlink(o / "secret", p)),
    "pending-symlink-to-outside-folder":
        ("deployments/pending", lambda o, p: os.symlink(o / "victim", p)),
    "status.lock-fifo": ("locks/status.lock", lambda o, p: os.mkfifo(p)),
    "pending-fifo": ("deployments/pending", lambda o, p: os.mkfifo(p)),
    "info.lock-symlink-to-secret":
        ("locks/deployment/info.lock", lambda o, p: os.symlink(o / "secret", p)),
}


@pytest.mark.parametrize("rel,make", TOP_LEVEL_SWAPS.values(), ids=TOP_LEVEL_SWAPS.keys())
def test_kudu_file_names_that_are_links_or_fifos(site, outside, agents, tmp_path, rel, make):
    build_stuck_site(site)
    make_outside(outside)
    os.unlink(site / rel)
    make(outside, site / rel)
    settle(site)
    guard = TreeGuard(outside)
    archive = ArchiveGuard(archive_dir_for(tmp_path / "lw.ini"))
    if rel.startswith("locks/deployment/"):
        # A link where Kudu keeps info.lock is never read through: the
        # lock is then judged by stuck_after alone, and the lock folder
        # goes with the link inside it removed as a link.
        agent = clear(agents, site, tmp_path, expect_gone=STUCK_LEFTOVERS)
        assert "locks/deployment" in agent.removed()
    else:
        # Not a regular file or a folder: it stays; the rest is cleared.
        agent = clear(agents, site, tmp_path,
                      expect_gone=[p for p in STUCK_LEFTOVERS if p != rel])
        assert os.path.lexists(site / rel)
        assert rel not in agent.removed()
        # A FIFO was never opened (that would block): it still scans.
        agent.wait_fresh_scans(1)

    guard.check()
    archive.check()


def test_areas_that_are_symlinks_are_never_followed(site, outside, agents, tmp_path):
    """locks/ and deployments/ themselves as symlinks to a stuck-looking
    tree outside: the agent works only inside the real site root."""
    make_outside(outside)
    (site / "locks").rmdir()
    (site / "deployments").rmdir()
    os.symlink(outside / "locks", site / "locks")
    os.symlink(outside / "deployments", site / "deployments")
    guard = TreeGuard(outside)
    cfg = write_config(tmp_path / "lw.ini", site, **FAST)
    archive = ArchiveGuard(archive_dir_for(cfg))

    agent = start_agent(agents, cfg)
    agent.wait_scan(3)
    # Past quiet_period and then some: anything it would remove is gone.
    agent.wait_fresh_scans(5)

    guard.check()
    archive.check()
    assert agent.removed() == []


# ------------------------------------------------ inside a temp record

def test_links_and_special_files_inside_a_record(stuck, outside, agents, tmp_path):
    """Symlinks (absolute, relative, to /, to the site root, dangling,
    looping), hard links to files outside, FIFOs, a unix socket and a
    device node inside the stuck temp record: each name goes, and nothing
    it points at is touched; the hard-linked files outside lose exactly
    one link each and keep their content."""
    rec = stuck / RECORD
    (rec / "artifact").mkdir()
    os.symlink(outside / "victim", rec / "abs-to-folder")
    os.symlink(outside / "secret", rec / "abs-to-file")
    os.symlink("../../../outside/victim", rec / "relative-to-folder")
    os.symlink("../../../outside/shared.txt", rec / "artifact" / "relative-to-file")
    os.symlink("/", rec / "to-root")
    os.symlink(stuck, rec / "to-site-root")
    os.symlink("..", rec / "to-parent")
    os.symlink("nowhere/at/all", rec / "dangling")
    os.symlink("loop", rec / "loop")
    os.link(outside / "secret", rec / "hard-secret")
    os.link(outside / "shared.txt", rec / "artifact" / "hard-shared")
    os.mkfifo(rec / "fifo")
    os.mkfifo(rec / "artifact" / "fifo2")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    # Bound by a short name through /proc: a socket path is limited to 107
    # bytes, which a parallel runner's temporary folders can exceed.
    rec_fd = os.open(rec, os.O_RDONLY | os.O_DIRECTORY)
    try:
        sock.bind(f"/proc/self/fd/{rec_fd}/sock")
    finally:
        os.close(rec_fd)
    sock.listen(1)
    try:
        os.mknod(rec / "null-device", 0o600 | 0o020000, os.makedev(1, 3))
    except PermissionError:
        pass
    settle(stuck)
    nlink = {outside / "secret": os.lstat(outside / "secret").st_nlink - 1,
             outside / "shared.txt": os.lstat(outside / "shared.txt").st_nlink - 1}
    guard = TreeGuard(outside)
    archive = ArchiveGuard(archive_dir_for(tmp_path / "lw.ini"))
    try:
        agent = clear(agents, stuck, tmp_path)
    finally:
        sock.close()

    guard.check(expect_nlink=nlink)
    archive.check()
    assert agent.wait_removed(STUCK_LEFTOVERS) == STUCK_LEFTOVERS
    assert (outside / "secret").read_text() == "root's secret\n"


def test_kudu_files_of_a_record_that_are_links_or_fifos(stuck, outside, agents, tmp_path):
    """status.xml hard-linked to a file outside, log.log a FIFO, manifest
    a symlink to a secret: the archive copies only regular files it
    verified (it must not block on the FIFO or read through the link), and
    the removal takes the names only."""
    rec = stuck / RECORD
    (outside / "status-outside.xml").write_bytes((rec / "status.xml").read_bytes())
    os.unlink(rec / "status.xml")
    os.link(outside / "status-outside.xml", rec / "status.xml")
    os.unlink(rec / "log.log")
    os.mkfifo(rec / "log.log")
    os.symlink(outside / "secret", rec / "manifest")
    settle(stuck)
    age_tree(outside, 2 * HOUR_S)
    nlink = {outside / "status-outside.xml": 1}
    guard = TreeGuard(outside)
    cfg = tmp_path / "lw.ini"
    archive = ArchiveGuard(archive_dir_for(cfg))

    agent = clear(agents, stuck, tmp_path)

    guard.check(expect_nlink=nlink)
    sessions = archive.check()
    assert agent.wait_removed(STUCK_LEFTOVERS) == STUCK_LEFTOVERS
    assert len(sessions) == 1
    copy = archive_dir_for(cfg) / sessions[0] / RECORD
    assert not (copy / "manifest").exists(), "the archive read through a symlink"
    assert not (copy / "log.log").exists(), "the archive copied a FIFO"
    for p in (archive_dir_for(cfg) / sessions[0]).rglob("*"):
        assert p.is_dir() or p.read_bytes() != b"root's secret\n", \
            f"{p}: the secret behind a symlink was copied"


def test_hard_links_where_kudu_keeps_files(site, outside, agents, tmp_path):
    """locks/status.lock and deployments/pending hard-linked to files
    outside: a regular file, so its name goes; the file outside keeps its
    content, mode, owner and mtime, with one link fewer."""
    build_stuck_site(site)
    make_outside(outside)
    (outside / "status-like").write_bytes((site / "locks" / "status.lock").read_bytes())
    (outside / "empty").write_bytes(b"")
    for rel, src in (("locks/status.lock", "status-like"), ("deployments/pending", "empty")):
        os.unlink(site / rel)
        os.link(outside / src, site / rel)
    settle(site)
    age_tree(outside, 2 * HOUR_S)
    guard = TreeGuard(outside)
    archive = ArchiveGuard(archive_dir_for(tmp_path / "lw.ini"))

    agent = clear(agents, site, tmp_path)

    guard.check(expect_nlink={outside / "status-like": 1, outside / "empty": 1})
    archive.check()
    assert agent.wait_removed(STUCK_LEFTOVERS) == STUCK_LEFTOVERS


# --------------------------------------------------------------- mounts

@pytest.fixture
def mounts(tmp_path):
    if os.geteuid() != 0 or not can_mount(tmp_path):
        pytest.skip("mounting needs root with CAP_SYS_ADMIN")
    yield
    unmount_all(tmp_path)


def test_mount_points_inside_a_record_are_never_entered(stuck, outside, agents, tmp_path,
                                                        mounts):
    """A tmpfs and a bind mount of a folder outside (same disk: only the
    mount id tells them apart) inside the stuck temp record. The record
    leaves Kudu's sight, the mounts and everything in them stay, and the
    agent says so."""
    rec = stuck / RECORD
    (rec / "tmpfs").mkdir()
    (rec / "nested" / "bind").mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "lwattack", str(rec / "tmpfs")],
                   check=True)
    (rec / "tmpfs" / "inside-mount.txt").write_text("on another filesystem\n")
    subprocess.run(["mount", "--bind", str(outside / "victim"), str(rec / "nested" / "bind")],
                   check=True)
    settle(stuck)
    guard = TreeGuard(outside)
    archive = ArchiveGuard(archive_dir_for(tmp_path / "lw.ini"))
    cfg = write_config(tmp_path / "lw.ini", stuck, **FAST)

    agent = start_agent(agents, cfg)
    wait_for(lambda: gone(stuck, STUCK_LEFTOVERS), ACT_TIMEOUT_S, "the cleanup", agent.tail)
    agent.wait_for_log(r"mount point")
    agent.wait_fresh_scans(2)

    guard.check()
    archive.check()
    left = mounts_under(stuck)
    assert len(left) == 2, f"mounts inside the site afterwards: {left}"
    tmpfs_mp = [m for m in left if m.endswith("/tmpfs")][0]
    assert Path(tmpfs_mp, "inside-mount.txt").read_text() == "on another filesystem\n"
    assert Path(tmpfs_mp).parent.name.startswith(TRASH_PREFIX), \
        "the record (with its mounts) should have been moved out of Kudu's sight"
    assert agent.running()


# ------------------------------------------------------------ deep trees

@pytest.fixture
def deep_leftovers(tmp_path):
    """If the agent left a deep chain anywhere in the site, remove it
    without recursion (pytest's own cleanup would hit Python's recursion
    limit on it)."""
    yield
    for area in ("deployments",):
        folder = tmp_path / "site" / area
        for name in os.listdir(folder) if folder.is_dir() else []:
            p = folder / name
            if p.is_dir() and not p.is_symlink():
                remove_deep(p)


def test_very_deep_nesting_inside_a_record(stuck, outside, agents, tmp_path, deep_leftovers):
    """5,000 nested folders (a path far beyond PATH_MAX) with, at the
    bottom, a symlink and a hard link to files outside, inside the running
    record. Everything inside a running record counts as its activity, and
    the walk that looks (16 levels at most) cannot see this one whole: the
    deployment is never judged stuck, nothing is removed, nothing outside
    is touched. (The remover's own handling of deep trees: unit
    test_reap.c::test_deep_nesting.)"""
    settle(stuck)
    fd = make_deep(stuck / RECORD, 5000)
    try:
        os.symlink(str(outside / "victim"), "to-outside", dir_fd=fd)
        os.link(str(outside / "shared.txt"), "hard", dst_dir_fd=fd)
        os.mkfifo("fifo", dir_fd=fd)
    finally:
        os.close(fd)
    # age_tree cannot walk 5,000 levels (os.walk recurses): the record's
    # own mtime is aged here.
    age(stuck / RECORD, HOUR_S)
    guard = TreeGuard(outside)
    cfg = write_config(tmp_path / "lw.ini", stuck, **FAST)
    agent = start_agent(agents, cfg)
    agent.wait_for_log(r"cannot be seen whole \(folders deeper than 16 levels inside\)")
    agent.wait_fresh_scans(10)
    assert agent.removed() == []
    assert all(os.path.lexists(stuck / rel) for rel in STUCK_LEFTOVERS)
    guard.check(expect_nlink={outside / "shared.txt": 2})


# ----------------------------------------------------------- hostile names

HOSTILE = [
    b"new\nline", b"two\n\nlines\n", b"\"double\" 'single'", b"$(touch CANARY)",
    b"`touch CANARY`", b"$(cd;touch CANARY)", b"; touch CANARY #", b"with spaces ",
    b" ", b"-rf", b"*", b"\xff\xfe invalid utf-8 \xc3\x28", b"\x1b[31mred\x1b[0m",
    b"temp-1a2b3c4e\n$(touch CANARY)", b"pending\n", b"status.lock ",
]


def test_hostile_names_inside_records_and_as_unknown_entries(stuck, outside, agents, hook,
                                                             tmp_path, monkeypatch):
    """Names with newlines, quotes, $(...), backquotes, spaces, escape
    sequences and invalid UTF-8, inside the stuck record and as unknown
    entries of locks/ and deployments/ (some dressed as Kudu's names). The
    record goes whole; every unknown name stays; the hook (/bin/sh -c with
    a command that only records its environment) never runs any of them
    as shell, so no CANARY file appears anywhere - not in the agent's or
    the hook's working folder, not in $HOME; and LOCKWARDEN_REMOVED holds
    only Kudu's names."""
    home = tmp_path / "home"
    home.mkdir()
    work = tmp_path / "cwd"
    work.mkdir()
    rec = os.fsencode(str(stuck / RECORD))
    for name in HOSTILE:
        with open(os.path.join(rec, name), "wb") as f:
            f.write(name)
        os.mkdir(os.path.join(rec, b"dir " + name))
        with open(os.path.join(rec, b"dir " + name, name), "wb") as f:
            f.write(b"x")
    for area in (b"locks", b"deployments"):
        for name in HOSTILE:
            with open(os.path.join(os.fsencode(str(stuck)), area, name), "wb") as f:
                f.write(b"not Kudu's\n")
    settle(stuck)
    before = tree_state(stuck)
    guard = TreeGuard(outside)
    archive = ArchiveGuard(archive_dir_for(tmp_path / "lw.ini"))
    monkeypatch.chdir(work)
    monkeypatch.setenv("HOME", str(home))
    test_cwd_before = set(os.listdir(Path(__file__).parent))

    agent = clear(agents, stuck, tmp_path, hook=hook)
    agent.wait_for_log(r"hook exited with status 0")

    guard.check()
    archive.check()
    assert settled_tree_state(stuck) == without(before, STUCK_LEFTOVERS)
    assert agent.wait_removed(STUCK_LEFTOVERS) == STUCK_LEFTOVERS
    canaries = [str(p) for p in tmp_path.rglob("CANARY*")]
    assert not canaries, f"a name was run as shell: {canaries}"
    assert set(os.listdir(Path(__file__).parent)) == test_cwd_before
    runs = hook.runs()
    assert len(runs) == 1
    removed = runs[0]["LOCKWARDEN_REMOVED"].rstrip("\n").split("\n")
    assert removed == STUCK_LEFTOVERS
    assert all(KUDU_REMOVABLE_RE.match(line) for line in removed), removed
    # Nothing from the tree reached the hook's environment but those names.
    for k, v in runs[0].items():
        assert "CANARY" not in v, f"{k} carries a name from the tree: {v!r}"
