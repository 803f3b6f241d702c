"""The identity endpoint and Azure Resource Manager as restart-site sees
them, for the Kudu tests, the bench and the demo: the very stand-in the hook
tests use (StandIn and site_env in test/packaging/test_hooks.py), reused,
with one addition: a POST .../restart that ARM accepts restarts the Kudu
stand-in, so the real, unchanged restart-site hook closes the loop.

The stand-in records every request in its `requests` list before it
answers; that list is replaced by one that also calls on_restart for a
restart request, so the restart has happened by the time the hook hears
that ARM accepted it, and the hook tests' stand-in needs no change.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
for _d in (os.path.join(HERE, "..", "lib"), os.path.join(HERE, "..", "packaging")):
    if _d not in sys.path:
        sys.path.insert(0, _d)

from test_hooks import StandIn, site_env  # noqa: E402,F401


class _RestartTap(list):
    def __init__(self, on_restart):
        super().__init__()
        self.on_restart = on_restart

    def append(self, req):
        super().append(req)
        if req.get("method") == "POST" and req.get("path", "").endswith("/restart"):
            self.on_restart(req["path"])


def start(on_restart):
    """A running identity/ARM stand-in whose accepted restart calls
    on_restart(path); close() it when done."""
    s = StandIn()
    s.requests = _RestartTap(on_restart)
    return s
