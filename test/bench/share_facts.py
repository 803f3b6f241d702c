#!/usr/bin/env python3
"""share_facts.py - what an SMB share mounted through smbnetfs gives, measured:
the facts README's share section rests on. Starts its own Samba server on
127.0.0.1 and two client mounts (test/lib/smbshare.py), probes, prints one
line per fact, and tears everything down.

    python3 test/bench/share_facts.py
"""

import ctypes
import errno
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "lib"))
import smbshare  # noqa: E402

RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2
AT_FDCWD = -100
_libc = ctypes.CDLL(None, use_errno=True)


def renameat2(a, b, flags):
    r = _libc.renameat2(AT_FDCWD, os.fsencode(str(a)), AT_FDCWD, os.fsencode(str(b)),
                        ctypes.c_uint(flags))
    return 0 if r == 0 else -ctypes.get_errno()


def err(e):
    return "ok" if e == 0 else errno.errorcode.get(-e, str(e))


def first_seen(path, pred, timeout=5.0):
    """Seconds until pred(os.stat(path)) holds, polling, or None."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            if pred(os.stat(path)):
                return time.monotonic() - t0
        except FileNotFoundError:
            pass
        time.sleep(0.01)
    return None


def probe(s):
    here, kudu = s.here, s.kudu
    out = []

    def fact(name, value):
        out.append((name, value))
        print(f"{name:52} {value}", flush=True)

    # Renames: plain, and the two flags Linux file systems give.
    (kudu / "a").write_text("a")
    (kudu / "b").write_text("b")
    os.replace(here / "a", here / "b")
    fact("rename(a, b) over an existing file", "ok")
    # The other client's entry cache still says "a" exists: its create is
    # sent as an open of that entry, which the server no longer has.
    t0 = time.monotonic()
    first = None
    while True:
        try:
            (kudu / "a").write_text("a")
            break
        except FileNotFoundError:
            first = first or "ENOENT"
            time.sleep(0.01)
    fact("creating a name the other client just renamed away",
         f"{first} for {time.monotonic() - t0:.2f}s" if first else "ok")
    fact("renameat2(RENAME_NOREPLACE)", err(renameat2(here / "a", here / "c", RENAME_NOREPLACE)))
    fact("renameat2(RENAME_EXCHANGE)", err(renameat2(here / "b", here / "a", RENAME_EXCHANGE)))

    # Exclusive create: the one atomic primitive.
    fd = os.open(here / "x", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    os.close(fd)
    try:
        os.close(os.open(kudu / "x", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        fact("O_CREAT|O_EXCL on an existing name, other client", "created (NOT exclusive)")
    except FileExistsError:
        fact("O_CREAT|O_EXCL on an existing name, other client", "EEXIST")

    # ftruncate on a write-only descriptor (how main made its claim).
    fd = os.open(here / "t", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(fd, b"12345678")
    t0 = time.monotonic()
    try:
        os.ftruncate(fd, 2)
        fact("ftruncate on an O_WRONLY descriptor", "ok")
    except OSError as e:
        fact("ftruncate on an O_WRONLY descriptor",
             f"{errno.errorcode[e.errno]} after {time.monotonic() - t0:.1f}s")
    os.close(fd)
    fd = os.open(here / "t", os.O_RDWR)
    try:
        os.ftruncate(fd, 2)
        fact("ftruncate on an O_RDWR descriptor", "ok")
    except OSError as e:
        fact("ftruncate on an O_RDWR descriptor", errno.errorcode[e.errno])
    os.close(fd)

    # ctime: does a metadata change (chmod) or a backdated mtime move it?
    (kudu / "c1").write_text("c")
    os.utime(kudu / "c1", (1_000_000_000, 1_000_000_000))
    st = os.stat(here / "c1")
    fact("ctime after utime(mtime = 2001)", "equals mtime (backdated too)"
         if abs(st.st_ctime - st.st_mtime) < 1 else f"now (ctime - mtime = {st.st_ctime - st.st_mtime:.0f}s)")

    # Inode numbers across a rename.
    ino = os.stat(here / "c1").st_ino
    os.rename(kudu / "c1", kudu / "c2")
    fact("st_ino kept across a rename (seen by the other client)",
         "yes" if os.stat(here / "c2").st_ino == ino else f"no ({ino} -> {os.stat(here / 'c2').st_ino})")

    # An appender that keeps its handle open (a build's logger), on the other host.
    log = kudu / "open.log"
    # Read-write and a seek to the end is what works through this client
    # (O_APPEND fails: see below).
    f = os.fdopen(os.open(log, os.O_RDWR | os.O_CREAT, 0o644), "w")
    f.seek(0, os.SEEK_END)
    f.write("start\n")
    f.flush()
    seen = set()
    sizes = set()
    for i in range(6):
        time.sleep(1.5)
        f.write(f"line {i}\n")
        f.flush()
        os.fsync(f.fileno())
        first_seen(here / "open.log", lambda st, n=f.tell(): st.st_size == n, 2.0)
        st = os.stat(here / "open.log")
        seen.add(st.st_mtime)
        sizes.add(st.st_size)
    fact("open handle, 6 appends 1.5 s apart: sizes / mtimes seen",
         f"{len(sizes)} sizes, {len(seen)} mtimes")
    before = os.stat(here / "open.log")
    f.close()
    took = first_seen(here / "open.log", lambda st: st.st_mtime != before.st_mtime)
    fact("... mtime moves once the handle is closed, after",
         "never (5s)" if took is None else f"{took:.2f}s")

    # The attribute cache: how late a closed append and a new entry show up.
    delays = []
    for i in range(5):
        p = here / "ac"
        (kudu / "ac").write_text("x" * (i + 1))
        d = first_seen(p, lambda st, n=i + 1: st.st_size == n)
        delays.append(d if d is not None else 99)
    fact("closed append seen by this host after (5 tries)",
         " ".join(f"{d:.2f}s" for d in delays))
    delays = []
    for i in range(5):
        # (The share's own top folder always shows mtime 0 through
        # smbnetfs: use a folder in it.)
        (kudu / "dir").mkdir(exist_ok=True)
        m0 = os.stat(here / "dir").st_mtime
        time.sleep(1.05)  # mtimes have a resolution; let the next one differ
        (kudu / "dir" / f"new{i}").write_text("")
        d = first_seen(here / "dir", lambda st, m=m0: st.st_mtime != m)
        delays.append(d if d is not None else 99)
    fact("folder mtime after a create seen after (5 tries)",
         " ".join(f"{d:.2f}s" for d in delays))

    # Last of the writes: after a failure smbnetfs answers EIO at once to
    # every call for a while (its negative cache, neg_cache_timeout 3 s).
    t0 = time.monotonic()
    try:
        open(kudu / "open.log", "a").close()
        fact("open(O_APPEND)", "ok")
    except OSError as e:
        fact("open(O_APPEND)", f"{errno.errorcode[e.errno]} after {time.monotonic() - t0:.1f}s")
    t0 = time.monotonic()
    try:
        os.close(os.open(kudu / "after-eio", os.O_RDWR | os.O_CREAT, 0o644))
        fact("... then a create of another name", "ok")
    except OSError as e:
        fact("... then a create of another name", f"{errno.errorcode[e.errno]} "
             f"after {time.monotonic() - t0:.1f}s (the client's negative cache)")

    # A share call while the server is paused: how long until it fails.
    s.pause()
    res = {}

    def blocked():
        t0 = time.monotonic()
        try:
            os.stat(here / "never-there")
            res["e"] = "answered"
        except OSError as e:
            res["e"] = errno.errorcode.get(e.errno, str(e.errno))
        res["t"] = time.monotonic() - t0
    th = threading.Thread(target=blocked, daemon=True)
    th.start()
    th.join(smbshare.SMB_TIMEOUT_MS / 1000 * 4)
    s.resume()
    th.join(5)
    fact("a call while smbd is paused fails with", f"{res.get('e')} after {res.get('t', 0):.1f}s")
    return out


def main():
    reason = smbshare.unavailable_reason()
    if reason:
        print(f"share_facts: skipped: {reason}")
        return 0
    with tempfile.TemporaryDirectory(prefix="lw-share-facts-") as d:
        s = smbshare.SambaSite(d)
        try:
            why = s.start()
            if why:
                print(f"share_facts: could not set up the share: {why}")
                return 1
            probe(s)
        finally:
            s.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
