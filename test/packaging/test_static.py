"""make static: one file that runs in any image, tested as users run it.

The binary is built by `make static` (or taken from LOCKWARDEN_STATIC_BIN).
It must need nothing at run time: no interpreter, no shared library, no
NSS, no locale or gconv files, nothing dlopen()ed. Then it runs, with the
hooks and the container entrypoint, in a root that holds nothing else but
Debian's static BusyBox and /proc: a stuck site is cleared, the archive
written, and restart-site (through BusyBox's wget) restarts the site at the
loopback ARM stand-in.
"""

import os
import shutil
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest

from lwtest import wait_for
from test_hooks import (SITE_PATH, TOKEN, StandIn, assert_token_request, build_stuck_site,
                        site_env)

REPO = Path(__file__).resolve().parents[2]
HOOKS = REPO / "packaging" / "hooks"
ENTRYPOINT = REPO / "packaging" / "container" / "entrypoint.sh"


def static_busybox(tmp_path):
    """Debian's static BusyBox: /bin/busybox when busybox-static is what is
    installed, else the file inside a downloaded busybox-static package in
    apt's cache (busybox and busybox-static replace each other)."""
    if Path("/bin/busybox").exists() and "INTERP" not in readelf("-l", "/bin/busybox"):
        return Path("/bin/busybox")
    debs = sorted(Path("/var/cache/apt/archives").glob("busybox-static_*.deb"))
    if debs:
        subprocess.run(["dpkg-deb", "-x", str(debs[-1]), str(tmp_path / "bb")], check=True)
        found = tmp_path / "bb" / "bin" / "busybox"
        if found.exists():
            return found
    pytest.skip("needs Debian's busybox-static (packaging/deps-container.txt)")


@pytest.fixture(scope="module")
def static_bin():
    given = os.environ.get("LOCKWARDEN_STATIC_BIN")
    if given:
        return Path(given)
    proc = subprocess.run(["make", "-C", str(REPO), "--no-print-directory", "static"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # make static prints the file's size.
    assert "build/static/lockwarden: " in proc.stdout and " bytes, statically linked, stripped" \
        in proc.stdout, proc.stdout
    return REPO / "build" / "static" / "lockwarden"


def readelf(*args):
    return subprocess.run(["readelf", "-W", *args], capture_output=True, text=True,
                          check=True).stdout


def test_static_binary_needs_no_interpreter_and_no_library(static_bin):
    """A static PIE (kept for ASLR): its dynamic section, if any, holds only
    the relocations of the file itself, never a library or an interpreter."""
    headers = readelf("-l", str(static_bin))
    assert "INTERP" not in headers
    assert "Requesting program interpreter" not in headers
    dynamic = readelf("-d", str(static_bin))
    assert "NEEDED" not in dynamic
    assert "RPATH" not in dynamic and "RUNPATH" not in dynamic
    # Stripped: no symbol table left.
    assert ".symtab" not in readelf("-S", str(static_bin))


def test_static_binary_links_no_nss_resolver_or_charset_loader(static_bin):
    """What glibc would need at run time, by symbol: name service lookups
    (libnss_* through dlopen), the resolver, iconv. The unstripped link
    beside the binary tells what went in."""
    full = Path(str(static_bin) + ".full")
    if not full.exists():
        pytest.skip(f"{full} is not there (LOCKWARDEN_STATIC_BIN without its .full)")
    names = set()
    for line in subprocess.run(["nm", str(full)], capture_output=True, text=True,
                               check=True).stdout.splitlines():
        parts = line.split()
        if parts:
            names.add(parts[-1])
    for bad in ("getaddrinfo", "gethostbyname", "getpwnam", "getpwnam_r", "getgrnam",
                "getgrgid_r", "iconv_open", "__nss_database_get", "__nss_lookup",
                "__nss_passwd_lookup2", "_nss_files_getpwuid_r", "sd_notify"):
        assert bad not in names, f"{bad} is linked into the static build"
    # libuv's getpwuid_r calls land in packaging/static/nss_none.c.
    assert "getpwuid_r" in names and "__getpwuid_r" not in names


def make_root(root, static_bin):
    """The binary, Debian's static BusyBox, the hooks, the entrypoint,
    /dev/null (every container runtime makes /dev), and empty /proc, /tmp,
    /run, /home: nothing else."""
    busybox = static_busybox(root.parent)
    for d in ("bin", "dev", "usr/bin", "proc", "tmp", "run", "home/LogFiles",
              "usr/lib/lockwarden/hooks", "usr/lib/lockwarden/container"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "tmp").chmod(0o1777)
    os.mknod(root / "dev" / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    shutil.copy2(busybox, root / "bin" / "busybox")
    shutil.copy2(static_bin, root / "usr" / "bin" / "lockwarden")
    for hook in ("restart-site", "restart-container"):
        shutil.copy2(HOOKS / hook, root / "usr/lib/lockwarden/hooks" / hook)
    shutil.copy2(ENTRYPOINT, root / "usr/lib/lockwarden/container/entrypoint.sh")
    subprocess.run(["chroot", str(root), "/bin/busybox", "--install", "-s", "/bin"], check=True)
    root.chmod(0o755)


needs_root = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"),
                                reason="needs root (chroot, unshare --mount --pid)")


@needs_root
@pytest.mark.skipif(not shutil.which("strace"), reason="strace is in packaging/deps-container.txt")
def test_static_binary_opens_no_library_locale_or_nss_file(static_bin, tmp_path):
    root = tmp_path / "root"
    make_root(root, static_bin)
    (root / "home/site/locks").mkdir(parents=True)
    (root / "home/site/deployments").mkdir()
    trace = tmp_path / "trace"
    proc = subprocess.run(["strace", "-f", "-qq", "-e", "trace=open,openat,execve", "-o", str(trace),
                           shutil.which("chroot"), str(root), "/usr/bin/lockwarden", "report",
                           "--site-root", "/home/site"],
                          env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = trace.read_text().splitlines()
    start = next(i for i, l in enumerate(lines) if 'execve("/usr/bin/lockwarden"' in l)
    opened = [l for l in lines[start:] if "open" in l]
    for line in opened:
        for bad in (".so", "ld.so", "nsswitch", "gconv", "/usr/lib/locale", "/usr/share/locale",
                    "passwd", "resolv.conf"):
            assert bad not in line, line


@needs_root
def test_static_binary_and_hooks_clear_a_stuck_site_in_a_bare_root(static_bin, tmp_path):
    """As in an Alpine or distroless image without curl: PID 1 is the
    entrypoint under BusyBox ash, the agent is the static file, the hook
    reaches ARM through BusyBox's wget. stuck_after is 2 s of the agent's
    own watching: the removal is waited for, with a deadline."""
    root = tmp_path / "root"
    make_root(root, static_bin)
    build_stuck_site(root / "home" / "site")
    stand_in = StandIn()
    env = site_env(stand_in, PATH="/usr/bin:/bin", HOME="/", TMPDIR="/tmp",
                   LOCKWARDEN_SITE_ROOT="/home/site",
                   LOCKWARDEN_POLICY_STUCK_AFTER="2s",
                   LOCKWARDEN_POLICY_QUIET_PERIOD="1s",
                   LOCKWARDEN_SCAN_RESCAN_INTERVAL="500ms",
                   LOCKWARDEN_HOOK_COMMAND="/usr/lib/lockwarden/hooks/restart-site",
                   LOCKWARDEN_HOOK_COOLDOWN="0s",
                   LOCKWARDEN_ARCHIVE_DIR="/home/LogFiles/lockwarden",
                   LOCKWARDEN_ENV_FILE="/run/lockwarden/environ")
    env = {k: v for k, v in env.items()
           if k.startswith(("LOCKWARDEN_", "WEBSITE_", "IDENTITY_")) or k in ("PATH", "HOME", "TMPDIR")}
    out = tmp_path / "container.log"
    with open(out, "wb") as log:
        box = subprocess.Popen(["unshare", "--mount", "--pid", "--fork",
                                f"--mount-proc={root}/proc", shutil.which("chroot"), str(root),
                                "/bin/sh", "/usr/lib/lockwarden/container/entrypoint.sh",
                                "/bin/sleep", "600"],
                               env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    text = lambda: out.read_text(errors="replace")  # noqa: E731
    try:
        wait_for(lambda: stand_in.of("arm"), 60, "the restart POST from the hook", text)
        wait_for(lambda: "hook exited with status 0" in text(), 20, "the hook's exit", text)
        post = stand_in.of("arm")[0]
        assert (post["method"], post["path"]) == ("POST", SITE_PATH + "/restart")
        assert_token_request(stand_in.of("token")[0])
        site = root / "home" / "site"
        assert not (site / "locks" / "deployment").exists()
        assert not (site / "deployments" / "temp-1a2b3c4d").exists()
        archived = list((root / "home/LogFiles/lockwarden").rglob("info.lock"))
        assert archived, text()
        assert "lockwarden started" in text()
        assert TOKEN not in text()
        # The entrypoint saved the app settings, root's alone.
        assert (root / "run/lockwarden/environ").stat().st_mode & 0o077 == 0
        # Nothing but what the test put there.
        assert sorted(p.name for p in root.iterdir()) == \
            ["bin", "dev", "home", "proc", "run", "tmp", "usr"]
    finally:
        pid1 = subprocess.run(["pgrep", "-P", str(box.pid)], capture_output=True,
                              text=True).stdout.split()
        if pid1:
            os.kill(int(pid1[0]), signal.SIGTERM)
        try:
            box.wait(timeout=20)
        except subprocess.TimeoutExpired:
            box.kill()
            box.wait()
        stand_in.close()
    assert "lockwarden stopped (status 0)" in text(), text()


def test_static_build_says_under_systemd_that_the_dynamic_build_is_the_one(static_bin, tmp_path):
    """NOTIFY_SOCKET set: no libsystemd to load in a static file; it says
    once which build to use, and runs on."""
    site = tmp_path / "site"
    (site / "locks").mkdir(parents=True)
    (site / "deployments").mkdir()
    env = {"PATH": "/usr/bin:/bin", "NOTIFY_SOCKET": str(tmp_path / "notify"),
           "LOCKWARDEN_ARCHIVE_DIR": str(tmp_path / "archive")}
    proc = subprocess.Popen([str(static_bin), "run", "--site-root", str(site)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "NOTIFY_SOCKET" in line:
                break
    finally:
        proc.send_signal(signal.SIGTERM)
        rest = proc.communicate(timeout=20)[0]
    said = "".join(lines) + rest
    assert "use the dynamic build" in said, said
    assert said.count("NOTIFY_SOCKET is set") == 1, said
    assert proc.returncode == 0, said
