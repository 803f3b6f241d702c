"""After a site restart, check the result (issue 11): if the very lock that
was removed comes back within [hook] verify_within, with no new deployment,
the restart did not end Kudu's lock, and the agent and `report` say so."""

import subprocess

from conftest import (ACT_TIMEOUT_S, BIN, STUCK_LEFTOVERS, build_stuck_site, clean_env, gone,
                      settle, start_agent, wait_for, write_config)


def hook_script(tmp_path, body):
    script = tmp_path / "restart"
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(0o755)
    return str(script)


def test_a_lock_that_comes_back_after_the_restart_is_reported(site, agents, tmp_path):
    build_stuck_site(site)
    saved = tmp_path / "info.lock.saved"
    saved.write_bytes((site / "locks" / "deployment" / "info.lock").read_bytes())
    # A restart that does not reach Kudu: the process that still holds the
    # lock writes it back, the same lock, once.
    done = tmp_path / "restored"
    hook = hook_script(tmp_path, f"""[ -e {done} ] && exit 0
mkdir -p {site}/locks/deployment && cp {saved} {site}/locks/deployment/info.lock
touch {done}
""")
    settle(site, 21)
    cfg = write_config(tmp_path / "lw.ini", site, policy={"stuck_after": "20s"},
                       hook={"command": hook, "verify_within": "1m"})
    agent = start_agent(agents, cfg)
    agent.wait_for_log(r"error: the restart did not end the stuck lock: locks/deployment came "
                       r"back .* same holder and lockExpiry", timeout=ACT_TIMEOUT_S * 2)
    r = subprocess.run([BIN, "report", "-c", str(cfg)], env=clean_env(), capture_output=True,
                       text=True, timeout=20)
    assert "THE RESTART DID NOT END THE LOCK" in r.stdout, r.stdout
    js = subprocess.run([BIN, "report", "-c", str(cfg), "--json"], env=clean_env(),
                        capture_output=True, text=True, timeout=20)
    assert '"lock_came_back_after": "' in js.stdout, js.stdout


def test_a_restart_that_ended_the_lock_is_said_once_the_window_passed(site, agents, tmp_path):
    build_stuck_site(site)
    hook = hook_script(tmp_path, "exit 0\n")
    cfg = write_config(tmp_path / "lw.ini", site,
                       hook={"command": hook, "verify_within": "2s"})
    agent = start_agent(agents, cfg)
    wait_for(lambda: gone(site, STUCK_LEFTOVERS), ACT_TIMEOUT_S, "the cleanup", agent.tail)
    agent.wait_for_log(r"the restart ended the stuck lock: locks/deployment did not come back "
                       r"within 2s")
    assert agent.count(r"did not end the stuck lock") == 0
    r = subprocess.run([BIN, "report", "-c", str(cfg)], env=clean_env(), capture_output=True,
                       text=True, timeout=20)
    assert "THE RESTART DID NOT END THE LOCK" not in r.stdout, r.stdout
