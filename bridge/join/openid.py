"""Verifying who a browser is: a Matrix OpenID token, checked with the user's own homeserver.

The client asks its homeserver for an OpenID token (`/user/{id}/openid/request_token`, or the
widget API's `get_openid`) and hands it to us. We ask the homeserver named in the token
(`GET /_matrix/federation/v1/openid/userinfo`) who it belongs to; the answer's `sub` must be a
user of that same server. Our own homeserver is reached directly at its configured address.

Any other server name comes from an unauthenticated stranger, so reaching it is guarded
(`bridge.join.outbound`): https only, public addresses only (checked on the address actually
connected to), no redirects, small bodies, and one short deadline for the whole verification.
The operator may also list the only federated servers allowed. Discovery follows the Matrix
spec without SRV: an IP literal or explicit port is used as is; otherwise
`.well-known/matrix/server` may delegate (to a name, IP literal and/or port), else port 8448.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote

import aiohttp

from bridge.join.outbound import (
    AddressRefused,
    BodyTooLarge,
    OutboundGuard,
    guarded_session,
    is_ip_literal,
    read_capped,
)

log = logging.getLogger(__name__)

# The whole verification (discovery included) must finish within this: a slow or silent server
# must neither hold a request open nor tell a prober anything by how long it took.
TOTAL_TIMEOUT = 5.0
# .well-known gets part of it, so that the fallback to port 8448 still has time.
_WELL_KNOWN_TIMEOUT = 2.0
_DEFAULT_PORT = 8448
_HOSTNAME = re.compile(r"^([A-Za-z0-9.\-]{1,255})(?::([0-9]{1,5}))?$")
_IPV6 = re.compile(r"^\[([0-9A-Fa-f:.]{2,45})\](?::([0-9]{1,5}))?$")


class OpenIDRejected(Exception):
    """The token is not valid (or not for the user it claims); `reason` is for the log."""


def parse_server_name(name: str) -> tuple[str, int | None]:
    """(host, port or None) of a Matrix server name; IPv6 hosts keep their brackets."""
    match = _HOSTNAME.match(name) or _IPV6.match(name)
    if match is None:
        raise OpenIDRejected(f"bad matrix_server_name {name[:80]!r}")
    host = match.group(1).lower() if match.re is _HOSTNAME else f"[{match.group(1).lower()}]"
    if host.startswith("[") and not is_ip_literal(host):
        raise OpenIDRejected(f"bad matrix_server_name {name[:80]!r}")
    port = int(match.group(2)) if match.group(2) else None
    if port is not None and not 1 <= port <= 65535:
        raise OpenIDRejected(f"bad port in matrix_server_name {name[:80]!r}")
    return host, port


class OpenIDVerifier:
    def __init__(
        self,
        known_servers: Mapping[str, str],
        *,
        allowed_servers: Iterable[str] = (),
        guard: OutboundGuard | None = None,
        timeout: float = TOTAL_TIMEOUT,
    ) -> None:
        # known_servers: server name → base URL, for homeservers reached without discovery or
        # guard (ours, configured by the operator, possibly on loopback next to the bridge).
        self._known = {name: url.rstrip("/") for name, url in known_servers.items()}
        # Empty: any public homeserver may vouch for its users.
        self._allowed = frozenset(name.lower() for name in allowed_servers)
        self._guard = guard or OutboundGuard()
        self._timeout = timeout
        self._local: aiohttp.ClientSession | None = None
        self._federation: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        for session in (self._local, self._federation):
            if session is not None:
                await session.close()
        self._local = self._federation = None

    async def verify(self, access_token: str, server_name: str) -> str:
        """The Matrix user id the token belongs to; raises `OpenIDRejected`."""
        if not access_token or len(access_token) > 1024:
            raise OpenIDRejected("missing or oversized access_token")
        known = self._known.get(server_name)
        if known is None:
            self._check_federated(server_name)
        try:
            async with asyncio.timeout(self._timeout):
                if known is not None:
                    body = await self._userinfo(self._local_session(), known, access_token)
                else:
                    host, port = parse_server_name(server_name)
                    base = await self._discover(host, port)
                    body = await self._userinfo(self._federation_session(), base, access_token)
        except TimeoutError as err:
            raise OpenIDRejected(f"{server_name} did not answer in {self._timeout} s") from err
        sub = body.get("sub") if isinstance(body, dict) else None
        if not isinstance(sub, str) or not sub.startswith("@"):
            raise OpenIDRejected("no sub in userinfo")
        # A homeserver may only vouch for its own users.
        if sub.split(":", 1)[-1] != server_name:
            raise OpenIDRejected(f"{server_name} vouched for {sub[:120]!r}")  # not ours to log raw
        return sub

    def _check_federated(self, server_name: str) -> None:
        """Refuse, before any lookup, the names a federated homeserver cannot have."""
        host, _ = parse_server_name(server_name)
        if self._allowed and server_name.lower() not in self._allowed:
            raise OpenIDRejected(f"{server_name[:80]!r} is not in openid_allowed_servers")
        if is_ip_literal(host):
            self._checked(host)
        elif not _fully_qualified(host):
            raise OpenIDRejected(f"{server_name[:80]!r} is not a fully qualified name")

    async def _userinfo(self, session: aiohttp.ClientSession, base: str, token: str) -> Any:
        url = f"{base}/_matrix/federation/v1/openid/userinfo?access_token={quote(token, safe='')}"
        try:
            # The overall deadline in `verify` governs; this one only backs it up.
            async with session.get(
                url, allow_redirects=False, timeout=aiohttp.ClientTimeout(total=self._timeout + 1)
            ) as resp:
                if resp.status != 200:
                    # Redirects included: they are not followed.
                    raise OpenIDRejected(f"{_netloc(base)} answered {resp.status}")
                return json.loads(await read_capped(resp))
        except (aiohttp.ClientError, OSError, BodyTooLarge, ValueError) as err:
            raise OpenIDRejected(f"{_netloc(base)}: {_describe(err)}") from err

    async def _discover(self, host: str, port: int | None) -> str:
        """The https base URL of the federation API for (host, port), per server discovery."""
        if port is not None or is_ip_literal(host):
            return self._base(host, port or _DEFAULT_PORT)
        delegated = await self._well_known(host)
        if delegated is None:
            return self._base(host, _DEFAULT_PORT)
        to_host, to_port = delegated
        return self._base(to_host, to_port or _DEFAULT_PORT)

    async def _well_known(self, host: str) -> tuple[str, int | None] | None:
        """Where `host` delegates to, or None (no usable answer: fall back to port 8448)."""
        url = f"{self._base(host, 443)}/.well-known/matrix/server"
        try:
            async with self._federation_session().get(
                url, allow_redirects=False, timeout=aiohttp.ClientTimeout(total=_WELL_KNOWN_TIMEOUT)
            ) as resp:
                if resp.status != 200:
                    return None
                answer = json.loads(await read_capped(resp))
        except BodyTooLarge as err:
            raise OpenIDRejected(f"{host} .well-known: {err}") from err
        except (aiohttp.ClientError, OSError, ValueError) as err:
            if _refusal(err) is not None:
                # The fallback would go to the same host: refuse now, saying why.
                raise OpenIDRejected(f"{host}: {_describe(err)}") from err
            return None
        delegated = answer.get("m.server") if isinstance(answer, dict) else None
        if not isinstance(delegated, str):
            return None
        to_host, to_port = parse_server_name(delegated)
        if not is_ip_literal(to_host) and not _fully_qualified(to_host):
            raise OpenIDRejected(
                f"{host} delegates to {delegated[:80]!r}, not a fully qualified name"
            )
        return to_host, to_port

    def _base(self, host: str, port: int) -> str:
        """An https base URL; an IP literal is checked here, as aiohttp skips the resolver."""
        if is_ip_literal(host):
            self._checked(host)
        return f"https://{host}:{port}"

    def _checked(self, host: str) -> None:
        try:
            self._guard.check(host)
        except AddressRefused as err:
            raise OpenIDRejected(str(err)) from err

    def _local_session(self) -> aiohttp.ClientSession:
        if self._local is None:
            self._local = aiohttp.ClientSession(
                auto_decompress=False, headers={"Accept-Encoding": "identity"}
            )
        return self._local

    def _federation_session(self) -> aiohttp.ClientSession:
        if self._federation is None:
            self._federation = guarded_session(self._guard)
        return self._federation


def _fully_qualified(host: str) -> bool:
    """Whether `host` is a DNS name with a real top-level label.

    Refused: `localhost` and other bare names (the resolver's search domains would make them
    internal), and numeric last labels: `127.1` or `0x7f.1` are IPv4 addresses in legacy forms
    that the system resolver would turn into loopback.
    """
    labels = host.strip(".").split(".")
    top = labels[-1]
    return len(labels) > 1 and not top.isdigit() and not top.startswith("0x") and top != ""


def _netloc(base: str) -> str:
    return base.split("://", 1)[-1]


def _refusal(err: BaseException) -> AddressRefused | None:
    """The `AddressRefused` behind an aiohttp connection error, if that is what it was."""
    seen: BaseException | None = err
    for _ in range(8):  # a short chain; bounded in case of a cycle
        if seen is None or isinstance(seen, AddressRefused):
            return seen
        seen = seen.__cause__ or getattr(seen, "os_error", None)
    return None


def _describe(err: BaseException) -> str:
    # Never the exception's URL: the userinfo URL carries the access token.
    refusal = _refusal(err)
    if refusal is not None:
        return f"refused: {refusal}"
    if isinstance(err, aiohttp.ClientConnectorError | BodyTooLarge):
        return f"{type(err).__name__}: {err}"
    return type(err).__name__
