"""The Debian package: `make deb` (packaging/deb.mk, packaging/debian/).

Builds the .deb once per run (make skips it when nothing changed), unpacks
it with `dpkg -x` into a throwaway root, and checks what a Debian user gets:
the files and their modes, the configuration as a conffile, maintainer
scripts that neither enable nor start the service, a unit that passes
`systemd-analyze verify` with the packaged binary and man pages, the
packaged binary's `--version` and `check-config` on the packaged
configuration, and lintian without errors. The build happens in a copy
under build/deb/; the work tree must not gain a debian/ folder or build
leftovers.
"""

import gzip
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HOOKS_SRC = REPO / "packaging" / "hooks"
BUILD_TIMEOUT_S = 300

MISSING = [tool for tool in ("dpkg-buildpackage", "dh", "dpkg-deb") if shutil.which(tool) is None]
pytestmark = pytest.mark.skipif(
    bool(MISSING), reason=f"{', '.join(MISSING)} missing (apt-get install dpkg-dev debhelper)")


def makefile_version():
    m = re.search(r"^VERSION\s*:?=\s*(\S+)", (REPO / "Makefile").read_text(), re.M)
    assert m, "no VERSION in the Makefile"
    return m.group(1)


VERSION = makefile_version()


@pytest.fixture(scope="module")
def deb():
    """The .deb `make deb` builds (or has built)."""
    arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True,
                          check=True).stdout.strip()
    r = subprocess.run(["make", "-s", "-C", str(REPO), "deb"], capture_output=True, text=True,
                       timeout=BUILD_TIMEOUT_S)
    assert r.returncode == 0, f"make deb failed:\n{r.stdout[-6000:]}\n{r.stderr[-6000:]}"
    path = REPO / "build" / "deb" / f"lockwarden_{VERSION}_{arch}.deb"
    assert path.is_file(), f"make deb did not write {path}"
    return path


@pytest.fixture(scope="module")
def root(deb, tmp_path_factory):
    """The package's files, unpacked with dpkg -x."""
    root = tmp_path_factory.mktemp("root")
    subprocess.run(["dpkg", "-x", str(deb), str(root)], check=True, timeout=60)
    return root


@pytest.fixture(scope="module")
def control(deb, tmp_path_factory):
    """The package's control area (control, conffiles, maintainer scripts)."""
    out = tmp_path_factory.mktemp("control")
    subprocess.run(["dpkg-deb", "-e", str(deb), str(out)], check=True, timeout=60)
    return out


def hook_files():
    return sorted(p for p in HOOKS_SRC.iterdir() if p.is_file()) if HOOKS_SRC.is_dir() else []


# (path in the package, mode) for everything a user relies on.
EXPECTED_FILES = [
    ("usr/bin/lockwarden", 0o755),
    ("etc/lockwarden/lockwarden.ini", 0o644),
    ("lib/systemd/system/lockwarden.service", 0o644),
    ("usr/share/man/man8/lockwarden.8.gz", 0o644),
    ("usr/share/man/man5/lockwarden.ini.5.gz", 0o644),
    ("usr/share/doc/lockwarden/copyright", 0o644),
    ("usr/share/doc/lockwarden/README.Debian", 0o644),
    # The pages lockwarden(8) and --help point at, uncompressed so that
    # their links to each other still resolve.
    ("usr/share/doc/lockwarden/README.md", 0o644),
    ("usr/share/doc/lockwarden/docs/configuration.md", 0o644),
    ("usr/share/doc/lockwarden/docs/fleet.md", 0o644),
]


@pytest.mark.parametrize("rel,mode", EXPECTED_FILES, ids=[r for r, _ in EXPECTED_FILES])
def test_package_holds(root, rel, mode):
    path = root / rel
    assert path.is_file(), f"{rel} is not in the package"
    assert stat.S_IMODE(path.stat().st_mode) == mode, f"{rel}: mode {oct(path.stat().st_mode)}"


def test_package_holds_every_hook_executable(root):
    hooks = hook_files()
    if not hooks:
        pytest.skip("packaging/hooks/ holds no hook yet")
    packaged = root / "usr" / "lib" / "lockwarden" / "hooks"
    for src in hooks:
        dst = packaged / src.name
        assert dst.is_file(), f"hook {src.name} is not in the package"
        assert dst.read_bytes() == src.read_bytes(), f"hook {src.name} differs from its source"
        if os.access(src, os.X_OK):
            assert os.access(dst, os.X_OK), f"hook {src.name} lost its executable bit"


def test_packaged_config_is_the_sample(root):
    assert (root / "etc/lockwarden/lockwarden.ini").read_bytes() == \
        (REPO / "conf" / "lockwarden.ini").read_bytes()


def test_config_is_a_conffile(control):
    conffiles = (control / "conffiles").read_text().split()
    assert "/etc/lockwarden/lockwarden.ini" in conffiles


def test_control_fields(control):
    fields = dict(re.findall(r"^([\w-]+): (.*)$", (control / "control").read_text(), re.M))
    assert fields["Package"] == "lockwarden"
    assert fields["Version"] == VERSION
    assert fields["Maintainer"] == "lockwarden maintainers <lockwarden@example.invalid>"
    # ${shlibs:Depends} was filled in from the libraries the binary links.
    for lib in ("libuv1", "libinih1", "libsystemd0", "libc6"):
        assert re.search(rf"\b{lib}\b", fields["Depends"]), f"Depends lacks {lib}: {fields['Depends']}"


def test_install_neither_enables_nor_starts_the_service(control):
    """lockwarden deletes files as root: the administrator enables it after
    checking its configuration (README.Debian). An upgrade restarts it only
    if it was running, and does not stop it beforehand."""
    scripts = {name: (control / name).read_text() for name in
               ("preinst", "postinst", "prerm", "postrm") if (control / name).exists()}
    postinst = scripts.get("postinst", "")
    assert "lockwarden.service" in postinst, "dh_installsystemd added nothing to postinst"
    # The only enable allowed is inside `if deb-systemd-helper
    # debian-installed`: on an upgrade, it re-creates the links of a unit the
    # administrator enabled. (On a fresh install was-enabled answers yes, so
    # `if ... was-enabled` alone would enable it.)
    conditions = []
    for line in postinst.splitlines():
        word = line.split()[0] if line.split() else ""
        if word == "if":
            conditions.append(line)
        elif word == "fi":
            conditions.pop()
        elif re.search(r"deb-systemd-helper\s+enable", line):
            assert any("debian-installed" in c for c in conditions), \
                f"postinst enables the unit unconditionally: {line.strip()}"
    everything = "\n".join(scripts.values())
    assert not re.search(r"deb-systemd-invoke\s+(start|restart)\b", everything), \
        "a maintainer script starts the service"
    assert re.search(r"deb-systemd-invoke\s+try-restart", postinst), \
        "an upgrade does not restart a running service"
    assert not re.search(r"deb-systemd-invoke\s+stop", scripts.get("preinst", "")), \
        "an upgrade stops the service and leaves it stopped"


def test_packaged_binary_runs(root):
    binary = root / "usr/bin/lockwarden"
    r = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and r.stdout == f"lockwarden {VERSION}\n", r.stdout + r.stderr
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCKWARDEN_")}
    r = subprocess.run([str(binary), "check-config", "-c", str(root / "etc/lockwarden/lockwarden.ini")],
                       capture_output=True, text=True, timeout=30, env=env)
    assert r.returncode == 0, f"check-config on the packaged config (exit {r.returncode}):\n{r.stderr}"
    assert re.search(r"^\[site\]$", r.stdout, re.M) and re.search(r"^root = /home/site", r.stdout, re.M), \
        r.stdout


def test_packaged_unit_verifies_with_the_packaged_binary_and_man_pages(root, tmp_path):
    """The shipped unit, its ExecStart pointed into the unpacked root, and
    MANPATH pointed at the shipped man pages (Documentation= is checked)."""
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is missing (apt-get install systemd)")
    text = (root / "lib/systemd/system/lockwarden.service").read_text()
    assert "ExecStart=/usr/bin/lockwarden run -c /etc/lockwarden/lockwarden.ini" in text
    unit = tmp_path / "lockwarden.service"
    unit.write_text(text.replace("ExecStart=/usr/bin/", f"ExecStart={root}/usr/bin/"))
    env = dict(os.environ, MANPATH=str(root / "usr/share/man"))
    r = subprocess.run(["systemd-analyze", "verify", str(unit)], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stderr == "", f"systemd-analyze verify:\n{r.stderr}"


@pytest.mark.parametrize("rel", ["usr/share/man/man8/lockwarden.8.gz",
                                 "usr/share/man/man5/lockwarden.ini.5.gz"])
def test_packaged_man_page_renders_without_warnings(root, rel):
    if shutil.which("man") is None:
        pytest.skip("man is missing (apt-get install man-db)")
    assert gzip.decompress((root / rel).read_bytes()).startswith(b".TH ")
    r = subprocess.run(["man", "--warnings", "-E", "UTF-8", "-l", str(root / rel)],
                       env=dict(os.environ, MANWIDTH="80"), stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True, timeout=60)
    assert r.returncode == 0 and r.stderr == "", r.stderr


def test_lintian_finds_no_errors(deb):
    if shutil.which("lintian") is None:
        pytest.skip("lintian is missing (apt-get install lintian)")
    r = subprocess.run(["lintian", "--tag-display-limit", "0", str(deb)],
                       capture_output=True, text=True, timeout=180)
    errors = [line for line in r.stdout.splitlines() if line.startswith("E:")]
    assert not errors, "lintian errors:\n" + "\n".join(errors)
    # lintian's exit status is 2 when it could not check the package at all.
    assert r.returncode in (0, 1), f"lintian failed (exit {r.returncode}):\n{r.stderr}"
    warnings = [line for line in r.stdout.splitlines() if line.startswith("W:")]
    print("lintian warnings:\n" + ("\n".join(warnings) or "(none)"))


def test_build_leaves_the_work_tree_clean(deb):
    assert not (REPO / "debian").exists(), "the build created debian/ in the work tree"
    leftovers = {"lockwarden", "files", "debhelper-build-stamp", ".debhelper",
                 "lockwarden.substvars", "lockwarden.debhelper.log"}
    found = sorted(p.name for p in (REPO / "packaging" / "debian").iterdir() if p.name in leftovers)
    assert not found, f"build leftovers in packaging/debian/: {found}"


# ------------------------------------- install and remove in a throwaway root

needs_root_unshare = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None,
    reason="needs root and unshare (util-linux) for a throwaway root")

# Stand-ins for the service manager's tools, first in the maintainer
# scripts' PATH (/usr/local/sbin): each call is written down, and a stop
# ends the "service" started below, as systemctl stop would.
FAKE_TOOL = """#!/bin/sh
echo "$(basename "$0") $*" >>/tmp/service-manager.log
if [ "$(basename "$0")" = deb-systemd-invoke ] && [ "$1" = stop ] && [ -s /run/lockwarden.pid ]; then
	kill -TERM "$(cat /run/lockwarden.pid)"
fi
exit 0
"""


def throwaway_root(tmp_path):
    """An empty dpkg database in a root whose /usr is this machine's under a
    writable overlay (made in the mount namespace), with /run/systemd/system
    present, so the maintainer scripts believe systemd runs."""
    root = tmp_path / "root"
    for d in ("etc", "var/lib/dpkg/info", "var/lib/dpkg/updates", "var/lib/dpkg/triggers",
              "run/systemd/system", "tmp", "dev", "usr"):
        (root / d).mkdir(parents=True)
    for f in ("var/lib/dpkg/status", "var/lib/dpkg/available", "dev/null"):
        (root / f).write_text("")
    for link in ("bin", "sbin", "lib", "lib64"):
        (root / link).symlink_to(f"usr/{link}")
    for f in ("passwd", "group"):
        shutil.copy(f"/etc/{f}", root / "etc" / f)
    upper = tmp_path / "usr-upper"
    (upper / "local" / "sbin").mkdir(parents=True)
    for tool in ("deb-systemd-invoke", "systemctl"):
        (upper / "local" / "sbin" / tool).write_text(FAKE_TOOL)
        (upper / "local" / "sbin" / tool).chmod(0o755)
    (tmp_path / "usr-work").mkdir()
    return root


@needs_root_unshare
def test_remove_stops_the_service(deb, tmp_path):
    """`dpkg -i` then `dpkg -r` in a throwaway root, with the installed
    binary running as the service: the install neither enables nor starts
    it, and the removal stops it (before the fix, the daemon kept running
    as root with its files gone)."""
    root = throwaway_root(tmp_path)
    site = tmp_path / "site"
    (site / "locks").mkdir(parents=True)
    (site / "deployments").mkdir()
    agent_log = tmp_path / "agent.log"
    script = f"""
set -e
mount -t overlay overlay -o lowerdir=/usr,upperdir={tmp_path}/usr-upper,workdir={tmp_path}/usr-work {root}/usr
mount --bind /dev/null {root}/dev/null
dpkg --root={root} --force-depends -i {deb}
test -x {root}/usr/bin/lockwarden
# The administrator starts the service (here: the installed binary).
LOCKWARDEN_ENV_FILE= {root}/usr/bin/lockwarden run --site-root {site} >{agent_log} 2>&1 &
agent=$!
# Never left running, whatever happens.
trap 'kill -KILL $agent 2>/dev/null' EXIT
echo $agent >{root}/run/lockwarden.pid
i=0
until grep -q 'watching' {agent_log}; do i=$((i+1)); [ $i -lt 200 ] || exit 9; sleep 0.05; done
dpkg --root={root} -r lockwarden
set +e
# It has 10 s to end; then it is killed, and its status says so.
timeout 10 tail --pid=$agent -f /dev/null
kill -KILL $agent 2>/dev/null
wait $agent
echo "agent exit status $?"
if test -e {root}/usr/bin/lockwarden; then echo "binary left behind"; fi
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCKWARDEN_")}
    env["LOCKWARDEN_ARCHIVE_DIR"] = str(tmp_path / "archive")
    r = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                       env=env, capture_output=True, text=True, timeout=120)
    out = r.stdout + r.stderr
    if r.returncode != 0 and "overlay" in r.stderr:
        pytest.skip(f"no overlay mount here: {r.stderr}")
    assert r.returncode == 0, out
    calls = (root / "tmp" / "service-manager.log").read_text().splitlines()
    # Installed: daemon-reload only, neither enabled nor started.
    assert "systemctl --system daemon-reload" in calls, calls
    assert not [c for c in calls if " start" in c or " enable" in c], calls
    # Removed: stopped, and the daemon really ended, cleanly.
    assert "deb-systemd-invoke stop lockwarden.service" in calls, calls
    assert "agent exit status 0" in r.stdout, out + agent_log.read_text()
    assert "info: stopping on SIGTERM" in agent_log.read_text()
    assert "binary left behind" not in r.stdout


def test_prerm_stops_only_on_remove(control):
    prerm = (control / "prerm").read_text()
    assert re.search(r'"\$1" = remove', prerm)
    assert re.search(r"deb-systemd-invoke\s+stop\s+lockwarden\.service", prerm)
