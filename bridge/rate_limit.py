"""Limits for the public routes: token buckets per key, concurrent long-polls, client addresses.

In memory on purpose: limits protect this process from bursts; they need no durability, and
a restart forgetting them is harmless. Memory stays bounded: buckets are kept in the order they
were last used, the idle ones (filled up again, so forgetting them changes nothing) are dropped
as traffic comes, and past `max_keys` the least recently used go first.

Which key a request counts against is its client's address. Behind a reverse proxy every
request comes from the proxy, so the client is read from `X-Forwarded-For`, but only when the
peer is one of the operator's trusted proxies, and only the right-most entry that no trusted
proxy wrote: whatever lies left of it came from the client, who can write anything there.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bridge.ports import Clock

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Rate:
    """`per_minute` on average, `burst` at once."""

    per_minute: int
    burst: int

    def limiter(self, clock: Clock, *, max_keys: int = 10_000) -> RateLimiter:
        return RateLimiter(clock, per_minute=self.per_minute, burst=self.burst, max_keys=max_keys)


@dataclass
class _Bucket:
    tokens: float
    updated_ms: int


class RateLimiter:
    def __init__(
        self, clock: Clock, *, per_minute: int, burst: int, max_keys: int = 10_000
    ) -> None:
        self._clock = clock
        self._rate_per_ms = per_minute / 60_000
        self._burst = burst
        self._max_keys = max_keys
        # Least recently used first: a key moves to the end each time it is used.
        self._buckets: dict[str, _Bucket] = {}

    def __len__(self) -> int:
        return len(self._buckets)

    def allow(self, key: str) -> bool:
        """Take one token for `key`; False when its bucket is empty."""
        now = self._clock.now_ms()
        bucket = self._buckets.pop(key, None)
        if bucket is None:
            bucket = _Bucket(float(self._burst), now)
        bucket.tokens = self._refilled(bucket, now)
        bucket.updated_ms = now
        self._forget_idle(now)
        self._buckets[key] = bucket
        if bucket.tokens < 1:
            return False
        bucket.tokens -= 1
        return True

    def retry_after_s(self, key: str) -> int:
        """Whole seconds until `key` has a token again (at least 1: said when refused)."""
        bucket = self._buckets.get(key)
        if bucket is None:
            return 1
        missing = 1 - self._refilled(bucket, self._clock.now_ms())
        return max(1, math.ceil(missing / self._rate_per_ms / 1000))

    def _refilled(self, bucket: _Bucket, now: int) -> float:
        return min(self._burst, bucket.tokens + (now - bucket.updated_ms) * self._rate_per_ms)

    def _forget_idle(self, now: int) -> None:
        # A few at a time from the front (the least recently used): O(1) per request.
        for _ in range(2):
            oldest = next(iter(self._buckets), None)
            if oldest is None or self._refilled(self._buckets[oldest], now) < self._burst:
                break
            del self._buckets[oldest]
        while len(self._buckets) >= self._max_keys:
            del self._buckets[next(iter(self._buckets))]


class ConcurrencyLimit:
    """How many requests may be in progress at once: per key, and in all."""

    def __init__(self, *, per_key: int, total: int) -> None:
        self._per_key = per_key
        self._total = total
        self._in_use: dict[str, int] = {}
        self._all = 0

    def acquire(self, key: str) -> bool:
        """Take a slot for `key` (give it back with `release`); False when none is free."""
        held = self._in_use.get(key, 0)
        if held >= self._per_key or self._all >= self._total:
            return False
        self._in_use[key] = held + 1
        self._all += 1
        return True

    def release(self, key: str) -> None:
        held = self._in_use.get(key, 0)
        if held <= 0:
            return
        self._all -= 1
        if held == 1:
            del self._in_use[key]
        else:
            self._in_use[key] = held - 1

    def in_use(self, key: str | None = None) -> int:
        """Slots held by `key`, or by everyone."""
        return self._all if key is None else self._in_use.get(key, 0)


class ClientAddresses:
    """The client behind a request, as a rate-limit key.

    IPv6 clients count by their /64 (one subscriber's network: its addresses cost nothing)."""

    def __init__(self, trusted_proxies: Iterable[str] = ()) -> None:
        self._trusted = tuple(ipaddress.ip_network(net, strict=False) for net in trusted_proxies)

    def of(self, peer: str | None, forwarded_for: Sequence[str] = ()) -> str:
        """`peer` is the socket's address; `forwarded_for`, every `X-Forwarded-For` header."""
        address = _address(peer or "")
        if address is None:
            return f"peer:{(peer or 'unknown')[:64]}"
        if not self._is_trusted(address):
            return _key(address)
        hops = [hop.strip() for header in forwarded_for for hop in header.split(",")]
        for hop in reversed([hop for hop in hops if hop]):
            parsed = _address(hop)
            if parsed is None:
                break  # not an address ("unknown"): the nearest hop that named one stands in
            address = parsed
            if not self._is_trusted(address):
                break
        return _key(address)

    def _is_trusted(self, address: IPAddress) -> bool:
        return any(address in network for network in self._trusted)


def _address(text: str) -> IPAddress | None:
    """An address as peers and proxies write it: `192.0.2.1`, `192.0.2.1:80`, `[2001:db8::1]:80`."""
    text = text.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _key(address: IPAddress) -> str:
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)
