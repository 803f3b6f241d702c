"""Scale-out on a blind share: three agents (distinct WEBSITE_INSTANCE_ID)
watch a bindfs view while every change Kudu makes goes to the folder
underneath (no inotify event reaches them), and their claims and archive are
on the same FUSE mount. Each incident: one archive session, one hook with
scope = site, three with scope = instance, nothing left behind."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "e2e"))

import test_scale as scale  # noqa: E402  (the three-agent helpers)
from conftest import build_stuck_site, write_config  # noqa: E402
from robust_util import bind_mounts  # noqa: E402,F401


# Twenty incidents in turn: over a minute.
@pytest.mark.long
@pytest.mark.parametrize("scope,per_incident", [("site", 1), ("instance", 3)])
def test_twenty_incidents_three_agents_on_a_blind_share(bind_mounts, hook, agents, tmp_path,  # noqa: F811
                                                        monkeypatch, scope, per_incident):
    share = bind_mounts(tmp_path / "backing", tmp_path / "share")
    kudu_side = share.backing / "site"
    build_stuck_site(kudu_side)
    cfg = write_config(tmp_path / "lw.ini", share.mountpoint / "site",
                       site={"claim_expiry": scale.EXPIRY},
                       hook={"command": hook.command(), "scope": scope},
                       archive={"dir": str(share.mountpoint / "archive")})
    # The helpers find the archive (and the claim in it) through the view.
    monkeypatch.setattr(scale, "archive_dir_for", lambda _cfg: share.mountpoint / "archive")
    started = [scale.start(agents, cfg, i) for i in range(3)]
    scale.run_incidents(kudu_side, hook, cfg, started, 20, per_incident, scope)
