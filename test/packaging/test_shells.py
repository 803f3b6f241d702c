"""The hooks under every shell an image may have as /bin/sh, with the HTTP
client that image has.

Each hook runs under dash (Debian's /bin/sh), bash, and BusyBox ash
(Alpine's /bin/sh), against the loopback ARM stand-in of test_hooks.py:
with curl, and with nothing but BusyBox's applets on PATH (an Alpine image
without curl: BusyBox's wget, sed, tr, ...). The entrypoint's own runs
under the three shells are in test_container.py.
"""

import os
import shutil
import signal
import socket
import ssl
import subprocess
import threading
from pathlib import Path

import pytest

from lwtest import wait_for
from test_hooks import (IDENTITY_HEADER, RESTART_CONTAINER, RESTART_SITE, SITE, SITE_PATH,
                        TOKEN, StandIn, assert_token_request, site_env, ssh_env)

BUSYBOX = shutil.which("busybox")
SHELLS = {"dash": shutil.which("dash"), "bash": shutil.which("bash"),
          "busybox-ash": BUSYBOX}
# The applets the hooks use: what an Alpine image without curl offers.
APPLETS = ["sh", "sed", "tr", "cut", "grep", "mktemp", "rm", "cat", "stat", "id", "wget",
           "timeout", "sleep", "readlink", "printf", "kill", "echo"]


def shell_argv(name):
    path = SHELLS[name]
    if not path:
        pytest.skip(f"{name} is not installed (packaging/deps-container.txt)")
    return [path, "sh"] if name == "busybox-ash" else [path]


@pytest.fixture(params=list(SHELLS))
def shell(request):
    return shell_argv(request.param)


def busybox_path(tmp_path):
    """A PATH folder of BusyBox applets and nothing else."""
    if not BUSYBOX:
        pytest.skip("busybox is not installed (packaging/deps-container.txt)")
    d = tmp_path / "busybox-bin"
    d.mkdir(exist_ok=True)
    for applet in APPLETS:
        if not (d / applet).exists():
            (d / applet).symlink_to(BUSYBOX)
    return str(d)


@pytest.fixture(params=["curl", "busybox-wget"])
def client_path(request, tmp_path):
    if request.param == "curl":
        assert shutil.which("curl"), "curl is in packaging/deps-container.txt"
        return os.environ["PATH"]
    return busybox_path(tmp_path)


@pytest.fixture
def stand_in():
    s = StandIn()
    yield s
    s.close()


def run(argv, env, timeout=30):
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)


# ------------------------------------------------------------ restart-site

def test_restart_site_restarts_under_each_shell_and_client(stand_in, shell, client_path):
    proc = run(shell + [str(RESTART_SITE)], site_env(stand_in, PATH=client_path))
    assert proc.returncode == 0, proc.stderr
    assert f"ARM accepted the restart of site {SITE}" in proc.stdout
    assert [r["method"] for r in stand_in.requests] == ["GET", "GET", "POST"]
    assert_token_request(stand_in.requests[0])
    get, post = stand_in.requests[1], stand_in.requests[2]
    assert get["path"] == SITE_PATH and get["headers"]["authorization"] == f"Bearer {TOKEN}"
    assert post["path"] == SITE_PATH + "/restart"
    assert post["headers"]["authorization"] == f"Bearer {TOKEN}"
    assert post["headers"]["content-length"] == "0"
    for secret in (TOKEN, IDENTITY_HEADER):
        assert secret not in proc.stdout + proc.stderr


def test_restart_site_check_under_each_shell_and_client(stand_in, shell, client_path):
    proc = run(shell + [str(RESTART_SITE), "--check"], site_env(stand_in, PATH=client_path))
    assert proc.returncode == 0, proc.stderr
    assert "restart-site: ok:" in proc.stdout
    assert [r["method"] for r in stand_in.requests] == ["GET", "GET"]


@pytest.mark.parametrize("status,code,words", [
    (403, 3, "lacks Microsoft.Web/sites/restart/Action"),
    (404, 4, "ARM answered HTTP 404"),
    (409, 5, "409 Conflict"),
    (500, 1, "ARM answered HTTP 500"),
])
def test_restart_site_error_answers_through_wget(stand_in, shell, tmp_path, status, code, words):
    """wget exits non-zero on any 4xx/5xx; the hook still reads the status
    and says what it means."""
    stand_in.answers["arm"] = (status, '{"error": {"code": "X"}}')
    proc = run(shell + [str(RESTART_SITE)], site_env(stand_in, PATH=busybox_path(tmp_path)))
    assert proc.returncode == code, proc.stderr
    assert words in proc.stderr


def test_restart_site_through_wget_cannot_connect(stand_in, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = run(shell_argv("busybox-ash") + [str(RESTART_SITE)],
               site_env(stand_in, PATH=busybox_path(tmp_path),
                        LOCKWARDEN_RESTART_ARM_URL=f"http://127.0.0.1:{port}"))
    assert proc.returncode == 6, proc.stderr
    assert "failed:" in proc.stderr


def test_restart_site_through_wget_times_out(stand_in, tmp_path):
    stand_in.answers["site"] = "hang"
    proc = run(shell_argv("busybox-ash") + [str(RESTART_SITE)],
               site_env(stand_in, PATH=busybox_path(tmp_path), LOCKWARDEN_RESTART_TIMEOUT="1"))
    assert proc.returncode == 6, proc.stderr
    assert "timed out after 1 s" in proc.stderr
    assert stand_in.of("arm") == []


class TLSListener:
    """An https server with a self-signed certificate on loopback: records
    every request line and header block it gets, answers 404."""

    def __init__(self, tmp_path):
        key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                       check=True, capture_output=True, timeout=60)
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(30)
        self.port = self.sock.getsockname()[1]
        self.received = []
        self.connections = 0
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            try:
                with self.ctx.wrap_socket(conn, server_side=True) as tls:
                    tls.settimeout(10)
                    data = b""
                    while b"\r\n\r\n" not in data:
                        chunk = tls.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                    self.received.append(data.decode(errors="replace"))
                    tls.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n"
                                b"Connection: close\r\n\r\n")
            except (OSError, ssl.SSLError):
                pass

    def close(self):
        self.sock.close()


@pytest.mark.skipif(not shutil.which("openssl"), reason="openssl makes the test certificate")
def test_restart_site_refuses_a_wget_that_does_not_validate_certificates(stand_in, tmp_path):
    """Debian's BusyBox wget speaks TLS without checking the certificate:
    the hook must find that out with a request that carries no secret, and
    stop before the token goes to whoever answers."""
    tls = TLSListener(tmp_path)
    try:
        proc = run(shell_argv("busybox-ash") + [str(RESTART_SITE)],
                   site_env(stand_in, PATH=busybox_path(tmp_path),
                            LOCKWARDEN_RESTART_ARM_URL=f"https://127.0.0.1:{tls.port}"))
        assert proc.returncode == 69, proc.stderr
        assert "does not validate TLS certificates" in proc.stderr
        assert "Add curl" in proc.stderr
        # The probe reached the server (so the refusal rests on what wget
        # said; BusyBox's TLS may not even finish the handshake), and
        # nothing anywhere carried a secret.
        assert tls.connections, "the probe never reached the https stand-in"
        for request in tls.received:
            assert TOKEN not in request and IDENTITY_HEADER not in request
            assert "authorization" not in request.lower()
        assert stand_in.requests == []
    finally:
        tls.close()


# ----------------------------- from SSH: PID 1's environment not readable

def test_restart_site_check_says_when_pid1_environment_cannot_be_read(stand_in, shell, tmp_path):
    """An SSH session that is not root (or a root whose read of PID 1's
    environment is refused): the hook says that it could not read PID 1's
    environment and what to do, instead of nothing (then a misleading "no
    managed identity") or the shell's raw "cannot open" error."""
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root and setpriv")
    fake_proc = tmp_path / "proc"
    (fake_proc / "1").mkdir(parents=True)
    environ = fake_proc / "1" / "environ"
    environ.write_bytes(b"IDENTITY_ENDPOINT=http://127.0.0.1:1/msi/token\0")
    environ.chmod(0o400)  # root's, as PID 1's is
    tmp_path.chmod(0o755)
    env = ssh_env(stand_in, LOCKWARDEN_ENV_FILE=str(tmp_path / "no-such-file"),
                  LOCKWARDEN_PROC=str(fake_proc), TMPDIR=str(tmp_path))
    argv = [shutil.which("setpriv"), "--reuid=65534", "--regid=65534", "--clear-groups"] + \
        shell + [str(RESTART_SITE), "--check"]
    proc = run(argv, env)
    assert "cannot open" not in proc.stderr, proc.stderr
    assert "Permission denied" not in proc.stderr, proc.stderr
    said = " ".join(proc.stderr.split())
    assert "cannot read PID 1's environment" in said, proc.stderr
    assert "as uid 65534" in said
    assert "Run this as root" in said
    assert stand_in.requests == []


# -------------------------------------------------------- restart-container

def test_restart_container_ends_its_target_under_each_shell(shell, tmp_path):
    target = subprocess.Popen(["sleep", "300"])
    try:
        env = {"PATH": busybox_path(tmp_path), "LOCKWARDEN_RESTART_PID": str(target.pid)}
        proc = run(shell + [str(RESTART_CONTAINER)], env)
        assert proc.returncode == 0, proc.stderr
        assert f"pid {target.pid} (sleep) has ended" in proc.stdout
        assert target.wait(timeout=5) == -signal.SIGTERM
    finally:
        target.kill()
        target.wait()


def test_restart_container_check_signals_nothing(shell, tmp_path):
    target = subprocess.Popen(["sleep", "300"])
    try:
        env = {"PATH": busybox_path(tmp_path), "LOCKWARDEN_RESTART_PID": str(target.pid)}
        proc = run(shell + [str(RESTART_CONTAINER), "--check"], env)
        assert proc.returncode == 0, proc.stderr
        assert f"SIGTERM would go to pid {target.pid} (sleep)" in proc.stdout
        assert "Nothing was signalled" in proc.stdout
        assert target.poll() is None
    finally:
        target.kill()
        target.wait()


def test_restart_container_check_finds_a_target_that_ignores_sigterm(shell, tmp_path):
    target = subprocess.Popen(["/bin/sh", "-c", "trap '' TERM; while :; do sleep 1; done"])
    try:
        env = {"PATH": busybox_path(tmp_path), "LOCKWARDEN_RESTART_PID": str(target.pid)}
        proc = run(shell + [str(RESTART_CONTAINER), "--check"], env)
        assert proc.returncode == 3, proc.stderr
        assert "ignores SIGTERM" in proc.stderr
        assert target.poll() is None
    finally:
        target.kill()
        target.wait()


def _pidns_ok():
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return False
    r = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "sh", "-c", "echo $$"],
                       capture_output=True, text=True, timeout=10)
    return r.returncode == 0 and r.stdout.strip() == "1"


@pytest.mark.skipif(not _pidns_ok(), reason="needs root and unshare --pid")
@pytest.mark.parametrize("pid1,code,words", [
    ("exec sleep 300", 3, "pid 1 (sleep) has no SIGTERM handler"),
    ("trap 'exit 0' TERM; while :; do sleep 1; done", 0, "SIGTERM would go to pid 1"),
], ids=["no-handler", "handler"])
def test_restart_container_check_run_by_hand_never_signals_pid1(shell, tmp_path, pid1, code, words):
    """In a container (a PID namespace), run by hand with --check: PID 1 is
    not signalled, and one that would ignore SIGTERM is named."""
    box = subprocess.Popen(["unshare", "--pid", "--fork", "--mount-proc", "sh", "-c", pid1])
    try:
        # Find PID 1 of the namespace: the unshare child.
        def ns_pid1():
            out = subprocess.run(["pgrep", "-P", str(box.pid)], capture_output=True, text=True)
            return out.stdout.split()[0] if out.stdout.split() else None
        child = wait_for(ns_pid1, 10, "the namespace's PID 1")
        if pid1.startswith("exec"):
            wait_for(lambda: Path(f"/proc/{child}/comm").read_text().strip() == "sleep", 10,
                     "PID 1 to be sleep")
        else:
            wait_for(lambda: int(Path(f"/proc/{child}/status").read_text()
                                 .split("SigCgt:")[1].split()[0], 16) & (1 << 14), 10,
                     "PID 1's SIGTERM trap")
        argv = [shutil.which("nsenter"), "-t", child, "-p", "-m"] + shell + [str(RESTART_CONTAINER), "--check"]
        proc = run(argv, {"PATH": busybox_path(tmp_path)})
        assert proc.returncode == code, proc.stdout + proc.stderr
        assert words in proc.stdout + proc.stderr
        assert "Nothing was signalled" in proc.stdout + proc.stderr
        assert box.poll() is None, "PID 1 was signalled"
    finally:
        box.kill()
        box.wait()
