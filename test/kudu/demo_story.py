#!/usr/bin/python3
"""demo_story.py BINARY - the story users live, told against the Kudu
stand-in: a deploy, a death, 409s, lockwarden's judgement, the cleanup, the
site restart through the real restart-site hook, a deploy that succeeds.
Run by test/demo.sh (make demo); prints a few lines, takes about 6 s.

Kudu here keeps its lock in memory (memory="reported", as users reported
it): only the restart ends the 409s, so the chain is shown whole.
"""

import os
import re
import subprocess
import sys
import tempfile
import shutil
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "lib"))

import arm_standin  # noqa: E402
from kudu_standin import KuduStandIn  # noqa: E402
from pipeline import deploy  # noqa: E402

RESTART_SITE = os.path.abspath(os.path.join(HERE, "..", "..", "packaging", "hooks",
                                            "restart-site"))
RETRY_S = 0.5
TIMEOUT_S = 45
# The agent's lines worth telling: its judgement, each removal, the hook.
TELL = re.compile(r"(warning|info): (stuck deployment|removed |hook exited|hook output)")
STRIP = re.compile(r"^\S+ lockwarden\[\d+\] (?:warning|info): ")


def main():
    binary = os.path.abspath(sys.argv[1])
    work = tempfile.mkdtemp(prefix="lockwarden-story.")
    t0 = time.monotonic()

    # 409s in a row are told as one line, when something else happens.
    run = {"first": 0, "last": 0}
    say_lock = threading.Lock()

    def say(text, conflict_no=None):
        with say_lock:
            if conflict_no is not None and run["first"]:
                run["last"] = conflict_no
                return
            if run["last"] > run["first"]:
                print("  %5s   (deploys %d-%d: 409 as well)" % ("", run["first"] + 1, run["last"]))
            run["first"] = run["last"] = conflict_no or 0
            print("  %5.1fs  %s" % (time.monotonic() - t0, text), flush=True)

    site = os.path.join(work, "site")
    for d in ("locks", "deployments"):
        os.makedirs(os.path.join(site, d))
    kudu = KuduStandIn(site, build_s=1.0, memory="reported").start()
    kudu.log = lambda m: None
    told = 0
    log_path = os.path.join(work, "agent.log")

    def tell_agent():
        nonlocal told
        with open(log_path, errors="replace") as f:
            lines = f.read().splitlines()
        for line in lines[told:]:
            if TELL.search(line):
                say("lockwarden: " + STRIP.sub("", line)[:200])
        told = len(lines)

    def restart(path):
        tell_agent()
        say("ARM: restart the site -> Kudu restarts, forgets its lock, deletes "
            "locks/deployment at start")
        kudu.restart("ARM")

    arm = arm_standin.start(restart)
    cfg = os.path.join(work, "lockwarden.ini")
    with open(cfg, "w") as f:
        f.write("[site]\nroot = %s\n[policy]\nstuck_after = 3s\n"
                "[scan]\nrescan_interval = 1s\n[hook]\ncommand = %s\ntimeout = 20s\n"
                "[archive]\ndir = %s\n" % (site, RESTART_SITE, os.path.join(work, "archive")))
    env = {k: v for k, v in arm_standin.site_env(arm).items()
           if not k.startswith(("NOTIFY_", "WATCHDOG_", "LISTEN_"))}
    log = open(log_path, "wb")
    agent = subprocess.Popen([binary, "run", "-c", cfg], env=env, stdin=subprocess.DEVNULL,
                             stdout=log, stderr=log)
    log.close()

    try:
        print("\n== The story, against a Kudu stand-in (stuck_after 3s; "
              "the hook is restart-site)")
        outcome, rec = deploy(kudu.url)
        say("deploy 1: 202 Accepted, polled to %s (deployment %s)" % (rec["status_name"],
                                                                     rec["id"][:10]))
        dying = threading.Thread(target=deploy, args=(kudu.url, 2.0), daemon=True)
        dying.start()
        deadline = time.monotonic() + 10
        while not kudu.proc.running and time.monotonic() < deadline:
            time.sleep(0.02)
        kudu.proc.fault = "die"
        while not kudu.first_event("died") and time.monotonic() < deadline:
            time.sleep(0.02)
        say("deploy 2: under way, then the deployment dies holding locks/deployment")
        died = kudu.first_event("died")
        n, conflicts = 2, 0
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            tell_agent()
            n += 1
            outcome, rec = deploy(kudu.url)
            if outcome == "conflict":
                conflicts += 1
                say("deploy %d: 409 %s" % (n, rec), conflict_no=n)
                time.sleep(RETRY_S)
                continue
            tell_agent()
            if outcome == "success":
                say("deploy %d: 202 Accepted, polled to Success (deployment %s)"
                    % (n, rec["id"][:10]))
                print("\n== Recovered %.1f s after the death; %d deploys were answered 409 "
                      "meanwhile. With the default stuck_after (45m, above every live silence on"
                      "\n   record) that is about 45 minutes; without lockwarden, 25 minutes"
                      "\n   where Kudu's lockExpiry frees it, never where its memory keeps the lock."
                      % (time.monotonic() - died, conflicts))
                return 0
            say("deploy %d: %s" % (n, outcome))
        print("demo: no deploy succeeded within %d s; the agent's log:" % TIMEOUT_S,
              file=sys.stderr)
        with open(log_path, errors="replace") as f:
            sys.stderr.write(f.read())
        return 1
    finally:
        agent.terminate()
        try:
            agent.wait(timeout=5)
        except subprocess.TimeoutExpired:
            agent.kill()
            agent.wait()
        arm.close()
        kudu.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
