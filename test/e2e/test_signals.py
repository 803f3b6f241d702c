"""Signals: SIGTERM and SIGINT stop the agent promptly and cleanly; SIGHUP
re-reads the config file, keeping the old one when the new one is bad."""

import os
import signal

import pytest

from conftest import (ACT_TIMEOUT_S, STUCK_LEFTOVERS, build_finished_site,
                      build_stuck_site, gone, start_agent, tree_state, wait_for,
                      write_config)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stop_signal_exits_0_within_2s(site, agents, tmp_path, sig):
    build_finished_site(site)
    cfg = write_config(tmp_path / "lw.ini", site)
    agent = start_agent(agents, cfg)
    agent.wait_scan(1)
    agent.send(sig)
    assert agent.wait_exit(2.0) == 0, agent.tail()
    assert agent.count(r"\bstopping\b") >= 1, agent.tail()


def test_sigterm_while_the_hook_runs_exits_and_ends_the_hook(site, hook, agents, tmp_path):
    build_stuck_site(site)
    cfg = write_config(tmp_path / "lw.ini", site,
                       hook={"command": hook.command(sleep_s=60), "timeout": "1h"})
    agent = start_agent(agents, cfg)
    wait_for(lambda: hook.count() == 1, ACT_TIMEOUT_S, "the hook to start", agent.tail)
    pid = int(next(hook.pids_dir.iterdir()).name)
    agent.send(signal.SIGTERM)
    assert agent.wait_exit(2.0) == 0, agent.tail()
    # The hook's process group was told to stop too; nothing is left behind.
    wait_for(lambda: not os.path.exists(f"/proc/{pid}"), 5, "the hook process to be gone")


def test_sighup_with_a_new_root_clears_the_stuck_tree_there(tmp_path, hook, agents):
    healthy, stuck = tmp_path / "healthy", tmp_path / "stuck"
    build_finished_site(healthy)
    build_stuck_site(stuck)
    healthy_before = tree_state(healthy)
    stuck_before = tree_state(stuck)
    cfg = write_config(tmp_path / "lw.ini", healthy, hook={"command": hook.command()})
    agent = start_agent(agents, cfg)
    agent.wait_scan(1)

    write_config(cfg, stuck, hook={"command": hook.command()})
    mark = len(agent.log_lines())
    agent.send(signal.SIGHUP)
    agent.wait_for_log(r"reloaded configuration", timeout=5, start=mark)
    wait_for(lambda: gone(stuck, STUCK_LEFTOVERS), ACT_TIMEOUT_S,
             "the stuck tree in the new root to be cleared", agent.tail)
    agent.wait_for_log(r"hook exited with status 0", start=mark)

    assert tree_state(healthy) == healthy_before
    after = tree_state(stuck)
    assert all(after[p] == v for p, v in stuck_before.items()
               if not any(p == r or p.startswith(r + "/") for r in STUCK_LEFTOVERS))
    run = hook.runs()[0]
    assert os.path.realpath(run["LOCKWARDEN_SITE_ROOT"]) == os.path.realpath(stuck)


def test_sighup_with_a_bad_file_keeps_the_old_configuration(tmp_path, hook, agents):
    root = tmp_path / "site"
    build_finished_site(root)
    cfg = write_config(tmp_path / "lw.ini", root, hook={"command": hook.command()})
    agent = start_agent(agents, cfg)
    agent.wait_scan(1)

    other = tmp_path / "other"
    cfg.write_text(f"[site]\nroot = {other}\n[policy]\nstuck_after = soon\n")
    mark = len(agent.log_lines())
    agent.send(signal.SIGHUP)
    m = agent.wait_for_log(r"keeping the old configuration.*|.*keeping the old configuration",
                           timeout=5, start=mark)
    assert "lw.ini:4" in m.string and "soon" in m.string, m.string
    agent.wait_fresh_scans(1)
    assert agent.running()
    assert agent.count(r"reloaded configuration") == 0

    # The old root, quiet period and hook are still in force: a deployment
    # that gets stuck there now is cleared.
    build_stuck_site(root)
    wait_for(lambda: gone(root, STUCK_LEFTOVERS), ACT_TIMEOUT_S,
             "the old root to still be watched", agent.tail)
    agent.wait_for_log(r"hook exited with status 0", start=mark)
    assert not other.exists()
