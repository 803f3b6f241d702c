"""sd_notify over a real unix datagram socket the test owns: READY after the
first scan, WATCHDOG at about half of WATCHDOG_USEC, RELOADING then READY
on SIGHUP, STOPPING on SIGTERM."""

import signal
import time

from conftest import build_finished_site, clean_env, start_agent, wait_for, write_config


def test_sd_notify_ready_watchdog_reload_stopping(site, agents, tmp_path, notify_socket):
    build_finished_site(site)
    cfg = write_config(tmp_path / "lw.ini", site, scan={"rescan_interval": "1s"})
    env = clean_env(NOTIFY_SOCKET=notify_socket.env_value, WATCHDOG_USEC=1000000)
    agent = start_agent(agents, cfg, env=env, watchdog_pid_self=True)

    notify_socket.wait("READY", "1")
    agent.wait_scan(1)
    assert any("STATUS" in m[1] for m in notify_socket.snapshot()), "no STATUS= sent"

    # WATCHDOG=1 at about half of the 1 s period: count them over ~2 s.
    first_wd = notify_socket.wait("WATCHDOG", "1")
    t0 = notify_socket.snapshot()[first_wd][0]
    wait_for(lambda: time.monotonic() >= t0 + 2.0, 5, "2 s of watchdog pings")
    pings = [t for t, f in notify_socket.snapshot() if f.get("WATCHDOG") == "1"
             and t0 <= t <= t0 + 2.0]
    assert 3 <= len(pings) <= 6, f"{len(pings)} WATCHDOG=1 in 2 s (expected ~4)"
    gaps = [b - a for a, b in zip(pings, pings[1:])]
    assert max(gaps) < 0.9, f"watchdog gap {max(gaps):.2f}s would miss a 1 s deadline"

    mark = len(notify_socket.snapshot())
    before_ns = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
    agent.send(signal.SIGHUP)
    reloading = notify_socket.wait("RELOADING", "1", after=mark)
    fields = notify_socket.snapshot()[reloading][1]
    assert "MONOTONIC_USEC" in fields, f"RELOADING=1 without MONOTONIC_USEC: {fields}"
    usec = int(fields["MONOTONIC_USEC"])
    after_ns = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
    assert before_ns // 1000 <= usec <= after_ns // 1000, \
        "MONOTONIC_USEC is not CLOCK_MONOTONIC at the reload"
    notify_socket.wait("READY", "1", after=reloading + 1)
    agent.wait_for_log(r"reloaded configuration", timeout=5)

    mark = len(notify_socket.snapshot())
    agent.send(signal.SIGTERM)
    notify_socket.wait("STOPPING", "1", after=mark, timeout=3)
    assert agent.wait_exit(2.0) == 0, agent.tail()


def test_no_watchdog_pings_for_another_pid(site, agents, tmp_path, notify_socket):
    """WATCHDOG_USEC is meant for WATCHDOG_PID only: an agent that is not
    that process must not ping (it would keep a dead parent's unit alive)."""
    build_finished_site(site)
    cfg = write_config(tmp_path / "lw.ini", site, scan={"rescan_interval": "300ms"})
    env = clean_env(NOTIFY_SOCKET=notify_socket.env_value, WATCHDOG_USEC=200000,
                    WATCHDOG_PID=1)
    agent = start_agent(agents, cfg, env=env)
    notify_socket.wait("READY", "1")
    # 200 ms watchdog: pings would come every ~100 ms; five rescans (1.5 s)
    # is plenty of time for them.
    agent.wait_fresh_scans(5)
    assert notify_socket.first("WATCHDOG") is None
