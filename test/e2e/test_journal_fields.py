"""Under systemd (stderr is the journal: JOURNAL_STREAM), each event goes to
the journal's socket with sd_journal_sendv, its fields as LOCKWARDEN_*
journal fields; with no journal socket, the "<N>" lines stay as they were.

The journal here is a datagram socket the test binds and reads, mounted at
/run/systemd/journal/socket in a private mount namespace of the agent's own
(root and unshare(1) needed), so no real journal is involved."""

import os
import re
import shutil
import socket
import struct
import subprocess
import threading

import pytest

from conftest import (BIN, ONCE_CLEARED, STUCK_LEFTOVERS, build_stuck_site, clean_env,
                      write_config)

JOURNAL_SOCKET = "/run/systemd/journal/socket"


def parse_native(datagram):
    """The journal's native protocol: KEY=value lines, or KEY, a newline, a
    64-bit little-endian length, the value and a newline (values holding a
    newline). Returns {key: [values]}."""
    fields = {}
    i = 0
    while i < len(datagram):
        nl = datagram.index(b"\n", i)
        line = datagram[i:nl]
        if b"=" in line:
            key, _, value = line.partition(b"=")
            i = nl + 1
        else:
            key = line
            (size,) = struct.unpack_from("<Q", datagram, nl + 1)
            start = nl + 1 + 8
            value = datagram[start:start + size]
            assert datagram[start + size:start + size + 1] == b"\n"
            i = start + size + 1
        fields.setdefault(key.decode(), []).append(value.decode("utf-8", "surrogateescape"))
    return fields


def stream_of(path):
    st = os.stat(path)
    return f"{st.st_dev}:{st.st_ino}"


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None,
                    reason="needs root and unshare(1) for a private /run with a stand-in journal")
def test_events_reach_the_journal_with_their_fields(site, tmp_path):
    build_stuck_site(site)
    cfg = write_config(tmp_path / "lw.ini", site, log={"format": "json"})
    journal_dir = tmp_path / "journal"
    journal_dir.mkdir()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(journal_dir / "socket"))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    err_path = tmp_path / "agent.stderr"
    err_path.touch()
    script = ('mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/journal && '
              'mount --bind "$0" /run/systemd/journal && exec "$@"')
    # The stand-in journal is read while the agent runs, as journald does: a
    # datagram socket queues only net.unix.max_dgram_qlen (10) datagrams,
    # and sd_journal_sendv then waits for room.
    datagrams = []
    done = threading.Event()

    def drain():
        sock.settimeout(0.1)
        while not done.is_set():
            try:
                datagrams.append(sock.recv(1 << 20))
            except socket.timeout:
                continue

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        with open(err_path, "r+b") as err:
            r = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                                script, str(journal_dir), BIN, "run", "-c", str(cfg), "--once"],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                               env=clean_env(JOURNAL_STREAM=stream_of(err_path)), timeout=60)
    finally:
        done.set()
        reader.join()
    sock.setblocking(False)
    while True:
        try:
            datagrams.append(sock.recv(1 << 20))
        except BlockingIOError:
            break
    sock.close()
    entries = [parse_native(d) for d in datagrams]
    assert r.returncode == ONCE_CLEARED, err_path.read_text(errors="replace")
    # Everything went to the journal: nothing doubled on stderr.
    assert err_path.read_bytes() == b""
    assert entries, "nothing reached the journal"
    for e in entries:
        for key in ("MESSAGE", "PRIORITY", "SYSLOG_IDENTIFIER", "LOCKWARDEN_EVENT",
                    "LOCKWARDEN_INSTANCE"):
            assert len(e.get(key, [])) == 1, (key, e)
        assert e["SYSLOG_IDENTIFIER"] == ["lockwarden"]
    removed = [e for e in entries if e["LOCKWARDEN_EVENT"] == ["removed"]]
    assert [e["LOCKWARDEN_ENTRY"][0] for e in removed] == STUCK_LEFTOVERS
    assert {e["PRIORITY"][0] for e in removed} == {"6"}
    incident, = [e for e in entries if e["LOCKWARDEN_EVENT"] == ["incident"]]
    assert incident["PRIORITY"] == ["4"]
    # A list is one value, a path a line.
    assert incident["LOCKWARDEN_WILL_REMOVE"][0].split("\n") == STUCK_LEFTOVERS


@pytest.mark.skipif(os.path.exists(JOURNAL_SOCKET),
                    reason="a real journal runs here: it would take the entries")
def test_without_a_journal_socket_the_priority_lines_stay(site, tmp_path):
    build_stuck_site(site)
    cfg = write_config(tmp_path / "lw.ini", site, log={"format": "json"})
    err_path = tmp_path / "agent.stderr"
    err_path.touch()
    with open(err_path, "r+b") as err:
        r = subprocess.run([BIN, "run", "-c", str(cfg), "--once"], stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=err,
                           env=clean_env(JOURNAL_STREAM=stream_of(err_path)), timeout=60)
    lines = err_path.read_text().splitlines()
    assert r.returncode == ONCE_CLEARED, lines
    assert lines and all(line[:3] in ("<3>", "<4>", "<6>", "<7>") for line in lines), lines
    removed = [m.group(1) for m in map(re.compile(r"^<6>removed (\S+) ").match, lines) if m]
    assert removed == STUCK_LEFTOVERS
