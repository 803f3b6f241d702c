"""Hooks that misbehave (issue 3, item 5): a hook that hangs is killed with
its whole process group at [hook] timeout; one that fails, crashes or floods
its output is logged and the agent keeps working (a later incident is still
cleared and hooked, cooldown 0s); a hook still running at SIGTERM is
stopped too, and the agent exits 0 within 2 s."""

import os
import signal
import time

import pytest

from conftest import (ACT_TIMEOUT_S, STUCK_LEFTOVERS, build_stuck_site, gone, start_agent,
                      wait_for, write_config)
from faults_util import (alive, kill_pids, make_second_incident, peak_rss_kb, q, read_pids,
                         shell_script)

TEMP_SECOND = "temp-2b3c4d5e"
# [hook] timeout's minimum; then SIGTERM, and SIGKILL 5 s later (hook.h).
HOOK_TIMEOUT_S = 1
KILL_GRACE_S = 5
FLOOD_BYTES = 30 * 1000 * 1000


class HookRuns:
    """A folder where each hook run makes run.<pid>/ and writes the pids of
    what it started there (hook.pid, child.pid, stubborn.pid)."""

    def __init__(self, base):
        self.base = base
        base.mkdir()

    def runs(self):
        return sorted(self.base.glob("run.*"), key=lambda p: p.stat().st_mtime_ns)

    def pids(self, run):
        return read_pids(run)

    def all_pids(self):
        return [pid for run in self.runs() for pid in self.pids(run).values()]


@pytest.fixture
def hook_runs(tmp_path):
    runs = HookRuns(tmp_path / "hook-runs")
    yield runs
    kill_pids(runs.all_pids())  # only if a failed test left any behind


def hang_hook(tmp_path, runs):
    """A hook that never ends by itself: the script waits on a child and on
    a grandchild that ignores SIGTERM (only SIGKILL to the group ends it)."""
    script = shell_script(tmp_path / "hang.sh", f"""\
run={q(runs.base)}/run.$$
mkdir "$run"
sh -c 'trap "" TERM; echo $$ > "$1"; exec sleep 600' sh "$run/stubborn.pid" &
sleep 600 &
echo $! > "$run/child.pid"
echo $$ > "$run/hook.pid"
wait
""")
    return f"/bin/sh {q(script)}"


def wait_run_started(runs, agent, n_runs, n_pids):
    """Waits until run number n_runs has written all its n_pids pid files;
    returns its {name: pid}."""
    def started():
        rs = runs.runs()
        if len(rs) >= n_runs:
            pids = runs.pids(rs[n_runs - 1])
            if len(pids) == n_pids:
                return pids
        return None
    return wait_for(started, ACT_TIMEOUT_S, f"hook run {n_runs} to start", agent.tail)


def test_hung_hook_is_killed_with_its_whole_group_and_the_agent_goes_on(
        site, agents, tmp_path, hook_runs):
    build_stuck_site(site)
    cfg = write_config(tmp_path / "lw.ini", site,
                       hook={"command": hang_hook(tmp_path, hook_runs),
                             "timeout": f"{HOOK_TIMEOUT_S}s", "cooldown": "0s"})
    agent = start_agent(agents, cfg)
    wait_for(lambda: gone(site, STUCK_LEFTOVERS), ACT_TIMEOUT_S, "the first cleanup", agent.tail)
    pids = wait_run_started(hook_runs, agent, 1, 3)
    started = time.monotonic()
    assert all(alive(p) for p in pids.values()), pids

    m = agent.wait_for_log(r"hook timed out after (\d+) ms", timeout=HOOK_TIMEOUT_S + 5)
    assert HOOK_TIMEOUT_S * 1000 <= int(m.group(1)) < HOOK_TIMEOUT_S * 1000 + 1500, m.string
    # SIGTERM first: the script and its plain child end, the grandchild
    # that ignores SIGTERM is left for the SIGKILL after the grace.
    wait_for(lambda: not alive(pids["hook"]) and not alive(pids["child"]), 2,
             "the hook script and its child to end at SIGTERM", agent.tail)
    assert alive(pids["stubborn"]), "the whole group got SIGKILL without a SIGTERM grace"
    wait_for(lambda: not any(alive(p) for p in pids.values()),
             KILL_GRACE_S + 3, "every process of the hung hook to be gone",
             lambda: f"alive: {[n for n, p in pids.items() if alive(p)]}\n{agent.tail()}")
    print(f"[hook] hung hook's group gone {time.monotonic() - started:.1f} s after it started")
    m = agent.wait_for_log(r"outlived SIGTERM \((\d+) ms after the start\); sent SIGKILL")
    killed_ms = int(m.group(1))
    assert (HOOK_TIMEOUT_S + KILL_GRACE_S) * 1000 <= killed_ms < \
        (HOOK_TIMEOUT_S + KILL_GRACE_S) * 1000 + 1500, m.string
    agent.wait_for_log(r"hook exited with status|hook killed by signal")
    assert agent.running()

    # The agent keeps working: a second incident is cleared and hooked again.
    mark = len(agent.log_lines())
    second = make_second_incident(site, TEMP_SECOND)
    wait_for(lambda: gone(site, second), ACT_TIMEOUT_S, "the second cleanup", agent.tail)
    wait_run_started(hook_runs, agent, 2, 3)
    agent.wait_for_log(r"hook started", start=mark)
    assert agent.wait_removed(STUCK_LEFTOVERS + second) == STUCK_LEFTOVERS + second


# (id, the hook command's misbehaviour, the log line it must produce)
MISBEHAVIOURS = [
    ("exits-non-zero", "exit 7", r"hook exited with status 7\b"),
    # The shell kills itself: `sh -c` is the agent's direct child here.
    ("crashes", "ulimit -c 0; kill -SEGV $$", r"hook killed by signal 11\b"),
    ("floods-its-output",
     f"yes 'flood: the same line again and again' | head -c {FLOOD_BYTES}; exit 0",
     r"hook exited with status 0\b"),
]


# Measures the agent's peak RSS: one at a time.
@pytest.mark.serial
@pytest.mark.parametrize("command,logged", [m[1:] for m in MISBEHAVIOURS],
                         ids=[m[0] for m in MISBEHAVIOURS])
def test_misbehaving_hook_is_logged_and_the_agent_goes_on(
        site, agents, tmp_path, hook_runs, command, logged):
    build_stuck_site(site)
    record = f"mkdir {q(hook_runs.base)}/run.$$; echo $$ > {q(hook_runs.base)}/run.$$/hook.pid; "
    cfg = write_config(tmp_path / "lw.ini", site,
                       hook={"command": record + command, "cooldown": "0s"})
    # At the info level (no -v): at debug, every line of the hook's output
    # is logged by design, and the flood would be copied into the log.
    agent = agents.start(["run", "-c", cfg])
    wait_for(lambda: gone(site, STUCK_LEFTOVERS), ACT_TIMEOUT_S, "the first cleanup", agent.tail)
    agent.wait_for_log(logged)
    assert agent.running()

    mark = len(agent.log_lines())
    second = make_second_incident(site, TEMP_SECOND)
    wait_for(lambda: gone(site, second), ACT_TIMEOUT_S, "the second cleanup", agent.tail)
    agent.wait_for_log(logged, start=mark)
    assert agent.running()
    assert len(hook_runs.runs()) == 2
    assert agent.wait_removed(STUCK_LEFTOVERS + second) == STUCK_LEFTOVERS + second

    if "flood" in command:
        # Two floods of 30 MB went through the agent: it kept a tail of the
        # output, not the output, in its log and in its memory.
        log_bytes = agent.err_path.stat().st_size
        rss_kb = peak_rss_kb(agent.pid)
        print(f"[hook] after 2 x {FLOOD_BYTES // 1000000} MB of hook output: "
              f"log {log_bytes} bytes, peak RSS {rss_kb} kB")
        assert log_bytes < 256 * 1024, f"the agent's log grew to {log_bytes} bytes"
        assert rss_kb < 64 * 1024, f"the agent's peak RSS reached {rss_kb} kB"
        assert agent.count(r"hook output: \(\d+ earlier lines not shown\)") == 2


# Bounds how long SIGTERM takes (2 s): one at a time.
@pytest.mark.serial
def test_sigterm_stops_a_running_hook_group_and_exits_0_within_2s(
        site, agents, tmp_path, hook_runs):
    build_stuck_site(site)
    cfg = write_config(tmp_path / "lw.ini", site,
                       hook={"command": hang_hook(tmp_path, hook_runs), "timeout": "1h"})
    agent = start_agent(agents, cfg)
    pids = wait_run_started(hook_runs, agent, 1, 3)
    assert all(alive(p) for p in pids.values()), pids

    sent = time.monotonic()
    agent.send(signal.SIGTERM)
    rc = agent.wait_exit(2.0)
    took = time.monotonic() - sent
    print(f"[hook] agent exited {rc} {took * 1000:.0f} ms after SIGTERM, hook running")
    assert rc == 0, agent.tail()
    # SIGKILL reached the group before the agent exited; the kernel may
    # still be tearing the last of it down.
    wait_for(lambda: not any(alive(p) for p in pids.values()), 1.0,
             "the hook's processes to be gone after the agent exited",
             lambda: f"alive: {[n for n, p in pids.items() if alive(p)]}")
    assert os.path.isdir(site / "deployments")
