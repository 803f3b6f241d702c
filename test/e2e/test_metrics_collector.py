"""The metrics file in the collector people run: node_exporter's textfile
collector reading the files of two instances from one folder (every
instance of a scaled-out site writes its own file beside the others), and
promtool's linter. Both are the real programs (Debian packages
prometheus-node-exporter and prometheus, packaging/deps-metrics.txt).

Without a label naming the instance, two files hold the same series:
node_exporter then drops one file's data and reports a collection error,
while its scrape still answers 200."""

import os
import shutil
import socket
import subprocess
import urllib.request

import pytest

from conftest import (ACT_TIMEOUT_S, START_TIMEOUT_S, clean_env, make_skeleton, start_agent,
                      wait_for, write_config)

NODE_EXPORTER = shutil.which("prometheus-node-exporter") or shutil.which("node_exporter")
PROMTOOL = shutil.which("promtool")
INSTANCES = {"a1b2c3d4e5f6a7b8": "a1b2c3d4e5f6", "0f0e0d0c0b0a0908": "0f0e0d0c0b0a"}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def two_instances(tmp_path, agents):
    """Two agents on one site, each writing its file into one folder."""
    site = make_skeleton(tmp_path / "site")
    folder = tmp_path / "textfile"
    cfg = write_config(tmp_path / "lw.ini", site,
                       metrics={"file": str(folder / "lockwarden-$INSTANCE.prom")})
    for full in INSTANCES:
        start_agent(agents, cfg, env=clean_env(WEBSITE_INSTANCE_ID=full), name=full)
    files = [folder / f"lockwarden-{short}.prom" for short in INSTANCES.values()]
    wait_for(lambda: all(f.exists() for f in files), ACT_TIMEOUT_S, "both metrics files")
    return folder, files


@pytest.mark.skipif(not PROMTOOL, reason="promtool is not installed (Debian package prometheus, "
                    "packaging/deps-metrics.txt)")
def test_promtool_finds_nothing_to_lint(two_instances):
    _, files = two_instances
    for f in files:
        r = subprocess.run([PROMTOOL, "check", "metrics"], stdin=open(f, "rb"),
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0 and not (r.stdout + r.stderr).strip(), \
            f"{f.name}:\n{r.stdout}{r.stderr}"


@pytest.mark.skipif(not NODE_EXPORTER, reason="node_exporter is not installed (Debian package "
                    "prometheus-node-exporter, packaging/deps-metrics.txt)")
def test_node_exporter_serves_both_instances_with_no_collection_error(two_instances, tmp_path):
    folder, _ = two_instances
    port = free_port()
    with open(tmp_path / "node_exporter.log", "wb") as log:
        proc = subprocess.Popen([NODE_EXPORTER, "--collector.disable-defaults",
                                 "--collector.textfile",
                                 f"--collector.textfile.directory={folder}",
                                 f"--web.listen-address=127.0.0.1:{port}"],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    try:
        def scrape():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics",
                                            timeout=5) as r:
                    return r.read().decode()
            except OSError:
                return None
        text = wait_for(scrape, START_TIMEOUT_S, "node_exporter to answer",
                        lambda: (tmp_path / "node_exporter.log").read_text())
        lines = text.splitlines()
        assert "node_textfile_scrape_error 0" in lines, \
            "\n".join(ln for ln in lines if "textfile" in ln) + \
            (tmp_path / "node_exporter.log").read_text()
        for short in INSTANCES.values():
            for series in ("lockwarden_share_up", "lockwarden_incidents_total",
                           "lockwarden_claimed_quiet_seconds"):
                assert any(ln.startswith(f'{series}{{instance_id="{short}"}} ') for ln in lines), \
                    (series, short, [ln for ln in lines if ln.startswith("lockwarden_")])
    finally:
        proc.terminate()
        proc.wait(timeout=10)
