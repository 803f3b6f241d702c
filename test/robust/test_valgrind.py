"""Leaks (issue 3, item 10): the daemon under valgrind's memcheck for one
full scenario (start, clear a stuck deployment, run the hook, reload on
SIGHUP, stop on SIGTERM) must exit 0 with no definite or indirect leak, no
memory error, and uv_loop_close() succeeding (else the agent logs "event
loop did not close cleanly" and exits 1). `make san-check` covers ASan and
UBSan; this covers what they do not: a leak report at a clean exit of the
real loop, with its threads and child processes."""

import re
import shutil
import signal

import pytest

from conftest import BIN, STUCK_LEFTOVERS, build_stuck_site, gone, wait_for, write_config
from faults_util import wrapped_agents  # noqa: F401 (fixture)

# Valgrind takes a core for itself: one at a time.
pytestmark = pytest.mark.serial

# valgrind runs the agent 20 to 50 times slower: deadlines to match.
SLOW_S = 90


def test_full_scenario_under_valgrind_leaks_nothing(site, hook, wrapped_agents, tmp_path):
    if not shutil.which("valgrind"):
        pytest.skip("valgrind is not installed (apt-get install valgrind)")
    with open(BIN, "rb") as f:
        if b"__asan_init" in f.read():
            pytest.skip(f"{BIN} is an ASan build: valgrind cannot run it (use build/lockwarden)")
    build_stuck_site(site)
    cfg = write_config(tmp_path / "lw.ini", site, hook={"command": hook.command()})
    vg_log = tmp_path / "valgrind.log"
    valgrind = ["valgrind", "--leak-check=full", "--show-leak-kinds=definite,indirect",
                "--errors-for-leak-kinds=definite,indirect", "--error-exitcode=99",
                "--track-fds=no", f"--log-file={vg_log}"]
    agent = wrapped_agents.start(valgrind, ["run", "-c", cfg, "-v"], name="valgrind")

    wait_for(lambda: gone(site, STUCK_LEFTOVERS), SLOW_S, "the cleanup under valgrind",
             agent.tail)
    agent.wait_for_log(r"hook exited with status 0", timeout=SLOW_S)
    agent.wait_for_log(r"finished removing deployments/\.lockwarden-trash-", timeout=SLOW_S)

    write_config(cfg, site, hook={"command": hook.command()}, policy={"quiet_period": "3s"})
    mark = len(agent.log_lines())
    agent.send(signal.SIGHUP)
    agent.wait_for_log(r"reloaded configuration from", timeout=SLOW_S, start=mark)
    agent.wait_fresh_scans(1, timeout=SLOW_S)

    agent.send(signal.SIGTERM)
    rc = agent.wait_exit(SLOW_S)
    report = vg_log.read_text(errors="replace")
    summary = "\n".join(line for line in report.splitlines()
                        if re.search(r"(lost|reachable|ERROR SUMMARY|heap usage|freed):", line)
                        or "All heap blocks" in line)
    print("[valgrind]\n" + summary)

    assert rc != 99, f"valgrind found errors or leaks:\n{report[-6000:]}"
    assert rc == 0, f"the agent exited {rc} under valgrind\n{agent.tail()}"
    assert agent.count(r"event loop did not close cleanly") == 0, agent.tail()
    assert re.search(r"ERROR SUMMARY: 0 errors", report), report[-6000:]
    no_leak = "All heap blocks were freed" in report or \
        re.search(r"definitely lost: 0 bytes in 0 blocks", report)
    assert no_leak, f"a leak summary with losses:\n{report[-6000:]}"
    assert not re.search(r"indirectly lost: [1-9]", report), report[-6000:]
    assert hook.count() == 1
