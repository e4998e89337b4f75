"""State requests sent together (transforms/state_requests.py): the per-browser step gives
the same results on Prism, where its reads and writes go out together, as on the Direct
runner."""

from __future__ import annotations

import apache_beam as beam
import pytest
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.test_stream import TestStream
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms.window import TimestampedValue

from pipelines.runners import runner_args
from tests.transforms.test_dedup_identity import _resolved, row
from transforms.browser_state import DedupAndResolve
from transforms.dedup import DROPPED
from transforms.identity import LINKS
from transforms.state_requests import commit_together, read_together, write_over


def _on_prism(streaming: bool) -> beam.Pipeline:
    return beam.Pipeline(options=PipelineOptions(runner_args(["--runner=prism"],
                                                             streaming=streaming)))


def _counted(result, name: str) -> int:
    counters = result.metrics().query(MetricsFilter().with_name(name))["counters"]
    return sum(c.committed or 0 for c in counters)


class _PlainState:
    """A state of another runner's kind: it has only ``read``."""

    def __init__(self, value):
        self.value, self.reads = value, 0

    def read(self):
        self.reads += 1
        return self.value

    def write(self, value):
        self.value = value


def test_states_the_fast_path_cannot_take_are_read_the_plain_way():
    states = [_PlainState("x"), _PlainState(None)]
    assert read_together(states) == ["x", None]
    assert [s.reads for s in states] == [1, 1]
    write_over(states[1], "y", was_empty=True)
    assert states[1].value == "y"
    commit_together(states)  # nothing to send: the runner's own commit keeps them
    assert [s.value for s in states] == ["x", "y"]


@pytest.mark.integration
def test_on_prism_copies_are_dropped_and_identities_resolved_with_reads_together():
    # 300 browsers, each: an anonymous event, an identify, and a copy of the first
    browsers = 300
    events = []
    for b in range(browsers):
        first = row(b * 10 + 1, anon=f"a{b}")
        events += [first, row(b * 10 + 2, anon=f"a{b}", user=f"u{b}"), dict(first)]
    p = _on_prism(streaming=False)
    out = p | beam.Create(events) | DedupAndResolve()
    assert_that(out.rows | beam.FlatMap(_resolved),
                equal_to([(b * 10 + n, f"a{b}" if n == 1 else f"u{b}")
                          for b in range(browsers) for n in (1, 2)]), label="Kept")
    # which copy is dropped depends on the order the runner delivers them: count only
    assert_that(out[DROPPED] | beam.combiners.Count.Globally(), equal_to([browsers]),
                label="Dropped")
    assert_that(out[LINKS] | beam.Map(lambda r: (r["anonymous_id"], r["user_id"])),
                equal_to([(f"a{b}", f"u{b}") for b in range(browsers)]), label="Links")
    result = p.run()
    result.wait_until_finish()
    # the fast path was taken: a read and a write (an append: every state was new) each
    assert _counted(result, "reads_together") >= browsers
    assert _counted(result, "writes_together") >= browsers


@pytest.mark.integration
def test_on_prism_a_stream_remembers_then_forgets_with_reads_together():
    stream = (TestStream()
              .add_elements([TimestampedValue(row(1, user="u1"), 10)])
              .advance_watermark_to(20)
              .add_elements([TimestampedValue(row(1, user="u1"), 25),  # a copy
                             TimestampedValue(row(2), 26)])
              .advance_watermark_to(500)  # the 100 s state TTL has passed: the link is gone
              .add_elements([TimestampedValue(row(3), 510)])
              .advance_watermark_to_infinity())
    p = _on_prism(streaming=True)
    out = p | stream | DedupAndResolve(dedup_window_s=60, state_ttl_s=100)
    assert_that(out.rows | beam.FlatMap(_resolved),
                equal_to([(1, "u1"), (2, "u1"), (3, "a1")]), label="Kept")
    assert_that(out[DROPPED] | beam.Map(lambda r: r["event_id"].int), equal_to([1]),
                label="Dropped")
    result = p.run()
    result.wait_until_finish()
    assert _counted(result, "reads_together") >= 3
    assert _counted(result, "writes_together") >= 3
