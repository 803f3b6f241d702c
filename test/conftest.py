"""Shared by every suite under test/ (pytest.ini is here).

A test marked long takes most of a minute. xdist (--dist load) first hands
each worker a batch of consecutive tests, and a worker runs its batch in
order: two long tests side by side in the file go to the same worker one
after the other, and one at the end of the collection starts last and runs
on alone. So with -n, each long test opens a batch of its own."""

import pytest


# Last: after -m has deselected what it deselects.
@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    workers = config.getoption("numprocesses", None)
    long = [item for item in items if item.get_closest_marker("long")]
    if not long or not isinstance(workers, int) or workers < 2:
        return
    rest = [item for item in items if not item.get_closest_marker("long")]
    # xdist's first batch size (LoadScheduling.schedule).
    batch = max(2, len(items) // 4 // workers)
    spread = []
    for item in long:
        spread.append(item)
        spread.extend(rest[:batch - 1])
        rest = rest[batch - 1:]
    items[:] = spread + rest
