"""Trash the sweep finds already gone is no failure (issue 22, finding 7).
A scan can list trash that is gone by the time the sweep comes: on the
share, the client shows a folder's old attributes for up to a second, and
the scan does not list an unchanged folder again. The agent said "could not
remove ...: already gone; retried on the next scan" right after "finished
removing" it. Here the scan is held just after it listed locks/ (at its
open of deployments/), and the trash goes meanwhile."""

from conftest import Pause, build_finished_site, pause_shim, start_agent, write_config  # noqa: F401

TRASH = ".lockwarden-trash-deployment"


def test_trash_already_gone_is_not_a_failure(tmp_path, agents, pause_shim):
    site = build_finished_site(tmp_path / "site")
    trash = site / "locks" / TRASH
    (trash / "old").mkdir(parents=True)
    (trash / "old" / "info.lock").write_text("{}")
    pause = Pause(pause_shim, tmp_path / "pause", "openat", "deployments")
    agent = start_agent(agents, write_config(tmp_path / "lw.ini", site), env=pause.env())
    pause.wait_paused(detail=agent.tail)
    # The first scan has listed locks/ with the trash in it; the trash goes.
    (trash / "old" / "info.lock").unlink()
    (trash / "old").rmdir()
    trash.rmdir()
    pause.release()
    agent.wait_fresh_scans(3)
    assert agent.count(r"already gone") == agent.count(r"debug: trash .* was already gone")
    assert agent.count(r"could not remove") == 0, agent.tail()
    assert agent.count(r" (warning|error): ") == 0, agent.tail()
