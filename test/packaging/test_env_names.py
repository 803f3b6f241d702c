"""Every LOCKWARDEN_ variable that the entrypoint, the login profile and the
hooks read, or that the agent gives a hook, is known to lockwarden: set as
an app setting it reaches the agent's environment too, and a name the agent
did not know would be warned about as a typo (and fail check-config)."""

import os
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = os.environ.get("LOCKWARDEN_BIN", "")

pytestmark = pytest.mark.skipif(not (BIN and os.access(BIN, os.X_OK)),
                                reason="LOCKWARDEN_BIN is not set (run `make packaging-check`)")

# A shell expansion of the variable: $NAME, ${NAME}, ${NAME-...}, ${NAME+set}.
SHELL_READ = re.compile(r"\$\{?(LOCKWARDEN_[A-Z0-9_]*[A-Z0-9])")
HOOK_ENV = re.compile(r'env_pair\("(LOCKWARDEN_[A-Z0-9_]+)"')


def names_read():
    names = set()
    for path in [*(REPO / "packaging" / "hooks").iterdir(),
                 *(REPO / "packaging" / "container").glob("*.sh")]:
        names |= set(SHELL_READ.findall(path.read_text()))
    names |= set(HOOK_ENV.findall((REPO / "agent" / "hookq.c").read_text()))
    return names


def test_every_name_read_around_the_agent_is_known(tmp_path):
    names = names_read()
    # The list is not empty by accident: the hooks' own settings are in it.
    assert {"LOCKWARDEN_RESTART_SLOT", "LOCKWARDEN_CONFIG", "LOCKWARDEN_REMOVED"} <= names
    cfg = tmp_path / "lw.ini"
    cfg.write_text(f"[site]\nroot = {tmp_path}\n[archive]\ndir = {tmp_path / 'archive'}\n")
    cfg.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCKWARDEN_")}
    # Values that no key would accept: a key among them would fail loudly
    # for its value, not pass unnoticed.
    env.update({n: "x" for n in names if not n.startswith(("LOCKWARDEN_SITE_",))})
    env["LOCKWARDEN_SITE_ROOT"] = str(tmp_path)
    r = subprocess.run([BIN, "check-config", "-c", str(cfg)], env=env, capture_output=True,
                       text=True, timeout=20)
    assert "not a setting of lockwarden" not in r.stderr, (sorted(names), r.stderr)
    assert r.returncode == 0, r.stderr
