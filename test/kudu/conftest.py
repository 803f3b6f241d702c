"""Fixtures for the end-to-end tests against the Kudu stand-in: the shared
test library (test/lib/lwtest.py: agents, waits, config), the Kudu stand-in
on a temporary site tree, and the identity/ARM stand-in whose restart
restarts it."""

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "lib"))
sys.path.insert(0, str(HERE))

from lwtest import *  # noqa: E402,F401,F403  (fixtures, builders, Agent)
from lwtest import pytest_collection_modifyitems  # noqa: E402,F401
from lwtest import make_skeleton, wait_for  # noqa: E402
import arm_standin  # noqa: E402
from kudu_standin import KuduStandIn  # noqa: E402

RESTART_SITE = HERE.parents[1] / "packaging" / "hooks" / "restart-site"


@pytest.fixture
def kudu_factory(tmp_path):
    """Starts the Kudu stand-in on tmp_path/site (kudu_factory(**options))
    and stops it at teardown."""
    started = []

    def start(**kw):
        site = make_skeleton(tmp_path / "site")
        k = KuduStandIn(site, log=lambda m: print("kudu:", m), **kw).start()
        started.append(k)
        return k

    yield start
    for k in started:
        k.close()


@pytest.fixture
def arm_factory():
    """The identity endpoint and ARM; arm_factory(kudu) restarts that Kudu
    stand-in when ARM is asked to restart the site."""
    started = []

    def start(kudu):
        a = arm_standin.start(lambda path: kudu.restart("site restart through ARM"))
        started.append(a)
        return a

    yield start
    for a in started:
        a.close()


def wait_idle(kudu, timeout=10):
    """Waits until no deployment runs and the lock is free. Kudu marks a
    record Success a moment before it releases the lock (FinishDeployment,
    then the temp record's removal, then the release), so a client that
    deploys again the instant it saw Success can get a 409, in Kudu as
    here; tests that mean "the next deploy" wait for this first."""
    wait_for(lambda: not kudu.proc.running and not kudu.proc.is_held(), timeout,
             "Kudu to be idle")
