"""The escalation ladder and claims by activity (issue 14).

The manual procedure's last step: when deleting the locks, temp-* and pending
and restarting did not end the 409s, everything in deployments/ goes. The
agent takes it only when a stuck deployment is found again within
[policy] escalate_within of the site's previous cleanup (read from the
archive on the share) and [policy] allow_full_clear is on; otherwise it says
once that the incident recurred. And the record that claims to run follows
activity, not receivedTime alone."""

import json
import os
import re
import signal

import pytest

from conftest import (ACT_TIMEOUT_S, HOUR_S, ONCE_CLEARED, RECORD_DONE, RECORD_OLD,
                      STUCK_LEFTOVERS, TEMP_FAILED, claim_held, TEMP_STUCK, Pause, age, age_tree, append_log, archive_dir_for,
                      build_stuck_site, make_file_lock, make_lock, make_pending, make_record,
                      make_skeleton, make_settings, make_tools, set_active, settle,
                      start_agent, tree_state, wait_for, write_config)

TEMP_AGAIN = "temp-2b3c4d5e"
FOREIGN = "deployments/notes-from-support.txt"
# What the full clear removes of the recurring tree, and what it keeps.
FULL_CLEAR_REMOVED = ["locks/status.lock", "locks/deployment", "deployments/pending",
                      "deployments/active", f"deployments/{TEMP_AGAIN}",
                      f"deployments/{TEMP_FAILED}", f"deployments/{RECORD_DONE}",
                      f"deployments/{RECORD_OLD}"]
RECORDS = [TEMP_AGAIN, TEMP_FAILED, RECORD_DONE, RECORD_OLD]
ALWAYS_KEPT = ["deployments/tools", "deployments/settings.xml", "locks/sshkey.lock", FOREIGN]


def sessions(cfg):
    d = archive_dir_for(cfg)
    return sorted(p for p in d.iterdir() if p.is_dir()) if d.exists() else []


def claim_gone(cfg):
    return not claim_held(archive_dir_for(cfg))


def note(session):
    return json.loads((session / "note.json").read_text())


def first_incident_cleared(agent, site, cfg, hook):
    """The usual step, its hook, and the incident over (its claim gone)."""
    wait_for(lambda: all(not os.path.lexists(site / p) for p in STUCK_LEFTOVERS),
             ACT_TIMEOUT_S, "the first incident to be cleared", agent.tail)
    wait_for(lambda: hook.count() == 1 and claim_gone(cfg), ACT_TIMEOUT_S,
             "the first incident's hook and the end of its claim", agent.tail)
    first = note(sessions(cfg)[0])
    assert first["step"] == "clear" and first["complete"] is True, first
    assert hook.runs()[0]["LOCKWARDEN_STEP"] == "clear"


def recur(site):
    """The same trouble again: a deploy died holding the lock, with a new
    temp record, pending and status.lock, all silent for an hour."""
    make_lock(site, expiry=20 * 60)
    make_file_lock(site, "status.lock", acquired_s=-HOUR_S)
    make_pending(site)
    make_record(site, TEMP_AGAIN, "Building", False, True, received=-HOUR_S)
    age_tree(site, HOUR_S)
    settle(site)


@pytest.mark.parametrize("allow", [True, False], ids=["allowed", "not-allowed"])
def test_a_recurring_incident_escalates_only_with_allow_full_clear(site, agents, tmp_path,
                                                                   hook, pause_shim, allow):
    build_stuck_site(site)
    (site / FOREIGN).write_text("left here by hand\n")
    # An Oryx build's artifact inside a record: archived, then removed with it.
    artifact = site / "deployments" / RECORD_OLD / "artifact" / "20261129044308.zip"
    artifact.parent.mkdir()
    artifact.write_bytes(b"PK\x05\x06" + bytes(18))
    age_tree(site, HOUR_S)
    settle(site)
    cfg = write_config(tmp_path / "lw.ini", site,
                       policy={"allow_full_clear": "true" if allow else "false"},
                       hook={"command": hook.command()})
    # The second incident stops at its first removal (status.lock renamed
    # aside for the second time), after its archive and note are written.
    pause = Pause(pause_shim, tmp_path / "pause", "rename", "-status.lock", at=2)
    agent = start_agent(agents, cfg, env=pause.env())
    first_incident_cleared(agent, site, cfg, hook)

    recur(site)
    pause.wait_paused(detail=agent.tail)
    second = sessions(cfg)[-1]
    planned = [e["path"] for e in note(second)["entries"]]
    if allow:
        # Every record the full clear removes is archived before anything goes.
        assert sorted(planned) == sorted(FULL_CLEAR_REMOVED), planned
        for rid in RECORDS:
            assert (second / "deployments" / rid / "status.xml").is_file(), rid
            assert (second / "deployments" / rid / "log.log").is_file(), rid
            assert (site / "deployments" / rid).is_dir(), f"{rid} went before the archive was done"
        assert (second / "deployments" / "active").read_text() == RECORD_DONE
        assert (second / "deployments" / RECORD_OLD / "artifact" / artifact.name).read_bytes() \
            == b"PK\x05\x06" + bytes(18)
    else:
        assert sorted(planned) == sorted(["locks/status.lock", "locks/deployment",
                                          "deployments/pending", f"deployments/{TEMP_AGAIN}"])
    pause.release()

    expected_gone = FULL_CLEAR_REMOVED if allow else \
        ["locks/status.lock", "locks/deployment", "deployments/pending", f"deployments/{TEMP_AGAIN}"]
    wait_for(lambda: all(not os.path.lexists(site / p) for p in expected_gone), ACT_TIMEOUT_S,
             "the second incident to be cleared", agent.tail)
    wait_for(lambda: hook.count() == 2, ACT_TIMEOUT_S, "the second hook run", agent.tail)
    run = hook.runs()[1]
    assert run["LOCKWARDEN_STEP"] == ("full-clear" if allow else "clear")
    assert run["LOCKWARDEN_DEPLOYMENT_ID"] == TEMP_AGAIN
    assert sorted(run["LOCKWARDEN_REMOVED"].split("\n")) == sorted(expected_gone)
    for rel in ALWAYS_KEPT:
        assert os.path.lexists(site / rel), f"{rel} was removed"
    assert (site / "deployments" / "tools" / "deploymentCacheKey").read_text() == "a1b2c3"
    done = note(second)
    assert done["step"] == ("full-clear" if allow else "clear") and done["complete"] is True
    assert all(e["removed"] for e in done["entries"]), done["entries"]
    if allow:
        assert agent.count(r"warning: full clear \(\[policy\] allow_full_clear\).* 1 entry "
                           r"that is not Kudu's stay") == 1, agent.tail()
        assert agent.count(r"recurred .* allow_full_clear = true") == 0
        assert not os.path.lexists(site / "deployments" / "active")
        wait_for(lambda: not any(p.name.startswith(".lockwarden-trash")
                                 for p in (site / "deployments").iterdir()),
                 ACT_TIMEOUT_S, "the records' trash to be emptied", agent.tail)
    else:
        # History stays, and the recurrence is said once, at warning level.
        for rid in (RECORD_DONE, RECORD_OLD, TEMP_FAILED):
            assert (site / "deployments" / rid).is_dir(), rid
        assert (site / "deployments" / "active").read_text() == RECORD_DONE
        agent.wait_fresh_scans(3)
        assert agent.count(r"warning: the stuck deployment recurred \S+ after the site's "
                           r"previous cleanup .* \[policy\] allow_full_clear = true") == 1, \
            agent.tail()


# A stuck site cleared and the hook run once: make check-fast's smoke run.
@pytest.mark.smoke
def test_an_incident_that_does_not_recur_takes_the_usual_step(site, agents, tmp_path, hook):
    """allow_full_clear alone never clears history: a first incident (no
    earlier cleanup in the archive) takes the usual step."""
    build_stuck_site(site)
    cfg = write_config(tmp_path / "lw.ini", site, policy={"allow_full_clear": "true"},
                       hook={"command": hook.command()})
    before = tree_state(site)
    agent = start_agent(agents, cfg)
    first_incident_cleared(agent, site, cfg, hook)
    for rel in before:
        if not any(rel == p or rel.startswith(p + "/") for p in STUCK_LEFTOVERS):
            assert os.path.lexists(site / rel), f"{rel} was removed by a first incident"


def test_out_of_order_received_time_is_cleared_once_silent(site, agents, tmp_path, hook):
    """The completed, active record was received after the unfinished temp
    record (clocks of Kudu instances differ), and the expired lock folder is
    gone already. The temp record is still writing its log: it is the one
    that claims to run; once silent for stuck_after it goes, with pending
    and status.lock, and the hook names it."""
    make_skeleton(site)
    make_tools(site)
    make_settings(site)
    make_file_lock(site, "status.lock", acquired_s=-1200)
    make_pending(site)
    temp = make_record(site, TEMP_STUCK, "Pending", False, True, received=-1200)
    done = make_record(site, RECORD_DONE, "Success", True, False, received=-600)
    set_active(site, RECORD_DONE)
    # It finished 9 minutes ago: its files were last written then.
    age_tree(done, 540)
    age(site / "deployments" / "active", 540)
    cfg = write_config(tmp_path / "lw.ini", site, hook={"command": hook.command()})
    agent = start_agent(agents, cfg)
    agent.wait_scan(1)
    # The temp record writes after the finished record's last write.
    for i in range(3):
        append_log(temp, f"Receiving changes: part {i}")
        agent.wait_fresh_scans(1)
    agent.wait_for_log(r"deployment temp-1a2b3c4d is Pending")

    leftovers = ["locks/status.lock", "deployments/pending", f"deployments/{TEMP_STUCK}"]
    wait_for(lambda: all(not os.path.lexists(site / p) for p in leftovers), ACT_TIMEOUT_S,
             "the silent temp record to be cleared", agent.tail)
    wait_for(lambda: hook.count() == 1, ACT_TIMEOUT_S, "the hook", agent.tail)
    run = hook.runs()[0]
    assert run["LOCKWARDEN_DEPLOYMENT_ID"] == TEMP_STUCK
    assert run["LOCKWARDEN_STEP"] == "clear"
    assert re.search(r"deployment temp-1a2b3c4d is Pending, watched with no change",
                     run["LOCKWARDEN_REASON"]), run["LOCKWARDEN_REASON"]
    for rel in (f"deployments/{RECORD_DONE}", "deployments/active", "deployments/tools",
                "deployments/settings.xml"):
        assert os.path.lexists(site / rel), f"{rel} was removed"


def test_a_fresh_agent_reads_the_previous_cleanup_from_the_share(site, agents, tmp_path, hook):
    """The restart the hook causes restarts the agent too: the previous
    cleanup is read from the archive on the share, not from memory. A
    one-shot pass (--once, from cron) started after it takes the last step."""
    build_stuck_site(site)
    cfg = write_config(tmp_path / "lw.ini", site, policy={"allow_full_clear": "true"},
                       hook={"command": hook.command()})
    first = start_agent(agents, cfg)
    first_incident_cleared(first, site, cfg, hook)
    first.send(signal.SIGTERM)
    assert first.wait_exit(10) == 0

    recur(site)
    again = agents.start(["run", "-c", cfg, "-v", "--once"], name="once")
    assert again.wait_exit(ACT_TIMEOUT_S + 15) == ONCE_CLEARED, again.tail()
    for rel in FULL_CLEAR_REMOVED:
        assert not os.path.lexists(site / rel), f"{rel} is still there"
    for rel in ALWAYS_KEPT[:-1]:
        assert os.path.lexists(site / rel), f"{rel} was removed"
    assert hook.count() == 2
    assert hook.runs()[1]["LOCKWARDEN_STEP"] == "full-clear"
    assert note(sessions(cfg)[-1])["step"] == "full-clear"
