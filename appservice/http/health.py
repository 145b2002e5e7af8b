"""`/health` (the process answers) and `/ready` (it can do its work: database, homeserver and
LiveKit all answer), for load balancers, orchestrators and monitoring.

`/ready` checks the three concurrently, each with a short time limit, and answers 200 with
`{"status": "ready", "checks": {...: "ok"}}` or 503 with the reason for each that is not.
Reasons name what failed, never a token or a response body.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import aiohttp
from aiohttp import web

from bridge.ids import LiveKitRoomName
from bridge.ports import Database, LiveKitError, LiveKitRooms

log = logging.getLogger(__name__)

Check = Callable[[], Awaitable[None]]  # returns when fine, raises with the reason when not
CHECK_TIMEOUT_S = 3.0


class NotReady(Exception):
    """One dependency is not usable; the message is the reason shown by /ready."""


class HomeserverProbe:
    """GET /_matrix/client/versions: answered by every homeserver, without authentication."""

    def __init__(self, address: str, timeout_s: float = CHECK_TIMEOUT_S) -> None:
        self._url = address.rstrip("/") + "/_matrix/client/versions"
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def __call__(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        try:
            async with self._session.get(self._url, allow_redirects=False) as response:
                if response.status != 200:
                    raise NotReady(f"{self._url} answered HTTP {response.status}")
                body = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError) as err:
            raise NotReady(f"{self._url} unreachable: {type(err).__name__}") from err
        except ValueError as err:
            raise NotReady(f"{self._url} did not answer JSON") from err
        if not isinstance(body, dict) or "versions" not in body:
            raise NotReady(f"{self._url} is not a Matrix homeserver's answer")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def database_check(db: Database) -> Check:
    async def check() -> None:
        try:
            await db.fetchval("SELECT 1")
        except Exception as err:
            raise NotReady(f"database query failed: {type(err).__name__}") from err

    return check


def livekit_check(livekit: LiveKitRooms) -> Check:
    async def check() -> None:
        try:
            await livekit.list_rooms([LiveKitRoomName("visio-readiness-probe")])
        except LiveKitError as err:
            what = "unreachable" if err.unreachable else f"refused the call ({err.code or err})"
            raise NotReady(f"LiveKit {what}") from err

    return check


class Readiness:
    """The checks /ready runs, by name (database, homeserver, livekit)."""

    def __init__(self, checks: dict[str, Check], timeout_s: float = CHECK_TIMEOUT_S) -> None:
        self.checks = checks
        self._timeout_s = timeout_s

    async def reasons(self) -> dict[str, str]:
        """Each check's result: "ok" or why not."""
        names = list(self.checks)
        results = await asyncio.gather(*(self._run(name) for name in names))
        return dict(zip(names, results, strict=True))

    async def _run(self, name: str) -> str:
        try:
            await asyncio.wait_for(self.checks[name](), self._timeout_s)
        except NotReady as err:
            return str(err)
        except TimeoutError:
            return f"no answer within {self._timeout_s:g} s"
        except Exception as err:
            log.warning("Readiness check %s failed unexpectedly: %r", name, err)
            return f"check failed: {type(err).__name__}"
        return "ok"


async def ready_response(readiness: Readiness) -> web.Response:
    reasons = await readiness.reasons()
    ready = all(result == "ok" for result in reasons.values())
    return web.json_response(
        {"status": "ready" if ready else "not ready", "checks": reasons},
        status=200 if ready else 503,
    )
