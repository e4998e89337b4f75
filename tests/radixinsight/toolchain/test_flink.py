"""Streaming on embedded Flink ([local]) with a LOOPBACK Python worker.

Proves, end to end, that the job server assembled from Maven (radixinsight.toolchain.flink)
runs an unbounded Python pipeline: a PeriodicImpulse and a pure-Python unbounded
splittable DoFn (defer_remainder + ManualWatermarkEstimator, the shape of our Kafka source)
feed 5 s fixed event-time windows whose counts must be written WHILE the job runs.
The job is then cancelled and the job server stopped.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.flink,
    # On cancel the job server drops the LOOPBACK worker's gRPC streams; the worker's
    # reader threads then die with "Connection reset by peer". Teardown noise only.
    pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning"),
]

if shutil.which("java") is None or shutil.which("mvn") is None:
    pytest.skip("java and mvn are needed for the Flink job server", allow_module_level=True)

import apache_beam as beam  # noqa: E402
from apache_beam.io.restriction_trackers import (  # noqa: E402
    OffsetRange,
    OffsetRestrictionTracker,
)
from apache_beam.io.watermark_estimators import ManualWatermarkEstimator  # noqa: E402
from apache_beam.options.pipeline_options import PipelineOptions  # noqa: E402
from apache_beam.runners.runner import PipelineState  # noqa: E402
from apache_beam.transforms import window  # noqa: E402
from apache_beam.transforms.periodicsequence import PeriodicImpulse  # noqa: E402
from apache_beam.utils.timestamp import Duration, Timestamp  # noqa: E402

from radixinsight.toolchain.flink import (  # noqa: E402
    ensure_flink_job_server,
    flink_pipeline_args,
    flink_runner,
)

WINDOW_SECONDS = 5
DEADLINE_SECONDS = 180


class _UnboundedOffsets(beam.transforms.core.RestrictionProvider):
    def initial_restriction(self, element):
        return OffsetRange(0, sys.maxsize)

    def create_tracker(self, restriction):
        return OffsetRestrictionTracker(restriction)

    def restriction_size(self, element, restriction):
        return 1


_RESTRICTION = beam.DoFn.RestrictionParam(_UnboundedOffsets())
_WATERMARK = beam.DoFn.WatermarkEstimatorParam(ManualWatermarkEstimator.default_provider())


class PollingSource(beam.DoFn):
    """A pure-Python unbounded SDF that polls like a Kafka consumer would.

    Each call emits a few records stamped with the current time, advances the watermark
    and self-checkpoints with a 1 s resume delay.  On the 2.62 Flink runner that delay is
    only honoured while sources are kept alive (flink_pipeline_args sets
    --shutdown_sources_after_idle_ms); otherwise the residual is re-run at once (a busy
    loop, thousands of records per window), which the count bound below catches.
    """

    @beam.DoFn.unbounded_per_element()
    def process(self, element, tracker=_RESTRICTION, watermark=_WATERMARK):
        position = tracker.current_restriction().start
        now = Timestamp.now()
        for offset in range(position, position + 3):
            if not tracker.try_claim(offset):
                return
            yield window.TimestampedValue(("sdf", offset), now)
        watermark.set_watermark(now)
        tracker.defer_remainder(Duration(seconds=1))


class AppendJsonLine(beam.DoFn):
    def __init__(self, path: str):
        self.path = path

    def process(self, kv, w=beam.DoFn.WindowParam):
        key, count = kv
        with open(self.path, "a") as f:
            f.write(json.dumps({"key": key, "count": count, "window_end": float(w.end),
                                "written_at": time.time()}) + "\n")


def _read(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_streaming_windows_fire_while_job_runs(tmp_path):
    out = tmp_path / "windows.jsonl"
    jar = ensure_flink_job_server()
    options = PipelineOptions(flink_pipeline_args(jar=jar, parallelism=1))

    with flink_runner(options) as runner:
        p = beam.Pipeline(runner=runner, options=options)
        ticks = (p | PeriodicImpulse(fire_interval=0.5, apply_windowing=False)
                   | "KeyTicks" >> beam.Map(lambda _ts: ("impulse", 1)))
        polled = (p | beam.Create(["partition-0"])
                    | beam.ParDo(PollingSource())
                    | "KeyPolled" >> beam.Map(lambda kv: (kv[0], 1)))
        ((ticks, polled) | beam.Flatten()
            | beam.WindowInto(window.FixedWindows(WINDOW_SECONDS))
            | beam.CombinePerKey(sum)
            | beam.ParDo(AppendJsonLine(str(out))))

        submitted_at = time.time()
        result = p.run()
        submit_seconds = time.time() - submitted_at
        try:
            seen: dict[str, dict] = {}
            deadline = time.monotonic() + DEADLINE_SECONDS
            while time.monotonic() < deadline and len(seen) < 2:
                for row in _read(out):
                    # A window that closed after submission, i.e. fired by the live job.
                    if row["window_end"] > submitted_at and row["count"] > 0:
                        seen.setdefault(row["key"], row)
                if result.state not in (PipelineState.RUNNING, PipelineState.STARTING,
                                        PipelineState.STOPPED, PipelineState.UNKNOWN):
                    break
                time.sleep(0.5)
            state_while_output = result.state
            print(f"flink timings: job server start {runner.job_server_startup_seconds:.1f}s, "
                  f"submit {submit_seconds:.1f}s, first live windows after "
                  f"{time.time() - submitted_at:.1f}s: {seen}")
            assert set(seen) == {"impulse", "sdf"}, (
                f"no live window output within {DEADLINE_SECONDS}s; state={result.state}, "
                f"rows={_read(out)[-5:]}")
            assert state_while_output == PipelineState.RUNNING
            # PeriodicImpulse fires every 0.5 s: a full live window holds about 10 ticks.
            assert 1 <= seen["impulse"]["count"] <= 2 * WINDOW_SECONDS / 0.5 + 1
            # 3 records per call and >= 1 s between calls: at most ~3 * 5 per window
            # (slack for timer jitter); a busy loop gives thousands.
            assert 1 <= seen["sdf"]["count"] <= 3 * (WINDOW_SECONDS + 3)
        finally:
            result.cancel()
        # (wait_until_finish would raise here: Beam treats any end but DONE as failure.)
        deadline = time.monotonic() + 60
        while not PipelineState.is_terminal(result.state) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert result.state == PipelineState.CANCELLED

    # Nothing is written once the job is cancelled.
    rows_after_cancel = len(_read(out))
    time.sleep(WINDOW_SECONDS + 1)
    assert len(_read(out)) == rows_after_cancel
