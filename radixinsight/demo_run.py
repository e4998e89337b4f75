"""``up --demo``: send simulated traffic through the collector and report from ClickHouse."""

from __future__ import annotations

import time
import uuid
from typing import Any

from radixinsight.demo import FUNNEL, send, user_journeys
from radixinsight.stack import DEMO_PROJECT, Stack, StackConfig, wait_for_rows


def invalid_events(n: int, run_id: str) -> list[dict[str, Any]]:
    """Events the pipeline must dead-letter (bad timestamp), to show none vanish."""
    return [{"event_id": str(uuid.uuid4()), "event_name": "page_view", "project_id": DEMO_PROJECT,
             "timestamp": "yesterday-ish", "user": {"anonymous_id": f"anon-bad-{i}"},
             "properties": {"demo_run": run_id}} for i in range(n)]


def run_demo(stack: Stack, cfg: StackConfig, *, users: int, say=print) -> dict[str, Any]:
    from analytics.funnel import funnel
    from radixinsight.store import connect

    key = stack.demo_key()
    run_id = uuid.uuid4().hex[:12]
    events = list(user_journeys(DEMO_PROJECT, users, run_id))
    bad = invalid_events(max(1, len(events) // 200), run_id)
    say(f"· demo: sending {len(events)} events from {users} simulated users "
        f"(+{len(bad)} invalid ones) to {cfg.collect_url}")
    started, sent_from = time.monotonic(), int(time.time()) - 1
    accepted = send(cfg.collect_url, key, events + bad)
    say(f"· demo: collector accepted {accepted} in {time.monotonic() - started:.1f}s; "
        "waiting for the pipeline…")
    client = connect(cfg.store)
    stored = wait_for_rows(
        client, f"SELECT count() FROM events FINAL WHERE project_id = '{DEMO_PROJECT}' "
                f"AND JSONExtractString(properties, 'demo_run') = '{run_id}'",
        len(events), timeout_s=180)
    invalid = wait_for_rows(
        client, f"SELECT count() FROM events_invalid WHERE project_id = '{DEMO_PROJECT}' "
                f"AND position(payload_raw, '{run_id}') > 0", len(bad), timeout_s=30)
    seconds = round(time.monotonic() - started, 1)
    # the windows covering the demo close a few seconds after its last event
    live_sql = (f"FROM live_event_counts WHERE project_id = '{DEMO_PROJECT}' "
                f"AND window_end > toDateTime64({sent_from}, 3)")
    live_events = wait_for_rows(client, f"SELECT sum(events) {live_sql}", len(events),
                                timeout_s=30)
    report = {
        "run_id": run_id, "sent": len(events), "stored": stored, "invalid_sent": len(bad),
        "dead_lettered": invalid, "seconds": seconds, "live_events": live_events,
        "top_events": client.query(
            "SELECT event_name, count() AS n FROM events FINAL WHERE project_id = {p:String} "
            "GROUP BY event_name ORDER BY n DESC LIMIT 5",
            parameters={"p": DEMO_PROJECT}).result_rows,
        "funnel": funnel(client, DEMO_PROJECT, FUNNEL, window_s=3600, person="browser"),
        "live_windows": client.query(
            f"SELECT uniqExact(window_start) {live_sql}").result_rows[0][0],
    }
    print_report(report, say)
    return report


def print_report(r: dict[str, Any], say=print) -> None:
    say("")
    say("RadixInsight demo report")
    say(f"  events stored      {r['stored']} of {r['sent']} sent ({r['seconds']}s end to end)")
    say(f"  dead-lettered      {r['dead_lettered']} of {r['invalid_sent']} invalid "
        "(events_invalid)")
    say(f"  live 10 s windows  {r['live_events']} events counted in {r['live_windows']} "
        "window(s) that closed while streaming")
    say("  top events:")
    for name, n in r["top_events"]:
        say(f"    {name:<20} {n}")
    say("  funnel (browsers, conversion from step 1, within 1 h):")
    for step in r["funnel"]:
        say(f"    {step['step']:<20} {step['users']:>6}  {step['conversion']:6.1%}")
    say("")
