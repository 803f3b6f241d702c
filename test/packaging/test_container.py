"""The custom-container pieces in packaging/container/.

Docker cannot run here, so entrypoint.sh itself is run the way a container
runs it: as PID 1 of a new PID namespace (unshare --pid --fork
--mount-proc, when this machine allows it), and also plainly, with a
stand-in app and the real agent. The checks: the agent starts and logs on
the entrypoint's output, the app gets the container's stdin and output, a
SIGTERM to PID 1 or the app's own exit stops the agent cleanly, the exit
status is the app's, and nothing is left running. The example
supervisord block is run by a real supervisord, and the sshd settings are
checked by sshd -t.
"""

import os
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from lwtest import wait_for

REPO = Path(__file__).resolve().parents[2]
CONTAINER = REPO / "packaging" / "container"
ENTRYPOINT = CONTAINER / "entrypoint.sh"
RESTART_CONTAINER = REPO / "packaging" / "hooks" / "restart-container"
BIN = os.environ.get("LOCKWARDEN_BIN", "")

START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 15.0
APP_TERM_STATUS = 7  # the stand-in app's exit status after SIGTERM

pytestmark = pytest.mark.skipif(not (BIN and os.access(BIN, os.X_OK)),
                                reason="LOCKWARDEN_BIN is not set (run `make packaging-check`)")


def _can_unshare():
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return False
    try:
        out = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "sh", "-c", "echo $$"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and out.stdout.strip() == "1"


CAN_UNSHARE = _can_unshare()
needs_pidns = pytest.mark.skipif(not CAN_UNSHARE,
                                 reason="unshare --pid needs root and a kernel that allows it")
MODES = [pytest.param("pidns", marks=needs_pidns), "plain"]

STAND_IN_APP = """#!/bin/sh
# A stand-in app: says what it got, runs until SIGTERM (exit 7) or until
# the file stop-app appears (exit 3).
trap 'echo "app: got SIGTERM"; exit 7' TERM
echo "app: started as pid $$"
if IFS= read -r line; then echo "app: stdin says $line"; fi
while [ ! -e "$WORK/stop-app" ]; do sleep 0.05; done
echo "app: stopping by itself"
exit 3
"""

FAKE_SSHD = """#!/bin/sh
# A stand-in sshd: leaves a mark and returns, as sshd does once it listens.
echo "$*" > "$WORK/sshd-started"
"""


class Entrypoint:
    """entrypoint.sh with the stand-in app, in a PID namespace or plainly.
    Every process it starts carries LW_ENTRYPOINT_TEST=<token> in its
    environment, which is how the test finds whatever is left running."""

    def __init__(self, work, mode, shell="sh", env_extra=None, app=True,
                 with_agent=True, with_sshd=False):
        self.work = Path(work)
        self.mode = mode
        self.token = uuid.uuid4().hex
        bindir = self.work / "bin"
        bindir.mkdir(exist_ok=True)
        if with_agent:
            (bindir / "lockwarden").symlink_to(BIN)
        if with_sshd:
            (bindir / "sshd").write_text(FAKE_SSHD)
            (bindir / "sshd").chmod(0o755)
        self.app = self.work / "app.sh"
        self.app.write_text(STAND_IN_APP)
        self.app.chmod(0o755)
        self.site = self.work / "site"
        (self.site / "locks").mkdir(parents=True, exist_ok=True)
        (self.site / "deployments").mkdir(exist_ok=True)
        # No /usr/sbin in PATH: a real sshd on the test machine stays out.
        env = {k: v for k, v in os.environ.items() if not k.startswith("LOCKWARDEN_")}
        env.update({"PATH": f"{bindir}:/usr/local/bin:/usr/bin:/bin",
                    "WORK": str(self.work),
                    "LW_ENTRYPOINT_TEST": self.token,
                    "LOCKWARDEN_SITE_ROOT": str(self.site),
                    # The app settings file, never this machine's /run.
                    "LOCKWARDEN_ENV_FILE": str(self.work / "run" / "environ"),
                    # Never the default /home/LogFiles of the test machine.
                    "LOCKWARDEN_ARCHIVE_DIR": str(self.work / "archive")})
        for k, v in (env_extra or {}).items():
            if v is None:
                env.pop(k, None)
            else:
                env[k] = v
        argv = shell.split() + [str(ENTRYPOINT)] + ([str(self.app)] if app else [])
        if mode == "pidns":
            argv = ["unshare", "--pid", "--fork", "--mount-proc"] + argv
        self.out_path = self.work / "stdout"
        self.err_path = self.work / "stderr"
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(argv, env=env, stdin=subprocess.PIPE,
                                         stdout=out, stderr=err, start_new_session=True)

    def send_stdin(self, text):
        self.proc.stdin.write(text.encode())
        self.proc.stdin.close()

    def out(self):
        return self.out_path.read_text(errors="replace")

    def err(self):
        return self.err_path.read_text(errors="replace")

    def both(self):
        return f"--- stdout\n{self.out()}--- stderr\n{self.err()}"

    def pid1(self):
        """The entrypoint's pid as this test sees it: unshare's child in a
        namespace (PID 1 inside), the process itself otherwise."""
        if self.mode == "plain":
            return self.proc.pid
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        kids = wait_for(lambda: children.read_text().split(), START_TIMEOUT_S,
                        "unshare's child", self.both)
        return int(kids[0])

    def left_running(self):
        """Live processes (not zombies) carrying this run's token."""
        mark = f"LW_ENTRYPOINT_TEST={self.token}".encode()
        pids = []
        for p in Path("/proc").iterdir():
            if not p.name.isdigit():
                continue
            try:
                if mark not in (p / "environ").read_bytes().split(b"\0"):
                    continue
                state = (p / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if state not in ("Z", "X"):
                pids.append(int(p.name))
        return pids

    def wait_started(self):
        wait_for(lambda: f"watching {self.site}" in self.err(), START_TIMEOUT_S,
                 "the agent's `watching` line", self.both)
        wait_for(lambda: "app: started" in self.out(), START_TIMEOUT_S, "the app", self.both)

    def wait_exit(self):
        try:
            return self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the entrypoint did not exit within {STOP_TIMEOUT_S}s\n"
                                 + self.both())

    def kill_all(self):
        for _ in range(3):
            for pid in self.left_running() + [self.proc.pid]:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        if self.proc.stdin and not self.proc.stdin.closed:
            self.proc.stdin.close()


@pytest.fixture
def entrypoints(tmp_path):
    started = []

    def start(mode, **kw):
        work = tmp_path / f"run{len(started)}"
        work.mkdir()
        e = Entrypoint(work, mode, **kw)
        started.append(e)
        return e

    yield start
    for e in started:
        e.kill_all()
        print(f"==== entrypoint ({e.mode}), exit {e.proc.returncode}\n{e.both()}")


def assert_agent_stopped_cleanly(e):
    err = e.err()
    assert "lockwarden" in err and "info: stopping on SIGTERM" in err, e.both()
    assert "lockwarden-entrypoint: lockwarden stopped (status 0)" in err, e.both()
    assert e.left_running() == [], e.both()


@pytest.mark.parametrize("mode", MODES)
def test_agent_starts_and_logs_on_the_containers_output(entrypoints, mode):
    e = entrypoints(mode, with_sshd=True)
    e.send_stdin("hello from docker run -i\n")
    e.wait_started()
    wait_for(lambda: "app: stdin says hello from docker run -i" in e.out(), START_TIMEOUT_S,
             "the app to read the container's stdin", e.both)
    assert (e.work / "sshd-started").exists(), e.both()
    assert "lockwarden-entrypoint: sshd started" in e.err()
    # The agent's own log line, on stderr, in its usual format.
    line = next(ln for ln in e.err().splitlines() if f"watching {e.site}" in ln)
    assert " lockwarden[" in line and "] info: watching " in line
    os.kill(e.pid1(), signal.SIGTERM)
    assert e.wait_exit() == APP_TERM_STATUS
    assert_agent_stopped_cleanly(e)


@pytest.mark.parametrize("shell", ["sh", "busybox sh", "bash"])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
@pytest.mark.parametrize("mode", MODES)
def test_a_stop_signal_to_pid1_stops_the_app_and_the_agent(entrypoints, mode, sig, shell):
    if shell.split()[0] != "sh" and not shutil.which(shell.split()[0]):
        pytest.skip(f"{shell} is not installed")
    e = entrypoints(mode, shell=shell)
    e.send_stdin("")
    e.wait_started()
    os.kill(e.pid1(), sig)
    # The app's own status comes back: 7 is what it exits with on SIGTERM.
    assert e.wait_exit() == APP_TERM_STATUS, e.both()
    assert "app: got SIGTERM" in e.out()
    assert f"the app exited with status {APP_TERM_STATUS}" in e.err()
    assert_agent_stopped_cleanly(e)


@pytest.mark.parametrize("shell", ["sh", "busybox sh", "bash"])
@pytest.mark.parametrize("mode", MODES)
def test_when_the_app_exits_the_agent_stops_too(entrypoints, mode, shell):
    if shell.split()[0] != "sh" and not shutil.which(shell.split()[0]):
        pytest.skip(f"{shell} is not installed")
    e = entrypoints(mode, shell=shell)
    e.send_stdin("")
    e.wait_started()
    (e.work / "stop-app").touch()
    assert e.wait_exit() == 3, e.both()
    assert "app: stopping by itself" in e.out()
    assert_agent_stopped_cleanly(e)


def test_the_config_file_is_passed_when_named(entrypoints, tmp_path):
    other = tmp_path / "other-site"
    (other / "locks").mkdir(parents=True)
    (other / "deployments").mkdir()
    cfg = tmp_path / "lw.ini"
    cfg.write_text(f"[site]\nroot = {other}\n")
    e = entrypoints("plain", env_extra={"LOCKWARDEN_CONFIG": str(cfg),
                                        "LOCKWARDEN_SITE_ROOT": None})
    e.send_stdin("")
    wait_for(lambda: f"watching {other}" in e.err(), START_TIMEOUT_S,
             "the agent to watch the config file's root", e.both)
    os.kill(e.pid1(), signal.SIGTERM)
    assert e.wait_exit() == APP_TERM_STATUS
    assert_agent_stopped_cleanly(e)


SHELLS = ["sh", "busybox sh", "bash"]


def _skip_missing(shell):
    if shell.split()[0] != "sh" and not shutil.which(shell.split()[0]):
        pytest.skip(f"{shell} is not installed")


@pytest.mark.parametrize("shell", SHELLS)
def test_an_agent_that_exits_is_started_again_and_the_reason_said(entrypoints, shell):
    """A mistyped app setting makes lockwarden exit 78 at start: the app
    runs on, and the entrypoint says so each time, with the status and what
    it means, and starts it again after a growing back-off."""
    _skip_missing(shell)
    e = entrypoints("plain", shell=shell,
                    env_extra={"LOCKWARDEN_POLICY_STUCK_AFTR": "20m"})
    e.send_stdin("")
    wait_for(lambda: "app: started" in e.out(), START_TIMEOUT_S, "the app", e.both)
    exited = ("lockwarden-entrypoint: lockwarden exited with status 78 (a configuration "
              "error: its own lines above name the setting to fix)")
    wait_for(lambda: "starting lockwarden again in 2 s" in e.err(), START_TIMEOUT_S,
             "the second restart", e.both)
    err = e.err()
    assert err.count(exited) >= 2, e.both()
    assert "starting lockwarden again in 1 s" in err
    assert err.index("again in 1 s") < err.index("again in 2 s")
    # The agent's own line names the setting.
    assert "LOCKWARDEN_POLICY_STUCK_AFTR" in err, e.both()
    assert err.count("lockwarden-entrypoint: lockwarden started (pid ") >= 2
    # A stop during the back-off stops at once, and leaves nothing behind.
    os.kill(e.pid1(), signal.SIGTERM)
    assert e.wait_exit() == APP_TERM_STATUS, e.both()
    assert "lockwarden-entrypoint: lockwarden stopped (status 78)" in e.err(), e.both()
    assert e.left_running() == [], e.both()


@pytest.mark.parametrize("shell", SHELLS)
def test_a_config_fixed_while_the_agent_is_down_brings_it_back(entrypoints, tmp_path, shell):
    _skip_missing(shell)
    cfg = tmp_path / "lw.ini"
    cfg.write_text("[policy]\nstuck_after = banana\n")
    e = entrypoints("plain", shell=shell, env_extra={"LOCKWARDEN_CONFIG": str(cfg)})
    e.send_stdin("")
    wait_for(lambda: "lockwarden exited with status 78" in e.err(), START_TIMEOUT_S,
             "the agent to refuse its configuration", e.both)
    assert "stuck_after" in e.err()
    cfg.write_text("[policy]\nstuck_after = 20m\n")
    e.wait_started()
    # Running again; a stop is the clean one.
    os.kill(e.pid1(), signal.SIGTERM)
    assert e.wait_exit() == APP_TERM_STATUS, e.both()
    assert_agent_stopped_cleanly(e)


@pytest.mark.parametrize("shell", SHELLS)
def test_an_agent_killed_is_started_again(entrypoints, shell):
    _skip_missing(shell)
    e = entrypoints("plain", shell=shell)
    e.send_stdin("")
    e.wait_started()
    first = int(e.err().split("lockwarden-entrypoint: lockwarden started (pid ")[1].split(")")[0])
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: e.err().count(f"watching {e.site}") == 2, START_TIMEOUT_S,
             "the agent to watch again", e.both)
    assert "lockwarden exited with status 137 (killed by signal 9)" in e.err(), e.both()
    (e.work / "stop-app").touch()
    assert e.wait_exit() == 3, e.both()
    assert_agent_stopped_cleanly(e)


def test_without_lockwarden_the_app_still_runs(entrypoints):
    e = entrypoints("plain", with_agent=False)
    e.send_stdin("")
    wait_for(lambda: "app: started" in e.out(), START_TIMEOUT_S, "the app", e.both)
    assert "lockwarden is not installed" in e.err()
    (e.work / "stop-app").touch()
    assert e.wait_exit() == 3
    assert e.left_running() == []


def test_no_app_is_a_usage_error(entrypoints):
    e = entrypoints("plain", app=False)
    e.send_stdin("")
    assert e.wait_exit() == 64
    assert "usage: entrypoint.sh APP" in e.err()
    assert e.left_running() == []


def _age_stuck_site(site):
    """A deployment that died holding the lock an hour ago."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S.0000000Z", time.gmtime(time.time() + 1200))
    (site / "locks" / "deployment").mkdir()
    (site / "locks" / "deployment" / "info.lock").write_text(
        f'{{"lockExpiry":"{stamp}","heldByPID":83,"heldByTID":45,'
        '"heldByOp":"Performing deployment","heldByWorker":"abc123"}')
    (site / "deployments" / "pending").write_text("")
    old = time.time() - 3600
    for dirpath, dirnames, filenames in os.walk(site, topdown=False):
        for name in dirnames + filenames:
            os.utime(os.path.join(dirpath, name), (old, old))


@needs_pidns
def test_restart_container_hook_ends_pid1_and_with_it_the_container(entrypoints, tmp_path):
    """The whole container-restart path: the agent clears a stuck site, runs
    restart-container, whose SIGTERM to PID 1 stops the app, the agent and
    the entrypoint, which exits with the app's status (the platform would
    then start the container again)."""
    site = tmp_path / "stuck-site"
    (site / "locks").mkdir(parents=True)
    (site / "deployments").mkdir()
    _age_stuck_site(site)
    e = entrypoints("pidns", env_extra={
        "LOCKWARDEN_SITE_ROOT": str(site),
        "LOCKWARDEN_POLICY_STUCK_AFTER": "2s",
        "LOCKWARDEN_POLICY_QUIET_PERIOD": "1s",
        "LOCKWARDEN_SCAN_RESCAN_INTERVAL": "500ms",
        "LOCKWARDEN_HOOK_COMMAND": str(RESTART_CONTAINER),
        "LOCKWARDEN_ARCHIVE_DIR": str(tmp_path / "archive")})
    e.send_stdin("")
    wait_for(lambda: "app: started" in e.out(), START_TIMEOUT_S, "the app", e.both)
    assert e.wait_exit() == APP_TERM_STATUS, e.both()
    err = e.err()
    assert "restart-container: sending SIGTERM to pid 1 (" in err, e.both()
    assert "app: got SIGTERM" in e.out()
    assert not (site / "locks" / "deployment").exists()
    assert_agent_stopped_cleanly(e)


# ----------------------------------------------------------- supervisord

class Supervisord:
    """The example block run by a real supervisord in the foreground, as a
    container's main process, its output collected in one file."""

    def __init__(self, tmp_path, env_extra=None):
        supervisord = shutil.which("supervisord")
        assert supervisord, "supervisor is in packaging/deps-container.txt"
        self.site = tmp_path / "site"
        (self.site / "locks").mkdir(parents=True)
        (self.site / "deployments").mkdir()
        text = (CONTAINER / "supervisord.conf").read_text()
        assert "command=/usr/bin/lockwarden run\n" in text
        conf = tmp_path / "supervisord.conf"
        conf.write_text(text.replace("command=/usr/bin/lockwarden run\n", f"command={BIN} run\n"))
        env = {k: v for k, v in os.environ.items() if not k.startswith("LOCKWARDEN_")}
        env.update({"LOCKWARDEN_SITE_ROOT": str(self.site), "LW_ENTRYPOINT_TEST": uuid.uuid4().hex,
                    "LOCKWARDEN_ARCHIVE_DIR": str(tmp_path / "archive")})
        env.update(env_extra or {})
        self.out_path = tmp_path / "out"
        # Append mode: a second open of the file (supervisord's children
        # open /dev/fd/1) must not write over the first.
        with open(self.out_path, "ab") as out:
            self.proc = subprocess.Popen([supervisord, "-n", "-c", str(conf),
                                          "-j", str(tmp_path / "supervisord.pid"),
                                          "-d", str(tmp_path)],
                                         env=env, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)

    def text(self):
        return self.out_path.read_text(errors="replace")

    def close(self):
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()


@pytest.fixture
def supervisord(tmp_path):
    started = []

    def start(**kw):
        started.append(Supervisord(tmp_path, **kw))
        return started[-1]
    yield start
    for s in started:
        s.close()
        print(f"==== supervisord\n{s.text()}")


def test_supervisord_block_runs_the_agent_and_stops_it(supervisord):
    s = supervisord()
    wait_for(lambda: f"watching {s.site}" in s.text(), START_TIMEOUT_S,
             "the agent's log on supervisord's stdout", s.text)
    s.proc.send_signal(signal.SIGTERM)
    assert s.proc.wait(timeout=STOP_TIMEOUT_S) == 0
    log = s.text()
    assert "info: stopping on SIGTERM" in log
    assert "stopped: lockwarden (exit status 0)" in log
    # supervisord's own lines once each: in the foreground they go to
    # stdout, and a log file on /dev/stdout would print each twice.
    spawned = [ln for ln in log.splitlines() if "spawned: 'lockwarden'" in ln]
    assert len(spawned) == 1, log
    lines = [ln for ln in log.splitlines() if ln.strip()]
    assert len(lines) == len(set(lines)), log


def test_supervisord_keeps_starting_an_agent_that_exits(supervisord):
    """A configuration error exits 78 at once: supervisord retries with its
    back-off (one second more each time) and does not give up after a few
    tries, which would leave the app unprotected for good."""
    s = supervisord(env_extra={"LOCKWARDEN_POLICY_STUCK_AFTR": "20m"})
    exited = "exited: lockwarden (exit status 78; not expected)"
    # Four failures are what the old startretries=3 allowed; the fifth
    # comes after 1+2+3+4 s of back-off.
    tries = lambda: len({ln for ln in s.text().splitlines() if exited in ln})  # noqa: E731
    wait_for(lambda: tries() >= 5 or "gave up" in s.text(), 40, "a fifth try", s.text)
    assert "gave up" not in s.text()
    assert "LOCKWARDEN_POLICY_STUCK_AFTR" in s.text()
    s.proc.send_signal(signal.SIGTERM)
    assert s.proc.wait(timeout=STOP_TIMEOUT_S) == 0


# ------------------------------------------------------------------- sshd

@needs_pidns
def test_sshd_settings_are_valid_and_listen_on_2222(tmp_path):
    sshd = "/usr/sbin/sshd"
    assert os.access(sshd, os.X_OK), "openssh-server is in packaging/deps-container.txt"
    key = tmp_path / "host_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    main = tmp_path / "sshd_config"
    main.write_text(f"Include {CONTAINER / 'sshd_config'}\nHostKey {key}\n")
    # sshd -t wants its privilege separation folder; a private /run keeps
    # this machine's own untouched.
    script = (f"mount -t tmpfs none /run && mkdir /run/sshd && "
              f"{sshd} -t -f {main} && {sshd} -T -f {main}")
    out = subprocess.run(["unshare", "--mount", "sh", "-c", script],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    effective = dict(line.split(" ", 1) for line in out.stdout.splitlines() if " " in line)
    assert effective["port"] == "2222"
    assert effective["permitrootlogin"] == "yes"
    assert effective["passwordauthentication"] == "yes"
    assert effective["permitemptypasswords"] == "no"
    # App Service's custom-container documentation: Ciphers must hold one of
    # its CBC ciphers and MACs one of its SHA-1 MACs, or the platform's SSH
    # console cannot connect; sshd -T shows what sshd really accepted.
    ciphers = effective["ciphers"].split(",")
    macs = effective["macs"].split(",")
    assert set(ciphers) & {"aes128-cbc", "3des-cbc", "aes256-cbc"}, ciphers
    assert set(macs) & {"hmac-sha1", "hmac-sha1-96"}, macs


def test_sshd_settings_hold_the_documented_cipher_and_mac_lines():
    """The exact lines of App Service's custom-container SSH documentation,
    read from the file (runs where sshd -t cannot: no PID namespace)."""
    lines = [ln.strip() for ln in (CONTAINER / "sshd_config").read_text().splitlines()]
    assert "Ciphers aes128-cbc,3des-cbc,aes256-cbc,aes128-ctr,aes192-ctr,aes256-ctr" in lines
    assert "MACs hmac-sha1,hmac-sha1-96" in lines
