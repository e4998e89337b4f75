"""Offsets are committed only up to the records that reached the store."""

from __future__ import annotations

import pytest

from transforms.offsets import advance, reports
from transforms.results import SRC, source_of, with_source, without_source


@pytest.mark.parametrize("start, pending, stored, want", [
    (10, set(), [10, 11, 12], (13, set())),
    (10, set(), [11, 12], (10, {11, 12})),          # 10 not stored yet: nothing to commit
    (10, {11, 12}, [10], (13, set())),              # the gap closes
    (10, set(), [5, 10], (11, set())),              # below the start: already committed
    (10, {12}, [10, 14], (11, {12, 14})),
])
def test_advance_commits_the_contiguous_prefix(start, pending, stored, want):
    assert advance(start, pending, stored) == want


def test_reports_group_positions_per_partition_and_skip_rows_without_one():
    assert reports([("t", 1, 5), None, ("t", 0, 7), ("t", 1, 6)]) == [
        (("t", 0), [7]), (("t", 1), [5, 6])]


def test_source_helpers_keep_payloads_clean():
    row = with_source({"a": 1}, ("t", 0, 3))
    assert source_of(row) == ("t", 0, 3) and without_source(row) == {"a": 1}
    assert SRC not in with_source({"a": 1}, None)
