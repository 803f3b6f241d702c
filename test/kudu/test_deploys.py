"""End to end, one level above the files: deploys were answered 409, and
then they succeed again. The real build/lockwarden and the real, unchanged
packaging/hooks/restart-site run against the Kudu stand-in
(kudu_standin.py) and the identity/ARM stand-in of the hook tests
(test/kudu/arm_standin.py reuses test/packaging/test_hooks.py),
whose restart restarts the Kudu stand-in.

The agent's timings are set here explicitly (defaults may change):
stuck_after 3 s, rescan_interval 1 s.
"""

import time

import pytest

from lwtest import (START_TIMEOUT_S, clean_env, start_agent, wait_for,  # noqa: F401
                    write_config)
from arm_standin import site_env
from conftest import RESTART_SITE, wait_idle
from pipeline import Pipeline, deploy, request

STUCK_AFTER_S = 3
TIMINGS = {"policy": {"stuck_after": f"{STUCK_AFTER_S}s"},
           "scan": {"rescan_interval": "1s"}}
# From a death to the next success: stuck_after watched + a rescan,
# the hook, a retry; generous for a busy 2-core machine.
RECOVERY_TIMEOUT_S = 30


def agent_config(tmp_path, kudu, hook):
    hook_section = {"timeout": "20s", "cooldown": "0s"}
    if hook:
        hook_section["command"] = str(RESTART_SITE)
    return write_config(tmp_path / "lockwarden.ini", kudu.site_root,
                        policy=dict(TIMINGS["policy"]), scan=dict(TIMINGS["scan"]),
                        hook=hook_section)


def agent_env(arm):
    """What App Service gives the container (managed identity, site names),
    pointed at the ARM stand-in, without the runner's sd_notify variables."""
    env = site_env(arm)
    return {k: v for k, v in env.items()
            if not k.startswith(("NOTIFY_", "WATCHDOG_", "LISTEN_"))
            and k not in ("JOURNAL_STREAM", "INVOCATION_ID")}


def kill_running_deployment(kudu, timeout=15):
    """Waits for a deployment to be under way, makes it die holding the
    lock, and returns the moment it died."""
    wait_for(lambda: kudu.proc.running, timeout, "a deployment under way")
    since = time.monotonic()
    kudu.proc.fault = "die"
    return wait_for(lambda: kudu.first_event("died", since), timeout, "the deployment to die")


def restart_posts(arm):
    return [r for r in arm.of("arm") if r["method"] == "POST"]


@pytest.mark.parametrize("memory", ["source", "reported"])
def test_a_dead_deployment_is_cleared_the_site_restarted_and_deploys_succeed_again(
        tmp_path, agents, kudu_factory, arm_factory, memory):
    """With Kudu as its source reads (memory="source") and as users
    reported it (memory="reported", where only the restart frees the lock
    the process remembers)."""
    kudu = kudu_factory(build_s=0.5, memory=memory)
    arm = arm_factory(kudu)
    agent = start_agent(agents, agent_config(tmp_path, kudu, hook=True), env=agent_env(arm))
    agent.wait_scan(1)
    # The pipeline gives up on its deployment after 1.5 s, well inside
    # stuck_after, so its retries meet the lock while it is still there.
    pipe = Pipeline(kudu.url, retry_s=0.1, poll_timeout_s=1.5).start()
    try:
        wait_for(lambda: pipe.first("success"), 20, "a first successful deploy")
        died = kill_running_deployment(kudu)
        assert (kudu.site_root / "locks" / "deployment" / "info.lock").exists()
        wait_for(lambda: pipe.first("conflict", died), 10, "a deploy answered 409")

        agent.wait_for_log(r"stuck deployment", timeout=RECOVERY_TIMEOUT_S)
        agent.wait_removed(["locks/deployment"], timeout=RECOVERY_TIMEOUT_S)
        restarted = wait_for(lambda: kudu.first_event("restart"), RECOVERY_TIMEOUT_S,
                             "the site restart through restart-site and ARM", agent.tail)
        agent.wait_for_log(r"hook exited with status 0", timeout=RECOVERY_TIMEOUT_S)
        ok = wait_for(lambda: pipe.first("success", died), RECOVERY_TIMEOUT_S,
                      "a successful deploy after the death", agent.tail)
    finally:
        pipe.stop()

    conflicts = kudu.count_events("zipdeploy 409", died, ok[1])
    print(f"recovery: {ok[1] - died:.1f} s from the death to the next successful deploy, "
          f"{conflicts} deploys answered 409 meanwhile")
    assert conflicts >= 1
    # The restart came through the real hook: a token, then one POST per
    # incident. Where deleting the files frees Kudu's lock (the source), the
    # pipeline may begin a deploy between the cleanup and the restart, and
    # the restart kills it holding the lock: a second, real incident.
    incidents = agent.count(r"stuck deployment: .*; cleaning up")
    posts = restart_posts(arm)
    assert len(posts) == incidents >= 1
    assert all(p["path"].endswith("/restart") for p in posts)
    assert kudu.restarts == len(posts)
    if memory == "reported":
        assert incidents == 1
    # The deploy that succeeded was begun after the death; where Kudu
    # remembers its lock, Kudu accepted none before the restart. (By Kudu's
    # own record: the pipeline may begin the request that succeeds a moment
    # before the restart, which Kudu then serves after it.)
    assert ok[0] >= died and restarted is not None
    if memory == "reported":
        # (Accepted: the moment the lock was taken, before the deployment's
        # thread ran; the dying deployment's own 202 is noted after its death.)
        accepted = kudu.first_event("zipdeploy accepted", died)
        assert accepted is not None and accepted >= restarted
    assert not list((kudu.site_root / "deployments").glob("temp-*"))
    # lockwarden never hides the history: the successful records stay.
    assert (kudu.site_root / "deployments" / "active").exists()


def test_a_slow_but_live_build_is_never_interrupted(tmp_path, agents, kudu_factory,
                                                    arm_factory):
    """A build that runs three times stuck_after, writing its log all along:
    the agent removes nothing and restarts nothing, and it succeeds."""
    kudu = kudu_factory(build_s=3 * STUCK_AFTER_S, step_s=0.5)
    arm = arm_factory(kudu)
    agent = start_agent(agents, agent_config(tmp_path, kudu, hook=True), env=agent_env(arm))
    agent.wait_scan(1)
    started = time.monotonic()
    outcome, rec = deploy(kudu.url, poll_timeout_s=60)
    assert outcome == "success", rec
    assert time.monotonic() - started >= 3 * STUCK_AFTER_S
    agent.wait_fresh_scans(2)
    assert agent.removed() == []
    assert agent.count(r"stuck deployment") == 0
    assert arm.requests == []
    assert kudu.restarts == 0


def test_two_pipelines_racing_get_their_normal_409_and_the_agent_does_nothing(
        tmp_path, agents, kudu_factory, arm_factory):
    kudu = kudu_factory(build_s=1.5)
    arm = arm_factory(kudu)
    agent = start_agent(agents, agent_config(tmp_path, kudu, hook=True), env=agent_env(arm))
    agent.wait_scan(1)
    t0 = time.monotonic()
    a = Pipeline(kudu.url, retry_s=0.1, poll_timeout_s=20, name="pipeline-a").start()
    b = Pipeline(kudu.url, retry_s=0.1, poll_timeout_s=20, name="pipeline-b").start()
    try:
        # Long enough for stuck_after to pass many times.
        wait_for(lambda: (time.monotonic() - t0 > 2 * STUCK_AFTER_S
                          and a.outcomes().count("success") >= 1
                          and b.outcomes().count("success") >= 1
                          and kudu.conflicts >= 1), 60,
                 "both pipelines to deploy, and a race lost with 409")
    finally:
        a.stop()
        b.stop()
    outcomes = a.outcomes() + b.outcomes()
    assert set(outcomes) <= {"success", "conflict"}, outcomes
    agent.wait_fresh_scans(2)
    assert agent.removed() == []
    assert arm.requests == []
    assert kudu.restarts == 0


def test_without_the_restart_hook_the_files_go_but_kudus_memory_keeps_answering_409(
        tmp_path, agents, kudu_factory, arm_factory):
    """memory="reported": the process believes it holds the lock it took, as
    users reported (KUDU.md). Removing the files is not enough; only the
    restart is, which is why the README says to use restart-site."""
    kudu = kudu_factory(build_s=1.0, memory="reported")
    arm = arm_factory(kudu)
    agent = start_agent(agents, agent_config(tmp_path, kudu, hook=False), env=agent_env(arm))
    agent.wait_scan(1)
    outcome, _ = deploy(kudu.url)
    assert outcome == "success"
    wait_idle(kudu)
    kudu.proc.fault = "die"
    died_outcome, _ = deploy(kudu.url, poll_timeout_s=1)
    assert died_outcome == "timeout"
    agent.wait_removed(["locks/deployment"], timeout=RECOVERY_TIMEOUT_S)
    assert not (kudu.site_root / "locks" / "deployment").exists()
    since = time.monotonic()
    for _ in range(3):
        assert deploy(kudu.url)[0] == "conflict"
    st, _, body = request("GET", kudu.url + "/api/isdeploying")
    assert st == 200 and '"value": "True"' in body
    agent.wait_fresh_scans(1)
    assert kudu.count_events("zipdeploy 409", since) == 3
    assert arm.requests == [] and kudu.restarts == 0
    # What the hook would have done: the restart ends it.
    kudu.restart("by hand")
    assert deploy(kudu.url)[0] == "success"


def test_following_kudus_source_removing_the_lock_folder_alone_frees_the_lock(
        tmp_path, agents, kudu_factory, arm_factory):
    """memory="source" (the default): AllSafeLinuxLock.IsHeld is false once
    locks/deployment/info.lock is gone, whatever expiry it cached. Where
    the source is what runs, the cleanup alone ends the 409s."""
    kudu = kudu_factory(build_s=1.0)
    arm = arm_factory(kudu)
    agent = start_agent(agents, agent_config(tmp_path, kudu, hook=False), env=agent_env(arm))
    agent.wait_scan(1)
    kudu.proc.fault = "die"
    assert deploy(kudu.url, poll_timeout_s=1)[0] == "timeout"
    assert deploy(kudu.url)[0] == "conflict"
    agent.wait_removed(["locks/deployment"], timeout=RECOVERY_TIMEOUT_S)
    assert deploy(kudu.url)[0] == "success"
    assert arm.requests == [] and kudu.restarts == 0
