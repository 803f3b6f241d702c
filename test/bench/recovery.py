"""The figure users care about: from the death of a deployment to the next
successful deploy, and how many deploys were answered 409 meanwhile. Run
against the Kudu stand-in (test/kudu/kudu_standin.py), with a pipeline that
retries every PIPELINE_RETRY_S, the real agent and the real restart-site
hook whose ARM stand-in restarts the Kudu stand-in.

  with lockwarden      stuck_after 3 s, quiet_period 1 s, rescan_interval
                       1 s, hook restart-site; a Kudu that keeps its lock in
                       memory (the users' report), so only the restart ends
                       the 409s; projected for the defaults by replacing the
                       bench's stuck_after with the default's;
  without lockwarden   Kudu's own lockExpiry, 1500 s after the lock was
                       taken; measured with the stand-in's lock timeout
                       scaled down to LOCK_TIMEOUT_SCALED_S, then projected.
"""

import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "kudu"))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))

import arm_standin  # noqa: E402
from kudu_standin import LOCK_TIMEOUT_S, KuduStandIn  # noqa: E402
from pipeline import Pipeline  # noqa: E402

RESTART_SITE = os.path.join(HERE, "..", "..", "packaging", "hooks", "restart-site")
STUCK_AFTER_S = 3
DEFAULT_STUCK_AFTER_S = 45 * 60     # config.def's default
PIPELINE_RETRY_S = 0.5
POLL_TIMEOUT_S = 2.0
BUILD_S = 0.5
LOCK_TIMEOUT_SCALED_S = 6.0
RECOVERY_TIMEOUT_S = 60.0


def _wait(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise RuntimeError("timed out after %.0f s waiting for %s" % (timeout, what))
        time.sleep(0.02)


def _site(bench):
    site = bench.fresh(bench.work)
    for d in ("locks", "deployments"):
        os.makedirs(os.path.join(site, d), exist_ok=True)
    return site


def one_recovery(bench, with_agent, memory, lock_timeout_s):
    """One death and recovery; returns (seconds, 409s served)."""
    site = _site(bench)
    kudu = KuduStandIn(site, build_s=BUILD_S, memory=memory,
                       lock_timeout_s=lock_timeout_s).start()
    arm = arm_standin.start(lambda path: kudu.restart("ARM"))
    agent = None
    pipe = None
    try:
        if with_agent:
            cfg = site + ".ini"
            with open(cfg, "w") as f:
                f.write("[site]\nroot = %s\n[policy]\nstuck_after = %ds\nquiet_period = 1s\n"
                        "[scan]\nrescan_interval = 1s\n[hook]\ncommand = %s\ntimeout = 20s\n"
                        "cooldown = 0s\n" % (site, STUCK_AFTER_S, os.path.abspath(RESTART_SITE)))
                if bench.has_archive:
                    f.write("[archive]\ndir = %s\n" % (site + ".archive"))
            env = arm_standin.site_env(arm)
            env = {k: v for k, v in env.items()
                   if not k.startswith(("NOTIFY_", "WATCHDOG_", "LISTEN_"))}
            log = open(site + ".log", "wb")
            agent = subprocess.Popen([bench.binary, "run", "-c", cfg], env=env,
                                     stdin=subprocess.DEVNULL, stdout=log, stderr=log)
            log.close()
        pipe = Pipeline(kudu.url, retry_s=PIPELINE_RETRY_S, poll_timeout_s=POLL_TIMEOUT_S).start()
        _wait(lambda: pipe.first("success"), 20, "a first successful deploy")
        _wait(lambda: kudu.proc.running, 20, "a deployment under way")
        since = time.monotonic()
        kudu.proc.fault = "die"
        died = _wait(lambda: kudu.first_event("died", since), 20, "the deployment to die")
        ok = _wait(lambda: pipe.first("success", died), RECOVERY_TIMEOUT_S,
                   "the next successful deploy")
        return ok[1] - died, kudu.count_events("zipdeploy 409", died, ok[1])
    finally:
        if pipe:
            pipe.stop()
        if agent:
            agent.terminate()
            try:
                agent.wait(timeout=5)
            except subprocess.TimeoutExpired:
                agent.kill()
                agent.wait()
        arm.close()
        kudu.close()


def bench_recovery(bench):
    runs = 1 if bench.args.quick else 3
    print("recovery: death of a deployment to the next successful deploy (a pipeline that"
          " gives up on a deployment after %.0f s\n  and retries every %.1f s, builds of %.1f s,"
          " %d runs)" % (POLL_TIMEOUT_S, PIPELINE_RETRY_S, BUILD_S, runs))
    results = {}
    for key, with_agent, memory, lock_timeout in (
            ("lockwarden", True, "reported", LOCK_TIMEOUT_S),
            ("kudu-expiry", False, "source", LOCK_TIMEOUT_SCALED_S)):
        samples = []
        for _ in range(runs):
            try:
                samples.append(one_recovery(bench, with_agent, memory, lock_timeout))
            except RuntimeError as e:
                print("  %s: run failed: %s" % (key, e))
        results[key] = samples
        print("  %-12s %s" % (key, "  ".join("%.1f s / %d x 409" % s for s in samples)))

    lw = results["lockwarden"]
    if lw:
        secs = sorted(s for s, _ in lw)
        n409 = sorted(n for _, n in lw)
        med, med409 = secs[len(secs) // 2], n409[len(n409) // 2]
        bench.row("recovery with lockwarden (stuck_after %ds)" % STUCK_AFTER_S,
                  "%.1f / %.1f / %.1f s, %d-%d deploys got 409" % (secs[0], med, secs[-1],
                                                                   n409[0], n409[-1]))
        projected = med - STUCK_AFTER_S + DEFAULT_STUCK_AFTER_S
        bench.row("  projected, default stuck_after 45m",
                  "%.0f s (%.1f min), every deploy meanwhile 409" % (projected, projected / 60))
    ke = results["kudu-expiry"]
    if ke:
        secs = sorted(s for s, _ in ke)
        med = secs[len(secs) // 2]
        bench.row("recovery without lockwarden (Kudu's lockExpiry)",
                  "up to %d s (%.0f min): measured %.1f s with a %.0f s lock timeout"
                  % (LOCK_TIMEOUT_S, LOCK_TIMEOUT_S / 60, med, LOCK_TIMEOUT_SCALED_S))
    bench.row("  without the restart hook, Kudu keeping its lock in memory",
              "no better than Kudu's lockExpiry (test/kudu shows the 409s go on)")
