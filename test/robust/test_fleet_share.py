"""A share that stops answering, as the fleet sees it: one `share` json
event (unreachable), then one (back), and lockwarden_share_up going 0 and
1 in the metrics file, which lives off the share (test_hung_share.py has
the freezable bindfs share)."""

import json

import pytest

from conftest import build_finished_site, start_agent, wait_for, write_config
from test_hung_share import HANG_LIMIT_S, MARGIN_S, RESCAN_S, share  # noqa: F401

parser = pytest.importorskip(
    "prometheus_client.parser",
    reason="python3-prometheus-client is not installed (packaging/deps-metrics.txt)")


def share_up(path):
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    for family in parser.text_string_to_metric_families(text):
        if family.name == "lockwarden_share_up":
            return family.samples[0].value
    return None


def share_events(agent):
    return [json.loads(x) for x in agent.log_lines()
            if x.startswith("{") and '"event":"share"' in x]


def test_a_hung_share_in_the_json_log_and_the_metrics(share, agents, tmp_path):  # noqa: F811
    build_finished_site(share.backing)
    metrics = tmp_path / "metrics.prom"
    cfg = write_config(tmp_path / "lw.ini", share.mountpoint,
                       scan={"rescan_interval": f"{int(RESCAN_S * 1000)}ms"},
                       log={"format": "json"}, metrics={"file": str(metrics)})
    agent = start_agent(agents, cfg)
    agent.wait_scan(2)
    wait_for(lambda: share_up(metrics) == 1, MARGIN_S, "share_up 1", agent.tail)

    share.freeze()
    wait_for(lambda: share_events(agent), HANG_LIMIT_S + RESCAN_S + MARGIN_S,
             "a share event", agent.tail)
    wait_for(lambda: share_up(metrics) == 0, MARGIN_S, "share_up 0", agent.tail)
    out, = share_events(agent)
    assert out["state"] == "unreachable" and out["level"] == "warning"
    assert out["site_root"] == str(share.mountpoint) and out["out_ms"] >= 0

    share.thaw()
    wait_for(lambda: len(share_events(agent)) == 2, MARGIN_S, "the share back", agent.tail)
    back = share_events(agent)[1]
    assert back["state"] == "back" and back["level"] == "info"
    wait_for(lambda: share_up(metrics) == 1, MARGIN_S, "share_up 1 again", agent.tail)
