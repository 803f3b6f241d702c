"""[metrics] file: the Prometheus text file, read back with a real parser of
the format (python3-prometheus-client), its counters matched against what
the agent did; a file that cannot be written never stops a cleanup."""

import json
import os
import signal
import stat

import pytest

from conftest import (ACT_TIMEOUT_S, HOUR_S, STUCK_LEFTOVERS, Pause, age_tree,
                      build_stuck_site, clean_env, gone, make_file_lock, make_lock,
                      make_pending, make_record, settle, start_agent, wait_for, write_config)

parser = pytest.importorskip(
    "prometheus_client.parser",
    reason="python3-prometheus-client is not installed (packaging/deps-metrics.txt)")

VERSION_RE = r"\d+\.\d+\.\d+"
SECOND_TEMP = "temp-2b3c4d5e"
SECOND_LEFTOVERS = ["locks/status.lock", "deployments/pending", f"deployments/{SECOND_TEMP}",
                    "locks/deployment"]


def read_metrics(path, instance=None):
    """{(sample name, frozenset(labels)): value}, parsed by prometheus_client,
    with each family's TYPE checked and every sample's instance_id label
    (instance when given) checked and left out of the key; None while the
    file does not exist."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    samples = {}
    types = {}
    ids = set()
    for family in parser.text_string_to_metric_families(text):
        types[family.name] = family.type
        for s in family.samples:
            labels = dict(s.labels)
            ids.add(labels.pop("instance_id", None))
            samples[(s.name, frozenset(labels.items()))] = s.value
    assert len(ids) == 1 and None not in ids, f"every sample names one instance: {ids}"
    assert instance is None or ids == {instance}, ids
    assert types.get("lockwarden_incidents") == "counter", types
    assert types.get("lockwarden_hook_runs") == "counter", types
    assert types.get("lockwarden_stuck") == "gauge", types
    return samples


def value(samples, name, **labels):
    return samples[(name, frozenset(labels.items()))]


def build_second_stuck(root):
    """A second deployment that died after the first incident was cleared."""
    make_lock(root, expiry=20 * 60)
    make_file_lock(root, "status.lock", acquired_s=-HOUR_S)
    make_pending(root)
    make_record(root, SECOND_TEMP, "Building", False, True, received=-HOUR_S)
    age_tree(root, HOUR_S)
    settle(root)


def fail_first_hook(tmp_path):
    """A hook that fails on its first run and succeeds afterwards."""
    marker = tmp_path / "hook-ran-once"
    script = tmp_path / "hook.sh"
    script.write_text(f'#!/bin/sh\nif [ -e "{marker}" ]; then exit 0; fi\n'
                      f'touch "{marker}"\nexit 3\n')
    return f"/bin/sh {script}"


def json_events(agent, name):
    out = []
    for line in agent.log_lines():
        if line.startswith("{"):
            obj = json.loads(line)
            if obj["event"] == name and obj["level"] != "debug":
                out.append(obj)
    return out


def test_counters_match_two_incidents_and_a_failing_hook(site, agents, tmp_path):
    build_stuck_site(site)
    metrics = tmp_path / "metrics" / "lockwarden-$INSTANCE.prom"
    cfg = write_config(tmp_path / "lw.ini", site, hook={"command": fail_first_hook(tmp_path)},
                       log={"format": "json"}, metrics={"file": str(metrics)})
    agent = start_agent(agents, cfg, env=clean_env(WEBSITE_INSTANCE_ID="a1b2c3d4e5f6a7b8"))
    path = tmp_path / "metrics" / "lockwarden-a1b2c3d4e5f6.prom"

    wait_for(lambda: gone(site, STUCK_LEFTOVERS), ACT_TIMEOUT_S, "the first cleanup", agent.tail)
    wait_for(lambda: len(json_events(agent, "hook")) == 1, ACT_TIMEOUT_S, "the first hook",
             agent.tail)
    first = wait_for(lambda: (lambda m: m if m and value(m, "lockwarden_hook_runs_total",
                                                         result="failed") == 1 else None)(
        read_metrics(path)), ACT_TIMEOUT_S, "the file to show the failed hook", agent.tail)
    assert value(first, "lockwarden_incidents_total") == 1
    assert value(first, "lockwarden_last_hook_success") == 0
    assert value(first, "lockwarden_removed_entries_total") == len(STUCK_LEFTOVERS)

    build_second_stuck(site)
    wait_for(lambda: gone(site, SECOND_LEFTOVERS), ACT_TIMEOUT_S, "the second cleanup",
             agent.tail)
    wait_for(lambda: len(json_events(agent, "hook")) == 2, ACT_TIMEOUT_S, "the second hook",
             agent.tail)

    def final():
        m = read_metrics(path)
        return m if m and value(m, "lockwarden_hook_runs_total", result="ok") == 1 \
            and value(m, "lockwarden_stuck") == 0 else None
    m = wait_for(final, ACT_TIMEOUT_S, "the file to show the second incident", agent.tail)

    # What the file says is what the log says happened.
    assert value(m, "lockwarden_incidents_total") == len(json_events(agent, "incident")) == 2
    assert value(m, "lockwarden_removed_entries_total") == len(json_events(agent, "removed")) == \
        len(STUCK_LEFTOVERS) + len(SECOND_LEFTOVERS)
    results = [h["result"] for h in json_events(agent, "hook")]
    assert results == ["failed", "ok"]
    assert value(m, "lockwarden_hook_runs_total", result="failed") == 1
    assert value(m, "lockwarden_hook_runs_total", result="ok") == 1
    assert value(m, "lockwarden_hook_runs_total", result="timeout") == 0
    assert value(m, "lockwarden_kept_entries_total") == 0
    assert value(m, "lockwarden_share_up") == 1
    info = [k for k in m if k[0] == "lockwarden_build_info"]
    assert len(info) == 1 and dict(info[0][1])["version"]
    read_metrics(path, instance="a1b2c3d4e5f6")
    start = value(m, "lockwarden_start_time_seconds")
    # The gauges worth an alert: the last cleanup and the last hook.
    assert value(m, "lockwarden_last_cleanup_timestamp_seconds") >= start
    assert value(m, "lockwarden_last_hook_success") == 1
    assert value(m, "lockwarden_last_hook_timestamp_seconds") >= \
        value(m, "lockwarden_last_cleanup_timestamp_seconds")
    assert 0 <= value(m, "lockwarden_last_hook_duration_seconds") < ACT_TIMEOUT_S
    assert value(m, "lockwarden_claimed_quiet_seconds") == 0
    assert value(m, "lockwarden_last_scan_timestamp_seconds") >= start > 0
    # Written atomically: no temporary file is left beside it.
    assert sorted(os.listdir(path.parent)) == [path.name]
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_an_unwritable_file_is_said_once_and_never_stops_a_cleanup(site, agents, tmp_path):
    build_stuck_site(site)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the metrics folder should be\n")
    metrics = blocker / "lockwarden.prom"
    cfg = write_config(tmp_path / "lw.ini", site, log={"format": "json"},
                       metrics={"file": str(metrics)})
    agent = start_agent(agents, cfg)
    wait_for(lambda: gone(site, STUCK_LEFTOVERS), ACT_TIMEOUT_S, "the cleanup", agent.tail)
    agent.wait_removed(STUCK_LEFTOVERS)
    agent.wait_fresh_scans(2)
    said = json_events(agent, "metrics")
    assert len(said) == 1, said
    assert said[0]["level"] == "error" and said[0]["path"] == str(metrics)

    # Writable again: the next change is written, and that is said once.
    blocker.unlink()
    build_second_stuck(site)
    wait_for(lambda: gone(site, SECOND_LEFTOVERS), ACT_TIMEOUT_S, "the second cleanup",
             agent.tail)
    wait_for(lambda: len(json_events(agent, "metrics")) == 2, ACT_TIMEOUT_S,
             "the file to be written again", agent.tail)
    again = json_events(agent, "metrics")[1]
    assert again["level"] == "info"
    m = wait_for(lambda: (lambda x: x if x and value(x, "lockwarden_incidents_total") == 2
                          else None)(read_metrics(metrics)), ACT_TIMEOUT_S, "the counters",
                 agent.tail)
    assert value(m, "lockwarden_removed_entries_total") == len(STUCK_LEFTOVERS) + len(SECOND_LEFTOVERS)


def test_a_hung_metrics_write_never_holds_a_cleanup(site, agents, tmp_path, pause_shim):
    """The file is on the share, which can stop answering: a write that does
    not return holds one worker thread, never the cleanup."""
    build_stuck_site(site)
    metrics = tmp_path / "lockwarden.prom"
    pause = Pause(pause_shim, tmp_path / "pause", "openat", name="lockwarden.prom.tmp")
    cfg = write_config(tmp_path / "lw.ini", site, metrics={"file": str(metrics)})
    agent = start_agent(agents, cfg, env=pause.env())
    pause.wait_paused(detail=agent.tail)
    try:
        wait_for(lambda: gone(site, STUCK_LEFTOVERS), ACT_TIMEOUT_S,
                 "the cleanup while the metrics write hangs", agent.tail)
        agent.wait_removed(STUCK_LEFTOVERS)
        assert not metrics.exists()
    finally:
        pause.release()
    # Released, the write that was held back finishes, then the newer values.
    m = wait_for(lambda: (lambda x: x if x and value(x, "lockwarden_removed_entries_total") ==
                          len(STUCK_LEFTOVERS) else None)(read_metrics(metrics)),
                 ACT_TIMEOUT_S, "the file after the release", agent.tail)
    assert value(m, "lockwarden_incidents_total") == 1


def test_a_reload_that_names_a_file_writes_it_at_once(site, agents, tmp_path):
    cfg = write_config(tmp_path / "lw.ini", site)
    agent = start_agent(agents, cfg)
    agent.wait_scan(1)
    metrics = tmp_path / "later.prom"
    write_config(tmp_path / "lw.ini", site, metrics={"file": str(metrics)})
    agent.send(signal.SIGHUP)
    agent.wait_for_log(r"reloaded configuration")
    m = wait_for(lambda: read_metrics(metrics), ACT_TIMEOUT_S, "the file after the reload",
                 agent.tail)
    assert value(m, "lockwarden_incidents_total") == 0
    assert value(m, "lockwarden_share_up") == 1


def test_a_deployment_that_claims_to_run_quietly_is_counted_in_seconds(site, agents, tmp_path):
    """lockwarden_claimed_quiet_seconds: how long a deployment has claimed
    to run with no change seen, the gauge to alert on long before it is
    stuck. Its start is written at once; its growth with the minute's
    write."""
    build_stuck_site(site)
    metrics = tmp_path / "lockwarden.prom"
    cfg = write_config(tmp_path / "lw.ini", site, policy={"stuck_after": "1h"},
                       metrics={"file": str(metrics)})
    agent = start_agent(agents, cfg)
    m = wait_for(lambda: (lambda x: x if x and value(x, "lockwarden_claimed_quiet_seconds") > 0
                          else None)(read_metrics(metrics)), ACT_TIMEOUT_S,
                 "the quiet deployment in the file", agent.tail)
    assert value(m, "lockwarden_stuck") == 0
    assert value(m, "lockwarden_claimed_quiet_seconds") < ACT_TIMEOUT_S + 60
    assert value(m, "lockwarden_last_cleanup_timestamp_seconds") == 0
    assert not [k for k in m if k[0].startswith("lockwarden_last_hook_")], "no hook ran"


def test_the_file_can_be_read_by_a_collector_under_a_strict_umask(site, agents, tmp_path):
    """The systemd unit runs the agent with UMask=0077; node_exporter runs
    as another user: the file and a folder the agent made stay readable."""
    metrics = tmp_path / "made" / "lockwarden.prom"
    cfg = write_config(tmp_path / "lw.ini", site, metrics={"file": str(metrics)})
    old = os.umask(0o077)
    try:
        agent = start_agent(agents, cfg)
    finally:
        os.umask(old)
    wait_for(lambda: read_metrics(metrics), ACT_TIMEOUT_S, "the file", agent.tail)
    assert stat.S_IMODE(metrics.stat().st_mode) == 0o644
    assert stat.S_IMODE(metrics.parent.stat().st_mode) == 0o755
