"""Whole-record evidence (issue 18, finding 5): a write anywhere inside an
unfinished record is a sign of life - for the activity the agent watches,
for the evidence checked again before each removal - and the archive copies
the whole record. Before, only status.xml, log.log and manifest counted: a
build writing temp-.../artifact/build.zip was cleared under it, and the zip
was not archived."""

import json
import os
import threading
import time

from conftest import (ACT_TIMEOUT_S, HOUR_S, STUCK_LEFTOVERS, TEMP_STUCK, Pause, age_tree,
                      archive_dir_for, build_stuck_site, gone, settle, start_agent,
                      wait_for, write_config)

FAST = {"policy": {"stuck_after": "2s", "quiet_period": "1s"},
        "scan": {"rescan_interval": "100ms"}}
ZIP = f"deployments/{TEMP_STUCK}/artifact/build.zip"
NOTE = ".note.json.tmp"      # written after the archive copy, before any removal


def stuck_with_artifact(site):
    """build_stuck_site with an artifact folder in the temp record, the
    whole tree backdated an hour and left alone (by ctime too)."""
    build_stuck_site(site)
    (site / ZIP).parent.mkdir()
    (site / ZIP).write_bytes(b"PK\x03\x04" + b"\0" * 1000)
    age_tree(site, HOUR_S)
    settle(site)


class Writer:
    """Appends to one file every 300 ms, as an Oryx build writing its zip,
    touching nothing else."""

    def __init__(self, path):
        self.path = path
        self.stop_event = threading.Event()
        self.writes = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop_event.is_set():
            try:
                with open(self.path, "ab") as f:
                    f.write(b"x" * 512)
            except OSError:
                return  # the record was removed under the build
            self.writes += 1
            self.stop_event.wait(0.3)

    def stop(self):
        self.stop_event.set()
        self.thread.join()


def session_of(cfg):
    """The one session of a cleanup that committed (an abandoned one, rolled
    back, keeps its session and note as a record of the attempt). The
    leftovers are gone from the site once moved aside, a moment before the
    note says "committed": waited for, with a deadline."""
    d = archive_dir_for(cfg)

    def committed():
        return [p for p in d.iterdir() if p.is_dir() and not p.name.startswith(".") and
                (p / "note.json").exists() and
                json.loads((p / "note.json").read_text()).get("state") in ("committed", "done")]
    wait_for(lambda: len(committed()) == 1, ACT_TIMEOUT_S, "one committed session",
             lambda: "\n".join(map(str, sorted(d.iterdir()))))
    return committed()[0]


def test_a_write_inside_artifact_keeps_the_record(site, agents, tmp_path):
    """While the zip grows the agent never judges the deployment stuck (over
    many times stuck_after); once it stops, the record is cleared and the
    archive holds the zip as it was last written."""
    stuck_with_artifact(site)
    cfg = write_config(tmp_path / "lw.ini", site, **FAST)
    writer = Writer(site / ZIP)
    try:
        agent = start_agent(agents, cfg)
        # Several times stuck_after (2 s) and quiet_period (1 s), counted
        # in the agent's own scans: every one of them saw the writes.
        started = time.monotonic()

        def watched_long_enough():
            assert agent.removed() == [], f"removed while the zip was written\n{agent.tail()}"
            return time.monotonic() - started >= 3 * 2 and writer.writes >= 20

        agent.wait_fresh_scans(40)
        wait_for(watched_long_enough, 30, "three times stuck_after of writes", agent.tail)
        assert all(os.path.lexists(site / rel) for rel in STUCK_LEFTOVERS)
        assert agent.count(r"cleanup abandoned") == 0, \
            "the agent began a cleanup while the zip was being written"
    finally:
        writer.stop()
    final = (site / ZIP).read_bytes()
    wait_for(lambda: gone(site, STUCK_LEFTOVERS), ACT_TIMEOUT_S,
             "the deployment to be cleared once the writes stopped", agent.tail)
    session = session_of(cfg)
    assert (session / ZIP).read_bytes() == final, "the archive lacks artifact/build.zip"
    note = json.loads((session / "note.json").read_text())
    rec = next(e for e in note["entries"] if e["path"] == f"deployments/{TEMP_STUCK}")
    assert rec["files_archived"] == 3 and rec["left_out"] == [], rec
    assert rec["left_out_count"] == 0 and "walk_stopped" not in rec, rec


def test_a_write_inside_artifact_abandons_a_held_cleanup(site, agents, tmp_path, pause_shim):
    """The cleanup is held after its archive copy, before the evidence is
    checked and anything removed; a write inside artifact/ then (nothing
    else touched) abandons it as a whole. Before, it went ahead."""
    stuck_with_artifact(site)
    cfg = write_config(tmp_path / "lw.ini", site)
    pause = Pause(pause_shim, tmp_path / "pause", "openat", NOTE)
    agent = start_agent(agents, cfg, env=pause.env())
    pause.wait_paused(detail=agent.tail)
    with open(site / ZIP, "ab") as f:
        f.write(b"more of the build")
    pause.release()
    m = agent.wait_for_log(r"cleanup abandoned: the deployment showed a sign of life.*")
    assert "artifact" in m.group(0) or TEMP_STUCK in m.group(0), m.group(0)
    assert all(os.path.lexists(site / rel) for rel in STUCK_LEFTOVERS), agent.tail()
    assert agent.removed() == []
    # Silent again: cleared, the zip archived as it was at the end.
    final = (site / ZIP).read_bytes()
    wait_for(lambda: gone(site, STUCK_LEFTOVERS), ACT_TIMEOUT_S,
             "the deployment to be cleared once it was silent again", agent.tail)
    assert (session_of(cfg) / ZIP).read_bytes() == final


def test_a_record_too_big_to_see_whole_is_never_stuck(site, agents, tmp_path):
    """More than 10,000 entries inside the running record: the walk cannot
    tell, so the deployment is never judged stuck, and the reason says so."""
    build_stuck_site(site)
    many = site / "deployments" / TEMP_STUCK / "artifact"
    many.mkdir()
    for i in range(10_001):
        os.close(os.open(many / f"f{i:05d}", os.O_CREAT | os.O_WRONLY, 0o644))
    age_tree(site, HOUR_S)
    settle(site)
    cfg = write_config(tmp_path / "lw.ini", site, **FAST)
    agent = start_agent(agents, cfg)
    agent.wait_for_log(r"cannot be seen whole \(more than 10000 entries inside\)")
    agent.wait_fresh_scans(20)
    assert agent.removed() == []
    assert all(os.path.lexists(site / rel) for rel in STUCK_LEFTOVERS)


def test_the_archive_cap_leaves_out_and_lists(site, agents, tmp_path):
    """A record holding more than the archive's 64 MiB per cleanup: Kudu's
    files and what fits are copied, the file that does not fit is left out
    whole, and the note lists it (path, size, why); a symlink inside is
    never followed, listed too."""
    build_stuck_site(site)
    rec = site / "deployments" / TEMP_STUCK
    (rec / "artifact").mkdir()
    (rec / "artifact" / "small.zip").write_bytes(b"PK small")
    with open(rec / "artifact" / "big.zip", "wb") as f:
        f.truncate(65 * 1024 * 1024)  # sparse: cheap to make, too big to keep
    os.symlink("/etc", rec / "artifact" / "etc-link")
    age_tree(site, HOUR_S)
    settle(site)
    cfg = write_config(tmp_path / "lw.ini", site, **FAST)
    agent = start_agent(agents, cfg)
    wait_for(lambda: gone(site, STUCK_LEFTOVERS), ACT_TIMEOUT_S, "the cleanup", agent.tail)
    agent.wait_for_log(r"archive: what was removed is recorded in")
    session = session_of(cfg)
    copy = session / "deployments" / TEMP_STUCK
    assert (copy / "artifact" / "small.zip").read_bytes() == b"PK small"
    assert (copy / "status.xml").is_file() and (copy / "log.log").is_file()
    assert not os.path.lexists(copy / "artifact" / "big.zip")
    assert not os.path.lexists(copy / "artifact" / "etc-link")
    note = json.loads((session / "note.json").read_text())
    entry = next(e for e in note["entries"] if e["path"] == f"deployments/{TEMP_STUCK}")
    left = {x["path"]: x for x in entry["left_out"]}
    assert left["artifact/big.zip"]["size"] == 65 * 1024 * 1024, entry
    assert "64 MiB" in left["artifact/big.zip"]["why"], entry
    assert left["artifact/etc-link"]["why"] == "not a regular file", entry
    assert entry["left_out_count"] == 2 and entry["removed"] is True, entry
    assert "left out: artifact/big.zip" in (session / "note.txt").read_text()
