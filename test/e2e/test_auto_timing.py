"""stuck_after = auto (issue 14, part 2): learned from the site's completed
deployments, it never clears a live deployment whose silences stay below the
longest silence the history shows, and clears it once it is silent longer
than auto's value.

The history's longest silence is 5 s (in the text of a log.log: those are
Kudu's own timestamps, not file times), so with auto_floor = 1s auto is
3 x 5 s = 15 s. The live deployment is then silent for 3 s at a time: shorter
than the history's longest, but longer than auto would be if it had learned
from the wrong record (the one whose longest silence is 1 s: 3 s) or fallen
to the floor (1 s). A real wait is needed: ctime counts as activity and
cannot be set back, so "silent for 15 s" takes 15 s.
"""

import re
import signal
import time

from conftest import (ACT_TIMEOUT_S, EX_OK, TEMP_STUCK, append_log, make_lock, make_record,
                      make_skeleton, run_cli, start_agent, wait_for, write_config)

LONG = "0123456789abcdef0123456789abcdef"     # longest silence 5 s
PROD = "1123456789abcdef0123456789abcdef"     # production shape, longest 1 s
GARBLED = "2123456789abcdef0123456789abcdef"  # nothing parseable
LIVE_PATHS = ["locks/deployment", f"deployments/{TEMP_STUCK}"]
SILENCE_S = 3.0
AUTO_S = 15

KUDU_SHAPE_LOG = (
    "2021-09-10T01:26:58.0314218Z,Updating submodules.,d1c4e5f6-0000-4000-8000-000000000001,0\n"
    "\t2021-09-10T01:26:59.0000000Z,Preparing deployment for commit id 'abc'.,,0\n"
    "\t\t2021-09-10T01:27:04.0000000Z,Running oryx build...,,0\n"
    "2021-09-10T01:27:05.0000000Z,Deployment successful.,d1c4e5f6-0000-4000-8000-000000000002,0\n")
PRODUCTION_LOG = (
    "2024-07-31T09:51:24.281Z,app.azurewebsites.net,,,1a2b,NODE,Linux,InProgress,Message,"
    "Writing artifact to /tmp/zipdeploy/1a2b.zip\n"
    "2024-07-31T09:51:25.000Z,app.azurewebsites.net,,,1a2b,NODE,Linux,Success,Message,Done\n")


def build_history(site):
    make_skeleton(site)
    for rid, log in ((LONG, KUDU_SHAPE_LOG), (PROD, PRODUCTION_LOG),
                     (GARBLED, "Exception: System.IO.IOException\n   at Kudu.Core\n")):
        rec = make_record(site, rid, "Success", True, False)
        (rec / "log.log").write_text(log)


def test_auto_leaves_a_live_deployment_silent_below_the_history_alone(site, agents, tmp_path):
    build_history(site)
    make_lock(site, expiry=20 * 60)
    live = make_record(site, TEMP_STUCK, "Building", False, True, received=0)
    cfg = write_config(tmp_path / "lw.ini", site,
                       policy={"stuck_after": "auto", "auto_floor": "1s"})
    agent = start_agent(agents, cfg)
    # Once at start (nothing read yet: the default), then what the history says.
    agent.wait_for_log(r"stuck_after auto: 45m \(the default until")
    agent.wait_for_log(re.escape(f"stuck_after auto: {AUTO_S}s (3 × longest silence 5s in "
                                 f"{LONG}, floor 1s, cap 45m)"))

    # Silent for SILENCE_S at a time, again and again, for longer than
    # auto's value: each silence is seen by scans, and nothing goes.
    started = time.monotonic()
    silences = 0
    while time.monotonic() - started < AUTO_S + 5:
        append_log(live, "Building...")
        last_write = time.monotonic()
        wait_for(lambda: time.monotonic() - last_write >= SILENCE_S, SILENCE_S + 5,
                 f"a {SILENCE_S}s silence")
        agent.wait_fresh_scans(1)
        silences += 1
        assert all((site / p).exists() for p in LIVE_PATHS), \
            f"a live deployment was cleared after a {SILENCE_S}s silence:\n{agent.tail()}"
    assert silences >= 5
    assert agent.removed() == []

    # Silent for good: cleared once the silence passes auto's value, and
    # not before.
    append_log(live, "Building...")
    last_write = time.monotonic()
    agent.wait_removed(LIVE_PATHS, timeout=AUTO_S + ACT_TIMEOUT_S)
    assert time.monotonic() - last_write >= AUTO_S - 1, agent.tail()
    agent.wait_for_log(rf"watched with no change for \S+ \(stuck_after {AUTO_S}s\)")


def joined(text):
    """report's text with its blanks joined: long lines wrap at 100 columns."""
    return " ".join(text.split())


def test_report_and_check_config_show_the_history(site, tmp_path):
    build_history(site)
    cfg = write_config(tmp_path / "lw.ini", site, policy={"stuck_after": "9s"})
    r = run_cli(["report", "-c", cfg])
    assert r.returncode == EX_OK, r.stdout + r.stderr
    assert (f"history: 3 completed deployments; longest silence 5s in {LONG}; stuck_after 9s "
            f"is 1.8× that; longest deployment 7s in {LONG}") in joined(r.stdout), r.stdout

    r = run_cli(["check-config", "--insecure-config", "-c", cfg])
    assert r.returncode == EX_OK, r.stderr
    assert re.search(r"warning: configuration: \[policy\] stuck_after = 9s is below 2 × the "
                     rf"longest silence .* \(5s in {LONG}\)", r.stderr), r.stderr

    # Twice the longest silence is enough: no warning.
    cfg = write_config(tmp_path / "lw.ini", site, policy={"stuck_after": "10s"})
    r = run_cli(["check-config", "--insecure-config", "-c", cfg])
    assert r.returncode == EX_OK and "longest silence" not in r.stderr, r.stderr

    # auto: report judges with auto's value and says why.
    cfg = write_config(tmp_path / "lw.ini", site,
                       policy={"stuck_after": "auto", "auto_floor": "1s"})
    r = run_cli(["report", "-c", cfg])
    assert r.returncode == EX_OK, r.stdout + r.stderr
    assert "stuck_after auto (15s) is 3.0× that" in joined(r.stdout), r.stdout
    assert (f"stuck_after auto: 15s (3 × longest silence 5s in {LONG}, floor 1s, cap 45m)"
            in joined(r.stdout)), r.stdout

    # A site that cannot be read: said, and the comparison skipped.
    cfg = write_config(tmp_path / "lw.ini", tmp_path / "no-such-site", policy={"stuck_after": "9s"})
    r = run_cli(["check-config", "--insecure-config", "-c", cfg])
    assert r.returncode == EX_OK, r.stderr
    assert "cannot read the site" in r.stderr and "longest silence" not in r.stderr, r.stderr


def test_auto_without_history_is_the_default(site, tmp_path):
    make_skeleton(site)
    cfg = write_config(tmp_path / "lw.ini", site, policy={"stuck_after": "auto"})
    r = run_cli(["report", "-c", cfg])
    assert r.returncode == EX_OK, r.stdout + r.stderr
    assert "stuck_after auto: 45m (the default: no usable history" in joined(r.stdout), r.stdout


def test_auto_by_reload_is_logged_and_learned(site, agents, tmp_path):
    """SIGHUP from a fixed stuck_after to auto: said at once (the default
    until the history is read), then what the history gives."""
    build_history(site)
    cfg = write_config(tmp_path / "lw.ini", site, policy={"stuck_after": "1h"})
    agent = start_agent(agents, cfg)
    agent.wait_scan(2)
    assert agent.count(r"stuck_after auto") == 0
    write_config(tmp_path / "lw.ini", site, policy={"stuck_after": "auto", "auto_floor": "1s"})
    agent.send(signal.SIGHUP)
    agent.wait_for_log(r"stuck_after auto: 45m \(the default until")
    agent.wait_for_log(re.escape(f"stuck_after auto: {AUTO_S}s (3 × longest silence 5s in "
                                 f"{LONG}, floor 1s, cap 45m)"))
    # Logged when it changes, not at every scan.
    n = agent.count(r"stuck_after auto")
    agent.wait_fresh_scans(2)
    assert agent.count(r"stuck_after auto") == n
