"""test/share: the end-to-end share scenarios, each run on two kinds of share
(the `share` fixture): bindfs (a FUSE mirror of a local folder: local
semantics, blind to inotify) and a real SMB share (Samba's smbd on
127.0.0.1, mounted twice through the smbnetfs client: test/lib/smbshare.py).

`share.here` is the share as this host (lockwarden) sees it; `share.kudu` is
where the test writes as Kudu on another host would; `share.local` is the
share's folder on the server's own disk, to lay out a tree fast;
share.pause()/resume() make the share stop answering and answer again
(SIGSTOP to smbd, or to the bindfs daemon)."""

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "lib"))
sys.path.insert(0, str(HERE.parent / "robust"))

from lwtest import *  # noqa: E402,F401,F403  (fixtures, builders, Agent)
from lwtest import pytest_collection_modifyitems, stop_process, wait_for  # noqa: E402,F401
from robust_util import fuse_unavailable_reason, is_mount_point  # noqa: E402

import smbshare  # noqa: E402


class BindShare:
    """`bindfs -f` over a local folder: Kudu's side is the backing folder."""
    kind = "bindfs"

    def __init__(self, d):
        self.local = self.kudu = d / "backing"
        self.here = d / "mount"
        self.proc = None
        self.paused = False

    def start(self):
        self.kudu.mkdir(parents=True)
        self.here.mkdir(parents=True)
        self.proc = subprocess.Popen(["bindfs", "-f", "--no-allow-other", str(self.kudu),
                                      str(self.here)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_for(lambda: is_mount_point(self.here) or self.proc.poll() is not None, 10,
                 "bindfs to be mounted")
        if self.proc.poll() is not None:
            return f"bindfs exited {self.proc.returncode}: " + \
                self.proc.stderr.read().decode(errors="replace").strip()
        return None

    def daemon_pids(self):
        return [self.proc.pid]

    def pause(self):
        stop_process(self.proc.pid)
        self.paused = True

    def resume(self):
        os.kill(self.proc.pid, signal.SIGCONT)
        self.paused = False

    def stop(self):
        if self.proc is None:
            return
        if self.paused:
            self.resume()
        fm = shutil.which("fusermount3") or shutil.which("fusermount")
        subprocess.run([fm, "-u", "-z", str(self.here)], capture_output=True, timeout=10)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)


class SambaShare(smbshare.SambaSite):
    kind = "samba"

    def daemon_pids(self):
        return (self.server.pids() + self.here_mount.pids() + self.kudu_mount.pids())


@pytest.fixture(params=["bindfs", "samba"])
def share(request, tmp_path):
    """One share, seen from this host and from Kudu's (see the module's doc)."""
    if request.param == "bindfs":
        reason = fuse_unavailable_reason()
        s = BindShare(tmp_path / "bindfs")
    else:
        reason = smbshare.unavailable_reason()
        s = SambaShare(tmp_path / "samba")
    if reason:
        pytest.skip(f"needs a {request.param} share: {reason}")
    try:
        why = s.start()
        if why:
            pytest.fail(f"the {request.param} share could not be set up: {why}", pytrace=False)
        yield s
    finally:
        s.stop()
