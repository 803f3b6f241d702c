"""A real SMB share for the tests: Debian's smbd on 127.0.0.1 only, with its
own smb.conf, state, lock, cache and private folders under a temporary
folder and a free high port, so no system service is involved; and
smbnetfs, a FUSE SMB client, mounting that one share as often as a test
needs (one mount for "this host", where lockwarden runs, one for "Kudu on
another host", where the test writes as Kudu would). The kernel's cifs
client is not used: this kernel has no cifs module.

Each client mount is its own smbnetfs process with its own HOME, so its
attribute cache and its SMB session are its own, as another host's would be.

Usable without pytest (test/bench uses it): every method that cannot work
here returns or raises a reason instead of skipping.
"""

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from lwtest import stop_process

START_TIMEOUT_S = 15.0
SHARE = "share"
USER = "root"
PASSWORD = "lockwarden-test"
# smbnetfs's own default: how long it waits for the server's reply before
# it fails the call with EIO (smbnetfs.conf: smb_timeout).
SMB_TIMEOUT_MS = 20000


def unavailable_reason():
    """Why a Samba share cannot be made here, or None when it can."""
    missing = [p for p, b in (("samba", "smbd"), ("samba-common-bin", "smbpasswd"),
                              ("smbnetfs", "smbnetfs"), ("fuse3", "fusermount3"))
               if not (shutil.which(b) or os.path.exists(f"/usr/sbin/{b}"))]
    if missing:
        return ("not installed: " + " ".join(missing) +
                " (apt-get install samba smbnetfs; see packaging/deps-share.txt)")
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse does not exist (no FUSE in this kernel or container)"
    return None


def _bin(name):
    """The program's path: smbd lives in /usr/sbin, which a user's PATH may lack."""
    return shutil.which(name) or f"/usr/sbin/{name}"


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _is_mount_point(path):
    target = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        return any(len(fl) > 4 and fl[4] == target for fl in (ln.split(" ") for ln in f))


def _listening(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


class SambaServer:
    """smbd in the foreground (-F, --no-process-group) in a session of its
    own, so pause() stops the listener and every connection's child at
    once (SIGSTOP to the group), as a share whose server stops answering."""

    def __init__(self, workdir):
        self.dir = Path(workdir)
        self.path = self.dir / "data"        # what the share holds, on local disk
        self.conf = self.dir / "smb.conf"
        self.port = None
        self.proc = None
        self.paused = False

    def _write_conf(self):
        d = self.dir
        for sub in ("data", "state", "lock", "cache", "private", "pid", "run", "log"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        self.conf.write_text(f"""[global]
  workgroup = LWTEST
  netbios name = LWTEST
  server role = standalone server
  interfaces = 127.0.0.1
  bind interfaces only = yes
  smb ports = {self.port}
  disable netbios = yes
  server min protocol = SMB2
  state directory = {d}/state
  lock directory = {d}/lock
  cache directory = {d}/cache
  private dir = {d}/private
  pid directory = {d}/pid
  ncalrpc dir = {d}/run
  log file = {d}/log/smbd.log
  passdb backend = tdbsam:{d}/private/passdb.tdb
  load printers = no
  printing = bsd
  printcap name = /dev/null
  disable spoolss = yes
  smbd profiling level = count
[{SHARE}]
  path = {self.path}
  read only = no
  force user = root
""")

    def start(self):
        """Returns None once smbd listens, or why it could not start."""
        self.port = _free_port()
        self._write_conf()
        r = subprocess.run([_bin("smbpasswd"), "-c", str(self.conf), "-a", "-s", USER],
                           input=f"{PASSWORD}\n{PASSWORD}\n", capture_output=True, text=True,
                           timeout=START_TIMEOUT_S)
        if r.returncode != 0:
            return f"smbpasswd exited {r.returncode}: {r.stderr.strip()}"
        self._log = open(self.dir / "log" / "smbd.out", "wb")
        self.proc = subprocess.Popen([_bin("smbd"), "-F", "--no-process-group", "-s", str(self.conf),
                                      "--debug-stdout", "-d0"],
                                     stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return f"smbd exited {self.proc.returncode}: " + \
                    (self.dir / "log" / "smbd.out").read_text(errors="replace")[-500:]
            if _listening(self.port):
                return None
            time.sleep(0.05)
        return f"smbd did not listen on 127.0.0.1:{self.port} within {START_TIMEOUT_S}s"

    def pids(self):
        """smbd's own pid and every child of it (one per connection)."""
        out = []
        for p in os.listdir("/proc"):
            if not p.isdigit():
                continue
            try:
                with open(f"/proc/{p}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError):
                continue
            # fields[3] is the session id (stat field 6).
            if int(fields[3]) == self.proc.pid:
                out.append(int(p))
        return out

    def pause(self):
        """SIGSTOP to smbd and its children; waits until they are stopped."""
        os.killpg(self.proc.pid, signal.SIGSTOP)
        for pid in self.pids():
            stop_process(pid)
        self.paused = True

    def resume(self):
        os.killpg(self.proc.pid, signal.SIGCONT)
        self.paused = False

    def stop(self):
        if self.proc is None:
            return
        try:
            if self.paused:
                self.resume()
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)
        except ProcessLookupError:
            pass
        # Connection children may outlive the parent for a moment.
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._stop_rpc_helpers()
        self._log.close()
        self.proc = None

    def _stop_rpc_helpers(self):
        """smbd starts samba-dcerpcd and its rpcd_* workers on demand, in a
        process group of their own: they outlived every test (171 of them
        after one run of the suite). They are found by this server's
        configuration file on their command line."""
        conf = str(self.conf).encode()
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue
            if any(a.endswith(conf) for a in argv) and any(b"rpcd" in a for a in argv[:1]):
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass


class SmbMount:
    """One smbnetfs client (in the foreground, so its pid is known) mounting
    the server on `mountpoint`; `.root` is the share's top folder in it."""

    def __init__(self, server, mountpoint, home, smb_timeout_ms=SMB_TIMEOUT_MS, retries=None,
                 env=None):
        """env: more environment for smbnetfs (a test preloads pause_shim.c
        into it to hold one create between the kernel's lookup and the
        server)."""
        self.server = server
        self.extra_env = dict(env or {})
        self.retries = retries
        self.mountpoint = Path(mountpoint)
        self.home = Path(home)
        self.smb_timeout_ms = smb_timeout_ms
        self.proc = None

    @property
    def root(self):
        # smbnetfs reaches any host by name or address as a folder of the
        # mount; host:port picks the port.
        return self.mountpoint / f"127.0.0.1:{self.server.port}" / SHARE

    def mount(self):
        """Returns None once the share answers through the mount, or why not."""
        smb = self.home / ".smb"
        smb.mkdir(parents=True, exist_ok=True)
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        # libsmbclient reads $HOME/.smb/smb.conf: its caches stay in it.
        (smb / "smb.conf").write_text(f"""[global]
  workgroup = LWTEST
  client min protocol = SMB2
  disable netbios = yes
  state directory = {smb}
  cache directory = {smb}
  lock directory = {smb}
  private dir = {smb}
""")
        conf = smb / "smbnetfs.conf"
        conf.write_text(f"""smb_query_browsers "false"
stat_workaround_depth 0
smb_timeout {self.smb_timeout_ms}
{"" if self.retries is None else f"max_retry_count {self.retries}"}
auth "127.0.0.1" "{USER}" "{PASSWORD}"
""")
        os.chmod(conf, 0o600)
        self._log = open(self.home / "smbnetfs.log", "wb")
        env = dict(os.environ, HOME=str(self.home), **self.extra_env)
        self.proc = subprocess.Popen(["smbnetfs", str(self.mountpoint), "-f",
                                      "-o", f"config={conf}"],
                                     stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return f"smbnetfs exited {self.proc.returncode}: " + \
                    (self.home / "smbnetfs.log").read_text(errors="replace")[-500:]
            if _is_mount_point(self.mountpoint):
                try:
                    os.listdir(self.root)
                    return None
                except OSError as e:
                    last = e
            time.sleep(0.1)
        return f"the share did not answer through smbnetfs on {self.mountpoint}: {last}"

    def pids(self):
        """smbnetfs and its children (one per SMB connection)."""
        out = []
        for p in os.listdir("/proc"):
            if p.isdigit():
                try:
                    with open(f"/proc/{p}/stat") as f:
                        if int(f.read().rsplit(")", 1)[1].split()[3]) == self.proc.pid:
                            out.append(int(p))
                except (FileNotFoundError, ProcessLookupError):
                    pass
        return out

    def unmount(self):
        if self.proc is None:
            return
        fm = shutil.which("fusermount3") or shutil.which("fusermount")
        subprocess.run([fm, "-u", "-z", str(self.mountpoint)], capture_output=True, timeout=10)
        try:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)
        except ProcessLookupError:
            pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._log.close()
        self.proc = None


class SambaSite:
    """One share, two client mounts: `.here` (this host: where lockwarden
    runs) and `.kudu` (another host: where the test writes as Kudu would),
    and `.local`, the share's folder on the server's disk (for setting up a
    tree fast and for looking without going through a client)."""

    def __init__(self, workdir, smb_timeout_ms=SMB_TIMEOUT_MS, retries=None):
        """smb_timeout_ms and retries: this host's client's reply timeout and
        retry count (smbnetfs's smb_timeout, max_retry_count): it fails a
        call with EIO after smb_timeout_ms x (retries + 1) without a reply."""
        self.dir = Path(workdir)
        self.server = SambaServer(self.dir / "server")
        self.here_mount = SmbMount(self.server, self.dir / "here", self.dir / "home-here",
                                   smb_timeout_ms, retries)
        self.kudu_mount = SmbMount(self.server, self.dir / "kudu", self.dir / "home-kudu",
                                   smb_timeout_ms)

    @property
    def here(self):
        return self.here_mount.root

    @property
    def kudu(self):
        return self.kudu_mount.root

    @property
    def local(self):
        return self.server.path

    def start(self):
        """None once the server and both mounts answer, or why not."""
        return (self.server.start() or self.here_mount.mount() or self.kudu_mount.mount())

    @property
    def paused(self):
        return self.server.paused

    def pause(self):
        self.server.pause()

    def resume(self):
        self.server.resume()

    def stop(self):
        if self.server.paused:
            self.server.resume()
        self.here_mount.unmount()
        self.kudu_mount.unmount()
        self.server.stop()
