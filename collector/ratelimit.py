"""Per-project and per-user token buckets, in process or shared through Redis.

A request costs one token per event from its project's bucket and from the bucket of
each user in it. It passes only if every bucket can pay; then all pay, else none does
and the answer is 429 with the wait until they could. A bucket may go into debt: a
full bucket lets through a batch larger than its burst, and later requests wait for the
refill, so no batch is impossible. Rate 0 turns a bucket off.

In process (the default) each worker process keeps its own buckets; with
``RADIX_REDIS_URL`` every worker and replica shares them (one Lua script, atomic).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RateLimits:
    project_per_s: float = 5000
    project_burst: float = 10000
    user_per_s: float = 100
    user_burst: float = 500

    def __post_init__(self) -> None:
        if min(self.project_per_s, self.project_burst, self.user_per_s, self.user_burst) < 0:
            raise ValueError("rate limits must not be negative")

    def override(self, fields: Mapping[str, float]) -> RateLimits:
        return replace(self, **fields) if fields else self


@dataclass(frozen=True)
class Charge:
    """``cost`` tokens from bucket ``key``, which refills ``rate``/s up to ``burst``."""

    key: str
    rate: float
    burst: float
    cost: int


def charges(project_id: str, limits: RateLimits, users: Mapping[str, int]) -> list[Charge]:
    """The buckets a request draws from: its project, and each user in it."""
    out = []
    if limits.project_per_s > 0:
        out.append(Charge(f"{{{project_id}}}:p", limits.project_per_s,
                          max(limits.project_burst, 1), sum(users.values())))
    if limits.user_per_s > 0:
        out.extend(Charge(f"{{{project_id}}}:u:{user}", limits.user_per_s,
                          max(limits.user_burst, 1), n) for user, n in users.items())
    return out


Bucket = tuple[float, float]  # (tokens, at monotonic/epoch seconds)


def refill(bucket: Bucket | None, charge: Charge, now: float) -> float:
    if bucket is None:
        return charge.burst
    tokens, at = bucket
    return min(charge.burst, tokens + max(0.0, now - at) * charge.rate)


def settle(buckets: Mapping[str, Bucket], todo: list[Charge],
           now: float) -> tuple[float, dict[str, Bucket]]:
    """Pure token-bucket step: (0, new buckets) if every charge can pay, else (wait_s, {})."""
    wait, new = 0.0, {}
    for c in todo:
        tokens = refill(buckets.get(c.key), c, now)
        need = min(c.cost, c.burst)
        if tokens < need:
            wait = max(wait, (need - tokens) / c.rate)
        new[c.key] = (tokens - c.cost, now)
    return (wait, {}) if wait > 0 else (0.0, new)


class LocalLimiter:
    """Buckets in this process's memory; full buckets are forgotten now and then."""

    def __init__(self, sweep_every_s: float = 60.0) -> None:
        self._buckets: dict[str, Bucket] = {}
        self._sweep_every, self._swept = sweep_every_s, time.monotonic()
        self._bursts: dict[str, Charge] = {}

    async def take(self, todo: list[Charge]) -> float:
        """0 if the request may pass (tokens taken), else seconds to wait."""
        now = time.monotonic()
        wait, new = settle(self._buckets, todo, now)
        self._buckets.update(new)
        for c in todo:
            self._bursts[c.key] = c
        if now - self._swept > self._sweep_every:
            self._sweep(now)
        return wait

    def _sweep(self, now: float) -> None:
        self._swept = now
        full = [k for k, b in self._buckets.items() if refill(b, self._bursts[k], now)
                >= self._bursts[k].burst]
        for k in full:
            del self._buckets[k], self._bursts[k]


# KEYS: bucket keys; ARGV: rate, burst, cost per key. Same arithmetic as ``settle``,
# on Redis's clock so every replica agrees. Returns the wait in seconds as a string.
_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local wait, tokens = 0, {}
for i = 1, #KEYS do
  local rate, burst, cost = tonumber(ARGV[3*i-2]), tonumber(ARGV[3*i-1]), tonumber(ARGV[3*i])
  local b = redis.call('HMGET', KEYS[i], 't', 'at')
  local tk = burst
  if b[1] then tk = math.min(burst, tonumber(b[1]) + math.max(0, now - tonumber(b[2])) * rate) end
  local need = math.min(cost, burst)
  if tk < need then wait = math.max(wait, (need - tk) / rate) end
  tokens[i] = tk
end
if wait > 0 then return tostring(wait) end
for i = 1, #KEYS do
  local rate, burst, cost = tonumber(ARGV[3*i-2]), tonumber(ARGV[3*i-1]), tonumber(ARGV[3*i])
  redis.call('HSET', KEYS[i], 't', tostring(tokens[i] - cost), 'at', tostring(now))
  redis.call('PEXPIRE', KEYS[i], math.ceil((burst + cost) / rate * 1000) + 1000)
end
return '0'
"""


class RedisLimiter:
    """Buckets shared by every collector through Redis; falls back to in-process
    buckets (and logs) while Redis cannot be reached, so ingestion does not stop."""

    def __init__(self, url: str, prefix: str = "radix:rl:") -> None:
        import redis
        import redis.asyncio as aioredis

        self._down_errors = (redis.RedisError, OSError, TimeoutError)
        self._redis = aioredis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self._script = self._redis.register_script(_LUA)
        self._prefix = prefix
        self._fallback = LocalLimiter()
        self._warned_at = -math.inf
        self.errors = 0

    async def take(self, todo: list[Charge]) -> float:
        if not todo:
            return 0.0
        keys = [self._prefix + c.key for c in todo]
        args = [v for c in todo for v in (c.rate, c.burst, c.cost)]
        try:
            return float(await self._script(keys=keys, args=args))
        except self._down_errors as exc:  # degrade to local buckets, do not fail requests
            self.errors += 1
            if time.monotonic() - self._warned_at > 30:
                self._warned_at = time.monotonic()
                log.warning("Redis rate limiter unavailable (%s); using in-process buckets", exc)
            return await self._fallback.take(todo)

    async def close(self) -> None:
        await self._redis.aclose()
