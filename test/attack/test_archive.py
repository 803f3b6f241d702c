"""Nothing lost: what a cleanup removes is in the archive first, with a
note; old archives are pruned; `report` lists past cleanups; and when the
archive cannot be written, nothing is removed.
"""

import datetime
import json
import os
import pathlib
import shutil
import stat
import subprocess
import tempfile

import pytest

from attack_util import (AGENT_USER, ArchiveGuard, SESSION_RE, TreeGuard, can_mount,
                         chown_tree, make_user_dir, notes, run_once, start_as,
                         unmount_all)
from conftest import (ACT_TIMEOUT_S, EX_OK, HOUR_S, ONCE_CLEARED, STUCK_LEFTOVERS, TEMP_STUCK,
                      age_tree, archive_dir_for, build_stuck_site, clean_env, gone,
                      run_cli, settle, start_agent, tree_state, wait_for, write_config)

FAST = {"policy": {"stuck_after": "2s", "quiet_period": "1s"},
        "scan": {"rescan_interval": "100ms"}}
INSTANCE = "a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d2e3f4a5b6c7d8e9f0a1b2"

# What a cleanup of build_stuck_site must have archived, relative to the
# site root and to the session folder alike.
ARCHIVED_FILES = ["locks/deployment/info.lock", "locks/status.lock", "locks/deployments.lock",
                  "deployments/pending", f"deployments/{TEMP_STUCK}/status.xml",
                  f"deployments/{TEMP_STUCK}/log.log", f"deployments/{TEMP_STUCK}/manifest"]


def stuck_with_manifest(site):
    build_stuck_site(site)
    (site / "deployments" / TEMP_STUCK / "manifest").write_text("wwwroot/index.html\n")
    age_tree(site, HOUR_S)
    settle(site)


def test_everything_removed_is_archived_with_a_note(site, agents, tmp_path):
    """Each removed record's status.xml, log.log and manifest, the lock
    folder's info.lock and the lock files (their holder) and pending are
    copied byte for byte into one session folder named
    <UTC time>-<instance>-<n>; note.json says what went, when, why and by
    which instance (WEBSITE_INSTANCE_ID, first 12 characters), with the
    holder of the deployment lock."""
    stuck_with_manifest(site)
    originals = {rel: (site / rel).read_bytes() for rel in ARCHIVED_FILES}
    cfg = write_config(tmp_path / "lw.ini", site, **FAST)
    archive = ArchiveGuard(archive_dir_for(cfg))
    started = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)

    agent = start_agent(agents, cfg, env=clean_env(WEBSITE_INSTANCE_ID=INSTANCE))
    wait_for(lambda: gone(site, STUCK_LEFTOVERS), ACT_TIMEOUT_S, "the cleanup", agent.tail)
    m = agent.wait_for_log(r"archive: what was removed is recorded in (\S+)")
    agent.wait_fresh_scans(1)
    ended = datetime.datetime.now(datetime.timezone.utc)

    sessions = archive.check()
    assert len(sessions) == 1, sessions
    session = archive_dir_for(cfg) / sessions[0]
    assert m.group(1) == str(session)
    assert sessions[0].split("-")[1] == INSTANCE[:12]
    for rel, data in originals.items():
        assert (session / rel).read_bytes() == data, f"{rel}: archived copy differs"
    note = json.loads((session / "note.json").read_text())
    assert note["state"] == "done"
    assert note["instance"] == INSTANCE[:12]
    assert note["site_root"] == str(site)
    assert note["deployment_id"] == TEMP_STUCK
    assert "stuck" in note["reason"] or "no activity" in note["reason"], note["reason"]
    when = datetime.datetime.strptime(note["time"], "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.timezone.utc)
    assert started <= when <= ended, (started, when, ended)
    assert [e["path"] for e in note["entries"]] == STUCK_LEFTOVERS
    for e in note["entries"]:
        assert e["removed"] is True and e["what"], e
        assert e["files_archived"] >= 1, e
    lock = next(e for e in note["entries"] if e["path"] == "locks/deployment")
    # Who held the lock: the operation and the worker from info.lock.
    assert "Performing deployment" in lock["what"] and "abc123" in lock["what"], lock
    assert (session / "note.txt").read_text().strip()
    # Session files are not for everyone to read (lock holders, logs).
    assert stat.S_IMODE(os.stat(session).st_mode) & 0o007 == 0


def old_session(archive, name, outside=None):
    d = archive / name
    (d / "deployments" / TEMP_STUCK).mkdir(parents=True)
    (d / "deployments" / TEMP_STUCK / "log.log").write_text("old log\n")
    (d / "note.json").write_text('{"state": "done", "reason": "old", "entries": []}\n')
    (d / "note.txt").write_text("an old cleanup\n")
    if outside is not None:
        os.symlink(outside, d / "link-out")
    return d


def stamp(days_ago):
    t = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=days_ago)
    return t.strftime("%Y%m%dT%H%M%SZ")


def test_archives_older_than_keep_are_pruned_at_start(site, outside, agents, tmp_path):
    """Sessions older than [archive] keep (30 days by default) are removed
    when the agent starts - never following a link inside them - and
    younger sessions and anything that is not a session stay."""
    cfg = write_config(tmp_path / "lw.ini", site, **FAST)
    archive = archive_dir_for(cfg)
    archive.mkdir()
    (outside / "keep.txt").write_text("outside the archive\n")
    old = [old_session(archive, "20200101T000000Z-x-1", outside),
           old_session(archive, f"{stamp(31)}-abc-2")]
    young = [old_session(archive, f"{stamp(29)}-abc-1"), old_session(archive, f"{stamp(0)}-y-1")]
    foreign = [archive / "notes", archive / "20200101T000000Z", archive / "2020-01-01-x-1"]
    for f in foreign:
        f.mkdir()
        (f / "mine.txt").write_text("not a session\n")
    (archive / "20200101T000000Z-file-1").write_text("a file, not a session folder\n")
    os.symlink(outside, archive / "20200101T000000Z-link-1")
    guard = TreeGuard(outside)

    agent = start_agent(agents, cfg)
    # Whichever the agent says first: pruned, or why it could not prune.
    said = agent.wait_for_log(r"archive: (pruned \d+ cleanup records|pruning .*)").group(0)
    assert said.startswith("archive: pruned 2 "), f"the agent said: {said!r}"
    agent.wait_fresh_scans(1)

    for d in old:
        assert not os.path.lexists(d), f"{d.name} was not pruned"
    for d in young + foreign:
        assert (d / ("note.txt" if SESSION_RE.match(d.name) else "mine.txt")).is_file(), d
    assert (archive / "20200101T000000Z-file-1").is_file()
    assert os.path.islink(archive / "20200101T000000Z-link-1")
    guard.check()


def test_report_lists_past_cleanups(site, tmp_path):
    """Two cleanups, then `report` (text: a "past cleanups" section with
    each cleanup's reason and entries; --json: a `history` array, newest
    first, of the notes)."""
    cfg = write_config(tmp_path / "lw.ini", site, **FAST)
    for n in range(2):
        stuck_with_manifest(site)
        done = run_once(cfg, env=clean_env(WEBSITE_INSTANCE_ID=f"inst{n}"))
        assert done.returncode == ONCE_CLEARED, done.stderr
        assert gone(site, STUCK_LEFTOVERS)
    sessions = notes(archive_dir_for(cfg))
    assert [n["instance"] for _, n in sessions] == ["inst0", "inst1"]

    text = run_cli(["report", "-c", cfg])
    assert text.returncode == EX_OK, text.stderr
    assert "past cleanups" in text.stdout
    history_text = text.stdout[text.stdout.index("past cleanups"):]
    assert history_text.index("on inst1") < history_text.index("on inst0"), history_text
    for path in STUCK_LEFTOVERS:
        assert f"  {path}: removed" in history_text, path

    js = run_cli(["report", "-c", cfg, "--json"])
    assert js.returncode == EX_OK, js.stderr
    history = json.loads(js.stdout)["history"]
    assert [h["instance"] for h in history] == ["inst1", "inst0"]
    for h in history:
        assert [e["path"] for e in h["entries"]] == STUCK_LEFTOVERS
        assert all(e["removed"] for e in h["entries"])


def assert_nothing_removed_while_archive_fails(agent, site, before, pattern):
    agent.wait_for_log(pattern)
    # Well past quiet_period, over several retries.
    agent.wait_fresh_scans(5)
    assert tree_state(site) == before, "something was removed without an archive"
    assert agent.removed() == []
    assert agent.running()


def test_archive_path_that_is_a_file_means_nothing_is_removed(site, agents, tmp_path):
    """A file where the archive folder should be: the cleanup is refused
    as a whole; once the folder can be made, the next try clears it."""
    stuck_with_manifest(site)
    before = tree_state(site)
    cfg = write_config(tmp_path / "lw.ini", site, **FAST)
    archive = archive_dir_for(cfg)
    archive.write_text("a file in the way\n")

    agent = start_agent(agents, cfg)
    assert_nothing_removed_while_archive_fails(agent, site, before, r"archive: .*Not a directory")
    assert archive.read_text() == "a file in the way\n"

    archive.unlink()
    wait_for(lambda: gone(site, STUCK_LEFTOVERS), ACT_TIMEOUT_S, "the retried cleanup",
             agent.tail)
    assert len(notes(archive)) == 1


@pytest.fixture
def user_dir():
    d = make_user_dir(AGENT_USER)
    yield d
    shutil.rmtree(d)


def test_read_only_archive_as_non_root_means_nothing_is_removed(user_dir, agents):
    """The agent as a non-root user that owns the site and the archive
    folder, which is mode 0555: no session can be made, nothing goes."""
    site = user_dir / "site"
    stuck_with_manifest(site)
    cfg = write_config(user_dir / "lw.ini", site, **FAST)
    archive = archive_dir_for(cfg)
    archive.mkdir()
    chown_tree(user_dir, AGENT_USER)
    os.chmod(archive, 0o555)
    before = tree_state(site)

    agent = start_as(agents, user_dir, AGENT_USER, ["run", "-c", cfg, "-v"])
    assert_nothing_removed_while_archive_fails(agent, site, before,
                                               r"archive: .*Permission denied")
    assert os.listdir(archive) == []


@pytest.fixture
def mounts(tmp_path):
    if os.geteuid() != 0 or not can_mount(tmp_path):
        pytest.skip("mounting needs root with CAP_SYS_ADMIN")
    yield
    unmount_all(tmp_path)


def test_read_only_archive_filesystem_means_nothing_is_removed(site, agents, tmp_path, mounts):
    """As root, permissions do not stop it: a read-only filesystem does."""
    stuck_with_manifest(site)
    before = tree_state(site)
    cfg = write_config(tmp_path / "lw.ini", site, **FAST)
    archive = archive_dir_for(cfg)
    archive.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "lwarchive", str(archive)],
                   check=True)

    agent = start_agent(agents, cfg)
    assert_nothing_removed_while_archive_fails(agent, site, before,
                                               r"archive: .*Read-only file system")


@pytest.fixture
def elsewhere(tmp_path):
    """Where a share user's symlink points: a folder on another filesystem
    when there is one (/dev/shm), as a link to /etc or a mounted volume
    would be, else beside the site."""
    base = "/dev/shm" if os.path.isdir("/dev/shm") and \
        os.stat("/dev/shm").st_dev != os.stat(tmp_path).st_dev else str(tmp_path)
    d = tempfile.mkdtemp(prefix="lw-elsewhere-", dir=base)
    yield pathlib.Path(d)
    shutil.rmtree(d, ignore_errors=True)


@pytest.mark.parametrize("level", ["archive", "parent"])
def test_archive_folder_replaced_by_a_symlink_is_never_followed(site, agents, tmp_path,
                                                               elsewhere, level):
    """A share user replaces the archive folder (or the folder above it)
    with a symlink to another folder: root writes nothing there (no claim,
    no session, no copy, no note: the target stays empty and untouched),
    says why, and removes nothing, since nothing can be archived. Once the
    folder is real again, the next try clears the deployment. Before, the
    archive folder was opened by path, and everything went through the
    link."""
    stuck_with_manifest(site)
    before = tree_state(site)
    logs = tmp_path / "logs"
    archive = logs / "lockwarden"
    cfg = write_config(tmp_path / "lw.ini", site, archive={"dir": str(archive)}, **FAST)
    link = archive if level == "archive" else logs
    if level == "archive":
        logs.mkdir()
    os.symlink(elsewhere, link)
    target_st = os.stat(elsewhere)

    agent = start_agent(agents, cfg)
    assert_nothing_removed_while_archive_fails(agent, site, before,
                                               r"archive: .*symbolic links")
    assert os.listdir(elsewhere) == [], "written through the symlink"
    now = os.stat(elsewhere)
    assert (now.st_mtime_ns, now.st_ctime_ns) == (target_st.st_mtime_ns, target_st.st_ctime_ns), \
        "something was made and removed through the symlink"
    assert os.path.islink(link)

    os.unlink(link)
    wait_for(lambda: gone(site, STUCK_LEFTOVERS), ACT_TIMEOUT_S, "the retried cleanup",
             agent.tail)
    assert len(notes(archive)) == 1
    assert os.listdir(elsewhere) == []
