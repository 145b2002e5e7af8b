"""Verifying who a browser is: a Matrix OpenID token, checked with the user's own homeserver.

The client asks its homeserver for an OpenID token (`/user/{id}/openid/request_token`, or the
widget API's `get_openid`) and hands it to us. We ask the homeserver named in the token
(`GET /_matrix/federation/v1/openid/userinfo`) who it belongs to; the answer's `sub` must be a
user of that same server. The homeserver is found by server discovery (`.well-known/matrix/server`,
then port 8448); our own homeserver is reached directly at its configured address.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from urllib.parse import quote

import aiohttp

log = logging.getLogger(__name__)

_SERVER_NAME = re.compile(r"^[A-Za-z0-9.\-]+(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$")


class OpenIDRejected(Exception):
    """The token is not valid (or not for the user it claims); `reason` is for the log."""


class OpenIDVerifier:
    def __init__(self, session: aiohttp.ClientSession, known_servers: Mapping[str, str]) -> None:
        # known_servers: server name → base URL, for homeservers reached without discovery
        # (ours, behind the same firewall as the bridge).
        self._session = session
        self._known = dict(known_servers)

    async def verify(self, access_token: str, server_name: str) -> str:
        """The Matrix user id the token belongs to; raises `OpenIDRejected`."""
        if not access_token or len(access_token) > 1024:
            raise OpenIDRejected("missing or oversized access_token")
        if not _SERVER_NAME.match(server_name):
            raise OpenIDRejected(f"bad matrix_server_name {server_name[:80]!r}")
        base = self._known.get(server_name) or await self._discover(server_name)
        url = f"{base}/_matrix/federation/v1/openid/userinfo?access_token={quote(access_token)}"
        try:
            async with self._session.get(url, timeout=aiohttp.ClientTimeout(total=10)) as resp:
                if resp.status != 200:
                    raise OpenIDRejected(f"{server_name} answered {resp.status}")
                body = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as err:
            raise OpenIDRejected(f"{server_name} unreachable: {err!r}") from err
        sub = body.get("sub") if isinstance(body, dict) else None
        if not isinstance(sub, str) or not sub.startswith("@"):
            raise OpenIDRejected("no sub in userinfo")
        # A homeserver may only vouch for its own users.
        if sub.split(":", 1)[-1] != server_name:
            raise OpenIDRejected(f"{server_name} vouched for {sub}")
        return sub

    async def _discover(self, server_name: str) -> str:
        well_known = f"https://{server_name}/.well-known/matrix/server"
        try:
            async with self._session.get(
                well_known, timeout=aiohttp.ClientTimeout(total=5), allow_redirects=True
            ) as resp:
                if resp.status == 200:
                    delegated = (await resp.json(content_type=None)).get("m.server")
                    if isinstance(delegated, str) and _SERVER_NAME.match(delegated):
                        host = (
                            delegated
                            if ":" in delegated.rsplit("]", 1)[-1]
                            else f"{delegated}:8448"
                        )
                        return f"https://{host}"
        except (aiohttp.ClientError, TimeoutError, ValueError, AttributeError):
            pass
        has_port = ":" in server_name.rsplit("]", 1)[-1]
        return f"https://{server_name}" if has_port else f"https://{server_name}:8448"
