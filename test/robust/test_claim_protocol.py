"""The claim on a share that rejects the rename flags (issue 19): two bindfs
mounts of one folder are two hosts; each host's FUSE daemon can be paused
(SIGSTOP) like an SMB client waiting for its server, and each agent held at
one exact call (pause_shim.c), so every race window is reached on purpose.

Each test here fails on main at 5ad7536 (the claim taken over by rename
aside / compare / put back with RENAME_NOREPLACE, the hook mark written into
the claim) and passes with the claim built on exclusive create alone. The
twenty incidents fail on main at ed3c128 too: an owner that lost its claim
after its cleanup committed started its hook without a mark, beside the
taker's (incident 15: paused while noting a removal)."""

import json
import re
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from conftest import (ACT_TIMEOUT_S, HOUR_S, STUCK_LEFTOVERS, Pause, build_finished_site,
                      build_stuck_site, claim_held, clean_env, gone, name_text, run_cli, start_agent,
                      wait_for, write_config)
from robust_util import bind_mounts  # noqa: F401

INSTANCES = ["hostaaaaaaaa", "hostbbbbbbbb", "hostcccccccc"]
EXPIRY = "2s"
EXPIRY_S = 2.0


def is_new_protocol():
    """main's binary has no hook mark: its windows are at other calls."""
    return b".lockwarden-hook-" in Path(os.environ["LOCKWARDEN_BIN"]).read_bytes()


def fuse_daemon_pid(mountpoint):
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            args = (d / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if args and args[0].endswith(b"bindfs") and str(mountpoint).encode() in args:
            return int(d.name)
    raise AssertionError(f"no bindfs for {mountpoint}")


class Hosts:
    """One backing folder (the share) and a bindfs mount of it per host."""

    def __init__(self, bind_mounts, tmp_path, n=2):  # noqa: F811
        self.backing = tmp_path / "share"
        self.mounts = [bind_mounts(self.backing, tmp_path / f"host{i}") for i in range(n)]
        self.stopped = []

    def site(self, i=None):
        return self.backing / "site" if i is None else self.mounts[i].mountpoint / "site"

    def archive(self):
        return self.backing / "archive"

    def stop(self, i):
        pid = fuse_daemon_pid(self.mounts[i].mountpoint)
        os.kill(pid, signal.SIGSTOP)
        self.stopped.append(pid)

    def cont(self):
        for pid in self.stopped:
            os.kill(pid, signal.SIGCONT)
        self.stopped = []


@pytest.fixture
def hosts(bind_mounts, tmp_path):  # noqa: F811
    h = Hosts(bind_mounts, tmp_path, 2)
    yield h
    h.cont()  # never leave a stopped daemon behind (the unmount would hang)


def config(tmp_path, hosts, i, hook, scope="site", **extra):
    path = tmp_path / f"lw{i}.ini"
    return write_config(path, hosts.site(i), site={"claim_expiry": EXPIRY},
                        hook={"command": hook.command(**extra), "scope": scope, "timeout": "3s"},
                        archive={"dir": str(hosts.mounts[i].mountpoint / "archive")})


def start(agents, cfg, i, env=None, name=None):
    env = dict(env or clean_env())
    env["WEBSITE_INSTANCE_ID"] = INSTANCES[i]
    return start_agent(agents, cfg, env=env, name=name or f"agent{i}")


def tails(*started):
    return lambda: "\n".join(f"== {a.name}\n{a.tail(25)}" for a in started)


def settle_runs(hook, started, want, seconds=3 * EXPIRY_S + 2):
    """The runs so far once every agent has had time for a late one."""
    for a in started:
        if a.running():
            a.wait_fresh_scans(2)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and hook.count() <= want:
        time.sleep(0.1)
    return hook.runs()


def top_text(hosts):
    names = sorted((p for p in hosts.archive().iterdir() if p.name.startswith(".lockwarden-claim")),
                   key=lambda p: (len(p.name), p.name))
    try:
        return name_text(names[-1], "claim") if names else b""
    except OSError:
        return b""


# ---- finding 1: a takeover while the owner renews ---------------------------------

def test_a_takeover_racing_a_renewal_never_loses_the_restart(hosts, agents, tmp_path, hook,
                                                            pause_shim):
    """The owner's host stalls (its FUSE daemon stopped) past claim_expiry;
    the other host starts a takeover and is held inside it; the owner's host
    comes back and renews; then the takeover goes on. On main the taker
    unlinked the renewed claim and the owner dropped its hook: no restart.
    Now the taker's name is simply the next one: the owner sees it, stops,
    and the incident gets exactly one restart."""
    build_stuck_site(hosts.site())
    owner_hold = Pause(pause_shim, tmp_path / "owner", "rename", "-temp-1a2b3c4d")
    owner = start(agents, config(tmp_path, hosts, 0, hook), 0, env=owner_hold.env())
    owner_hold.wait_paused(detail=owner.tail)
    assert claim_held(hosts.archive())
    # The taker's window: the exclusive create of the next name now; main's
    # rename of the claim aside.
    window = (Pause(pause_shim, tmp_path / "taker", "create", ".lockwarden-claim-2")
              if is_new_protocol() else
              Pause(pause_shim, tmp_path / "taker", "rename", "-stale-" + INSTANCES[1]))
    taker = start(agents, config(tmp_path, hosts, 1, hook), 1, env=window.env())
    taker.wait_scan(2)
    hosts.stop(0)                          # the owner's renewals hang
    window.wait_paused(timeout=ACT_TIMEOUT_S + 4 * EXPIRY_S, detail=tails(owner, taker))
    before = top_text(hosts)
    hosts.cont()                           # ... and come back: a renewal lands
    wait_for(lambda: top_text(hosts) != before, 4 * EXPIRY_S, "the owner's renewal",
             tails(owner, taker))
    window.release()
    owner_hold.release()
    wait_for(lambda: gone(hosts.site(), STUCK_LEFTOVERS), ACT_TIMEOUT_S + 4 * EXPIRY_S,
             "the incident cleared", tails(owner, taker))
    wait_for(lambda: hook.count() >= 1, ACT_TIMEOUT_S + 4 * EXPIRY_S,
             "the incident's restart", tails(owner, taker))
    runs = settle_runs(hook, [owner, taker], 1)
    assert len(runs) == 1, runs
    assert not claim_held(hosts.archive())


# ---- finding 2: the owner stalled inside the hook mark ------------------------------

def test_an_owner_stalled_in_the_hook_mark_past_the_expiry_runs_no_second_hook(
        hosts, agents, tmp_path, hook, pause_shim):
    """The owner is held inside its hook mark longer than claim_expiry (an
    SMB reconnect); the other host takes over and restarts the site. When
    the owner's call returns, it must not restart it again."""
    build_stuck_site(hosts.site())
    mark = (Pause(pause_shim, tmp_path / "owner", "create", has=".lockwarden-hook-")
            if is_new_protocol() else
            Pause(pause_shim, tmp_path / "owner", "pwrite", has=".lockwarden-claim",
                  data="hook started"))
    owner = start(agents, config(tmp_path, hosts, 0, hook), 0, env=mark.env())
    # The other host starts once the owner holds the incident: started
    # together, either may claim it first.
    wait_for(lambda: claim_held(hosts.archive()), ACT_TIMEOUT_S, "the owner's claim", owner.tail)
    other = start(agents, config(tmp_path, hosts, 1, hook), 1)
    mark.wait_paused(detail=tails(owner, other))
    wait_for(lambda: hook.count() >= 1, ACT_TIMEOUT_S + 6 * EXPIRY_S,
             "the other host's restart after the takeover", tails(owner, other))
    mark.release()
    runs = settle_runs(hook, [owner, other], 1)
    assert len(runs) == 1, [r["LOCKWARDEN_INSTANCE"] for r in runs]
    assert runs[0]["LOCKWARDEN_INSTANCE"] == INSTANCES[1]


# ---- finding 3: the owner killed right after the hook mark ------------------------

def test_an_owner_killed_after_the_hook_mark_is_said_on_every_instance(
        hosts, agents, tmp_path, hook, pause_shim):
    """The restart may never have happened: every other instance says so -
    a warning, the json event, the metric - and so does report."""
    build_stuck_site(hosts.site())
    mark = (Pause(pause_shim, tmp_path / "owner", "pwrite", has=".lockwarden-hook-")
            if is_new_protocol() else
            Pause(pause_shim, tmp_path / "owner", "pwrite", has=".lockwarden-claim",
                  data="hook started"))
    cfg0 = config(tmp_path, hosts, 0, hook)
    owner = start(agents, cfg0, 0, env=mark.env())
    wait_for(lambda: claim_held(hosts.archive()), ACT_TIMEOUT_S, "the owner's claim", owner.tail)
    metrics = tmp_path / "metrics.prom"
    others = [start(agents, config(tmp_path, hosts, 1, hook), 1),
              start(agents, config(tmp_path, hosts, 1, hook), 2,
                    env=clean_env(LOCKWARDEN_LOG_FORMAT="json",
                                  LOCKWARDEN_METRICS_FILE=str(metrics)))]
    mark.wait_paused(detail=tails(owner, *others))
    owner.send(signal.SIGKILL)
    owner.wait_exit(10)
    for a in others:
        wait_for(lambda: a.count(r"restart may have been lost") >= 1,
                 ACT_TIMEOUT_S + 6 * EXPIRY_S, f"{a.name}'s warning", tails(*others))
    events = [json.loads(line) for line in others[1].log_lines() if line.startswith("{")]
    assert any(e.get("event") == "restart_lost" for e in events)
    wait_for(lambda: metrics.exists() and
             re.search(r'\nlockwarden_restarts_maybe_lost_total\{instance_id="[^"]+"\} 1\n',
                       metrics.read_text()), 70,
             "the metric", tails(*others))
    r = run_cli(["report", "-c", cfg0])
    assert "restart may have been lost" in " ".join(r.stdout.split()), r.stdout
    # Never a second restart for it (the one the owner may have made is
    # the one of this incident).
    assert hook.count() == 0


# ---- finding 4: the share's word is bounded -----------------------------------------

def forge_claims(hosts, stop):
    """A writer with the site's deployment credentials: a well-formed claim
    of an instance that does not exist, rewritten all the time."""
    n = 0
    while not stop.is_set():
        n += 1
        new = {"lockwarden_claim": 2, "n": 1, "instance": "mallory", "incident":
               "20261129T000000Z-mallory-1.1", "state": "held", "began": False,
               "renewals": n, "fingerprint": "0", "expires": "-", "removed": ""}
        (hosts.archive() / ".lockwarden-claim-1").write_text(json.dumps(new))
        (hosts.archive() / ".lockwarden-claim").write_text(
            f"lockwarden-claim 1\ninstance mallory\nincident 20261129T000000Z-mallory-1.1\n"
            f"fingerprint 0000000000000000\nhook started\nrenewed {n}\nexpires -\n"
            f"removed 0\nend\n")
        stop.wait(0.2)


def test_a_forged_claim_that_keeps_changing_delays_the_cleanup_a_bounded_time(
        hosts, agents, tmp_path, hook):
    """Bound: 10 x claim_expiry + [hook] timeout (23 s here), then the agent
    takes the incident over with a warning, clears it and restarts."""
    build_stuck_site(hosts.site())
    hosts.archive().mkdir()
    stop = threading.Event()
    forger = threading.Thread(target=forge_claims, args=(hosts, stop), daemon=True)
    forger.start()
    try:
        agent = start(agents, config(tmp_path, hosts, 0, hook), 0)
        bound_s = 10 * EXPIRY_S + 3
        wait_for(lambda: gone(hosts.site(), STUCK_LEFTOVERS), ACT_TIMEOUT_S + bound_s + 10,
                 "the cleanup, past the bound", agent.tail)
        wait_for(lambda: hook.count() == 1, ACT_TIMEOUT_S, "the restart", agent.tail)
    finally:
        stop.set()
        forger.join()
    assert agent.count(r"claimed by others for .* taking it over") == 1


def test_forged_notes_run_no_hook_on_any_instance(hosts, agents, tmp_path, hook):
    """scope = instance: three well-formed note.json files of incidents no
    instance saw; the site is healthy. Nobody restarts anything."""
    build_finished_site(hosts.site())
    started = [start(agents, config(tmp_path, hosts, i % 2, hook, scope="instance"), i)
               for i in range(3)]
    for a in started:
        a.wait_scan(3)
    for k in range(3):
        session = hosts.archive() / f"20261129T00000{k}Z-mallory"
        session.mkdir(parents=True)
        (session / "note.json").write_text(json.dumps({
            "lockwarden": "0.1.0", "state": "done", "time": "2026-11-29T00:00:00Z",
            "instance": "mallory", "incident": f"20261129T00000{k}Z-mallory-1.{k}",
            "step": "clear", "complete": True, "items": []}, indent=2))
    for a in started:
        a.wait_fresh_scans(4)
    assert hook.count() == 0, [r["LOCKWARDEN_INCIDENT"] for r in hook.runs()]


# ---- finding 6: renewals have their own lane ---------------------------------------

def test_renewals_go_on_while_every_pool_thread_is_blocked(hosts, agents, tmp_path, hook,
                                                          pause_shim):
    """The owner's whole libuv pool (one thread here) is held by its cleanup
    for three expiries; its claim is still renewed, so the other host never
    takes the incident over, and the restart runs once."""
    build_stuck_site(hosts.site())
    hold = Pause(pause_shim, tmp_path / "owner", "rename", "-temp-1a2b3c4d")
    owner = start(agents, config(tmp_path, hosts, 0, hook), 0,
                  env=hold.env(UV_THREADPOOL_SIZE="1"))
    hold.wait_paused(detail=owner.tail)
    other = start(agents, config(tmp_path, hosts, 1, hook), 1)
    other.wait_scan(2)
    deadline = time.monotonic() + 3 * EXPIRY_S
    while time.monotonic() < deadline:
        assert other.count(r"took over incident") == 0, tails(owner, other)()
        time.sleep(0.1)
    hold.release()
    wait_for(lambda: gone(hosts.site(), STUCK_LEFTOVERS) and hook.count() >= 1,
             ACT_TIMEOUT_S + 4 * EXPIRY_S, "cleared and restarted", tails(owner, other))
    runs = settle_runs(hook, [owner, other], 1)
    assert len(runs) == 1 and runs[0]["LOCKWARDEN_INSTANCE"] == INSTANCES[0]
    assert other.count(r"took over incident") == 0


# ---- twenty incidents: the owner killed or paused at every step in turn ----------

# Where the owner is held, in the order it gets there; each step twice (the
# owner killed there, then paused there past the expiry): 20 incidents.
STEPS = [
    ("claim.create", dict(call="create", has=".lockwarden-claim-")),
    ("claim.write", dict(call="pwrite", has=".lockwarden-claim-")),
    ("archive note", dict(call="rename", name="note.json")),
    ("cleanup removal", dict(call="rename", name="-temp-1a2b3c4d")),
    ("removal noted", dict(call="pwrite", has=".lockwarden-claim-", data="temp-1a2b3c4d")),
    ("claim renewal", dict(call="pwrite", has=".lockwarden-claim-", data='"renewals": 4,')),
    ("hook.mark", dict(call="create", has=".lockwarden-hook-")),
    ("hook.started", dict(call="pwrite", has=".lockwarden-hook-")),
    ("hook.end", dict(call="pwrite", has=".lockwarden-hook-", data="ended")),
    ("claim.release", dict(call="pwrite", has=".lockwarden-claim-", data="released")),
]
INCIDENTS = [(step, where, action) for action in ("killed", "paused") for step, where in STEPS]
LOST = r"restart may have been lost"


class Fleet:
    """Three agents on two bindfs mounts of one folder (agents 0 and 2 share
    host 0's mount), each with pause_shim.c moved by one control file: for
    incident g it pauses the first thread of any agent that reaches the
    step (paused-<g> says whose), until go-<g>. A killed agent is started
    again, on its host, once the incident is over."""

    def __init__(self, hosts, agents, tmp_path, hook, shim):
        self.hosts, self.agents, self.tmp_path, self.hook = hosts, agents, tmp_path, hook
        self.dir = tmp_path / "pauses"
        self.dir.mkdir()
        self.ctl = tmp_path / "pause.ctl"
        self.ctl.write_text("gen=0\n")
        self.env = clean_env(LD_PRELOAD=str(shim), LW_PAUSE_CTL=str(self.ctl),
                             LW_PAUSE_DIR=str(self.dir))
        self.cfg = [config(tmp_path, hosts, i % 2, hook) for i in range(3)]
        self.live = [start(agents, self.cfg[i], i, env=self.env) for i in range(3)]

    def arm(self, gen, where):
        text = "".join(f"{k}={v}\n" for k, v in dict(where, gen=gen).items())
        tmp = self.ctl.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, self.ctl)

    def paused(self, gen):
        """[the index of the agent holding gen's pause], or None."""
        try:
            pid = int((self.dir / f"paused-{gen}").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return [next(i for i, a in enumerate(self.live) if a.pid == pid)]

    def release(self, gen):
        (self.dir / f"go-{gen}").touch()

    def tails(self):
        return tails(*self.live)()


def test_three_agents_twenty_incidents_the_owner_killed_or_paused_at_every_step(
        hosts, agents, tmp_path, hook, pause_shim):
    """Three agents on two FUSE mounts of one folder, 20 incidents, one
    after the other; in each, the owner is killed, or paused past the claim's
    expiry, at one step of the protocol (every step in turn). Each incident:
    exactly one restart, or a warning on every instance that lived through
    it that one may have been lost - never a second one."""
    fleet = Fleet(hosts, agents, tmp_path, hook, pause_shim)
    for a in fleet.live:
        a.wait_scan(1)
    began = time.monotonic()
    outcomes = []
    for gen, (step, where, action) in enumerate(INCIDENTS, start=1):
        what = f"incident {gen} ({step}, owner {action})"
        fleet.arm(gen, where)
        runs_before = hook.count()
        witnesses = list(fleet.live)
        lost_before = {a.name: a.count(LOST) for a in witnesses}
        took_before = sum(a.count(r"took over incident|replaced the claim") for a in witnesses)
        build_stuck_site(hosts.site())
        [owner_i] = wait_for(lambda: fleet.paused(gen), ACT_TIMEOUT_S + 4 * EXPIRY_S,
                             f"{what}: an owner at the step", fleet.tails)
        owner = fleet.live[owner_i]
        others = [a for a in fleet.live if a is not owner]
        if action == "killed":
            owner.send(signal.SIGKILL)
            owner.wait_exit(10)
            witnesses.remove(owner)
        else:
            # Held until another instance took the incident over, or, when
            # its claim is still renewed (its claim's thread is free), until
            # the others have watched it for twice the expiry.
            scans = {a.name: a.scans_done() for a in others}
            wait_for(lambda: sum(a.count(r"took over incident|replaced the claim")
                                 for a in fleet.live) > took_before or
                     all(a.scans_done() - scans[a.name] > 4 * EXPIRY_S / 0.5 for a in others),
                     ACT_TIMEOUT_S + 4 * EXPIRY_S, f"{what}: a takeover, or the expiry twice",
                     fleet.tails)
        fleet.release(gen)

        def settled():
            if not gone(hosts.site(), STUCK_LEFTOVERS) or claim_held(hosts.archive()):
                return False
            return hook.count() > runs_before or \
                all(a.count(LOST) > lost_before[a.name] for a in witnesses)

        wait_for(settled, ACT_TIMEOUT_S + 8 * EXPIRY_S, f"{what} settled", fleet.tails)
        for a in witnesses:
            a.wait_fresh_scans(2)
        runs = hook.count() - runs_before
        assert runs <= 1, f"{what}: {runs} restarts: " + ", ".join(
            f"{r.get('LOCKWARDEN_INSTANCE')} for {r.get('LOCKWARDEN_INCIDENT')}"
            for r in hook.runs()[runs_before:])
        if runs == 0:
            silent = [a.name for a in witnesses if a.count(LOST) == lost_before[a.name]]
            assert not silent, f"{what}: no restart, and no warning on {silent}"
        outcomes.append((step, action, runs))
        if action == "killed":
            fleet.live[owner_i] = start(agents, fleet.cfg[owner_i], owner_i, env=fleet.env,
                                        name=f"agent{owner_i}.{gen}")
            fleet.live[owner_i].wait_scan(1)
    took = time.monotonic() - began
    print(f"20 incidents in {took:.1f} s: " +
          ", ".join(f"{s} {a}: {'restart' if r else 'warned'}" for s, a, r in outcomes))
