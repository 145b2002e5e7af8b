"""Outbound HTTP to servers that a stranger names (OpenID verification): guarded against SSRF.

`POST /api/token` is unauthenticated, and the homeserver to ask is whatever the caller says.
Without a guard that turns the bridge into a proxy into its own network (loopback, the LAN,
cloud metadata) and a port scanner. So every connection made here:

- goes only to public addresses: a name is resolved once, every answer is checked, and the
  connector connects to the checked answers only (no second lookup that DNS rebinding could
  change); IP literals, which aiohttp never hands to a resolver, are checked before the request;
- follows no redirects (a redirect is an answer like any other, not a new request);
- reads at most `MAX_BODY` bytes of body, in chunks, and never decompresses.

The resolver and the address policy are constructor arguments so that tests can point a name
at a loopback server; production uses the system resolver and `is_public_address`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# (host, port) → the (address, port) pairs to connect to; tests map names onto loopback servers.
NameResolver = Callable[[str, int], Awaitable[Sequence[tuple[str, int]]]]

# A .well-known or userinfo answer is a few hundred bytes; 16 KiB leaves room and bounds memory.
MAX_BODY = 16 * 1024
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class AddressRefused(OSError):
    """A host resolved (or was written) to an address the bridge must not connect to."""


class BodyTooLarge(Exception):
    """The answer is larger than `MAX_BODY`."""


def is_public_address(address: IPAddress) -> bool:
    """Whether `address` is a globally routable unicast address (IPv4-in-IPv6 unwrapped)."""
    if isinstance(address, ipaddress.IPv6Address):
        # An IPv6 address that carries an IPv4 one reaches that IPv4 one: judge it instead.
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return is_public_address(embedded)
        if address.teredo is not None:
            return False
    # `is_global` alone lets multicast through (224.0.0.0/4 is not in the private list).
    return address.is_global and not (
        address.is_multicast
        or address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_reserved
        or address.is_unspecified
    )


async def system_resolver(host: str, port: int) -> list[tuple[str, int]]:
    """The addresses the system's resolver gives for `host` (both families), with `port`."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [(str(info[4][0]), port) for info in infos]


@dataclass(frozen=True)
class OutboundGuard:
    """Where outbound connections may go, and how names are resolved and TLS is checked."""

    resolver: NameResolver = system_resolver
    allow_address: Callable[[IPAddress], bool] = is_public_address
    # True: the system's trust store; tests pass a context that trusts their own certificate.
    tls: ssl.SSLContext | bool = True

    def check(self, host: str) -> IPAddress:
        """The address `host` (an IP literal) stands for; raises `AddressRefused` if forbidden."""
        try:
            address = ipaddress.ip_address(host.strip("[]"))
        except ValueError as err:
            raise AddressRefused(f"{host[:80]!r} is not an IP address") from err
        if not self.allow_address(address):
            raise AddressRefused(f"{address} is not a public address")
        return address


class _CheckingResolver(AbstractResolver):
    """aiohttp's resolver hook: the connector connects to exactly the addresses returned here."""

    def __init__(self, guard: OutboundGuard) -> None:
        self._guard = guard

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        try:
            answers = await self._guard.resolver(host, port)
        except socket.gaierror as err:
            raise AddressRefused(f"{host[:80]!r} does not resolve") from err
        if not answers:
            raise AddressRefused(f"{host[:80]!r} does not resolve")
        # One forbidden answer refuses them all: a name that mixes public and private answers
        # is an attempt to reach the private one.
        checked = [(self._guard.check(address), to_port) for address, to_port in answers]
        return [
            ResolveResult(
                hostname=host,
                host=str(address),
                port=to_port,
                family=socket.AF_INET6 if address.version == 6 else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
            )
            for address, to_port in checked
        ]

    async def close(self) -> None:
        return None


def guarded_session(guard: OutboundGuard) -> aiohttp.ClientSession:
    """A session whose every connection goes through `guard`'s resolver and address check."""
    connector = aiohttp.TCPConnector(
        resolver=_CheckingResolver(guard),
        # Every new connection resolves (and checks) again; nothing is reused past its check.
        use_dns_cache=False,
        ssl=guard.tls,
    )
    # No compression: a small compressed body must not inflate past the cap in one chunk.
    return aiohttp.ClientSession(
        connector=connector,
        auto_decompress=False,
        headers={"Accept-Encoding": "identity"},
        trust_env=False,  # no proxy from the environment: the proxy would connect for us
    )


def is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


async def read_capped(response: aiohttp.ClientResponse, limit: int = MAX_BODY) -> bytes:
    """The body of `response`, or `BodyTooLarge` as soon as it passes `limit` bytes."""
    if response.content_length is not None and response.content_length > limit:
        raise BodyTooLarge(f"declared {response.content_length} bytes")
    body = bytearray()
    async for chunk in response.content.iter_chunked(4096):
        body += chunk
        if len(body) > limit:
            # Closing drops the connection instead of draining the rest of the body.
            response.close()
            raise BodyTooLarge(f"more than {limit} bytes")
    return bytes(body)
