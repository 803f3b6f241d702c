"""The end-to-end suite's fixtures and helpers live in test/lib/lwtest.py,
shared with test/robust and test/attack."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "lib"))

from lwtest import *  # noqa: E402,F401,F403  (fixtures, builders, Agent)
from lwtest import pytest_collection_modifyitems  # noqa: E402,F401
