"""This host's wall clock hours off the share's (issue 18, finding 3).

File times are stamped by the share's clock and lockExpiry by Kudu's. Under
the one rule no clock can make the agent act sooner: it acts only once it
has itself watched the tree unchanged for stuck_after, on its monotonic
clock. An agent 2 h ahead sees a fresh lock as expired and every file time
as 2 h old, and still waits stuck_after from its first scan; one 2 h behind
sees every fresh file time in the future, which counts as a change at every
scan, so it clears nothing while they are ahead. libfaketime moves the
agent's wall clock only: the kernel still stamps files with the true time,
as the file server would. Timings come from the agent's own log lines."""

import re

from conftest import (ACT_TIMEOUT_S, ONCE_CLEARED, ONCE_NOTHING_STUCK, TEMP_STUCK, age_tree,
                      archive_dir_for, faketime_env, make_file_lock, make_lock, make_pending,
                      make_record, run_cli, start_agent, tree_state, wait_for, write_config)

STUCK_AFTER_S = 3.0
STUCK_PATHS = ["locks/deployment", "locks/status.lock", "deployments/pending",
               f"deployments/{TEMP_STUCK}"]


def quiet_site(root, lock_expiry_s, age_s):
    """A deployment that holds the lock and has written nothing for age_s
    (a quiet npm install, or a dead one: one scan cannot tell)."""
    make_record(root, TEMP_STUCK, "Building", False, True, received=-age_s)
    make_lock(root, expiry=lock_expiry_s)
    make_file_lock(root, "status.lock", acquired_s=-age_s)
    make_pending(root)
    if age_s:
        age_tree(root, age_s)


def config(tmp_path, site, stuck_after=f"{int(STUCK_AFTER_S)}s"):
    # quiet_period as an old file sets it: ignored now (main acted after it).
    return write_config(tmp_path / "lw.ini", site,
                        policy={"stuck_after": stuck_after, "quiet_period": "1s"},
                        scan={"rescan_interval": "200ms"})


def clock_unknown_to_main(tmp_path, cfg):
    """The issue's reproduction: a folder where main's share-clock probe
    would create its file leaves that offset unknown, and main then judged by
    this host's clock. Under the rule it is a folder like any other."""
    (archive_dir_for(cfg) / ".lockwarden-clock-inst0aaaaaaa").mkdir(parents=True)
    return {"WEBSITE_INSTANCE_ID": "inst0aaaaaaa0000"}


def acted_after_first_scan(agent):
    acted = agent.line_time(r"stuck deployment:")
    assert acted is not None, agent.tail()
    return acted - agent.scan_times()[0]


def test_an_agent_two_hours_ahead_waits_stuck_after_watched(site, agents, tmp_path):
    """lockExpiry is 20 minutes away by the share's clock and the last write
    10 minutes ago: by this host's clock (+2 h) the lock expired 1 h 40 ago
    and the tree has been silent for 2 h 10. Main (with the probe's offset
    unknown) cleared it at once; now it goes only after stuck_after watched."""
    quiet_site(site, lock_expiry_s=20 * 60, age_s=600)
    cfg = config(tmp_path, site)
    env = dict(faketime_env("+2h"), **clock_unknown_to_main(tmp_path, cfg))
    agent = start_agent(agents, cfg, env=env)
    agent.wait_removed(STUCK_PATHS, timeout=STUCK_AFTER_S + ACT_TIMEOUT_S)
    took = acted_after_first_scan(agent)
    assert took >= STUCK_AFTER_S - 0.2, f"acted {took:.3f}s after the first scan\n{agent.tail()}"
    m = agent.wait_for_log(r"stuck deployment: (.*); cleaning up")
    assert "watched with no change" in m.group(1), m.string


def test_once_two_hours_ahead_watches_then_clears(site, agents, tmp_path):
    quiet_site(site, lock_expiry_s=20 * 60, age_s=600)
    cfg = config(tmp_path, site)
    once = agents.start(["run", "-c", cfg, "--once", "-v"],
                        env=dict(faketime_env("+2h"), **clock_unknown_to_main(tmp_path, cfg)),
                        name="once")
    assert once.wait_exit(STUCK_AFTER_S + ACT_TIMEOUT_S) == ONCE_CLEARED, once.tail()
    took = acted_after_first_scan(once)
    assert took >= STUCK_AFTER_S - 0.2, f"acted {took:.3f}s after the first scan\n{once.tail()}"


def test_report_two_hours_ahead_never_says_stuck(site, tmp_path):
    """One scan watches nothing: report shows the file times' age for a
    person (exit 2, silent by file times) and never says stuck."""
    quiet_site(site, lock_expiry_s=20 * 60, age_s=600)
    # (report waits on a monotonic condition variable, which libfaketime
    # breaks unless told not to "fix" it.)
    env = dict(faketime_env("+2h"), FAKETIME_FORCE_MONOTONIC_FIX="0")
    r = run_cli(["report", "-c", config(tmp_path, site, "25m")], env=env)
    assert r.returncode == 2, r.stdout + r.stderr
    # (report's long lines wrap at 100 columns.)
    assert re.search(r"^SILENT BY FILE TIMES: .*?nothing watched yet", r.stdout, re.M | re.S), \
        r.stdout
    assert not re.search(r"^STUCK", r.stdout, re.M), r.stdout
    assert "once stuck_after (25m) has been watched unchanged" in " ".join(r.stdout.split()), \
        r.stdout
    r = run_cli(["report", "--json", "-c", config(tmp_path, site, "25m")], env=env)
    assert '"stuck": false' in r.stdout and '"lock_expired": true' in r.stdout, r.stdout


def test_an_agent_two_hours_behind_clears_nothing_while_file_times_are_ahead(
        site, agents, tmp_path):
    """Files written now are 2 h in the future by this host's clock: each
    scan counts them as a change, so the deployment is alive to this agent
    for as long as they stay ahead (a clock behind only delays a cleanup)."""
    quiet_site(site, lock_expiry_s=-60 * 60, age_s=0)
    before = tree_state(site)
    agent = start_agent(agents, config(tmp_path, site), env=faketime_env("-2h"))
    wait_for(lambda: len(agent.scan_times()) > 1 and
             agent.scan_times()[-1] - agent.scan_times()[0] >= 3 * STUCK_AFTER_S,
             6 * STUCK_AFTER_S + 10, "the agent to watch for 3 x stuck_after", agent.tail)
    assert tree_state(site) == before, agent.tail()
    assert agent.removed() == [] and agent.count(r"stuck deployment:") == 0, agent.tail()

    once = agents.start(["run", "-c", config(tmp_path, site), "--once", "-v"],
                        env=faketime_env("-2h"), name="once")
    assert once.wait_exit(ACT_TIMEOUT_S) == ONCE_NOTHING_STUCK, once.tail()
    assert once.count(r"changed while watched, so it is alive") == 1, once.tail()
    assert tree_state(site) == before
