"""The streaming job's wiring, fed by beam.Create instead of Kafka."""

from datetime import UTC, datetime, timedelta

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms.window import TimestampedValue

from collector.envelope import make_envelope
from pipelines.streaming import StreamingOptions, build
from tests.fixtures.events import event


class _Expect(beam.PTransform):
    def __init__(self, fn, expected):
        super().__init__()
        self._fn, self._expected = fn, expected

    def expand(self, pcoll):
        assert_that(pcoll | beam.Map(self._fn), equal_to(self._expected))


class _ExpectEach(_Expect):
    """As _Expect, for a PCollection of lists."""

    def expand(self, pcoll):
        assert_that(pcoll | beam.FlatMap(lambda rows: [self._fn(r) for r in rows]),
                    equal_to(self._expected))


T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def _ids(n):
    return [f"00000000-0000-4000-8000-{i:012d}" for i in range(n)]


def test_build_routes_rows_bad_rows_and_window_counts():
    ids = _ids(5)
    names = ["page_view", "page_view", "signup", "page_view", "signup"]
    # arrival times: three events in window [0, 10), two in [10, 20) (seconds after T0)
    arrivals = [1, 2, 3, 11, 12]
    envs = [make_envelope(event(event_id=i, event_name=n), project_id="p1", key_id="k",
                          ip=None, user_agent=None, received_at=T0 + timedelta(seconds=s))
            for i, n, s in zip(ids, names, arrivals, strict=True)]
    stamped = list(zip([*envs, b"{oops"], [*arrivals, 13], strict=True))  # broker times
    opts = PipelineOptions(["--count_window_s=10", "--watermark_idle_ticks=3",
                            "--watermark_tick_s=10", "--watermark_max_step_s=10"]
                           ).view_as(StreamingOptions)
    sinks = {
        "events": _ExpectEach(lambda r: str(r["event_id"]), ids),  # lists of rows
        "invalid": _Expect(lambda b: b["failure"]["type"], ["invalid_json"]),
        "counts": _Expect(lambda c: (c["window_start"].second, c["event_name"], c["events"]),
                          [(0, "page_view", 2), (0, "signup", 1), (10, "page_view", 1),
                           (10, "signup", 1)]),
        # one browser (a1), identified as u1 in every event: one link, one session
        "identities": _Expect(lambda r: (r["anonymous_id"], r["user_id"], r["status"]),
                              [("a1", "u1", "linked")]),
        "sessions": _Expect(lambda s: (s["session_key"], s["event_count"], s["is_deleted"]),
                            [("a1", 5, 0)]),
        "completeness": _Expect(lambda w: w["project_id"], ["p1"] * 4),
    }
    source = (beam.Create(stamped) | beam.MapTuple(lambda v, t: TimestampedValue(v, t)))
    with TestPipeline(runner="FnApiRunner") as p:
        build(p, source, sinks, opts)


def test_count_rows_carry_window_bounds():
    from transforms.live_counts import CountPerWindow

    rows = [{"project_id": "p", "event_name": "e",
             "received_at": datetime(1970, 1, 1, 0, 0, 25, tzinfo=UTC)}]
    with TestPipeline(runner="FnApiRunner") as p:
        out = (p | beam.Create([TimestampedValue(rows, 25)]) | CountPerWindow(10)
               | beam.Map(lambda c: (c["window_start"], c["window_end"], c["events"])))
        assert_that(out, equal_to([(datetime(1970, 1, 1, 0, 0, 20, tzinfo=UTC),
                                    datetime(1970, 1, 1, 0, 0, 30, tzinfo=UTC), 1)]))
