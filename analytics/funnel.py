"""Conversion funnels over ``events`` with ClickHouse's ``windowFunnel``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# Who a funnel follows. Until identity resolution links anonymous and identified
# events, "browser" follows one device across a sign-up.
PERSON_KEYS = {
    "resolved_user_id": "resolved_user_id",
    "browser": "if(anonymous_id != '', anonymous_id, resolved_user_id)",
}


def funnel_sql(steps: Sequence[str], window_s: int,
               person: str = "resolved_user_id") -> tuple[str, dict[str, Any]]:
    """SQL counting users who reached each step, in order, within ``window_s``.

    windowFunnel rejects DateTime64, so timestamps go in as epoch milliseconds and the
    window is in milliseconds too. ``FINAL`` collapses redelivered duplicates.
    """
    if len(steps) < 2:
        raise ValueError("a funnel needs at least two steps")
    if person not in PERSON_KEYS:
        raise ValueError(f"person must be one of {', '.join(PERSON_KEYS)}")
    conds = ", ".join(f"event_name = {{s{i}:String}}" for i in range(len(steps)))
    levels = ", ".join(f"countIf(level >= {i + 1})" for i in range(len(steps)))
    sql = (
        f"SELECT {levels} FROM ("
        f" SELECT {PERSON_KEYS[person]} AS person, windowFunnel({int(window_s) * 1000})("
        f"toUInt64(toUnixTimestamp64Milli(timestamp)), {conds}) AS level"
        f" FROM events FINAL WHERE project_id = {{project:String}}"
        f" GROUP BY person)"
    )
    params: dict[str, Any] = {f"s{i}": s for i, s in enumerate(steps)}
    return sql, params


def funnel(client: Any, project_id: str, steps: Sequence[str], window_s: int = 86_400,
           person: str = "resolved_user_id") -> list[dict[str, Any]]:
    """Users per step and conversion from the first step."""
    sql, params = funnel_sql(steps, window_s, person)
    counts = list(client.query(sql, parameters={**params, "project": project_id}).result_rows[0])
    first = counts[0] or 1
    return [{"step": s, "users": n, "conversion": n / first} for s, n in zip(steps, counts,
                                                                               strict=True)]
