"""The collector's HTTP app: authenticate, check size and shape, envelope, ack from Kafka.

Foundation scope: ``POST /collect`` with ``X-API-Key`` and ``GET /health``.
It stays thin: per-event validation and enrichment belong to the pipeline.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from kafka.errors import KafkaError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from collector.envelope import make_envelope, record_key
from collector.producer import AckingProducer, KafkaUnavailableError
from collector.projects import Registry, ReloadingRegistry

MAX_EVENT_BYTES = 100 * 1024
MAX_BATCH_EVENTS = 500
MAX_BODY_BYTES = 5 * 1024 * 1024


@dataclass
class CollectorConfig:
    bootstrap_servers: str
    registry: Registry | ReloadingRegistry
    topic_prefix: str = "radix"
    producer_options: dict[str, Any] = field(default_factory=dict)

    @property
    def raw_topic(self) -> str:
        return f"{self.topic_prefix}.events.raw"


def error(status: int, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers or None)


def split_events(body: Any) -> list[Any]:
    """A JSON array of events, or one event object."""
    if isinstance(body, list):
        return body
    if isinstance(body, dict):
        return [body]
    raise ValueError("body must be a JSON array of events or one event object")


def create_app(cfg: CollectorConfig) -> Starlette:
    state: dict[str, AckingProducer] = {}

    start_lock = asyncio.Lock()

    async def producer() -> AckingProducer:
        # Created on first use, in a thread: bootstrapping blocks while Kafka is down,
        # and the event loop must keep answering (503s, health) meanwhile.
        async with start_lock:
            if "producer" not in state:
                try:
                    state["producer"] = await asyncio.to_thread(
                        AckingProducer, cfg.bootstrap_servers, **cfg.producer_options)
                except KafkaError as exc:  # e.g. NoBrokersAvailable
                    raise KafkaUnavailableError(str(exc)) from exc
        return state["producer"]

    async def collect(request: Request) -> Response:
        key = request.headers.get("x-api-key") or request.query_params.get("api_key")
        if not key:
            return error(401, "missing X-API-Key")
        auth = cfg.registry.authenticate(key)
        if auth is None:
            return error(403, "unknown API key")
        project, write_key = auth
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return error(413, f"body larger than {MAX_BODY_BYTES} bytes")
        try:
            events = split_events(orjson.loads(body))
        except (orjson.JSONDecodeError, ValueError) as exc:
            return error(400, f"malformed body: {exc}")
        if len(events) > MAX_BATCH_EVENTS:
            return error(413, f"batch larger than {MAX_BATCH_EVENTS} events")
        ip = request.client.host if request.client else None
        ua = request.headers.get("user-agent")
        records = []
        for i, event in enumerate(events):
            if not isinstance(event, dict):
                return error(400, f"event {i} is not a JSON object")
            if event.get("project_id", project.project_id) != project.project_id:
                return error(403, f"event {i} is for project {event.get('project_id')!r}, "
                                  f"not the key's project {project.project_id!r}")
            if len(orjson.dumps(event)) > MAX_EVENT_BYTES:
                return error(413, f"event {i} is larger than {MAX_EVENT_BYTES} bytes")
            value = make_envelope(event, project_id=project.project_id,
                                  key_id=write_key.key_id, ip=ip, user_agent=ua,
                                  sent_at=event.get("sent_at"))
            records.append((record_key(project.project_id, event), value))
        try:
            await (await producer()).send_all(cfg.raw_topic, records)
        except KafkaUnavailableError as exc:
            return error(503, f"event store unavailable: {exc}", **{"Retry-After": "2"})
        return JSONResponse({"accepted": len(records)}, status_code=202)

    async def health(_request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        yield
        if "producer" in state:
            state.pop("producer").close()  # flushes what is in flight

    return Starlette(routes=[Route("/collect", collect, methods=["POST"]),
                             Route("/health", health, methods=["GET"])],
                     lifespan=lifespan)
