"""A bundle's ReadModifyWrite states, read and written with the requests in flight together.

The Python SDK reads user state one blocking round trip at a time, and Prism sends no
user-state cache tokens, so a keyed step that reads once per browser waits one round
trip per browser in series: under load 15-20 ms each, 1-4 s for a bundle of 100-200
browsers (docs/runners.md). Java has ``readLater`` to prefetch; Python has no such API.
``read_together`` starts every read's request on the SDK's state stream before waiting
for any, so a bundle waits about one round trip; ``commit_together`` does the same for
the writes, which the SDK otherwise commits one round trip after another at the end of
the bundle; ``write_over`` spares the clear request of a write to a state read empty.

It uses SDK internals (pinned Beam; ``tests/transforms/test_state_requests.py`` checks the
fast path is taken on Prism). Wherever they do not apply it reads the plain way, one
state at a time: another runner's state context (Direct), a state already changed in
this bundle, a runner whose cache tokens let the SDK cache state across bundles (Flink
with a state cache), or a value split over several responses.
"""

from __future__ import annotations

from typing import Any

from apache_beam.coders.coder_impl import create_InputStream
from apache_beam.metrics import Metrics

try:  # the Fn API worker's classes; absent or changed -> the plain reads
    from apache_beam.portability.api import beam_fn_api_pb2
    from apache_beam.runners.worker.bundle_processor import (
        ReadModifyWriteRuntimeState,
        SynchronousBagRuntimeState,
    )
    from apache_beam.runners.worker.sdk_worker import GlobalCachingStateHandler, GrpcStateHandler
except ImportError:  # pragma: no cover - depends on the SDK build
    ReadModifyWriteRuntimeState = SynchronousBagRuntimeState = None  # type: ignore[assignment,misc]

_WAIT_S = 1.0  # poll interval while waiting, to notice a broken state stream
# requests sent together: they show the fast path is taken (tests, job metrics)
_READS = Metrics.counter("state", "reads_together")
_WRITES = Metrics.counter("state", "writes_together")


def read_together(states: list[Any]) -> list[Any]:
    """The values of ReadModifyWrite ``states`` (``None`` where empty), in order."""
    started = [_start(s) for s in states]
    _READS.inc(sum(f is not None for f in started))
    return [s.read() if f is None else _finish(s, f) for s, f in zip(states, started, strict=True)]


def commit_together(states: list[Any]) -> None:
    """Send the writes of ``states`` now, all before waiting for any. The SDK commits a
    bundle's states at its end one blocking round trip after another (15-20 ms each
    under load: 2-4 s for a bundle of browsers); states committed here leave it nothing
    to do. The others are left to the SDK's commit."""
    sent = []
    for state in states:
        bag = _bag_of(state)
        if bag is None:
            continue
        handler, key = bag._state_handler, bag._state_key
        if bag._cleared:
            sent.append((state, handler.clear(key)))
        if bag._added_elements:
            sent.append((state, handler.extend(key, bag._value_coder.get_impl(),
                                               bag._added_elements)))
        bag._cleared, bag._added_elements = False, []  # the runner holds them now
    _WRITES.inc(len(sent))
    for state, future in sent:
        _answer(state, future)


def write_over(state: Any, value: Any, was_empty: bool) -> None:
    """``state.write(value)`` without its clear request where the state was read empty
    in this bundle and is unchanged since: a ReadModifyWrite write is a clear and an
    append, two requests, and for a new browser the clear has nothing to remove."""
    bag = getattr(state, "_underlying_bag_state", None)
    if (was_empty and SynchronousBagRuntimeState is not None
            and isinstance(state, ReadModifyWriteRuntimeState)
            and isinstance(bag, SynchronousBagRuntimeState)
            and not bag._cleared and not bag._added_elements):
        bag.add(value)
    else:
        state.write(value)


def fast_path_available(state: Any) -> bool:
    """Whether ``read_together`` can start this state's read without waiting."""
    return _grpc_of(state) is not None


def _bag_of(state: Any) -> Any:
    """The Fn API bag under a ReadModifyWrite state, where its requests may be sent
    directly: a gRPC state stream, and no cache across bundles (with a user-state cache
    token and a cache, as on Flink with ``--max_cache_memory_usage_mb``, the SDK's own
    reads may not leave the process)."""
    if ReadModifyWriteRuntimeState is None or not isinstance(state, ReadModifyWriteRuntimeState):
        return None
    bag = getattr(state, "_underlying_bag_state", None)
    if not isinstance(bag, SynchronousBagRuntimeState):
        return None
    handler = bag._state_handler
    if not isinstance(handler, GlobalCachingStateHandler):
        return None
    if (getattr(handler._context, "user_state_cache_token", None)
            and handler._state_cache.is_cache_enabled()):
        return None  # reads may be served in-process: leave them to the SDK
    return bag if isinstance(handler._underlying, GrpcStateHandler) else None


def _grpc_of(state: Any) -> Any:
    bag = _bag_of(state)
    if bag is None or bag._cleared or bag._added_elements:
        return None  # changed in this bundle: only the SDK's own read merges that
    return bag._state_handler._underlying


def _start(state: Any) -> Any:
    grpc = _grpc_of(state)
    if grpc is None:
        return None
    bag = state._underlying_bag_state
    return grpc._request(beam_fn_api_pb2.StateRequest(
        state_key=bag._state_key, get=beam_fn_api_pb2.StateGetRequest()))


def _answer(state: Any, future: Any) -> Any:
    grpc = state._underlying_bag_state._state_handler._underlying
    while not future.wait(timeout=_WAIT_S):
        if grpc._exception:
            raise grpc._exception
        if grpc._done:
            raise RuntimeError("the state stream closed while a request was waiting")
    response = future.get()
    if response.error:
        raise RuntimeError(response.error)
    return response


def _finish(state: Any, future: Any) -> Any:
    response = _answer(state, future)
    if response.get.continuation_token:
        return state.read()  # a value in several pieces: let the SDK page through it
    data = create_InputStream(response.get.data)
    if data.size() == 0:
        return None
    return state._underlying_bag_state._value_coder.get_impl().decode_from_stream(data, True)
