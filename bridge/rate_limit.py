"""A small in-memory token bucket per key (client address, meeting slug), for the join endpoints.

In memory on purpose: limits protect this process from bursts; they need no durability, and
a restart forgetting them is harmless. Buckets that filled up again are dropped, so memory stays
bounded by the number of keys active in the last few seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

from bridge.ports import Clock


@dataclass
class _Bucket:
    tokens: float
    updated_ms: int


class RateLimiter:
    def __init__(self, clock: Clock, *, per_minute: int, burst: int) -> None:
        self._clock = clock
        self._rate_per_ms = per_minute / 60_000
        self._burst = burst
        self._buckets: dict[str, _Bucket] = {}

    def allow(self, key: str) -> bool:
        """Take one token for `key`; False when its bucket is empty."""
        now = self._clock.now_ms()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(float(self._burst), now)
        bucket.tokens = min(
            self._burst, bucket.tokens + (now - bucket.updated_ms) * self._rate_per_ms
        )
        bucket.updated_ms = now
        if len(self._buckets) > 10_000:
            self._forget_full(now)
        if bucket.tokens < 1:
            return False
        bucket.tokens -= 1
        return True

    def _forget_full(self, now: int) -> None:
        for key, bucket in list(self._buckets.items()):
            refilled = bucket.tokens + (now - bucket.updated_ms) * self._rate_per_ms
            if refilled >= self._burst:
                del self._buckets[key]
