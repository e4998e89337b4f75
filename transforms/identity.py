"""Identity resolution: link anonymous browsers to identified users.

An event carrying both ``anonymous_id`` and ``user_id`` (an identify) links the two.
The link is recorded in ``identities`` with the event that caused it; history is not
rewritten: earlier anonymous events resolve to the user at query time through the
``identity_map`` view (see schemas/clickhouse/0008_identities.sql), and an unlink
(``radixinsight identity unlink``) takes effect there too.

In the stream each event gets ``resolved_user_id``: its own ``user_id``, else the user
its anonymous id is linked to (per-key state), else the anonymous id. An anonymous id
is never merged into a second identified user automatically: the first link stands
and the second pair is recorded with status ``conflict``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import apache_beam as beam
from apache_beam.coders import StrUtf8Coder
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec, TimerSpec, on_timer
from apache_beam.typehints import Tuple
from apache_beam.utils.timestamp import Duration

LINKS = "links"  # tagged output: rows for the ``identities`` table
DEFAULT_STATE_TTL_S = 30 * 24 * 3600
IDENTITY_COLUMNS = ("project_id", "anonymous_id", "user_id", "status", "linked_at", "event_id",
                    "source", "version")


def identity_key(row: dict[str, Any]) -> tuple[str, str]:
    """Events of one browser (or, without an anonymous id, of one user) share a key."""
    anon = row.get("anonymous_id") or ""
    return row["project_id"], anon if anon else "user:" + (row.get("user_id") or "")


def link_row(row: dict[str, Any], status: str) -> dict[str, Any]:
    ts: datetime = row["timestamp"]
    return {"project_id": row["project_id"], "anonymous_id": row["anonymous_id"],
            "user_id": row["user_id"], "status": status, "linked_at": ts,
            "event_id": row["event_id"], "source": "pipeline",
            # Versioned by event time; an unlink is versioned by wall clock, so a
            # replayed old event never undoes it, while a newer identify does.
            "version": int(ts.timestamp() * 1000)}


def resolve(row: dict[str, Any], linked: str | None
            ) -> tuple[str, dict[str, Any] | None, str | None]:
    """``(resolved_user_id, link row or None, link to remember)`` for one event."""
    user, anon = row.get("user_id") or "", row.get("anonymous_id") or ""
    if user and anon:
        if linked is None:
            return user, link_row(row, "linked"), user
        if linked != user:
            return user, link_row(row, "conflict"), linked
        return user, None, linked
    if user:
        return user, None, linked
    return linked or anon, None, linked


def _keyed(row: dict[str, Any]) -> tuple[tuple[str, str], dict[str, Any]]:
    return identity_key(row), row


class _ResolveFn(beam.DoFn):
    LINKED = ReadModifyWriteStateSpec("linked_user", StrUtf8Coder())
    EXPIRE = TimerSpec("expire", TimeDomain.WATERMARK)

    def __init__(self, state_ttl_s: float) -> None:
        self._ttl = Duration(seconds=state_ttl_s)
        self._links = beam.metrics.Metrics.counter("identity", "links")
        self._conflicts = beam.metrics.Metrics.counter("identity", "conflicts")

    def process(self, kv: tuple[tuple[str, str], dict[str, Any]], ts=beam.DoFn.TimestampParam,
                linked_state=beam.DoFn.StateParam(LINKED),
                expire=beam.DoFn.TimerParam(EXPIRE)):
        row = kv[1]
        before = linked_state.read()
        resolved, link, after = resolve(row, before)
        if after is not None:
            if after != before:
                linked_state.write(after)
            expire.set(ts + self._ttl)  # forget a browser idle for the TTL
        if link is not None:
            (self._links if link["status"] == "linked" else self._conflicts).inc()
            yield beam.pvalue.TaggedOutput(LINKS, link)
        yield {**row, "resolved_user_id": resolved}

    @on_timer(EXPIRE)
    def forget(self, linked_state=beam.DoFn.StateParam(LINKED)):
        linked_state.clear()


def resolve_in_order(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]],
                                                        list[dict[str, Any]]]:
    """One browser's events in event-time order -> (resolved rows, link rows)."""
    linked, out, links = None, [], []
    for row in sorted(rows, key=lambda r: r["timestamp"]):
        resolved, link, linked = resolve(row, linked)
        out.append({**row, "resolved_user_id": resolved})
        if link is not None:
            links.append(link)
    return out, links


class _ResolveGroupFn(beam.DoFn):
    def process(self, kv: tuple[tuple[str, str], list[dict[str, Any]]]):
        rows, links = resolve_in_order(list(kv[1]))
        yield from rows
        for link in links:
            yield beam.pvalue.TaggedOutput(LINKS, link)


class ResolveIdentity(beam.PTransform):
    """rows -> rows with ``resolved_user_id`` (main ``rows``) and link rows (``LINKS``).

    ``streaming=False`` (backfills): each browser's events are grouped and resolved in
    event-time order, so an identify resolves the browser's later events whatever
    order the files were in.
    """

    def __init__(self, state_ttl_s: float = DEFAULT_STATE_TTL_S, *,
                 streaming: bool = True) -> None:
        super().__init__()
        self._ttl_s, self._streaming = state_ttl_s, streaming

    def expand(self, rows):
        if not self._streaming:
            return (rows
                    | "KeyByBrowser" >> beam.Map(_keyed)
                    | "GroupByBrowser" >> beam.GroupByKey()
                    | "Resolve" >> beam.ParDo(_ResolveGroupFn()).with_outputs(
                        LINKS, main="rows"))
        return (rows
                | "KeyByBrowser" >> beam.Map(_keyed)
                | "Resolve" >> beam.ParDo(_ResolveFn(self._ttl_s)).with_input_types(
                    Tuple[Tuple[str, str], Any]).with_outputs(
                    LINKS, main="rows"))
