#!/usr/bin/env python3
"""What AT_STATX_FORCE_SYNC costs per cleanup on a FUSE mount (bindfs, as the
tests use to stand in for the share). Every re-check before a cleanup acts
(evidence.c, reap.c) reads attributes with it, so a client's attribute cache
cannot hide a write made just before.

Measures one statx of a file with the cache allowed (AT_STATX_SYNC_AS_STAT)
and with it forced, over a bounded number of calls, and multiplies the
difference by the fresh reads of the cleanup of the test suite's stuck site
(5 targets, 12 evidence items: about 40 reads). Prints one line per figure.
Needs bindfs and root (or a user allowed to mount FUSE)."""

import ctypes
import os
import shutil
import subprocess
import sys
import tempfile
import time

AT_SYMLINK_NOFOLLOW = 0x100
AT_STATX_SYNC_AS_STAT = 0x0000
AT_STATX_FORCE_SYNC = 0x2000
STATX_BASIC_STATS = 0x7ff
SYS_STATX = 332              # x86_64
CALLS = 2000
READS_PER_CLEANUP = 40

libc = ctypes.CDLL(None, use_errno=True)


def per_call_us(dir_fd, name, flags):
    buf = ctypes.create_string_buffer(256)
    start = time.perf_counter()
    for _ in range(CALLS):
        if libc.syscall(SYS_STATX, dir_fd, name, AT_SYMLINK_NOFOLLOW | flags,
                        STATX_BASIC_STATS, buf) != 0:
            raise OSError(ctypes.get_errno(), "statx")
    return (time.perf_counter() - start) / CALLS * 1e6


def main():
    if not shutil.which("bindfs"):
        print("bindfs is not installed: nothing measured")
        return 0
    base = tempfile.mkdtemp(prefix="lw-force-sync-")
    src, mnt = os.path.join(base, "src"), os.path.join(base, "mnt")
    os.mkdir(src)
    os.mkdir(mnt)
    try:
        subprocess.run(["bindfs", src, mnt], check=True)
        with open(os.path.join(mnt, "info.lock"), "w") as f:
            f.write("{}")
        fd = os.open(mnt, os.O_RDONLY | os.O_DIRECTORY)
        try:
            name = b"info.lock"
            per_call_us(fd, name, AT_STATX_SYNC_AS_STAT)     # warm up
            cached = per_call_us(fd, name, AT_STATX_SYNC_AS_STAT)
            forced = per_call_us(fd, name, AT_STATX_FORCE_SYNC)
        finally:
            os.close(fd)
        print(f"statx on bindfs, cache allowed: {cached:.1f} us per call")
        print(f"statx on bindfs, AT_STATX_FORCE_SYNC: {forced:.1f} us per call")
        extra_ms = max(0.0, forced - cached) * READS_PER_CLEANUP / 1000
        print(f"per cleanup ({READS_PER_CLEANUP} fresh reads): {extra_ms:.2f} ms more")
    finally:
        subprocess.run(["fusermount", "-u", mnt], check=False)
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
