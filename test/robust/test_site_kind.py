"""Loud where it matters (issue 20): an agent that protects nothing says so.

A site root that is not Kudu's tree (neither locks/ nor deployments/: on App
Service, /home is the container's own folder when WEBSITES_ENABLE_APP_SERVICE_STORAGE
is false) is a warning at start and makes `report` exit 1, naming the app
setting. A root on a local filesystem instead of a share (cifs, nfs, FUSE) is
a warning at start and a line of `report`, which keeps its exit code: the
filesystem type is a hint, and these tests' own trees are local folders. A
bindfs view stands in for the share. No hook configured is a warning at
start that says what is lost and where the setup is described."""

import json

from conftest import (EX_FAILURE, EX_OK, build_finished_site, make_skeleton, run_cli,
                      start_agent, write_config)
from robust_util import bind_mounts, bind_site  # noqa: F401

SETTING = "WEBSITES_ENABLE_APP_SERVICE_STORAGE=true"


def test_no_hook_is_a_warning_that_says_what_is_lost(tmp_path, agents):
    root = make_skeleton(tmp_path / "site")
    agent = start_agent(agents, write_config(tmp_path / "lw.ini", root))
    agent.wait_for_log(r"warning: no restart hook \(\[hook\] command is empty\): .*keeps "
                       r"answering 409 until something restarts the site; set up restart-site "
                       r"\(README.md, \"Choosing and testing a restart hook\"\)")


def test_a_hook_is_no_warning(tmp_path, agents):
    root = make_skeleton(tmp_path / "site")
    agent = start_agent(agents, write_config(tmp_path / "lw.ini", root,
                                             hook={"command": "/bin/true"}))
    agent.wait_scan(2)
    assert "no restart hook" not in agent.log()


def test_a_root_that_is_not_kudus_tree_is_loud(tmp_path, agents):
    root = tmp_path / "home-site"
    root.mkdir()
    cfg = write_config(tmp_path / "lw.ini", root)
    agent = start_agent(agents, cfg)
    agent.wait_for_log(rf"warning: {root} holds neither locks/ nor deployments/: it is not "
                       rf"Kudu's site folder.*{SETTING}")
    r = run_cli(["report", "-c", cfg])
    assert r.returncode == EX_FAILURE, r.stdout + r.stderr
    assert "NOT KUDU'S SITE: " in r.stdout and SETTING in " ".join(r.stdout.split()), r.stdout
    r = run_cli(["report", "-c", cfg, "--json"])
    assert r.returncode == EX_FAILURE
    assert SETTING in json.loads(r.stdout)["site_problem"]


def test_a_local_root_is_a_warning_and_a_note_of_report(tmp_path, agents):
    root = make_skeleton(tmp_path / "site")
    build_finished_site(root)
    cfg = write_config(tmp_path / "lw.ini", root)
    agent = start_agent(agents, cfg)
    agent.wait_for_log(rf"warning: {root} is on a local \S+ filesystem, not on a share "
                       rf"\(cifs, nfs or FUSE\).*{SETTING}")
    r = run_cli(["report", "-c", cfg])
    assert r.returncode == EX_OK, r.stdout + r.stderr
    assert "NOT ON THE SHARE? " in r.stdout, r.stdout


def test_a_root_on_a_fuse_share_is_no_warning(tmp_path, agents, bind_site):
    make_skeleton(bind_site.backing)
    build_finished_site(bind_site.backing)
    cfg = write_config(tmp_path / "lw.ini", bind_site.mountpoint, hook={"command": "/bin/true"})
    agent = start_agent(agents, cfg)
    agent.wait_scan(2)
    assert "warning" not in agent.log(), agent.tail()
    r = run_cli(["report", "-c", cfg, "--json"])
    assert r.returncode == EX_OK, r.stdout + r.stderr
    assert json.loads(r.stdout)["site_problem"] is None
