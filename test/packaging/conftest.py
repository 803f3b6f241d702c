"""The packaging tests use a few helpers of the shared test library
(test/lib/lwtest.py), not its fixtures."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "lib"))
