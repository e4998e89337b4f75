"""The stream's per-browser dedup/identity step on Prism: state requests together vs one at a time.

``DedupAndResolve`` reads and writes each browser's state once per bundle. Reference
(``serial``): the SDK's own blocking read per browser and its commit at the end of the
bundle, one round trip after another. Measured (``together``): the reads of a bundle's
browsers (up to ``MAX_PENDING``) sent before waiting for any, and their writes the same
way (``transforms/state_requests.py``). Same pipeline, same rows, same run:
``--browsers`` browsers with ``--events_per_browser`` events each, generated inside the
job, gathered per browser and bundle, through the step, counted. Each variant runs
``--repeats`` times, alternating; best wall time of each. ``empty_s`` is the same
pipeline without the step, so ``*_step_s`` is the step's own share. The job shares the
machine with nothing else, so the round trips here are the quiet ones (about 0.4 ms);
under the stream's load they were 15-20 ms (docs/runners.md).
Prints ONE JSON line. Usage: python bench/state_requests.py [--browsers 20000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import apache_beam as beam  # noqa: E402
from apache_beam.options.pipeline_options import PipelineOptions  # noqa: E402

from pipelines.runners import runner_args  # noqa: E402
from transforms.browser_state import DedupAndResolve  # noqa: E402

T0 = datetime(2026, 12, 1, tzinfo=UTC)


def browser_rows(b: int, per_browser: int) -> list[dict]:
    """One browser's events; its last is a copy of its first (a client retry)."""
    rows = [{"event_id": uuid.UUID(int=b * 1000 + i), "project_id": "p1",
             "anonymous_id": f"a{b}", "user_id": f"u{b}" if i == 1 else "",
             "timestamp": T0 + timedelta(seconds=i)} for i in range(per_browser)]
    return [*rows, dict(rows[0])]


def run(variant: str, browsers: int, per_browser: int) -> float:
    """Wall seconds of one job (it fails if the rows kept are not the rows expected)."""
    opts = PipelineOptions(runner_args(["--runner=prism"], streaming=False))
    start = time.perf_counter()
    with beam.Pipeline(options=opts) as p:
        rows = (p | beam.Create(range(browsers)) | beam.Reshuffle()
                | beam.FlatMap(browser_rows, per_browser))
        if variant != "empty":
            rows = (rows | DedupAndResolve(requests_together=variant == "together")).rows \
                | beam.FlatMap(lambda batch: batch)
        counted = rows | beam.combiners.Count.Globally()
        counted | beam.Map(_expect, browsers * (per_browser + (variant == "empty")))
    return time.perf_counter() - start


def _expect(got: int, want: int) -> None:
    if got != want:
        raise AssertionError(f"kept {got} rows, want {want}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--browsers", type=int, default=20_000)
    ap.add_argument("--events_per_browser", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    best: dict[str, float] = {}
    for _ in range(args.repeats):
        for variant in ("empty", "serial", "together"):
            wall = run(variant, args.browsers, args.events_per_browser)
            best[variant] = min(best.get(variant, wall), wall)
            print(f"[state_requests] {variant}: {wall:.2f} s", file=sys.stderr)
    step = {v: max(best[v] - best["empty"], 1e-9) for v in ("serial", "together")}
    print(json.dumps({
        "bench": "state_requests", "runner": "prism", "browsers": args.browsers,
        "events_per_browser": args.events_per_browser,
        "empty_s": round(best["empty"], 2), "serial_s": round(best["serial"], 2),
        "together_s": round(best["together"], 2),
        "serial_step_s": round(step["serial"], 2), "together_step_s": round(step["together"], 2),
        "browsers_per_s_serial": round(args.browsers / step["serial"]),
        "browsers_per_s_together": round(args.browsers / step["together"]),
        "ratio_step_serial_to_together": round(step["serial"] / step["together"], 2),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }))


if __name__ == "__main__":
    main()
