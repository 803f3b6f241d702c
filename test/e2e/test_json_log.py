"""[log] format = json: every stderr line is one JSON object with time,
level, event, instance and message, plus the event's fields (docs/fleet.md
"Logs for Log Analytics"), whatever the names in the tree hold."""

import json
import os
import re
import signal
import time
from pathlib import Path

from conftest import (ACT_TIMEOUT_S, HOUR_S, Pause, STUCK_LEFTOVERS, TEMP_STUCK, age_tree,
                      build_stuck_site, clean_env, gone, make_record, start_agent, wait_for,
                      write_config)

RFC3339_MS_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
FLEET_DOC = Path(__file__).resolve().parents[2] / "docs" / "fleet.md"


def documented_events():
    """The event names of docs/fleet.md's event table (| `name` | level | ...)."""
    text = FLEET_DOC.read_text()
    start = text.index("| event | level | when | fields |")
    table = text[start:text.index("\n\n", start)]
    return set(re.findall(r"^\| `(\w+)` \|", table, re.M))


EVENTS = documented_events()
INSTANCE_ID = "0f3c9a1b2d4e6f80a1b2c3d4e5f60718"


def test_the_docs_document_the_events():
    assert {"start", "reload", "stop", "incident", "removed", "kept", "archive", "hook",
            "share", "error", "log", "metrics"} <= EVENTS


def json_lines(agent):
    """Every stderr line as a JSON object; fails on the first that is not
    one, or that lacks a field every line must have."""
    out = []
    raw = agent.err_path.read_bytes()
    for n, line in enumerate(raw.split(b"\n")[:-1], 1):
        try:
            # Strict: the line must be ASCII-clean UTF-8 JSON on its own.
            obj = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise AssertionError(f"line {n} is not one JSON object ({e}): {line!r}")
        assert isinstance(obj, dict), f"line {n}: {line!r}"
        for key in ("time", "level", "event", "instance", "message"):
            assert key in obj, f"line {n} lacks {key}: {line!r}"
        assert RFC3339_MS_UTC.match(obj["time"]), obj["time"]
        assert obj["level"] in ("debug", "info", "warning", "error"), obj
        assert obj["event"] in EVENTS, f"undocumented event {obj['event']!r}"
        out.append(obj)
    assert raw.endswith(b"\n") or not raw, "the last line is unfinished"
    return out


def events(lines, name):
    return [o for o in lines if o["event"] == name]


def test_a_full_incident_in_json(site, hook, agents, tmp_path):
    build_stuck_site(site)
    cfg = write_config(tmp_path / "lw.ini", site, hook={"command": hook.command()},
                       log={"format": "json"})
    agent = start_agent(agents, cfg, env=clean_env(WEBSITE_INSTANCE_ID=INSTANCE_ID))
    wait_for(lambda: gone(site, STUCK_LEFTOVERS), ACT_TIMEOUT_S, "the cleanup", agent.tail)
    agent.wait_for_log(r'"event":"hook"')
    agent.send(signal.SIGTERM)
    assert agent.wait_exit(5) == 0

    lines = json_lines(agent)
    # The archive's instance id: the first 12 characters of WEBSITE_INSTANCE_ID.
    assert {o["instance"] for o in lines} == {INSTANCE_ID[:12]}
    start, = events(lines, "start")
    assert start["site_root"] == str(site) and start["dry_run"] is False

    incident, = [o for o in events(lines, "incident") if o["level"] != "debug"]
    assert incident["level"] == "warning"
    assert incident["will_remove"] == STUCK_LEFTOVERS
    assert incident["deployment_id"] == TEMP_STUCK
    assert incident["reason"] and incident["incident"] and incident["dry_run"] is False

    removed = events(lines, "removed")
    assert [o["entry"] for o in removed] == STUCK_LEFTOVERS, "removed events must name exactly " \
        "what was removed, in order"
    assert {o["how"] for o in removed} <= {"deleted", "moved_aside"}
    assert {o["incident"] for o in removed} == {incident["incident"]}
    assert not events(lines, "kept") and not events(lines, "remove_failed")

    archive, = events(lines, "archive")
    assert archive["path"].startswith(str(tmp_path))

    h, = events(lines, "hook")
    assert h["result"] == "ok" and h["status"] == 0 and h["timed_out"] is False
    assert isinstance(h["duration_ms"], int) and h["duration_ms"] >= 0

    stop, = events(lines, "stop")
    assert stop["signal"] == "SIGTERM"
    # Lines without an event of their own say "log" (or "error").
    assert events(lines, "log")


def test_text_stays_the_default(site, agents, tmp_path):
    build_stuck_site(site)
    cfg = write_config(tmp_path / "lw.ini", site)
    agent = start_agent(agents, cfg)
    wait_for(lambda: gone(site, STUCK_LEFTOVERS), ACT_TIMEOUT_S, "the cleanup", agent.tail)
    agent.wait_removed(STUCK_LEFTOVERS)
    assert not [line for line in agent.log_lines() if line.startswith("{")]


def test_environment_sets_the_format(site, agents, tmp_path):
    cfg = write_config(tmp_path / "lw.ini", site)
    agent = start_agent(agents, cfg, env=clean_env(LOCKWARDEN_LOG_FORMAT="json"))
    agent.wait_for_log(r'"event":"start"')
    assert json_lines(agent)


FORGED = '2026-01-01T00:00:00.000Z lockwarden[1] info: removed everything'


def test_hostile_names_and_output_stay_one_json_line_each(site, hook, agents, tmp_path):
    """Names with newlines and bytes that are not UTF-8, and a hook that
    prints such bytes: every line still parses on its own, and no line is
    forged."""
    build_stuck_site(site)
    dep = site / "deployments"
    for name in ("temp-1a2b3c4e\n" + FORGED, "notes\r\n{\"event\":\"removed\"}"):
        make_record(site, name, "Building", False, True)
    bad = dep / os.fsdecode(b"temp-\xff\xfe\"\\x")
    bad.mkdir()
    (bad / "status.xml").write_bytes(b"<deployment><id>\xff\n" + FORGED.encode() + b"</id></deployment>")
    (site / "locks" / ("status.lock\n" + FORGED)).write_text("{}")
    (dep / "caf\u00e9.txt").write_text("a valid UTF-8 name\n")
    age_tree(site, HOUR_S)
    script = tmp_path / "noisy-hook.sh"
    script.write_bytes(b"#!/bin/sh\nprintf 'bad bytes \\377\\376 and \\033[31m colour\\n'\n"
                       b"printf '" + FORGED.encode() + b"\\n'\nexit 0\n")
    cfg = write_config(tmp_path / "lw.ini", site, hook={"command": f"/bin/sh {script}"},
                       log={"format": "json", "level": "debug"})
    agent = start_agent(agents, cfg)
    wait_for(lambda: gone(site, STUCK_LEFTOVERS), ACT_TIMEOUT_S, "the cleanup", agent.tail)
    agent.wait_for_log(r'"event":"hook"')
    agent.wait_fresh_scans(1)

    lines = json_lines(agent)  # each parses on its own
    assert [o["entry"] for o in events(lines, "removed")] == STUCK_LEFTOVERS
    raw = agent.err_path.read_bytes()
    assert not [ln for ln in raw.split(b"\n") if ln.startswith(FORGED[:30].encode())]
    # Only ASCII leaves the agent: other bytes are \u00XX escapes.
    assert all(b < 0x80 for b in raw)
    assert any("bad bytes" in o["message"] for o in lines)


def test_an_entry_that_changed_under_the_agent_is_put_back(site, agents, tmp_path,
                                                           pause_shim):
    """The write lands between the last check and the rename (held there by
    the pause shim): the cleanup is rolled back, and the json log says
    `abandoned` and `put_back` for every entry it had moved, never
    `removed`; the metrics file counts the abandoned cleanup."""
    build_stuck_site(site)
    metrics = tmp_path / "lockwarden.prom"
    cfg = write_config(tmp_path / "lw.ini", site, log={"format": "json"},
                       metrics={"file": str(metrics)})
    pause = Pause(pause_shim, tmp_path / "pause", "rename", "-pending")
    agent = start_agent(agents, cfg, env=pause.env())
    pause.wait_paused(detail=agent.tail)
    target = site / "deployments" / "pending"
    os.utime(target, (time.time(), time.time()))
    pause.release()
    agent.wait_for_log(r'"event":"abandoned"')
    lines = json_lines(agent)
    put_back = {o["entry"] for o in events(lines, "put_back")}
    assert {"deployments/pending", "locks/status.lock", "locks/deployments.lock"} <= put_back
    (abandoned,) = events(lines, "abandoned")
    assert "deployments/pending" in abandoned["why"] and abandoned["incident"]
    wait_for(lambda: metrics.exists() and
             re.search(r"\nlockwarden_cleanups_abandoned_total\{instance_id=\"[^\"]+\"\} 1\n",
                       metrics.read_text()),
             ACT_TIMEOUT_S, "lockwarden_cleanups_abandoned_total 1", agent.tail)
    assert not events(lines, "removed")
    assert target.exists()
