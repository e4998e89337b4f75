"""Write rows to a ClickHouse table through clickhouse-connect.

Foundation version: one client per worker (``setup``), rows buffered per bundle and
inserted in ``finish_bundle`` (or when the buffer is full). An insert error raises,
so the runner retries the bundle; the ``events`` table collapses the replays by
``event_id``. Batching across bundles, retries with backoff, failed-row output and
metrics are the full sink's job.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import apache_beam as beam


def to_columns(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> list[list[Any]]:
    """Row dicts to column-oriented lists (missing keys become None -> column default)."""
    return [[row.get(col) for row in rows] for col in columns]


class _WriteFn(beam.DoFn):
    def __init__(self, store_url: str | None, table: str, columns: Sequence[str],
                 to_row: Callable[[Any], dict[str, Any]] | None, max_rows: int) -> None:
        self._store_url, self._table, self._columns = store_url, table, list(columns)
        self._to_row, self._max_rows = to_row, max_rows
        self._rows: list[dict[str, Any]] = []
        self._client = None
        self._inserted = beam.metrics.Metrics.counter("clickhouse_sink", f"{table}_rows")

    def setup(self) -> None:
        from radixinsight.store import connect

        self._client = connect(self._store_url)

    def start_bundle(self) -> None:
        self._rows = []

    def process(self, element: Any) -> None:
        self._rows.append(self._to_row(element) if self._to_row else element)
        if len(self._rows) >= self._max_rows:
            self._flush()

    def finish_bundle(self) -> None:
        self._flush()

    def _flush(self) -> None:
        if not self._rows:
            return
        self._client.insert(self._table, to_columns(self._rows, self._columns),
                            column_names=self._columns, column_oriented=True)
        self._inserted.inc(len(self._rows))
        self._rows = []

    def teardown(self) -> None:
        if self._client is not None:
            self._client.close()


class WriteToClickHouse(beam.PTransform):
    """Insert each element (a row dict, or what ``to_row`` makes of it) into ``table``."""

    def __init__(self, store_url: str | None, table: str, columns: Sequence[str], *,
                 to_row: Callable[[Any], dict[str, Any]] | None = None,
                 max_rows: int = 10_000) -> None:
        super().__init__()
        self._fn = _WriteFn(store_url, table, columns, to_row, max_rows)

    def expand(self, rows):
        return rows | "Insert" >> beam.ParDo(self._fn)
