"""The collector's ASGI app: check, authorise, limit, envelope, and answer from Kafka's acks.

Routes: ``POST /collect`` (and its CORS preflight), ``GET /health``, ``GET /ready``,
``GET /metrics``, ``GET /openapi.json`` (the contract, ``collector/openapi.json``).
It stays thin: per-event validation and enrichment belong to the pipeline. ``/collect``
is plain ASGI rather than a framework route: it is the hot path, and its checks are the
pure functions of ``body``, ``access``, ``cors``, ``client_ip`` and ``ratelimit``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import orjson
from kafka.errors import KafkaError

from collector import access, body, cors
from collector.client_ip import client_ip
from collector.config import CollectorConfig
from collector.envelope import envelope_head, who, wrap
from collector.errors import RejectedError, too_large
from collector.metrics import Metrics
from collector.producer import AckingProducer, KafkaUnavailableError
from collector.ratelimit import LocalLimiter, RateLimits, RedisLimiter, charges

log = logging.getLogger(__name__)

OPENAPI_PATH = Path(__file__).with_name("openapi.json")
MAX_USER_AGENT = 1024  # characters kept in the envelope
Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class ClientGoneError(Exception):
    """The client disconnected before its body arrived."""


def request_headers(scope: Scope) -> tuple[dict[str, str], list[str]]:
    """Header values by lower-case name, and every X-Forwarded-For value in order."""
    headers, forwarded = {}, []
    for name, value in scope["headers"]:
        text = value.decode("latin-1")
        if name == b"x-forwarded-for":
            forwarded.append(text)
        headers[name.decode("latin-1")] = text
    return headers, forwarded


async def read_body(receive: Receive, limit: int) -> bytes:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGoneError
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise too_large(f"body larger than {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


async def respond(send: Send, status: int, payload: bytes, headers: dict[str, str],
                  content_type: str = "application/json") -> None:
    raw = [(b"content-type", content_type.encode()), (b"content-length", b"%d" % len(payload))]
    raw += [(k.lower().encode(), v.encode("latin-1")) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": payload})


def error_body(message: str) -> bytes:
    return orjson.dumps({"error": message})


def bootstrap_addresses(bootstrap: str) -> list[tuple[str, int]]:
    out = []
    for item in bootstrap.split(","):
        host, _, port = item.strip().rpartition(":")
        if host and port.isdigit():
            out.append((host.strip("[]"), int(port)))
    return out


class Collector:
    """One worker's collector: its Kafka producer, rate limiter and metrics."""

    def __init__(self, cfg: CollectorConfig) -> None:
        self.cfg = cfg
        self.metrics = Metrics()
        self.limiter = RedisLimiter(cfg.redis_url) if cfg.redis_url else LocalLimiter()
        self.producer: AckingProducer | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._openapi = OPENAPI_PATH.read_bytes()
        self._counted: dict[tuple[str, int], Any] = {}
        self._accepted: dict[str, Any] = {}
        self._rates: dict[tuple[tuple[str, float], ...], RateLimits] = {}
        self._routes: dict[tuple[str, str], Callable[..., Awaitable[None]]] = {
            ("/collect", "POST"): self.collect, ("/collect", "OPTIONS"): self.preflight,
            ("/health", "GET"): self.health, ("/ready", "GET"): self.ready,
            ("/metrics", "GET"): self.expose_metrics, ("/openapi.json", "GET"): self.openapi}

    # -- ASGI ----------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        handler = self._routes.get((path, method))
        if handler is None:
            allowed = [m for (p, m) in self._routes if p == path]
            status = 405 if allowed else 404
            await self._answer(send, path, status, error_body(
                "method not allowed" if allowed else f"no such endpoint: {path}"),
                {"Allow": ", ".join(allowed)} if allowed else {})
            return
        await handler(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _answer(self, send: Send, endpoint: str, status: int, payload: bytes,
                      headers: dict[str, str], content_type: str = "application/json") -> None:
        counter = self._counted.get((endpoint, status))
        if counter is None:  # labels() validates on every call; the child is reusable
            counter = self._counted[(endpoint, status)] = self.metrics.requests.labels(
                endpoint if endpoint in {p for p, _ in self._routes} else "other", str(status))
        counter.inc()
        await respond(send, status, payload, headers, content_type)

    def _accepted_of(self, project_id: str) -> Any:
        counter = self._accepted.get(project_id)
        if counter is None:  # labels() validates on every call; the child is reusable
            counter = self._accepted[project_id] = self.metrics.accepted.labels(project_id)
        return counter

    def _rates_of(self, overrides: dict[str, float]) -> RateLimits:
        """The configured limits with a project's overrides (built once per override set)."""
        if not overrides:
            return self.cfg.rate_limits
        key = tuple(overrides.items())
        rates = self._rates.get(key)
        if rates is None:
            rates = self._rates[key] = self.cfg.rate_limits.override(overrides)
        return rates

    # -- Kafka producer lifecycle --------------------------------------------
    async def start(self, first_wait_s: float = 10.0) -> None:
        """Connect to Kafka in the background; wait a little so a healthy start is ready."""
        self._connecting = asyncio.create_task(self._connect())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._connecting), first_wait_s)

    async def _connect(self) -> None:
        # In a thread: bootstrapping blocks while Kafka is down, and the loop must keep
        # answering (503s, health) meanwhile. Retried until it works.
        while True:
            producer = None
            try:
                producer = await asyncio.to_thread(
                    AckingProducer, self.cfg.bootstrap_servers, self.cfg.budget,
                    **self.cfg.producer_options)
                await asyncio.to_thread(producer.warm_up, self.cfg.raw_topic)
                self.producer = producer
                return
            except KafkaError as exc:
                log.warning("Kafka at %s not reachable yet (%s); retrying",
                            self.cfg.bootstrap_servers, exc)
                if producer is not None:
                    await asyncio.to_thread(producer.close, 0)
                await asyncio.sleep(1.0)

    async def stop(self) -> None:
        if self._connecting is not None and not self._connecting.done():
            self._connecting.cancel()
        if self.producer is not None:
            producer, self.producer = self.producer, None
            await asyncio.to_thread(producer.close)  # delivers what is in flight
        if isinstance(self.limiter, RedisLimiter):
            await self.limiter.close()

    # -- POST /collect ---------------------------------------------------------
    async def collect(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers, forwarded = request_headers(scope)
        origin = headers.get("origin")
        registry = self.cfg.registry
        answer_headers = cors.response_headers(origin, registry.origins)
        m = self.metrics
        m.in_flight_requests.inc()
        try:
            status, payload = await self._collect(scope, receive, headers, forwarded, origin)
        except RejectedError as r:
            m.rejected.labels(r.reason).inc(r.events)
            status, payload = r.status, error_body(r.message)
            answer_headers.update(r.headers)
        except ClientGoneError:
            return
        finally:
            m.in_flight_requests.dec()
            if self.producer is not None:
                m.in_flight_events.set(self.producer.in_flight_events)
        await self._answer(send, "/collect", status, payload, answer_headers)

    async def _collect(self, scope: Scope, receive: Receive, headers: dict[str, str],
                       forwarded: list[str], origin: str | None) -> tuple[int, bytes]:
        cfg, limits = self.cfg, self.cfg.limits
        body.check_content_type(headers.get("content-type"))
        gzipped = body.is_gzip(headers.get("content-encoding"))
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > limits.max_body_bytes:
            raise too_large(f"body larger than {limits.max_body_bytes} bytes")
        raw = await read_body(receive, limits.max_body_bytes)
        query_string = scope.get("query_string", b"")
        query: dict[str, list[str]] = (
            parse_qs(query_string.decode("latin-1")) if query_string else {})
        key = headers.get("x-api-key") or next(iter(query.get("api_key", [])), None)
        if not key and origin is None:  # keyless requests come only from browsers
            raise RejectedError(401, "unauthorized", access.MISSING_KEY)
        writer = access.by_key(cfg.registry, key, origin) if key else None
        events = body.parse_events(body.decode_body(
            raw, gzipped, max_body_bytes=limits.max_body_bytes,
            max_batch_bytes=limits.max_batch_bytes), limits.max_batch_events)
        if writer is None:
            writer = access.keyless(cfg.registry, origin, next(iter(
                query.get("project_id", [])), None), events)
        project_id = writer.project.project_id
        access.check_event_projects(events, project_id)

        peer = scope.get("client")
        ip = client_ip(peer[0] if peer else None, forwarded, cfg.trusted_proxies)
        head = envelope_head(project_id=project_id, key_id=writer.key_id, ip=ip,
                             user_agent=headers.get("user-agent", "")[:MAX_USER_AGENT] or None,
                             received_at=datetime.now(UTC))
        records, users = [], {}
        for i, event in enumerate(events):
            event_json = orjson.dumps(event)
            if len(event_json) > limits.max_event_bytes:
                raise too_large(f"event {i} is {len(event_json)} bytes; at most "
                                f"{limits.max_event_bytes}", events=len(events))
            user = who(event)
            records.append(((f"{project_id}:{user}").encode(),
                            wrap(head, event_json, event.get("sent_at"))))
            user = user or f"ip:{ip}"  # an event without a user is limited by its address
            users[user] = users.get(user, 0) + 1

        rates = self._rates_of(writer.project.rate_limits)
        wait_s = await self.limiter.take(charges(project_id, rates, users))
        if wait_s > 0:
            raise RejectedError(429, "rate_limited", f"rate limit of project {project_id!r} or of "
                            f"one of its users reached; retry in {wait_s:.1f}s",
                            headers={"Retry-After": str(max(1, math.ceil(wait_s)))},
                            events=len(events))
        await self._produce(records)
        self._accepted_of(project_id).inc(len(records))
        return 202, b'{"accepted":%d}' % len(records)

    async def _produce(self, records: list[tuple[bytes, bytes]]) -> None:
        retry = {"Retry-After": str(self.cfg.budget.retry_after_s)}
        producer = self.producer
        if producer is None:
            raise RejectedError(503, "kafka_unavailable", "not connected to Kafka yet",
                            headers=retry, events=len(records))
        started = time.perf_counter()
        try:
            await producer.send_all(self.cfg.raw_topic, records)
        except KafkaUnavailableError as exc:
            raise RejectedError(503, "kafka_unavailable", f"event store unavailable: {exc}",
                            headers=retry, events=len(records)) from exc
        self.metrics.produce_seconds.observe(time.perf_counter() - started)

    async def preflight(self, scope: Scope, _receive: Receive, send: Send) -> None:
        headers, _ = request_headers(scope)
        origin = headers.get("origin")
        if origin is None:  # not a CORS preflight: say what the endpoint takes
            await self._answer(send, "/collect", 204, b"", {"Allow": cors.ALLOW_METHODS})
            return
        status, answer = cors.preflight(origin, headers.get("access-control-request-method"),
                                        self.cfg.registry.origins)
        payload = b"" if status == 204 else error_body(f"origin {origin!r} may not send events")
        await self._answer(send, "/collect", status, payload, answer)

    # -- the other endpoints ---------------------------------------------------
    async def health(self, _scope: Scope, _receive: Receive, send: Send) -> None:
        await self._answer(send, "/health", 200, b'{"status":"ok"}', {})

    async def ready(self, _scope: Scope, _receive: Receive, send: Send) -> None:
        problems = await self.readiness_problems()
        if problems:
            await self._answer(send, "/ready", 503, orjson.dumps(
                {"status": "unavailable", "problems": problems}),
                {"Retry-After": str(self.cfg.budget.retry_after_s)})
        else:
            await self._answer(send, "/ready", 200, b'{"status":"ready"}', {})

    async def readiness_problems(self) -> list[str]:
        """Why this worker cannot accept events now (empty: ready)."""
        producer, budget = self.producer, self.cfg.budget
        problems = []
        if producer is None:
            problems.append("not connected to Kafka yet")
        elif not producer.available():
            problems.append(f"Kafka has not acknowledged for {producer.stalled_for():.1f}s")
        elif producer.in_flight_events >= budget.max_in_flight_events:
            problems.append("in-flight budget exhausted")
        if not await self._broker_reachable():
            problems.append(f"no Kafka bootstrap server at {self.cfg.bootstrap_servers} "
                            "accepts connections")
        return problems

    async def _broker_reachable(self) -> bool:
        for host, port in bootstrap_addresses(self.cfg.bootstrap_servers):
            try:
                _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 0.5)
            except (OSError, TimeoutError):
                continue
            writer.close()
            return True
        return False

    async def expose_metrics(self, _scope: Scope, _receive: Receive, send: Send) -> None:
        payload, content_type = self.metrics.render()
        await self._answer(send, "/metrics", 200, payload, {}, content_type)

    async def openapi(self, _scope: Scope, _receive: Receive, send: Send) -> None:
        await self._answer(send, "/openapi.json", 200, self._openapi, {})


def create_app(cfg: CollectorConfig) -> Collector:
    return Collector(cfg)
