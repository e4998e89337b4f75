"""Collector settings: limits, rate limits, Kafka budget, trusted proxies (env: ``RADIX_*``)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from collector.client_ip import Networks, parse_networks
from collector.projects import Registry, ReloadingRegistry, default_path
from collector.ratelimit import RateLimits

MAX_EVENT_BYTES = 100 * 1024  # fixed by the HTTP contract


@dataclass(frozen=True)
class Limits:
    max_event_bytes: int = MAX_EVENT_BYTES  # one event, as compact JSON
    max_batch_events: int = 500
    max_batch_bytes: int = 1024 * 1024  # the decoded (decompressed) body
    max_body_bytes: int = 1024 * 1024  # the body as received (compressed or not)

    def __post_init__(self) -> None:
        if min(self.max_event_bytes, self.max_batch_events, self.max_batch_bytes,
               self.max_body_bytes) <= 0:
            raise ValueError("limits must be positive")


@dataclass(frozen=True)
class KafkaBudget:
    """How much the collector may have handed to Kafka without an acknowledgement.

    Past either bound, or when an acknowledgement is ``ack_timeout_s`` late, requests get
    503 + ``Retry-After`` instead of queueing without bound in memory."""

    max_in_flight_events: int = 50_000
    max_in_flight_bytes: int = 64 * 1024 * 1024
    ack_timeout_s: float = 1.0
    retry_after_s: int = 2

    def __post_init__(self) -> None:
        if self.max_in_flight_events <= 0 or self.max_in_flight_bytes <= 0:
            raise ValueError("the in-flight budget must be positive")
        if self.ack_timeout_s <= 0 or self.retry_after_s < 1:
            raise ValueError("ack_timeout_s must be > 0 and retry_after_s >= 1")


@dataclass
class CollectorConfig:
    bootstrap_servers: str
    registry: Registry | ReloadingRegistry
    topic_prefix: str = "radix"
    producer_options: dict[str, Any] = field(default_factory=dict)
    limits: Limits = field(default_factory=Limits)
    rate_limits: RateLimits = field(default_factory=RateLimits)
    budget: KafkaBudget = field(default_factory=KafkaBudget)
    trusted_proxies: Networks = ()
    redis_url: str | None = None

    @property
    def raw_topic(self) -> str:
        return f"{self.topic_prefix}.events.raw"


def _num(env: Mapping[str, str], name: str, default: float, kind: type = int) -> Any:
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        return kind(text)
    except ValueError:
        raise ValueError(f"{name}={text!r} is not a {kind.__name__}") from None


def config_from_env(env: Mapping[str, str] | None = None) -> CollectorConfig:
    """Every setting from ``RADIX_*`` variables (README, "Collector")."""
    env = os.environ if env is None else env
    limits, rates, budget = Limits(), RateLimits(), KafkaBudget()
    return CollectorConfig(
        bootstrap_servers=env.get("RADIX_KAFKA_BOOTSTRAP", "127.0.0.1:9092"),
        registry=ReloadingRegistry(default_path()),
        topic_prefix=env.get("RADIX_TOPIC_PREFIX", "radix"),
        limits=Limits(
            max_batch_events=_num(env, "RADIX_MAX_BATCH_EVENTS", limits.max_batch_events),
            max_batch_bytes=_num(env, "RADIX_MAX_BATCH_BYTES", limits.max_batch_bytes),
            max_body_bytes=_num(env, "RADIX_MAX_BODY_BYTES", limits.max_body_bytes)),
        rate_limits=RateLimits(
            project_per_s=_num(env, "RADIX_RATE_PROJECT_PER_S", rates.project_per_s, float),
            project_burst=_num(env, "RADIX_RATE_PROJECT_BURST", rates.project_burst, float),
            user_per_s=_num(env, "RADIX_RATE_USER_PER_S", rates.user_per_s, float),
            user_burst=_num(env, "RADIX_RATE_USER_BURST", rates.user_burst, float)),
        budget=KafkaBudget(
            max_in_flight_events=_num(env, "RADIX_MAX_IN_FLIGHT_EVENTS",
                                      budget.max_in_flight_events),
            max_in_flight_bytes=_num(env, "RADIX_MAX_IN_FLIGHT_BYTES",
                                     budget.max_in_flight_bytes),
            ack_timeout_s=_num(env, "RADIX_ACK_TIMEOUT_S", budget.ack_timeout_s, float)),
        trusted_proxies=parse_networks(env.get("RADIX_TRUSTED_PROXIES", "")),
        redis_url=env.get("RADIX_REDIS_URL") or None,
    )
