"""The systemd unit, packaging/systemd/lockwarden.service.in.

`make systemd-unit` fills in the install paths; the result must pass
`systemd-analyze verify` (which also checks that ExecStart's binary exists
and that the man pages named in Documentation= resolve), keep its exposure
score under a ceiling, state every setting the agent relies on, and explain
each [Service] setting in a comment. Its capability bounding set must be
enough for the real agent to clear a stuck tree owned by another user, and
no larger than that: the test runs the agent under exactly that bounding set,
and under none as the control.

A start on a fresh host (no /home/LogFiles) is emulated with mount
namespaces, as far as /home goes (there is no running systemd here):
ExecStartPre= outside the sandbox, then ProtectHome=read-only with the
ReadWritePaths= that exist bound writable, then ExecStart=.

The sd_notify protocol itself (READY=1, STATUS=, WATCHDOG=1, RELOADING=1,
STOPPING=1) is tested against the real agent in test/e2e/test_notify.py.
"""

import datetime
import json
import os
import re
import shutil
import shlex
import signal
import subprocess
import time
from pathlib import Path

import pytest

from lwtest import ONCE_CLEARED  # run --once: "cleared"

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "packaging" / "systemd" / "lockwarden.service.in"
GENMAN = REPO / "packaging" / "man" / "genman.py"
BIN = os.environ.get("LOCKWARDEN_BIN", "")

# The exposure `systemd-analyze security` gave when the unit was written was
# 1.9; a change that loosens the sandbox noticeably fails here.
EXPOSURE_CEILING = 2.5

needs_bin = pytest.mark.skipif(
    not (BIN and os.access(BIN, os.X_OK)),
    reason="LOCKWARDEN_BIN is not set or not executable (run `make packaging-check`)")
needs_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze is missing (apt-get install systemd)")


def make_unit(out, bindir="/usr/bin", sysconfdir="/etc"):
    """Runs `make systemd-unit` into out; returns the unit's text."""
    r = subprocess.run(["make", "-s", "-C", str(REPO), "systemd-unit", f"BINDIR={bindir}",
                        f"SYSCONFDIR={sysconfdir}", f"UNIT_OUT={out}"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"make systemd-unit failed:\n{r.stdout}{r.stderr}"
    return Path(out).read_text()


def parse_unit(text):
    """{section: [(key, value)]}, comments and blank lines dropped."""
    sections, current = {}, None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        m = re.fullmatch(r"\[(\w+)\]", line)
        if m:
            current = sections.setdefault(m.group(1), [])
            continue
        key, sep, value = line.partition("=")
        assert sep and current is not None, f"not a unit file line: {line!r}"
        current.append((key.strip(), value.strip()))
    return sections


def service_settings(text):
    """{key: [values]} of [Service]."""
    out = {}
    for key, value in parse_unit(text)["Service"]:
        out.setdefault(key, []).append(value)
    return out


def man_tree(root):
    """Generates both man pages into root/man{5,8}/ so man(1) finds them
    through MANPATH=root, as systemd-analyze's Documentation= check asks."""
    out = Path(root) / "gen"
    r = subprocess.run(["/usr/bin/python3", str(GENMAN), "--outdir", str(out)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    for page in out.iterdir():
        section_dir = Path(root) / f"man{page.suffix[1:]}"
        section_dir.mkdir(exist_ok=True)
        shutil.copy(page, section_dir / page.name)
    return Path(root)


@pytest.fixture
def verify_unit(tmp_path):
    """The unit generated with BINDIR set to the tested binary's folder (so
    ExecStart names a file that exists) and the man pages on MANPATH."""
    unit = tmp_path / "lockwarden.service"
    make_unit(unit, bindir=str(Path(BIN).resolve().parent))
    env = dict(os.environ, MANPATH=str(man_tree(tmp_path / "man")))
    return unit, env


# --------------------------------------------------------------- content

# (key, what its value must be) in the unit generated for /usr/bin and /etc.
REQUIRED_SETTINGS = [
    ("Type", "notify"),
    ("NotifyAccess", "main"),
    ("ExecStart", "/usr/bin/lockwarden run -c /etc/lockwarden/lockwarden.ini"),
    # Debian 12's systemd 252 has no Type=notify-reload: SIGHUP it is.
    ("ExecReload", "/bin/kill -HUP $MAINPID"),
    ("WatchdogSec", "30s"),
    ("Restart", "on-failure"),
    ("RestartPreventExitStatus", "64 78"),
    ("NoNewPrivileges", "yes"),
    ("ProtectSystem", "strict"),
    ("ProtectHome", "read-only"),
    ("ReadWritePaths", "-/home/site -/home/LogFiles/lockwarden"),
    ("PrivateTmp", "yes"),
    ("PrivateDevices", "yes"),
    ("ProtectKernelTunables", "yes"),
    ("ProtectKernelModules", "yes"),
    ("ProtectKernelLogs", "yes"),
    ("ProtectControlGroups", "yes"),
    ("RestrictSUIDSGID", "yes"),
    ("LockPersonality", "yes"),
    ("RestrictRealtime", "yes"),
    ("RestrictNamespaces", "yes"),
    ("MemoryDenyWriteExecute", "yes"),
    ("CapabilityBoundingSet", "CAP_DAC_OVERRIDE"),
]


@pytest.fixture(scope="module")
def debian_unit_settings(tmp_path_factory):
    """[Service] of the unit generated for /usr/bin and /etc."""
    return service_settings(make_unit(tmp_path_factory.mktemp("unit") / "u.service"))


@pytest.mark.parametrize("key,value", REQUIRED_SETTINGS, ids=[k for k, _ in REQUIRED_SETTINGS])
def test_unit_sets(debian_unit_settings, key, value):
    settings = debian_unit_settings
    assert settings.get(key) == [value], f"{key}= is {settings.get(key)}, want [{value!r}]"


def test_install_paths_come_from_make_variables(tmp_path):
    text = make_unit(tmp_path / "u.service", bindir="/opt/lw/sbin", sysconfdir="/opt/lw/etc")
    assert not re.search(r"@[A-Z_]+@", text), "a placeholder was left unfilled"
    assert service_settings(text)["ExecStart"] == [
        "/opt/lw/sbin/lockwarden run -c /opt/lw/etc/lockwarden/lockwarden.ini"]


def test_every_service_setting_has_a_comment():
    """Each [Service] line is preceded (blank lines aside) by a comment
    saying why it is there."""
    missing = []
    previous = ""
    section = None
    for line in TEMPLATE.read_text().splitlines():
        line = line.strip()
        if not line:
            continue
        if line.startswith("["):
            section = line
        elif not line.startswith("#") and section == "[Service]":
            if not previous.startswith("#"):
                missing.append(line)
        previous = line
    assert not missing, f"[Service] settings without a comment above them: {missing}"


def test_hardening_leaves_network_and_hook_interpreters_usable(debian_unit_settings):
    """The hook runs /bin/sh, curl or python3 and restart-site calls Azure:
    the unit must not cut the network or forbid what they need."""
    s = debian_unit_settings
    assert "PrivateNetwork" not in s and "IPAddressDeny" not in s
    families = " ".join(s.get("RestrictAddressFamilies", [])).split()
    assert {"AF_UNIX", "AF_INET", "AF_INET6"} <= set(families)
    # An allow list systemd maintains for ordinary services, not a hand-made one.
    assert s["SystemCallFilter"][0] == "@system-service"
    assert s.get("SystemCallErrorNumber") == ["EPERM"], \
        "a filtered call must fail with an error, not kill the hook"


# ---------------------------------------------------------- systemd-analyze

@needs_bin
@needs_analyze
def test_systemd_analyze_verify_passes(verify_unit):
    unit, env = verify_unit
    r = subprocess.run(["systemd-analyze", "verify", str(unit)], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stderr == "", \
        f"systemd-analyze verify (exit {r.returncode}):\n{r.stderr}"


@needs_bin
@needs_analyze
def test_systemd_analyze_verify_catches_a_typo(verify_unit):
    """The control: the same check on a unit with a misspelt setting fails
    or warns, so the test above can fail."""
    unit, env = verify_unit
    unit.write_text(unit.read_text().replace("ProtectSystem=strict", "ProtectSystm=strict"))
    r = subprocess.run(["systemd-analyze", "verify", str(unit)], env=env,
                       capture_output=True, text=True, timeout=60)
    assert "ProtectSystm" in r.stderr


@needs_bin
@needs_analyze
def test_security_exposure_is_low(verify_unit):
    unit, env = verify_unit
    r = subprocess.run(["systemd-analyze", "security", "--offline=true", "--no-pager",
                        str(unit)], env=env, capture_output=True, text=True, timeout=60)
    if r.returncode != 0 and "offline" in r.stderr:
        pytest.skip(f"systemd-analyze security --offline is not supported here: {r.stderr}")
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+) (\w+)", r.stdout)
    assert m, f"no exposure level in:\n{r.stdout}{r.stderr}"
    exposure = float(m.group(1))
    print(f"systemd-analyze security exposure: {exposure} {m.group(2)}")
    assert exposure <= EXPOSURE_CEILING, \
        f"exposure {exposure} {m.group(2)} is above {EXPOSURE_CEILING}:\n{r.stdout}"


# ------------------------------------------- the capability bounding set

def kudu_time(seconds_from_now):
    when = datetime.datetime.now(datetime.timezone.utc) + \
        datetime.timedelta(seconds=seconds_from_now)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond:06d}0Z"


OTHER_UID = 4242


def build_expired_lock_tree(root):
    """A site whose locks/deployment holds an info.lock that expired an hour
    ago, every entry owned by another user, folders 0700 and files 0600, all
    aged two hours: clearing it needs to read and write folders root does
    not own."""
    lock = root / "locks" / "deployment"
    lock.mkdir(parents=True)
    (root / "deployments").mkdir()
    (lock / "info.lock").write_text(json.dumps(
        {"lockExpiry": kudu_time(-3600), "heldByPID": 83, "heldByTID": 45,
         "heldByOp": "Performing deployment", "heldByWorker": "abc123"},
        separators=(",", ":")))
    old = datetime.datetime.now().timestamp() - 7200
    for path in [lock / "info.lock", lock, root / "locks", root / "deployments", root]:
        os.chown(path, OTHER_UID, OTHER_UID)
        os.chmod(path, 0o600 if path.is_file() else 0o700)
        os.utime(path, (old, old))
    return root


def unit_capabilities(tmp_path):
    """The unit's CapabilityBoundingSet=, in setpriv's spelling."""
    caps = service_settings(make_unit(tmp_path / "u.service"))["CapabilityBoundingSet"]
    return [c.lower().removeprefix("cap_") for c in " ".join(caps).split()]


def config_keys():
    text = (REPO / "agent" / "config.def").read_text()
    return set(re.findall(r"^CONFIG_KEY\(\s*(\w+)\s*,\s*(\w+)", text, re.M))


def run_with_bounding_set(tmp_path, caps):
    """Runs `lockwarden run --once` on the expired-lock tree as root with
    only caps in its bounding set (and no new privileges, as the unit);
    returns (exit code, its output, whether the lock folder is gone)."""
    site = build_expired_lock_tree(tmp_path / "site")
    cfg = tmp_path / "lockwarden.ini"
    lines = [f"[site]\nroot = {site}",
             "[policy]\nstuck_after = 2s\nquiet_period = 1s",
             "[scan]\nrescan_interval = 200ms"]
    if ("archive", "dir") in config_keys():
        archive = tmp_path / "archive"
        archive.mkdir(mode=0o700)
        lines.append(f"[archive]\ndir = {archive}")
    cfg.write_text("\n".join(lines) + "\n")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LOCKWARDEN_", "NOTIFY_", "WATCHDOG_"))}
    bounding = ",".join(["-all"] + [f"+{c}" for c in caps])
    log_path = tmp_path / "agent.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(["setpriv", f"--bounding-set={bounding}", "--no-new-privs",
                                 BIN, "run", "-c", str(cfg), "--once"],
                                env=env, stdout=log, stderr=subprocess.STDOUT)
    # --once exits after a cleanup; an agent that cannot read the site waits
    # for it to come back, so a refusal in the log ends the wait too.
    deadline = time.monotonic() + 15
    while (proc.poll() is None and "Permission denied" not in log_path.read_text()
           and time.monotonic() < deadline):
        time.sleep(0.02)
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode, log_path.read_text(), not os.path.lexists(site / "locks" / "deployment")


needs_root_setpriv = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None,
    reason="needs root and setpriv (util-linux) to run the agent under a bounding set")


@needs_bin
@needs_root_setpriv
def test_unit_capabilities_are_enough_to_clear_a_tree_owned_by_another_user(tmp_path):
    caps = unit_capabilities(tmp_path)
    code, log, removed = run_with_bounding_set(tmp_path, caps)
    assert removed and code == ONCE_CLEARED, \
        f"with only {caps} the agent did not clear the tree (exit {code}):\n{log}"


@needs_bin
@needs_root_setpriv
def test_without_capabilities_the_tree_stays(tmp_path):
    """The control: root without capabilities cannot clear it, so the
    bounding set above is what made the difference."""
    code, log, removed = run_with_bounding_set(tmp_path, [])
    assert not removed, f"the tree was cleared without capabilities:\n{log}"
    assert "Permission denied" in log


# ------------------------------------- a start on a host without the archive folder

needs_root_unshare = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None,
    reason="needs root and unshare (util-linux) for a private /home")


def sandboxed_start_script(settings, exec_start):
    """A shell script that starts the service the way systemd does, as far
    as /home goes, in a mount namespace of its own (there is no running
    systemd here): the ExecStartPre= commands first, "+" ones with full
    privileges outside the sandbox; then, in a further mount namespace built
    at exec time as systemd builds one for each command, /home read-only
    (ProtectHome=read-only) with each ReadWritePaths= path that exists bound
    writable again, a "-" path that does not exist skipped, and ExecStart=
    in it."""
    lines = []
    for pre in settings.get("ExecStartPre", []):
        assert pre.startswith("+"), f"only full-privilege ExecStartPre= is emulated: {pre}"
        lines.append(pre[1:])
    assert settings["ProtectHome"] == ["read-only"]
    sandbox = ["mount --rbind /home /home", "mount -o remount,bind,ro /home"]
    for path in " ".join(settings["ReadWritePaths"]).split():
        optional = path.startswith("-")
        path = path.lstrip("-")
        # A bind mount inherits the read-only flag of the mount it comes
        # from; systemd remounts it writable, and so does this.
        bind = f"mount --bind {path} {path} && mount -o remount,bind,rw {path}"
        sandbox.append(f"if [ -e {path} ]; then {bind}; fi" if optional else f"{{ {bind}; }}")
    sandbox.append(f"exec {exec_start}")
    lines.append("unshare --mount --propagation private sh -ec '"
                 + " && ".join(sandbox) + "'")
    return "\n".join(lines)


@needs_bin
@needs_root_unshare
def test_unit_start_cleans_on_a_host_without_the_archive_folder(tmp_path):
    """A fresh host: /home/site holds a stuck deployment and /home/LogFiles
    does not exist. Started as the unit starts it, the agent must archive
    and clear the lock. Without a step that creates the archive folder,
    ReadWritePaths= skips it, /home stays read-only, the archive cannot be
    made, and nothing is ever removed."""
    etc = tmp_path / "etc"
    (etc / "lockwarden").mkdir(parents=True)
    # The unit's defaults: [site] root /home/site, [archive] dir
    # /home/LogFiles/lockwarden; only the timings are short.
    (etc / "lockwarden" / "lockwarden.ini").write_text(
        "[policy]\nstuck_after = 2s\nquiet_period = 1s\n[scan]\nrescan_interval = 200ms\n")
    unit = make_unit(tmp_path / "u.service", bindir=str(Path(BIN).resolve().parent),
                     sysconfdir=str(etc))
    settings = service_settings(unit)
    # --once: the agent exits after its first cleanup instead of watching on.
    exec_start = settings["ExecStart"][0] + " --once"
    template = build_expired_lock_tree(tmp_path / "template")
    script = "\n".join([
        "set -e",
        # A fresh /home: the site and nothing else.
        "mount -t tmpfs -o mode=0755 none /home",
        f"cp -a {template} /home/site",
        "test ! -e /home/LogFiles",
        "set +e",
        f"timeout 20 sh -c {shlex.quote(sandboxed_start_script(settings, exec_start))}",
        'echo "agent exit status $?"',
        "ls -A /home/site/locks | sed 's/^/locks: /'",
        "find /home/LogFiles/lockwarden -maxdepth 1 -mindepth 1 | sed 's/^/archived: /'",
        "stat -c 'archive mode %a' /home/LogFiles/lockwarden",
    ])
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LOCKWARDEN_", "NOTIFY_", "WATCHDOG_"))}
    env["LOCKWARDEN_ENV_FILE"] = ""
    r = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                       env=env, capture_output=True, text=True, timeout=60)
    out = r.stdout + r.stderr
    assert f"agent exit status {ONCE_CLEARED}" in r.stdout, out
    assert "locks: deployment" not in r.stdout, out
    assert "archived: " in r.stdout, out
    assert "archive mode 700" in r.stdout, out


def test_unit_creates_the_archive_folder_before_starting(debian_unit_settings):
    assert debian_unit_settings.get("ExecStartPre") == \
        ["+/bin/mkdir -p -m 0700 /home/LogFiles/lockwarden"]
