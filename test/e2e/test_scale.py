"""Scale-out: three real agents (distinct WEBSITE_INSTANCE_ID) on one site
tree and one archive, as every instance of an App Service plan runs one on the
same /home share. One incident gets one cleanup (one archive session) and,
with [hook] scope = site, one hook; with scope = instance, one hook on every
instance. An owner killed at each step of its work still leaves the incident
fully cleared with exactly one site-scope hook; a claim file that is not ours
is never followed or trusted."""

import json
import os
import re
import signal
import time
from pathlib import Path

import pytest

from conftest import (ACT_TIMEOUT_S, claim_held, claim_names, hook_marks, top_claim, HOUR_S, STUCK_LEFTOVERS, Pause, age_tree, archive_dir_for,
                      build_stuck_site, clean_env, faketime_env, gone, make_file_lock, make_lock,
                      make_pending, make_record, run_cli, start_agent, wait_for, write_config)

INSTANCES = ["inst0aaaaaaa", "inst1bbbbbbb", "inst2ccccccc"]
EXPIRY = "2s"


def config(tmp_path, site, hook, scope="site", **extra):
    return write_config(tmp_path / "lw.ini", site,
                        site={"claim_expiry": EXPIRY},
                        hook={"command": hook.command(**extra), "scope": scope})


def start(agents, cfg, i, env=None):
    env = dict(env or clean_env())
    env["WEBSITE_INSTANCE_ID"] = INSTANCES[i]
    return start_agent(agents, cfg, env=env, name=f"agent{i}")


def sessions(cfg):
    d = archive_dir_for(cfg)
    return sorted(p.name for p in d.iterdir() if p.is_dir() and not p.name.startswith(".")) \
        if d.exists() else []


def claim_path(cfg):
    """The first name of the claim sequence, in the archive folder."""
    return archive_dir_for(cfg) / ".lockwarden-claim-1"


def claim_gone(cfg):
    """No incident is held: no claim, or the top one released."""
    return not claim_held(archive_dir_for(cfg))


def new_incident(root, n, lock_expiry_s=20 * 60):
    """The n-th deployment that dies holding the lock."""
    rid = f"temp-{n:08x}"
    make_record(root, rid, "Building", False, True, received=-HOUR_S)
    make_lock(root, expiry=lock_expiry_s)
    make_file_lock(root, "status.lock", acquired_s=-HOUR_S)
    make_pending(root)
    age_tree(root, HOUR_S)
    return ["locks/status.lock", "deployments/pending", f"deployments/{rid}", "locks/deployment"]


def tails(started):
    return lambda: "\n".join(f"== {a.name}\n{a.tail(15)}" for a in started)


def run_incidents(site, hook, cfg, started, count, per_incident, scope, lock_expiry_s=20 * 60):
    """count consecutive incidents (the first already in the tree), each
    cleared, hooked and its claim gone before the next; then the counts."""
    for n in range(1, count + 1):
        # The first incident is there before the agents start.
        leftovers = STUCK_LEFTOVERS if n == 1 else new_incident(site, n, lock_expiry_s)
        wait_for(lambda: gone(site, leftovers), ACT_TIMEOUT_S, f"incident {n} cleared",
                 tails(started))
        wait_for(lambda: hook.count() >= n * per_incident and claim_gone(cfg), ACT_TIMEOUT_S,
                 f"incident {n}'s hooks", tails(started))
        assert len(sessions(cfg)) == n, sessions(cfg)
    # Two more rescans of every agent: nothing late, nothing repeated.
    for a in started:
        a.wait_fresh_scans(2)
    runs = hook.runs()
    assert len(runs) == count * per_incident
    incidents = {}
    for r in runs:
        incidents.setdefault(r["LOCKWARDEN_INCIDENT"], []).append(r["LOCKWARDEN_INSTANCE"])
    assert len(incidents) == count
    for who in incidents.values():
        assert len(who) == per_incident
        if scope == "instance":
            assert sorted(who) == sorted(i[:12] for i in INSTANCES)
    # Nothing left behind: no trash, no claim.
    for area in ("locks", "deployments"):
        assert not [p for p in (site / area).iterdir() if p.name.startswith(".lockwarden")]
    assert claim_gone(cfg)
    return incidents


@pytest.mark.parametrize("scope,per_incident", [("site", 1), ("instance", 3)])
def test_twenty_incidents_three_agents(site, hook, agents, tmp_path, scope, per_incident):
    build_stuck_site(site)
    cfg = config(tmp_path, site, hook, scope)
    started = [start(agents, cfg, i) for i in range(3)]
    run_incidents(site, hook, cfg, started, 20, per_incident, scope)


@pytest.mark.parametrize("scope,per_incident", [("site", 1), ("instance", 3)])
def test_one_clock_two_hours_off_changes_nothing(site, hook, agents, tmp_path, scope,
                                                 per_incident):
    build_stuck_site(site)
    cfg = config(tmp_path, site, hook, scope)
    started = [start(agents, cfg, 0, env=faketime_env("+2h")), start(agents, cfg, 1),
               start(agents, cfg, 2, env=faketime_env("-2h"))]
    # Each new incident's lock expires 20 minutes from now, as Kudu's do: the
    # host 2 h ahead judges it by the share's clock (test_share_clock.py),
    # so it does not free the lock on its own before the rest is stuck.
    run_incidents(site, hook, cfg, started, 6, per_incident, scope)


def test_a_dead_owner_whose_clock_is_ahead_is_still_taken_over(site, hook, agents, tmp_path,
                                                                pause_shim):
    """Its claim says it expires 2 h from now by our clock: only what this
    agent watched counts."""
    build_stuck_site(site)
    cfg = config(tmp_path, site, hook)
    pause = Pause(pause_shim, tmp_path / "pause", "rename", "-status.lock")
    owner = start(agents, cfg, 0, env=faketime_env("+2h", pause.env()))
    pause.wait_paused(detail=owner.tail)
    kill_owner_then_check(agents, site, cfg, hook, tmp_path, owner, pause)


def run_instance(hook):
    return hook.runs()[0]["LOCKWARDEN_INSTANCE"]


def kill_owner_then_check(agents, site, cfg, hook, tmp_path, owner, pause=None,
                          hook_runs_before=0):
    """The owner dies (SIGKILL); two other agents finish the incident."""
    others = [start(agents, cfg, i) for i in (1, 2)]
    for a in others:
        a.wait_scan(2)
    owner.send(signal.SIGKILL)
    owner.wait_exit(10)
    if pause:
        pause.release()
    started = [owner] + others
    wait_for(lambda: gone(site, STUCK_LEFTOVERS), ACT_TIMEOUT_S + 10, "cleared after the death",
             tails(started))
    wait_for(lambda: claim_gone(cfg) and hook.count() >= 1, ACT_TIMEOUT_S + 10,
             "the claim released and the hook run", tails(started))
    for a in others:
        a.wait_fresh_scans(3)
    assert hook.count() == 1, [r.get("LOCKWARDEN_INSTANCE") for r in hook.runs()]
    assert claim_gone(cfg)
    took = [a for a in others if a.count(r"took over incident") == 1]
    assert len(took) == 1, tails(others)()
    return took[0]


@pytest.mark.parametrize("where,call,name,at", [
    ("after claiming, before removing", "rename", "-status.lock", 1),
    ("mid-removal", "rename", "-pending", 1),
    ("after removal, before the hook", "openat", ".note.json.tmp", 3),
])
def test_owner_killed_before_the_hook(site, hook, agents, tmp_path, pause_shim, where, call,
                                      name, at):
    build_stuck_site(site)
    cfg = config(tmp_path, site, hook)
    pause = Pause(pause_shim, tmp_path / "pause", call, name, at=at)
    owner = start(agents, cfg, 0, env=pause.env())
    pause.wait_paused(detail=owner.tail)
    assert not claim_gone(cfg), "the owner works without a claim"
    # report shows who is at work on the incident.
    r = run_cli(["report", "-c", cfg])
    # Long report lines wrap at 100 columns: compared with blanks joined.
    assert re.search(r"incident claim .*: incident \S+, owner inst0aaaaaaa, renewed",
                     " ".join(r.stdout.split())), r.stdout
    claim = json.loads(run_cli(["report", "-c", cfg, "--json"]).stdout)["claim"]
    assert claim["owner"] == "inst0aaaaaaa" and claim["trusted"] is True
    kill_owner_then_check(agents, site, cfg, hook, tmp_path, owner, pause)
    # Past incidents name the instance that handled them.
    history = json.loads(run_cli(["report", "-c", cfg, "--json"]).stdout)["history"]
    done = {h["instance"] for h in history if h["state"] == "done"}
    if where == "after removal, before the hook":
        assert done == set(), "the owner died before completing its note; the taker removed nothing"
    else:
        assert done == {run_instance(hook)}
    run = hook.runs()[0]
    assert run["LOCKWARDEN_INSTANCE"] != INSTANCES[0][:12]
    if where == "after removal, before the hook":
        # The taker had nothing left to remove; the hook still names what went.
        assert sorted(run["LOCKWARDEN_REMOVED"].split("\n")) == sorted(STUCK_LEFTOVERS)


def test_owner_killed_while_the_hook_runs(site, hook, agents, tmp_path):
    """The hook runs in its own session and outlives the agent: it is never
    started again for the same incident."""
    build_stuck_site(site)
    cfg = config(tmp_path, site, hook, sleep_s=4)
    owner = start(agents, cfg, 0)
    wait_for(lambda: hook.count() == 1, ACT_TIMEOUT_S, "the owner's hook", owner.tail)
    assert not claim_gone(cfg)
    took = kill_owner_then_check(agents, site, cfg, hook, tmp_path, owner)
    assert took.count(r"hook not run again|hook started") <= 1
    assert hook.runs()[0]["LOCKWARDEN_INSTANCE"] == INSTANCES[0][:12]


@pytest.mark.parametrize("kind", ["symlink", "fifo", "huge", "garbage"])
def test_hostile_claim_is_never_trusted(site, hook, agents, tmp_path, outside, kind):
    build_stuck_site(site)
    cfg = config(tmp_path, site, hook)
    archive_dir_for(cfg).mkdir()
    claim = claim_path(cfg)
    target = outside / "precious"
    target.write_text("not lockwarden's\n")
    if kind == "symlink":
        claim.symlink_to(target)
    elif kind == "fifo":
        os.mkfifo(claim)
    elif kind == "huge":
        claim.write_bytes(b"{\"lockwarden_claim\": 2" + b" " * (1 << 20) + b"}")
    else:
        claim.write_bytes(b"\x00\xffinstance me\n")
    agent = start(agents, cfg, 0)
    wait_for(lambda: gone(site, STUCK_LEFTOVERS), ACT_TIMEOUT_S + 10, "cleared", agent.tail)
    wait_for(lambda: hook.count() == 1 and claim_gone(cfg), ACT_TIMEOUT_S, "hook, claim gone",
             agent.tail)
    agent.wait_fresh_scans(2)
    assert agent.count(r"warning: claim .* not trusted") == 1
    assert agent.count(r"replaced the claim .*lockwarden-claim") == 1
    assert target.read_text() == "not lockwarden's\n"
    assert hook.count() == 1


def test_the_claim_vanishing_under_the_owner_stops_its_removals(site, hook, agents, tmp_path,
                                                                 pause_shim):
    """The archive folder, and the claim in it, disappear while the owner is
    between two removals (the share gone for a moment): the owner removes
    nothing more until it is back, then finishes, with one hook."""
    build_stuck_site(site)
    cfg = config(tmp_path, site, hook)
    pause = Pause(pause_shim, tmp_path / "pause", "rename", "-pending")
    owner = start(agents, cfg, 0, env=pause.env())
    pause.wait_paused(detail=owner.tail)
    archive = archive_dir_for(cfg)
    away = tmp_path / "archive-away"
    archive.rename(away)
    pause.release()
    owner.wait_for_log(r"cleanup abandoned: .*claim is no longer this agent's")
    assert (site / "locks" / "deployment").is_dir(), "removed without a claim"
    assert (site / "deployments" / "temp-1a2b3c4d").is_dir()
    away.rename(archive)
    wait_for(lambda: gone(site, STUCK_LEFTOVERS), ACT_TIMEOUT_S, "cleared once it was back",
             owner.tail)
    wait_for(lambda: hook.count() == 1 and claim_gone(cfg), ACT_TIMEOUT_S, "the hook, the claim",
             owner.tail)
    owner.wait_fresh_scans(2)
    assert hook.count() == 1
