"""The build (issue 9): the binary is hardened by default, `make install` keeps
an existing configuration, and plain `make` never installs a package."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("LOCKWARDEN_BIN", REPO / "build" / "lockwarden"))


def readelf(*args):
    if not shutil.which("readelf"):
        pytest.skip("readelf (binutils) is not installed")
    return subprocess.run(["readelf", "-W", *args, str(BIN)], capture_output=True, text=True,
                          check=True).stdout


def test_the_binary_is_hardened():
    """What checksec reads: PIE, full RELRO (GNU_RELRO and BIND_NOW), the
    stack protector and FORTIFY's checked functions."""
    if "build-san" in str(BIN):
        pytest.skip("the sanitizer build leaves FORTIFY out")
    assert "DYN (Position-Independent Executable file)" in readelf("-h")
    assert "GNU_RELRO" in readelf("-l")
    dynamic = readelf("-d")
    assert "BIND_NOW" in dynamic or "Flags: NOW" in dynamic, dynamic
    symbols = readelf("--dyn-syms")
    assert "__stack_chk_fail" in symbols, "no stack protector"
    assert "_chk@" in symbols.replace("__stack_chk_fail@", ""), "no FORTIFY checks"


SHIPPED_HOOKDIR = "/usr/lib/lockwarden/hooks"


def shipped_conf(hookdir):
    """conf/lockwarden.ini as `make install` writes it for hookdir."""
    return (REPO / "conf" / "lockwarden.ini").read_text().replace(SHIPPED_HOOKDIR, hookdir)


def test_make_install_keeps_an_existing_configuration(tmp_path):
    dest = tmp_path / "root"
    make = ["make", "-C", str(REPO), "--no-print-directory", f"DESTDIR={dest}", "install"]
    subprocess.run(make, check=True, capture_output=True)
    conf = dest / "etc" / "lockwarden" / "lockwarden.ini"
    assert conf.read_text() == shipped_conf("/usr/local/lib/lockwarden/hooks")
    conf.write_text("[site]\nroot = /srv/mine\n")
    r = subprocess.run(make, check=True, capture_output=True, text=True)
    assert conf.read_text() == "[site]\nroot = /srv/mine\n", "make install overwrote it"
    assert (conf.parent / "lockwarden.ini.sample").read_text() == \
        shipped_conf("/usr/local/lib/lockwarden/hooks")
    assert "keeping" in r.stdout


@pytest.mark.parametrize("prefix", ["/usr/local", "/opt/lw"])
def test_make_install_names_the_hooks_where_it_put_them(tmp_path, prefix):
    dest = tmp_path / "root"
    subprocess.run(["make", "-C", str(REPO), "--no-print-directory", f"DESTDIR={dest}",
                    f"PREFIX={prefix}", "install"], check=True, capture_output=True)
    hookdir = f"{prefix}/lib/lockwarden/hooks"
    conf = (dest / "etc" / "lockwarden" / "lockwarden.ini").read_text()
    assert f"\n# command = {hookdir}/restart-site\n" in conf, conf
    for hook in ("restart-site", "restart-container"):
        installed = dest / hookdir.lstrip("/") / hook
        assert os.access(installed, os.X_OK), installed
        text = installed.read_text()
        assert f"command = {hookdir}/{hook}" in text
        assert SHIPPED_HOOKDIR not in text
    assert SHIPPED_HOOKDIR not in conf


def test_plain_make_only_names_missing_packages(tmp_path):
    """With a package missing, the build's dependency step names it and
    fails; apt-get is never called. The developer targets may install."""
    fake = tmp_path / "bin"
    fake.mkdir()
    called = tmp_path / "apt-get-called"
    (fake / "apt-get").write_text(f"#!/bin/sh\ntouch {called}\n")
    (fake / "dpkg-query").write_text("#!/bin/sh\necho 'unknown ok not-installed'\n")
    for f in fake.iterdir():
        f.chmod(0o755)
    env = dict(os.environ, PATH=f"{fake}:{os.environ['PATH']}")
    r = subprocess.run(["sh", str(REPO / "packaging" / "ensure-deps.sh"), "build", "--report"],
                       env=env, capture_output=True, text=True)
    assert r.returncode == 1 and "apt-get install" in r.stderr, r
    assert not called.exists(), "the report mode installed packages"
    # What `make` runs for its dependency step, read from make itself.
    dry = subprocess.run(["make", "-C", str(REPO), "-n", "-W", "packaging/ensure-deps.sh",
                          "BUILD=build-dry"], capture_output=True, text=True)
    steps = [line for line in dry.stdout.splitlines() if "ensure-deps.sh" in line]
    assert steps and all("--report" in line for line in steps), dry.stdout
