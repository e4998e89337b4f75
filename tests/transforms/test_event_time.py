"""The lateness gate's decision as a function (its stream behaviour is tested with
sessions in test_sessions.py)."""

from __future__ import annotations

import pytest

from transforms.event_time import GateMemory, admit

HORIZON = 100


@pytest.mark.parametrize("passed, at, want", [
    (None, 0, True),        # nothing proved yet: everything passes
    (1_000, 900, True),     # exactly at the horizon
    (1_000, 899, False),    # beyond it: too late for any session
    (1_000, 5_000, True),   # ahead of the watermark
])
def test_admit_drops_only_rows_beyond_the_horizon(passed, at, want):
    in_time, _ = admit(GateMemory(passed_us=passed), "p1", at, HORIZON)
    assert in_time is want


def test_admit_remembers_the_latest_row_and_each_project_once():
    mem = GateMemory()
    for project, at in [("p1", 50), ("p2", 40), ("p1", 60)]:
        _, mem = admit(mem, project, at, HORIZON)
    assert (mem.last_row_us, mem.projects) == (60, frozenset({"p1", "p2"}))


def test_a_too_late_row_changes_nothing():
    before = GateMemory(passed_us=1_000, last_row_us=1_000, projects=frozenset({"p1"}))
    in_time, after = admit(before, "p9", 10, HORIZON)
    assert not in_time and after == before
