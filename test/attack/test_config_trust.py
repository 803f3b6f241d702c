"""Config trust, sshd StrictModes style: the configuration names a command
that runs with the agent's rights (root), so a config file or hook program
that someone else could have written is refused (exit 78, one clear line),
unless --insecure-config is given.

Every case builds its files under the test's tmp folder (whose ancestors
are root's and not writable by others), checks `check-config` and, for a
few, the daemon itself (`run`) and a reload (SIGHUP).
"""

import os
import shutil
import signal
import subprocess

import pytest

from attack_util import AGENT_USER, OTHER_USER, as_user, make_user_dir
from conftest import (BIN, EX_CONFIG, EX_OK, clean_env, make_skeleton, run_cli, start_agent,
                      write_config)


def config_in(folder, site, mode=0o644, owner=(0, 0), folder_mode=0o755, folder_owner=(0, 0),
              hook=None):
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, folder_mode)
    os.chown(folder, *folder_owner)
    sections = {"hook": {"command": hook}} if hook else {}
    cfg = write_config(folder / "lw.ini", site, **sections)
    os.chmod(cfg, mode)
    os.chown(cfg, *owner)
    return cfg


def hook_program(folder, mode=0o755, owner=(0, 0), folder_mode=0o755):
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, folder_mode)
    prog = folder / "restart-site"
    prog.write_text("#!/bin/sh\nexit 0\n")
    os.chmod(prog, mode)
    os.chown(prog, *owner)
    return prog


# (id, builder(tmp, site) -> config path, words the refusal must contain)
REFUSED = [
    ("config-group-writable",
     lambda t, s: config_in(t / "etc", s, mode=0o664), ["config file", "writable by its group"]),
    ("config-other-writable",
     lambda t, s: config_in(t / "etc", s, mode=0o646), ["config file", "writable by others"]),
    ("config-owned-by-another-user",
     lambda t, s: config_in(t / "etc", s, owner=OTHER_USER), ["config file", "owned by uid 4343"]),
    ("folder-group-writable",
     lambda t, s: config_in(t / "etc", s, folder_mode=0o775), ["writable by its group"]),
    ("folder-other-writable",
     lambda t, s: config_in(t / "etc", s, folder_mode=0o757), ["writable by others"]),
    ("folder-owned-by-another-user",
     lambda t, s: config_in(t / "etc", s, folder_owner=OTHER_USER), ["owned by uid 4343"]),
    ("grandparent-other-writable",
     lambda t, s: (config_in(t / "top" / "etc", s), os.chmod(t / "top", 0o777))[0],
     ["writable by others"]),
    ("symlink-to-group-writable-config",
     lambda t, s: link_to(t, config_in(t / "real", s, mode=0o664)), ["writable by its group"]),
    ("symlink-to-config-in-writable-folder",
     lambda t, s: link_to(t, config_in(t / "real", s, folder_mode=0o777)), ["writable by others"]),
    ("hook-program-group-writable",
     lambda t, s: config_in(t / "etc", s, hook=str(hook_program(t / "bin", mode=0o775))),
     ["hook program", "writable by its group"]),
    ("hook-program-owned-by-another-user",
     lambda t, s: config_in(t / "etc", s, hook=str(hook_program(t / "bin", owner=OTHER_USER))
                            + " --now"),
     ["hook program", "owned by uid 4343"]),
    ("hook-program-in-writable-folder",
     lambda t, s: config_in(t / "etc", s, hook=str(hook_program(t / "bin", folder_mode=0o777))),
     ["hook program", "writable by others"]),
]

ACCEPTED = [
    ("root-0644", lambda t, s: config_in(t / "etc", s)),
    ("root-0600", lambda t, s: config_in(t / "etc", s, mode=0o600)),
    ("sticky-folder", lambda t, s: config_in(t / "tmp-like", s, folder_mode=0o1777)),
    ("symlink-to-safe-config", lambda t, s: link_to(t, config_in(t / "real", s))),
    ("hook-program-root-0755",
     lambda t, s: config_in(t / "etc", s, hook=str(hook_program(t / "bin")) + " --now")),
    ("hook-by-shell-word", lambda t, s: config_in(t / "etc", s, hook="sh -c 'exit 0'")),
    ("hook-program-in-sticky-folder",
     lambda t, s: config_in(t / "etc", s,
                            hook=str(hook_program(t / "tmp-like", folder_mode=0o1777)))),
]


def link_to(tmp, target):
    (tmp / "etc").mkdir(exist_ok=True)
    link = tmp / "etc" / "lw.ini"
    os.symlink(target, link)
    return link


@pytest.fixture
def root_only():
    if os.geteuid() != 0:
        pytest.skip("needs root to chown files to other users")


@pytest.mark.parametrize("build,words", [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_untrusted_config_or_hook_is_refused(tmp_path, site, root_only, build, words):
    cfg = build(tmp_path / "t", site)
    done = run_cli(["check-config", "-c", cfg])
    assert done.returncode == EX_CONFIG, done
    line = done.stderr.strip()
    assert line.count("\n") == 0, f"not one line: {line!r}"
    for w in words + ["--insecure-config"]:
        assert w in line, f"{w!r} not in {line!r}"
    # --insecure-config lets the same files through.
    ok = run_cli(["check-config", "-c", cfg, "--insecure-config"])
    assert ok.returncode == EX_OK, ok.stderr


@pytest.mark.parametrize("build", [c[1] for c in ACCEPTED], ids=[c[0] for c in ACCEPTED])
def test_trusted_config_is_accepted(tmp_path, site, root_only, build):
    cfg = build(tmp_path / "t", site)
    done = run_cli(["check-config", "-c", cfg])
    assert done.returncode == EX_OK, done.stderr


def test_the_daemon_refuses_an_untrusted_config(tmp_path, site, root_only):
    cfg = config_in(tmp_path / "etc", site, mode=0o666)
    done = subprocess.run([BIN, "run", "-c", str(cfg), "--once"], env=clean_env(),
                          capture_output=True, text=True, timeout=20)
    assert done.returncode == EX_CONFIG
    assert "writable by others" in done.stderr


def test_a_reload_of_a_config_made_untrusted_is_refused(tmp_path, site, agents, root_only):
    cfg = config_in(tmp_path / "etc", site)
    agent = start_agent(agents, cfg)
    agent.wait_scan(1)
    os.chmod(cfg, 0o666)
    agent.send(signal.SIGHUP)
    agent.wait_for_log(r"reload failed, keeping the old configuration: .*writable by others")
    agent.wait_fresh_scans(1)
    assert agent.running()


def test_a_symlink_in_a_writable_folder_is_not_trusted(tmp_path, site, root_only):
    """A config reached through a symlink that others can replace (its
    folder is world-writable, not sticky) is as good as a file they wrote:
    they can point it at their own file between the read and the check."""
    target = config_in(tmp_path / "real", site)
    (tmp_path / "open").mkdir()
    os.chmod(tmp_path / "open", 0o777)
    link = tmp_path / "open" / "lw.ini"
    os.symlink(target, link)
    done = run_cli(["check-config", "-c", link])
    assert done.returncode == EX_CONFIG, \
        "a config reached through a link in a world-writable folder was accepted"


@pytest.fixture
def user_dir():
    d = make_user_dir(AGENT_USER)
    yield d
    shutil.rmtree(d)


@pytest.mark.parametrize("owner,expected", [(AGENT_USER, EX_OK), ((0, 0), EX_OK),
                                            (OTHER_USER, EX_CONFIG)],
                         ids=["own-user", "root", "another-user"])
def test_as_a_non_root_user(user_dir, root_only, owner, expected):
    """Run as a non-root user, the agent trusts files owned by root or by
    itself, not by a third user."""
    site = make_skeleton(user_dir / "site")
    cfg = config_in(user_dir / "etc", site, owner=owner, folder_owner=AGENT_USER)
    done = subprocess.run(as_user(AGENT_USER) + [BIN, "check-config", "-c", str(cfg)],
                          env=clean_env(), capture_output=True, text=True, timeout=20)
    assert done.returncode == expected, done.stderr
