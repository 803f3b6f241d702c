"""`lockwarden report`: the inspection of the manual procedure. It names
every entry with a verdict and what a cleanup would remove once stuck_after
has been watched unchanged. One scan watches nothing, so it never says
stuck: it exits 2 when a deployment claims to run and its file times are all
older than stuck_after (silent by file times, a hint for a person), 0 when
not, 1 when the site cannot be read, and changes nothing."""

import json
import os
import re
from pathlib import Path

import pytest

from conftest import (EX_FAILURE, EX_OK, EX_STUCK, HOUR_S, ONCE_CLEARED, RECORD_DONE, RECORD_OLD,
                      TEMP_FAILED, TEMP_STUCK, age_tree,
                      build_finished_site, build_stuck_site, make_file_lock, run_cli, settle,
                      start_agent, tree_hash, write_config)

STUCK_SITE_ENTRIES = {
    # path: would a cleanup remove it (once stuck_after has been watched)?
    "locks/deployment": True,
    "locks/status.lock": True,
    "locks/deployments.lock": True,
    "locks/sshkey.lock": False,
    "deployments/pending": True,
    f"deployments/{TEMP_STUCK}": True,
    f"deployments/{TEMP_FAILED}": False,
    f"deployments/{RECORD_DONE}": False,
    f"deployments/{RECORD_OLD}": False,
    "deployments/active": False,
    "deployments/tools": False,
    "deployments/settings.xml": False,
}


@pytest.fixture
def stuck_cfg(site, tmp_path):
    build_stuck_site(site)
    return write_config(tmp_path / "lw.ini", site, policy={"stuck_after": "2s"})


@pytest.fixture
def healthy_cfg(site, tmp_path):
    build_finished_site(site)
    make_file_lock(site, "status.lock", acquired_s=-HOUR_S)
    age_tree(site, HOUR_S)
    return write_config(tmp_path / "lw.ini", site, policy={"stuck_after": "2s"})


def report_json(cfg, *extra):
    r = run_cli(["report", "-c", cfg, "--json", *extra])
    try:
        doc = json.loads(r.stdout)
    except ValueError as e:
        raise AssertionError(f"report --json is not JSON ({e}):\n{r.stdout}\n{r.stderr}")
    assert isinstance(doc.get("entries"), list), f"no `entries` list:\n{r.stdout}"
    for item in doc["entries"]:
        for key in ("path", "verdict", "reason"):
            assert isinstance(item.get(key), str), f"entry without a string {key!r}: {item}"
    return r, doc


def by_path(doc):
    return {item["path"].rstrip("/"): item for item in doc["entries"]}


def test_report_text_names_every_entry_and_its_verdict(stuck_cfg, site):
    before = tree_hash(site)
    r = run_cli(["report", "-c", stuck_cfg])
    assert r.returncode == EX_STUCK, r.stdout + r.stderr
    for path in STUCK_SITE_ENTRIES:
        assert os.path.basename(path) in r.stdout, f"{path} not in the report:\n{r.stdout}"
    assert re.search(r"^SILENT BY FILE TIMES: ", r.stdout, re.M), r.stdout
    assert not re.search(r"^STUCK", r.stdout, re.M), r.stdout
    assert "once stuck_after (2s) has been watched unchanged, a cleanup would remove" in r.stdout
    assert "kept" in r.stdout or "keep" in r.stdout
    assert tree_hash(site) == before


def test_report_lines_fit_100_columns(stuck_cfg, site):
    """The portal's SSH console wraps anything longer: long reasons wrap at
    spaces, each continuation indented under its line."""
    r = run_cli(["report", "-c", stuck_cfg])
    assert r.returncode == EX_STUCK, r.stdout + r.stderr
    # A longer line is one word that no space can break (a long path).
    long = [ln for ln in r.stdout.splitlines() if len(ln) > 100 and " " in ln.strip()]
    assert not long, "\n".join(long)
    # Nothing lost: each entry's reason is there, joined again (its ages
    # may have grown between the two reports: numbers are left out).
    def words(text):
        return re.sub(r"\d+", "N", " ".join(text.split()))
    _, doc = report_json(stuck_cfg)
    for e in doc["entries"]:
        assert words(e["reason"]) in words(r.stdout), e["reason"]


def test_report_json_lists_entries_with_verdicts(stuck_cfg, site):
    before = tree_hash(site)
    r, doc = report_json(stuck_cfg)
    assert r.returncode == EX_STUCK, r.stdout + r.stderr
    entries = by_path(doc)
    assert doc["stuck"] is False and doc["silent_by_file_times"] is True, doc
    for path, removed in STUCK_SITE_ENTRIES.items():
        assert path in entries, f"{path} missing from {sorted(entries)}"
        verdict = entries[path]["verdict"]
        assert verdict != "stuck", f"{path}: verdict {verdict!r}"
        assert entries[path]["would_remove"] == removed, f"{path}: {entries[path]}"
        assert entries[path]["reason"].strip(), f"{path}: empty reason"
    assert tree_hash(site) == before


def test_report_on_a_healthy_site_exits_0(healthy_cfg, site):
    before = tree_hash(site)
    r = run_cli(["report", "-c", healthy_cfg])
    assert r.returncode == EX_OK, r.stdout + r.stderr
    r, doc = report_json(healthy_cfg)
    assert r.returncode == EX_OK, r.stdout + r.stderr
    entries = by_path(doc)
    assert "locks/status.lock" in entries
    assert not [p for p, e in entries.items() if e["verdict"] == "stuck"]
    assert tree_hash(site) == before


def test_report_and_daemon_on_empty_folders(tmp_path, agents):
    """A new site: locks/ and deployments/ there but empty, and an archive
    with no cleanup yet. Nothing to sort, list or judge (the sanitizer
    build runs this too)."""
    root = tmp_path / "site"
    (root / "locks").mkdir(parents=True)
    (root / "deployments").mkdir()
    cfg = write_config(tmp_path / "lw.ini", root, scan={"rescan_interval": "200ms"})
    r, doc = report_json(cfg)
    assert r.returncode == EX_OK, r.stdout + r.stderr
    assert doc["entries"] == [] and doc["history"] == [] and not doc["stuck"]
    r = run_cli(["report", "-c", cfg])
    assert r.returncode == EX_OK and "(no entries)" in r.stdout, r.stdout + r.stderr
    agent = start_agent(agents, cfg)
    agent.wait_scan(3)
    assert agent.removed() == []


@pytest.mark.parametrize("kind", ["regular-file", "missing"])
def test_report_on_an_unreadable_site_exits_1(tmp_path, kind):
    root = tmp_path / "not-a-site"
    if kind == "regular-file":
        root.write_text("not a folder\n")
    cfg = write_config(tmp_path / "lw.ini", root)
    r = run_cli(["report", "-c", cfg])
    assert r.returncode == EX_FAILURE, r.stdout + r.stderr


def test_report_site_root_flag_beats_the_file(stuck_cfg, tmp_path):
    healthy = tmp_path / "healthy"
    build_finished_site(healthy)
    age_tree(healthy, HOUR_S)
    assert run_cli(["report", "-c", stuck_cfg]).returncode == EX_STUCK
    r = run_cli(["report", "-c", stuck_cfg, "--site-root", healthy])
    assert r.returncode == EX_OK, r.stdout + r.stderr


def test_report_survives_hostile_names(stuck_cfg, site):
    (site / "deployments" / "temp-1a2b3c4e\n\"},{\"path\":\"x").mkdir()
    with open(os.path.join(os.fsencode(site / "locks"), b"bad\x01\\name\xff"), "w") as f:
        f.write("{}")
    os.symlink("/", site / "deployments" / "temp-0badf00d")
    age_tree(site, HOUR_S)
    settle(site)
    before = tree_hash(site)
    r, doc = report_json(stuck_cfg)
    assert r.returncode == EX_STUCK, r.stdout + r.stderr
    paths = [e["path"] for e in doc["entries"]]
    assert "x" not in paths, "a file name forged a JSON entry"
    assert set(STUCK_SITE_ENTRIES) <= {p.rstrip("/") for p in paths}, paths
    text = run_cli(["report", "-c", stuck_cfg])
    assert text.returncode == EX_STUCK
    assert not [line for line in text.stdout.splitlines() if line.startswith('"},{')], \
        "a newline in a file name started a new report line"
    assert tree_hash(site) == before


FLEET_DOC = Path(__file__).resolve().parents[2] / "docs" / "fleet.md"


def documented_report_fields():
    """The field paths of docs/fleet.md's `report --json` table."""
    text = FLEET_DOC.read_text() + "\n## "
    start = text.index("## `report --json`")
    table = text[start:text.index("\n## ", start + 3)]
    return set(re.findall(r"^\| `([\w.\[\]]+)` \|", table, re.M))


def field_paths(value, prefix=""):
    """Every field path of a JSON document: `a.b`, `list[].c`."""
    out = set()
    if isinstance(value, dict):
        for k, v in value.items():
            path = f"{prefix}.{k}" if prefix else k
            out.add(path)
            out |= field_paths(v, path)
    elif isinstance(value, list):
        for item in value:
            out |= field_paths(item, prefix + "[]")
    return out


def test_report_json_has_a_schema_and_every_field_is_documented(site, tmp_path):
    """A site cleared once (so there is history and a claim), then stuck
    again: every field report --json writes is in docs/fleet.md's table."""
    build_stuck_site(site)
    cfg = write_config(tmp_path / "lw.ini", site, policy={"stuck_after": "2s"})
    r = run_cli(["run", "-c", cfg, "--once"], timeout=60)
    assert r.returncode == ONCE_CLEARED, r.stdout + r.stderr
    build_stuck_site(site)
    r, doc = report_json(cfg)
    assert r.returncode == EX_STUCK, r.stdout + r.stderr
    assert doc["schema"] == 1 and list(doc)[0] == "schema"
    assert doc["history"] and doc["entries"]
    seen = field_paths(doc)
    documented = documented_report_fields()
    assert seen - documented == set(), "fields report --json writes that docs/fleet.md's " \
        f"table does not list: {sorted(seen - documented)}"
    # The table names nothing the program does not write (the claim's two
    # forms cannot both appear at once).
    missing = documented - seen - {"claim.trusted", "claim.why", "claim.incident", "claim.owner",
                                   "claim.renewed", "claim.expires", "claim.renewals",
                                   "claim.removed", "claim.hook_started",
                                   "lock_came_back_after",
                                   # Only when a record was not archived whole.
                                   "history[].entries[].left_out[].path",
                                   "history[].entries[].left_out[].size",
                                   "history[].entries[].left_out[].why",
                                   "history[].entries[].walk_stopped"}
    assert missing == set(), f"documented but never written: {sorted(missing)}"
